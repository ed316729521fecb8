"""Knowledge distillation: a small student learns to imitate a large teacher.

`Distiller` is built on `keras.distillation.Distiller` (Keras 3.12+). What
that class does, read in the installed Keras 3.15.1 source and measured:

- T^2 factor: `LogitsDistillation` multiplies by T^2 only when its `loss`
  is a `keras.losses.KLDivergence` *instance*. Its default,
  `loss="kl_divergence"`, resolves through `keras.losses.get` to the plain
  function `kl_divergence`, so the `isinstance` test fails and the default
  path applies neither the softmax nor T^2: it computes a KL divergence
  directly on the tempered logits, clipped to [1e-7, 1]. For teacher logits
  [2, 0.5, -1], student logits [0.1, 0.3, -0.2] and T = 4 it returns 1.562
  where T^2 * KL(softmax(t/T) || softmax(s/T)) = 0.620. Every negative
  logit is clipped to the same constant and gets no gradient, which is how
  a student trained on it can collapse to one class.
- Softmax outputs: the final outputs of both models are taken as logits.
  A model that ends in softmax has its probabilities divided by T and put
  through a second softmax (0.052 instead of 0.620 on the pair above);
  nothing detects it.
- Saving: the class is registered (`keras.distillation.Distiller`) and
  `get_config` serializes teacher, student and losses, so a `.keras` file
  saves and reloads with `safe_mode=True`. `compile` is overridden without
  `get_compile_config`, so the reloaded distiller is not compiled (Keras
  warns) and its optimizer state is lost.
- The teacher is set untrainable and called with `training=False`.
  `FeatureDistillation` with layer names runs the student a second time in
  `compute_loss` (a second forward pass, with other dropout masks) and has
  no projection, so the two layers must have the same shape. Teacher
  outputs are never cached.

`Distiller` keeps the parent's model validation, teacher freezing, loss
trackers and config, and replaces the loss: the exact soft-target loss on
logits found before any softmax, an optional logit standardization, hints
through a learned projection, one student forward pass per step, teacher
logits cached as targets, and a compile config that survives reloading.
`shrink_bert` makes a shallower BERT-family student from a teacher, the
way DistilBERT was initialized.
"""

from keras_tl.distillation.bert import shrink_bert
from keras_tl.distillation.distiller import CACHED_HINT_KEY
from keras_tl.distillation.distiller import CACHED_LOGITS_KEY
from keras_tl.distillation.distiller import LABELS_KEY
from keras_tl.distillation.distiller import Distiller
from keras_tl.distillation.losses import HintDistillation
from keras_tl.distillation.losses import SoftTargetDistillation
from keras_tl.distillation.losses import soft_target_loss

__all__ = [
    "CACHED_HINT_KEY",
    "CACHED_LOGITS_KEY",
    "LABELS_KEY",
    "Distiller",
    "HintDistillation",
    "SoftTargetDistillation",
    "shrink_bert",
    "soft_target_loss",
]
