"""Pooling a transformer's token sequence into one feature vector.

A vision transformer outputs one vector per token: a class token (and, for
some families, a distillation token or register tokens) followed by one
vector per image patch. `TokenPooling` turns that sequence into the fixed
feature vector a linear head reads, as a real (serializable) layer, so a
model that contains it reloads with `safe_mode=True`.
"""

import keras
from keras import ops

__all__ = ["TOKEN_POOLINGS", "TokenPooling"]

TOKEN_POOLINGS = ("token", "mean", "token_mean")


@keras.saving.register_keras_serializable(package="keras_tl")
class TokenPooling(keras.layers.Layer):
    """Pools `(batch, tokens, dim)` transformer outputs to `(batch, features)`.

    Modes:

    - `"token"`: the first token (the class token), what ViT, DeiT and
      CLIP classification heads read.
    - `"mean"`: the mean of the patch tokens (every token after the first
      `num_prefix_tokens`), for models trained without a class token.
    - `"token_mean"`: the class token and the mean of the patch tokens,
      concatenated (`2 * dim` features): DINOv2's linear evaluation.

    Args:
        mode: one of `"token"`, `"mean"`, `"token_mean"`.
        num_prefix_tokens: tokens before the patch tokens (class,
            distillation and register tokens); the means skip them.
        **kwargs: standard `keras.layers.Layer` arguments.

    Example:

    >>> import numpy as np
    >>> tokens = np.arange(12, dtype="float32").reshape(1, 3, 4)
    >>> TokenPooling("mean", num_prefix_tokens=1)(tokens).numpy().tolist()
    [[6.0, 7.0, 8.0, 9.0]]
    """

    def __init__(self, mode="token", num_prefix_tokens=1, **kwargs):
        super().__init__(**kwargs)
        if mode not in TOKEN_POOLINGS:
            raise ValueError(
                f"Unknown token pooling {mode!r}; expected one of {TOKEN_POOLINGS}."
            )
        num_prefix_tokens = int(num_prefix_tokens)
        if num_prefix_tokens < 0:
            raise ValueError(f"num_prefix_tokens must be >= 0; got {num_prefix_tokens}.")
        if mode in ("token", "token_mean") and num_prefix_tokens < 1:
            raise ValueError(
                f"Pooling {mode!r} reads the class token, but num_prefix_tokens=0 "
                "says the model has none; use mode='mean'."
            )
        self.mode = mode
        self.num_prefix_tokens = num_prefix_tokens

    def call(self, inputs):
        if self.mode == "token":
            return inputs[:, 0, :]
        patches = ops.mean(inputs[:, self.num_prefix_tokens :, :], axis=1)
        if self.mode == "mean":
            return patches
        return ops.concatenate([inputs[:, 0, :], patches], axis=-1)

    def compute_output_shape(self, input_shape):
        dim = input_shape[-1]
        if self.mode == "token_mean" and dim is not None:
            dim = 2 * dim
        return (input_shape[0], dim)

    def get_config(self):
        config = super().get_config()
        config.update({"mode": self.mode, "num_prefix_tokens": self.num_prefix_tokens})
        return config
