"""Distillation losses: the soft-target loss with T^2, and hints.

`soft_target_loss` is the exact `T^2 * KL(softmax(t/T) || softmax(s/T))` on
logits, computed with log-softmax; `SoftTargetDistillation` and
`HintDistillation` are the `keras.distillation` loss objects built on it
and on a cosine hint loss.
"""

import keras
import numpy as np
from keras import ops

__all__ = [
    "as_vectors",
    "check_loss_weight",
    "check_temperature",
    "HintDistillation",
    "soft_target_loss",
    "SoftTargetDistillation",
    "standardize_logits",
]


def check_loss_weight(alpha, name="alpha"):
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name} must be a number in [0, 1]; got {alpha!r}.")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(
            f"{name} must be in [0, 1] (the weight of the loss on the labels; "
            f"1 - {name} weighs the teacher's soft targets); got {alpha}."
        )
    return float(alpha)


def check_temperature(temperature):
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise ValueError(f"temperature must be a positive number; got {temperature!r}.")
    if not temperature > 0:
        raise ValueError(
            f"temperature must be > 0 (it divides the logits; 1 keeps them, "
            f"2-8 soften them); got {temperature}."
        )
    return float(temperature)


def standardize_logits(logits, epsilon=1e-6):
    mean = ops.mean(logits, axis=-1, keepdims=True)
    # std's gradient where the logits are all equal is 0 * inf = NaN (e.g. a
    # student whose ReLU features are all zero for one example); a tiny floor
    # under the variance keeps it finite and the value that of std + epsilon.
    std = ops.sqrt(ops.var(logits, axis=-1, keepdims=True) + 1e-20)
    return (logits - mean) / (std + epsilon)


def soft_target_loss(teacher_logits, student_logits, temperature, standardize=False):
    """Per-example soft-target loss: T^2 * KL(softmax(t/T) || softmax(s/T)).

    Computed with log-softmax, so it is exact for any logit scale. With
    `standardize=True` both logit vectors are first shifted and scaled to
    zero mean and unit standard deviation per example (logit
    standardization, Sun et al., CVPR 2024): the student then matches the
    teacher's ranking and relative gaps, not its logit scale, which keeps
    a teacher with large, badly scaled logits from forcing its
    overconfidence on the student.

    Args:
        teacher_logits: `(batch, classes)` teacher logits (or
            log-probabilities: they differ by a per-example shift, which the
            softmax ignores).
        student_logits: `(batch, classes)` student logits.
        temperature: T > 0.
        standardize: standardize the logits before dividing by T.

    Returns:
        A `(batch,)` tensor.

    Example:

    ```python
    soft_target_loss([[2.0, 0.5, -1.0]], [[0.1, 0.3, -0.2]], 4.0)
    # -> a float32 tensor [0.620055]: one loss per sample
    ```
    """
    teacher_logits = ops.stop_gradient(ops.cast(teacher_logits, "float32"))
    student_logits = ops.cast(student_logits, "float32")
    if standardize:
        teacher_logits = standardize_logits(teacher_logits)
        student_logits = standardize_logits(student_logits)
    log_p = ops.log_softmax(teacher_logits / temperature, axis=-1)
    log_q = ops.log_softmax(student_logits / temperature, axis=-1)
    kl = ops.sum(ops.exp(log_p) * (log_p - log_q), axis=-1)
    return kl * (temperature**2)


@keras.saving.register_keras_serializable(package="keras_tl")
class SoftTargetDistillation(keras.distillation.LogitsDistillation):
    """The soft-target loss of Hinton et al., with the T^2 factor, on logits.

    A `keras.distillation.LogitsDistillation` whose `compute_loss` is the
    exact `T^2 * KL(softmax(t/T) || softmax(s/T))` (see
    `soft_target_loss`), with optional logit standardization. Usable with
    `keras.distillation.Distiller` as well as with `keras_tl.Distiller`.

    Args:
        temperature: T > 0; higher values soften the targets.
        standardize: z-score the logits of each example first.

    Example:

    ```python
    loss = SoftTargetDistillation(temperature=4.0, standardize=True)
    keras.distillation.Distiller(teacher, student, loss)
    ```
    """

    def __init__(self, temperature=4.0, standardize=False):
        super().__init__(temperature=check_temperature(temperature))
        self.standardize = bool(standardize)

    def per_example_loss(self, teacher_logits, student_logits):
        """Returns the `(batch,)` losses."""
        return soft_target_loss(
            teacher_logits, student_logits, self.temperature, self.standardize
        )

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        return ops.mean(self.per_example_loss(teacher_outputs, student_outputs))

    def get_config(self):
        return {"temperature": self.temperature, "standardize": self.standardize}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def as_vectors(features):
    # Feature maps (batch, h, w, c) and sequences (batch, steps, d) are
    # averaged over their positions: the hint matches what each example
    # contains, not where.
    if len(features.shape) > 2:
        features = ops.mean(features, axis=tuple(range(1, len(features.shape) - 1)))
    return ops.cast(features, "float32")


@keras.saving.register_keras_serializable(package="keras_tl")
class HintDistillation(keras.distillation.FeatureDistillation):
    """Hint loss between a teacher layer and a projected student layer.

    A `keras.distillation.FeatureDistillation` (FitNets-style hints): both
    features are averaged over spatial or sequence positions, the
    student's goes through a learned linear projection to the teacher's
    width (held by the `Distiller`), and the loss is `2 - 2 cos(angle)`,
    the squared distance of the two unit vectors, so the teacher's feature
    scale does not matter.

    Args:
        student_layer_name: name of the student layer.
        teacher_layer_name: name of the teacher layer.

    Example:

    ```python
    HintDistillation(student_layer_name="features",
                     teacher_layer_name="features")
    ```
    """

    def __init__(self, student_layer_name, teacher_layer_name):
        super().__init__(
            loss="mse",
            teacher_layer_name=teacher_layer_name,
            student_layer_name=student_layer_name,
        )

    def per_example_loss(self, teacher_features, projected_student_features):
        """Returns the `(batch,)` losses."""
        t = ops.stop_gradient(as_vectors(teacher_features))
        s = ops.cast(projected_student_features, "float32")
        t = t / (ops.norm(t, axis=-1, keepdims=True) + 1e-6)
        s = s / (ops.norm(s, axis=-1, keepdims=True) + 1e-6)
        return ops.sum(ops.square(t - s), axis=-1)

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        return ops.mean(self.per_example_loss(teacher_outputs, student_outputs))

    def get_config(self):
        return {
            "student_layer_name": self.student_layer_name,
            "teacher_layer_name": self.teacher_layer_name,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
