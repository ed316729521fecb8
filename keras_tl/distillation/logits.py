"""Where a model's logits are, when its output is a softmax.

The loss needs logits, never probabilities: they are found by layer name,
before a final `Softmax` or softmax `Activation`, recomputed from a final
softmax `Dense` layer's input and weights, or, when the softmax is out of
reach inside a nested model, taken as the log of the probabilities.
"""

import keras
from keras import ops

from keras_tl.heads import ClassNames

__all__ = []


def _is_softmax(activation):
    return getattr(activation, "__name__", None) == "softmax"


# Layers that pass their input through unchanged at inference: a softmax
# before them is still the model's last real operation.
_PASS_THROUGH = (ClassNames, keras.layers.Identity, keras.layers.Dropout)


def _last_operation(model):
    """The layer making `model`'s output, pass-through layers skipped.

    Returns `(layer, node_index)`, or `(None, None)` for a model without a
    graph (subclassed).
    """
    outputs = getattr(model, "outputs", None)
    if not outputs:
        return None, None
    tensor = outputs[0]
    while True:
        history = getattr(tensor, "_keras_history", None)
        if history is None:
            return None, None
        layer, node_index = history.operation, history.node_index
        if not isinstance(layer, _PASS_THROUGH):
            return layer, node_index
        tensor = layer._inbound_nodes[node_index].input_tensors[0]


def _ends_in_softmax(model):
    layer, _ = _last_operation(model)
    if layer is None and getattr(model, "layers", None):
        layer = model.layers[-1]  # a subclassed model: its last layer
    while layer is not None:
        if isinstance(layer, keras.layers.Softmax) or _is_softmax(
            getattr(layer, "activation", None)
        ):
            return True
        if not isinstance(layer, keras.Model):
            return False
        layer, _ = _last_operation(layer)
    return False


def _model_inputs(model):
    try:
        return model.input
    except (AttributeError, ValueError):
        inputs = model.inputs
        return inputs[0] if len(inputs) == 1 else inputs


def _layer_tensor(model, layer, which):
    """The input or output tensor of `layer` in `model`'s own graph.

    A layer shared between models (e.g. a head's layers reused by
    `attach_head`) has one node per call; `layer.output` is the first.
    """
    inputs = _model_inputs(model)
    for node in layer._inbound_nodes:
        tensors = node.output_tensors if which == "output" else node.input_tensors
        tensor = tensors[0] if len(tensors) == 1 else tensors
        try:
            keras.Model(inputs, tensor)
        except ValueError:
            continue
        return tensor
    return getattr(layer, which)


def _logits_source(model, layer_name, role):
    """Where a model's logits are: `(symbolic tensor, kind, layer)`.

    kind "logits": the tensor is the logits; "dense_softmax": the tensor is
    the input of a softmax Dense layer, whose pre-activation gives them;
    "probabilities": the model ends in an unreachable softmax, so the loss
    uses log-probabilities.
    """
    if layer_name is None:
        names = {layer.name for layer in model.layers}
        if "logits" in names:
            layer_name = "logits"
    if layer_name is not None:
        try:
            layer = model.get_layer(layer_name)
        except ValueError:
            raise ValueError(
                f"{role}_logits_layer={layer_name!r}: the {role} model "
                f"{model.name!r} has no layer of that name. Pass the name of "
                "the layer whose output is the logits (before any softmax)."
            ) from None
        if _is_softmax(getattr(layer, "activation", None)):
            if isinstance(layer, keras.layers.Dense):
                return _layer_tensor(model, layer, "input"), "dense_softmax", layer
            return _layer_tensor(model, layer, "output"), "probabilities", layer
        return _layer_tensor(model, layer, "output"), "logits", layer
    last, _ = _last_operation(model)
    if last is None:
        last = model.layers[-1]
    if isinstance(last, keras.layers.Softmax) or (
        isinstance(last, keras.layers.Activation) and _is_softmax(last.activation)
    ):
        return _layer_tensor(model, last, "input"), "logits", last
    if isinstance(last, keras.layers.Dense) and _is_softmax(last.activation):
        return _layer_tensor(model, last, "input"), "dense_softmax", last
    if _ends_in_softmax(model):
        return model.outputs[0], "probabilities", last
    return model.outputs[0], "logits", last


def _to_logits(value, kind, layer):
    if kind == "dense_softmax":
        logits = ops.matmul(value, layer.kernel)
        if layer.use_bias:
            logits = logits + layer.bias
        return logits
    if kind == "probabilities":
        return ops.log(ops.clip(ops.cast(value, "float32"), 1e-12, 1.0))
    return value
