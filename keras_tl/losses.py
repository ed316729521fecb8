"""Label smoothing on integer labels.

`keras.losses.CategoricalCrossentropy(label_smoothing=...)` needs one-hot
labels; the distillation and text recipes carry integer labels (beside the
teacher's logits, or into class weights), so they smooth with this loss
instead: the same value as the categorical loss on smoothed one-hot labels,
without making them.
"""

import keras
from keras import ops

__all__ = ["SparseLabelSmoothingCrossentropy"]


@keras.saving.register_keras_serializable(package="keras_tl")
class SparseLabelSmoothingCrossentropy(keras.losses.Loss):
    """Cross-entropy on integer labels smoothed towards the uniform.

    Each label `y` counts as the distribution `(1 - label_smoothing) *
    onehot(y) + label_smoothing / num_classes`, as
    `keras.losses.CategoricalCrossentropy(label_smoothing=...)` does with
    one-hot labels (timm and Model Maker use 0.1).

    Args:
        label_smoothing: in [0, 1); `0` is
            `keras.losses.SparseCategoricalCrossentropy`.
        from_logits: whether the predictions are logits (else
            probabilities).
        **kwargs: `keras.losses.Loss` arguments (`reduction`, `name`).

    Example:

    >>> import numpy as np
    >>> loss = SparseLabelSmoothingCrossentropy(0.1, from_logits=True)
    >>> round(float(loss(np.array([0]), np.array([[2.0, 0.0, 0.0]]))), 4)
    0.3729
    """

    def __init__(self, label_smoothing=0.0, from_logits=False,
                 name="sparse_label_smoothing_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        label_smoothing = float(label_smoothing)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1); got {label_smoothing!r}.")
        self.label_smoothing = label_smoothing
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        if self.from_logits:
            log_p = ops.log_softmax(y_pred, axis=-1)
        else:
            log_p = ops.log(ops.clip(y_pred, keras.config.epsilon(), 1.0))
        labels = ops.reshape(ops.cast(y_true, "int32"), ops.shape(y_pred)[:-1])
        picked = ops.take_along_axis(log_p, ops.expand_dims(labels, -1), axis=-1)[..., 0]
        uniform = ops.mean(log_p, axis=-1)
        return -(1.0 - self.label_smoothing) * picked - self.label_smoothing * uniform

    def get_config(self):
        config = super().get_config()
        config.update(label_smoothing=self.label_smoothing, from_logits=self.from_logits)
        return config
