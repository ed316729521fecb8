"""Losses the recipes train with: label smoothing on integer labels, and
the weighted, smoothed binary cross-entropy of multi-label tasks.

`keras.losses.CategoricalCrossentropy(label_smoothing=...)` needs one-hot
labels; the distillation and text recipes carry integer labels (beside the
teacher's logits, or into class weights), so they smooth with this loss
instead: the same value as the categorical loss on smoothed one-hot labels,
without making them.
"""

import keras
from keras import ops

__all__ = ["MultiLabelCrossentropy", "SparseLabelSmoothingCrossentropy"]


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


@keras.saving.register_keras_serializable(package="keras_tl")
class MultiLabelCrossentropy(keras.losses.Loss):
    """Binary cross-entropy per class, averaged over the classes, with class weights.

    The loss of a multi-label task (independent sigmoid scores), as
    `keras.losses.BinaryCrossentropy` computes it, plus what Keras' `fit`
    cannot give 0/1 label vectors: `class_weight`, as one weight for each
    class's positive examples and one for its negatives (see
    `keras_tl.multi_label.multi_label_weights`). Label smoothing moves each
    target towards 0.5 by `label_smoothing / 2`, as Keras does.

    Args:
        label_smoothing: in [0, 1).
        positive_weights: per-class weights of positive targets, or `None`.
        negative_weights: per-class weights of negative targets, or `None`.
        from_logits: whether the predictions are logits (else sigmoid
            scores).
        **kwargs: `keras.losses.Loss` arguments (`reduction`, `name`).

    Example:

    >>> import numpy as np
    >>> loss = MultiLabelCrossentropy(positive_weights=[2.0, 1.0])
    >>> round(float(loss(np.array([[1.0, 0.0]]), np.array([[0.5, 0.5]]))), 4)
    1.0397
    """

    def __init__(self, label_smoothing=0.0, positive_weights=None, negative_weights=None,
                 from_logits=False, name="multi_label_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        label_smoothing = float(label_smoothing)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1); got {label_smoothing!r}.")
        self.label_smoothing = label_smoothing
        self.positive_weights = None if positive_weights is None else [
            float(w) for w in positive_weights]
        self.negative_weights = None if negative_weights is None else [
            float(w) for w in negative_weights]
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(y_true, y_pred.dtype)
        targets = y_true * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        terms = keras.losses.binary_crossentropy(
            ops.expand_dims(targets, -1), ops.expand_dims(y_pred, -1),
            from_logits=self.from_logits)
        if self.positive_weights is not None or self.negative_weights is not None:
            k = ops.shape(y_pred)[-1]
            positive = ops.ones((k,)) if self.positive_weights is None else ops.convert_to_tensor(
                self.positive_weights, y_pred.dtype)
            negative = ops.ones((k,)) if self.negative_weights is None else ops.convert_to_tensor(
                self.negative_weights, y_pred.dtype)
            terms = terms * (y_true * positive + (1.0 - y_true) * negative)
        return ops.mean(terms, axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(label_smoothing=self.label_smoothing,
                      positive_weights=self.positive_weights,
                      negative_weights=self.negative_weights, from_logits=self.from_logits)
        return config
