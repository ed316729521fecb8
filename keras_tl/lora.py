"""LoRA: low-rank adapters on a backbone's dense kernels, merged before export.

Low-rank adaptation (Hu et al., "LoRA: Low-Rank Adaptation of Large Language
Models", 2021) freezes every pretrained weight and learns, for chosen kernels
`W`, a low-rank update `(alpha / rank) * A @ B` with `A` of shape
`(input_dim, rank)` and `B` of shape `(rank, units)`; `B` starts at zero, so
training starts from the pretrained network. Keras' `Dense.enable_lora` and
`EinsumDense.enable_lora` implement the adapter; `enable_lora` here applies it
to every attention projection and MLP kernel of a backbone (or the ones named)
and freezes everything else in it, and `merge_lora` folds the trained
adapters into the kernels and removes them, so the model saves, reloads and
exports to LiteRT exactly as if it had been fine-tuned in full, with no
`lora_*` variable or extra op left.
"""

from __future__ import annotations

import gc
import re
from typing import Sequence

import keras
from keras import ops

from keras_tl._utils.layers import set_trainable

__all__ = ["LORA_LAYER_TYPES", "enable_lora", "lora_layers", "merge_lora"]

LORA_LAYER_TYPES = (keras.layers.Dense, keras.layers.EinsumDense)


def _all_layers(model):
    return list(model._flatten_layers(include_self=True))


def lora_layers(model) -> list:
    """The layers of `model` with LoRA adapters enabled.

    Args:
        model: a Keras model or layer (nested layers included).

    Example:

    ```python
    enable_lora(backbone, rank=4)
    len(lora_layers(backbone))  # -> 24 for a 4-block ViT (6 kernels a block)
    ```
    """
    return [
        layer for layer in _all_layers(model)
        if isinstance(layer, LORA_LAYER_TYPES) and getattr(layer, "lora_enabled", False)
    ]


def _matches(name, patterns):
    return any(re.fullmatch(pattern, name) for pattern in patterns)


def enable_lora(
    model,
    rank: int,
    *,
    alpha: float | None = None,
    target_layers: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
) -> list:
    """Adds LoRA adapters to a backbone's kernels and freezes the rest of it.

    Every `Dense` and `EinsumDense` layer inside `model` (the query, key,
    value and output projections of attention, and the MLP kernels of each
    transformer block) gets Keras' low-rank adapter, unless `target_layers`
    narrows the choice. Afterwards the adapters are the only trainable
    weights in `model`: kernels, biases, norms and embeddings are frozen,
    and BatchNorm layers stay in inference mode. Layers outside `model` (a
    classification head) keep their own setting, so pass the backbone to
    train adapters and head together.

    Args:
        model: the backbone (a Keras model or layer; nested layers included).
        rank: the adapters' rank, >= 1.
        alpha: LoRA's scale numerator: the update is `(alpha / rank) * A @ B`;
            default `rank` (a scale of 1), Keras' default.
        target_layers: regular expressions matched (in full) against layer
            names; only matching `Dense`/`EinsumDense` layers get adapters
            (e.g. `["query", "value"]`, the original paper's choice).
            Default: all of them.
        exclude: regular expressions of layer names to leave without
            adapters (e.g. a pooler that the model does not use).

    Returns:
        The list of layers that got adapters.

    Raises:
        ValueError: `rank < 1`, adapters already enabled, or no `Dense` /
            `EinsumDense` layer to adapt (a CNN: fine-tune it instead).

    Example:

    ```python
    backbone = keras_hub.models.Backbone.from_preset("models/vit_tiny")
    enable_lora(backbone, rank=4)
    # ... train ...
    merge_lora(backbone)
    ```
    """
    rank = int(rank)
    if rank < 1:
        raise ValueError(f"rank must be an integer >= 1; got {rank!r}.")
    if lora_layers(model):
        raise ValueError(
            f"LoRA is already enabled on {model.name!r}; call merge_lora first."
        )
    candidates = [layer for layer in _all_layers(model) if isinstance(layer, LORA_LAYER_TYPES)
                  and layer.built and getattr(layer, "quantization_mode", None) is None]
    targets = [
        layer for layer in candidates
        if (target_layers is None or _matches(layer.name, target_layers))
        and not _matches(layer.name, exclude)
    ]
    if not targets:
        raise ValueError(
            f"{model.name!r} has no Dense or EinsumDense layer to adapt"
            + (f" matching {list(target_layers)}" if target_layers is not None else "")
            + ". LoRA adapts dense kernels (transformers); fine-tune a convolutional "
            "backbone without lora_rank."
        )
    target_ids = {id(layer) for layer in targets}
    # Containers must be trainable for their weights to be collected at all;
    # then every leaf that is not a target is frozen (BatchNorm included, so
    # it stays in inference mode), and each variable but the adapters.
    set_trainable(model, True)
    for layer in _all_layers(model):
        if layer is model or id(layer) in target_ids:
            continue
        if not list(layer._flatten_layers(include_self=False, recursive=False)):
            layer.trainable = False
    for layer in targets:
        layer.trainable = True
        layer.enable_lora(rank, lora_alpha=alpha)
    adapters = {id(v) for layer in targets for v in (layer.lora_kernel_a, layer.lora_kernel_b)}
    for variable in model.weights:
        variable.trainable = id(variable) in adapters
    _reset_compiled_functions(model)
    return targets


def merge_lora(model) -> int:
    """Folds trained LoRA adapters into their kernels and removes them.

    Each adapted layer's kernel becomes `W + (alpha / rank) * A @ B` (in the
    kernel's dtype) and the adapter variables are deleted, so the layer is
    a plain `Dense`/`EinsumDense` again: predictions are unchanged (to float
    rounding), and the saved `.keras` file and the LiteRT export hold no
    `lora_*` weights and no extra ops. The merged layers are left frozen
    (`trainable=False`); set `trainable` to train them further.

    Args:
        model: a Keras model or layer with LoRA-enabled layers inside.

    Returns:
        The number of layers merged (0 when there were none).

    Example:

    ```python
    enable_lora(backbone, rank=4)
    model.fit(data, epochs=3)
    merge_lora(model)
    [v.path for v in model.weights if "lora" in v.path]  # -> []
    ```
    """
    merged = 0
    for layer in lora_layers(model):
        if getattr(layer, "quantization_mode", None) is not None:
            raise ValueError(
                f"Layer {layer.name!r} is quantized; merge LoRA before quantizing."
            )
        # `layer.kernel` is the kernel with the scaled adapter product added.
        kernel = ops.convert_to_numpy(layer.kernel)
        _delete_variable(layer, "lora_kernel_a")
        _delete_variable(layer, "lora_kernel_b")
        # `lora_rank` is in the layer's config: left set, a reloaded model
        # would grow new (zero) adapters.
        layer.lora_enabled = False
        layer.lora_rank = None
        layer.lora_alpha = None
        layer._kernel.assign(ops.cast(kernel, layer._kernel.dtype))
        # Frozen like the rest of the backbone was, and by the layer's own
        # flag, which (unlike a variable's) is saved with the model.
        set_trainable(layer, False)
        merged += 1
    if merged:
        _reset_compiled_functions(model)
        # Frees the adapters' buffers once, not once per variable.
        gc.collect()
    return merged


def _delete_variable(layer, name):
    # What `del layer.<name>` does (stop tracking the variable, drop the
    # attribute) without the full garbage collection that Keras' `Layer.
    # __delattr__` runs after each variable: with a large model in memory
    # that costs a third of a second per variable, minutes for a BERT.
    variable = getattr(layer, name)
    layer._untrack_variable(variable)
    super(keras.layers.Layer, layer).__delattr__(name)


def _reset_compiled_functions(model):
    # A traced train/predict function still reads the adapters (and would
    # add them twice after a merge); the next call traces the layers anew.
    for layer in _all_layers(model):
        if isinstance(layer, keras.Model):
            for attribute in ("train_function", "test_function", "predict_function"):
                if getattr(layer, attribute, None) is not None:
                    setattr(layer, attribute, None)
