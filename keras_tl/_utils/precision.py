"""Mixed precision and XLA settings shared by the recipes.

A recipe called with `mixed_precision=True` builds its model under a mixed
dtype policy (variables in float32, computations in float16 or bfloat16)
and keeps the layers that produce the class probabilities in float32, so
the softmax and the loss see float32 values and the model predicts float32
probabilities, saved or not. Keras wraps the optimizer of a model whose
policy is `"mixed_float16"` in a `keras.optimizers.LossScaleOptimizer` when
it compiles (`auto_scale_loss=True`); bfloat16 has float32's exponent range
and needs no loss scaling.
"""

import contextlib

import keras

__all__ = [
    "MIXED_POLICIES",
    "accelerator_platform",
    "apply_policy",
    "check_jit_compile",
    "loss_scaled",
    "output_layers",
    "precision_scope",
    "resolve_policy",
    "uses_policy",
]

MIXED_POLICIES = ("mixed_float16", "mixed_bfloat16")


def accelerator_platform():
    """The accelerator the current backend computes on, or `None` for CPU.

    Returns:
        `"gpu"`, `"tpu"` or `None`.

    Example:

    ```python
    accelerator_platform()  # -> None on a CPU-only machine
    ```
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        if tf.config.list_physical_devices("GPU"):
            return "gpu"
        if tf.config.list_physical_devices("TPU"):
            return "tpu"
        return None
    if backend == "jax":
        import jax

        platform = jax.devices()[0].platform
        return platform if platform in ("gpu", "tpu") else None
    if backend == "torch":
        import torch

        return "gpu" if torch.cuda.is_available() else None
    return None


def resolve_policy(mixed_precision):
    """The dtype policy name a recipe's `mixed_precision` argument asks for.

    `True` picks `"mixed_float16"` when a GPU is visible to the backend
    (its tensor cores run float16) and `"mixed_bfloat16"` elsewhere (TPUs
    and CPUs, where float16 has no fast path and bfloat16 needs no loss
    scaling).

    Args:
        mixed_precision: `False`/`None`/`"float32"` (float32), `True`, or a
            policy name in `MIXED_POLICIES`.

    Returns:
        The policy name, or `None` for plain float32.

    Example:

    ```python
    resolve_policy(True)  # -> "mixed_float16" on a GPU, else "mixed_bfloat16"
    ```
    """
    if mixed_precision is None or mixed_precision is False:
        return None
    if mixed_precision is True:
        return "mixed_float16" if accelerator_platform() == "gpu" else "mixed_bfloat16"
    if isinstance(mixed_precision, str) and mixed_precision in MIXED_POLICIES:
        return mixed_precision
    if isinstance(mixed_precision, str) and mixed_precision == "float32":
        return None
    raise ValueError(
        f"mixed_precision must be True, False or one of {MIXED_POLICIES}; "
        f"got {mixed_precision!r}."
    )


@contextlib.contextmanager
def precision_scope(policy):
    """Sets Keras' global dtype policy to `policy` inside the block.

    Layers created inside take the policy; the global policy found on entry
    is restored on exit, also when the block raises.

    Args:
        policy: a policy name, or `None` to change nothing.

    Example:

    ```python
    with precision_scope("mixed_bfloat16"):
        backbone = keras.applications.ResNet50(weights=None)
    ```
    """
    if policy is None:
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def output_layers(model):
    """The layers at the end of `model` that should compute in float32.

    Walking back from the last layer: the layers without weights (softmax,
    class names, reshapes) up to and including the first one with weights
    (the logits), entering a nested model when that is where the weights
    are.

    Args:
        model: a functional or sequential `keras.Model`.

    Returns:
        A list of layers.

    Example:

    ```python
    [layer.name for layer in output_layers(model)]
    # -> ['class_names', 'probabilities', 'logits']
    ```
    """
    found = []
    for layer in reversed(getattr(model, "layers", [])):
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.Model) and layer.weights:
            return found + output_layers(layer)
        found.append(layer)
        if layer.weights:
            break
    return found


def apply_policy(model, policy, float32_layers=()):
    """Sets `policy` on every layer of `model`, in place, with exceptions.

    Used for models built before the recipe's scope (a backbone, student or
    classifier passed in) and for layers that ignore the global policy (a
    preset's saved dtype). A layer's variables are float32 under float32
    and mixed policies alike, so switching between them keeps the weights;
    layers compute in their current policy at the next call.

    Args:
        model: a `keras.Model` (or layer).
        policy: a policy name; `None` does nothing.
        float32_layers: layers (with their sublayers) set to `"float32"`
            instead: the ones producing probabilities, which the softmax and
            the loss need in float32.

    Returns:
        `model`.

    Example:

    ```python
    apply_policy(model, "mixed_bfloat16", output_layers(model))
    model.predict(images).dtype  # -> float32
    ```
    """
    if policy is None:
        return model
    keep = set()
    for layer in float32_layers:
        keep.update(id(sub) for sub in layer._flatten_layers(include_self=True))
    for layer in model._flatten_layers(include_self=True):
        if _fixed_dtype(layer):
            continue
        layer.dtype_policy = "float32" if id(layer) in keep else policy
    return model


def _fixed_dtype(layer):
    # Inputs, tokenizers and other integer or string layers, and quantized
    # layers, keep the dtype they have.
    return (
        isinstance(layer, keras.layers.InputLayer)
        or layer.dtype_policy.quantization_mode is not None
        or not keras.backend.is_float_dtype(layer.compute_dtype)
    )


def uses_policy(model, policy):
    """Whether `model` and every model nested in it have `policy`.

    A model built under `precision_scope` does; one built before it (passed
    in), or a preset whose saved configuration names its dtype, does not,
    and needs `apply_policy`.

    Args:
        model: a `keras.Model`.
        policy: a policy name or `None` (always `True`).

    Returns:
        A bool.

    Example:

    ```python
    if not uses_policy(backbone, policy):
        apply_policy(backbone, policy)
    ```
    """
    if policy is None:
        return True
    return all(
        layer.dtype_policy.name == policy
        for layer in model._flatten_layers(include_self=True)
        if isinstance(layer, keras.Model)
    )


def loss_scaled(optimizer, policy):
    """Wraps `optimizer` in a `LossScaleOptimizer` when `policy` is float16.

    `compile` does this by itself for a model whose own policy is
    `"mixed_float16"`; trainers that wrap a model (a distiller, a domain
    adaptation trainer) are subclassed models, which keep a float32 policy
    so that they do not cast their inputs, and get the wrapper here.

    Args:
        optimizer: a Keras optimizer instance.
        policy: a policy name or `None`.

    Returns:
        The optimizer, wrapped for `"mixed_float16"`.

    Example:

    ```python
    trainer.compile(optimizer=loss_scaled(keras.optimizers.Adam(1e-3), policy))
    ```
    """
    if policy == "mixed_float16" and not isinstance(
        optimizer, keras.optimizers.LossScaleOptimizer
    ):
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def check_jit_compile(jit_compile):
    """Validates a recipe's `jit_compile` argument (`model.compile`'s).

    Args:
        jit_compile: `True`, `False` or `"auto"` (XLA where Keras finds it
            supported: on GPUs and TPUs with TensorFlow, always with JAX).

    Returns:
        `jit_compile`.

    Example:

    >>> check_jit_compile("auto")
    'auto'
    """
    if jit_compile not in (True, False, "auto"):
        raise ValueError(f"jit_compile must be True, False or 'auto'; got {jit_compile!r}.")
    return jit_compile
