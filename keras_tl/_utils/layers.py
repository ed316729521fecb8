"""Layer flags set so that they reach every sublayer."""

import keras

__all__ = ["set_trainable"]


def set_trainable(layer, value):
    """Sets `layer.trainable` and, through it, every sublayer's and weight's.

    On TensorFlow, `layer.trainable = value` does nothing when the layer's
    own flag already equals `value` (TensorFlow's attribute tracking skips
    `x.a = x.a`), even when sublayers differ: e.g. a KerasHub backbone loaded
    frozen, whose inner layers Keras leaves trainable. The property's setter
    always propagates.
    """
    keras.layers.Layer.trainable.fset(layer, bool(value))
    return layer
