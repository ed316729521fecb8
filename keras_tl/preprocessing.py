"""Image preprocessing as a serializable layer.

Keras Applications ship `preprocess_input` functions; wrapping them in a
`Lambda` makes every saved model need `safe_mode=False`. This layer does the
same arithmetic as a real layer, so the models keras-tl builds take raw images
in [0, 255] (what a phone camera gives) and reload with `safe_mode=True`.
"""

import keras
from keras import ops

__all__ = ["PREPROCESSING_MODES", "ImagePreprocessing"]

# `keras.applications.imagenet_utils` constants.
_CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)

PREPROCESSING_MODES = ("caffe", "tf", "torch", "unit", "none")


@keras.saving.register_keras_serializable(package="keras_tl")
class ImagePreprocessing(keras.layers.Layer):
    """Maps raw [0, 255] images to the range a pretrained backbone expects.

    Modes follow `keras.applications.imagenet_utils.preprocess_input`:
    `"caffe"` (RGB to BGR, ImageNet mean subtracted; VGG, ResNet v1),
    `"tf"` (scaled to [-1, 1]; Inception, Xception, MobileNet v1/v2,
    ResNet v2, NASNet), `"torch"` (scaled to [0, 1] then ImageNet mean/std;
    DenseNet), `"unit"` (scaled to [0, 1]; small custom CNNs) and `"none"`
    (EfficientNet, MobileNetV3, ConvNeXt: they preprocess inside).

    Args:
        mode: one of `"caffe"`, `"tf"`, `"torch"`, `"unit"`, `"none"`.
        **kwargs: standard `keras.layers.Layer` arguments.

    Example:

    ```python
    layer = ImagePreprocessing("tf")
    layer(np.full((1, 2, 2, 3), 255.0)).numpy().max()  # -> 1.0
    ```
    """

    def __init__(self, mode="tf", **kwargs):
        super().__init__(**kwargs)
        if mode not in PREPROCESSING_MODES:
            raise ValueError(
                f"Unknown preprocessing mode {mode!r}; expected one of "
                f"{PREPROCESSING_MODES}."
            )
        self.mode = mode

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.mode == "caffe":
            x = ops.flip(x, axis=-1) - ops.convert_to_tensor(
                _CAFFE_BGR_MEAN, dtype=self.compute_dtype
            )
        elif self.mode == "tf":
            x = x / 127.5 - 1.0
        elif self.mode == "torch":
            mean = ops.convert_to_tensor(_TORCH_MEAN, dtype=self.compute_dtype)
            std = ops.convert_to_tensor(_TORCH_STD, dtype=self.compute_dtype)
            x = (x / 255.0 - mean) / std
        elif self.mode == "unit":
            x = x / 255.0
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"mode": self.mode})
        return config
