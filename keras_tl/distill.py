"""Deprecated alias of `keras_tl.distillation`.

The module shared its name with the `keras_tl.recipes.distill` function;
import from `keras_tl.distillation` instead.
"""

import warnings

from keras_tl.distillation import CACHED_HINT_KEY
from keras_tl.distillation import CACHED_LOGITS_KEY
from keras_tl.distillation import LABELS_KEY
from keras_tl.distillation import Distiller
from keras_tl.distillation import HintDistillation
from keras_tl.distillation import SoftTargetDistillation
from keras_tl.distillation import shrink_bert
from keras_tl.distillation import soft_target_loss

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

warnings.warn(
    "keras_tl.distill is renamed keras_tl.distillation",
    DeprecationWarning,
    stacklevel=2,
)
