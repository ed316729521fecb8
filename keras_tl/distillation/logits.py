"""Where a model's logits are, when its output is a softmax.

The loss needs logits, never probabilities: they are found by layer name,
before a final `Softmax` or softmax `Activation`, recomputed from a final
softmax `Dense` layer's input and weights (in the model or in a nested model
it ends with), or, when the softmax is out of reach, taken as the log of the
probabilities. A subclassed model has no graph to read: its outputs on a
batch tell whether they are probabilities.
"""

import warnings

import keras
import numpy as np
from keras import ops

from keras_tl.heads import ClassNames

__all__ = [
    "check_teacher_outputs",
    "layer_tensor",
    "logits_source",
    "model_inputs",
    "outputs_kind",
    "TEACHER_OUTPUTS",
    "to_logits",
]

# What a teacher's output is: found from its graph (or, for a subclassed
# model, from its outputs on a batch), or stated by the user.
TEACHER_OUTPUTS = ("auto", "logits", "probabilities")

# Probabilities are clipped before their log: a softmax that underflows to 0
# would give -inf logits.
_MIN_PROBABILITY = 1e-12
# How far from 1 a row of probabilities may sum (float16 and bfloat16
# softmax outputs included).
_SUM_TOLERANCE = 1e-2


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


def model_inputs(model):
    if isinstance(model, keras.Sequential) and model.inputs:
        # `Sequential.input` is the input of the model's first call: for a
        # Sequential nested in another model, a tensor of the outer graph.
        return model.inputs[0]
    try:
        return model.input
    except (AttributeError, ValueError):
        inputs = model.inputs
        return inputs[0] if len(inputs) == 1 else inputs


def layer_tensor(model, layer, which):
    """The input or output tensor of `layer` in `model`'s own graph.

    A layer shared between models (e.g. a head's layers reused by
    `attach_head`) has one node per call; `layer.output` is the first.
    """
    inputs = model_inputs(model)
    for node in layer._inbound_nodes:
        tensors = node.output_tensors if which == "output" else node.input_tensors
        tensor = tensors[0] if len(tensors) == 1 else tensors
        try:
            keras.Model(inputs, tensor)
        except ValueError:
            continue
        return tensor
    return getattr(layer, which)


def check_teacher_outputs(value):
    if not isinstance(value, str) or value not in TEACHER_OUTPUTS:
        raise ValueError(
            "teacher_outputs must be one of "
            f"{', '.join(repr(v) for v in TEACHER_OUTPUTS)}; got {value!r}."
        )
    return value


def _is_final_softmax(layer):
    return isinstance(layer, keras.layers.Softmax) or (
        isinstance(layer, keras.layers.Activation) and _is_softmax(layer.activation)
    )


def _before_softmax(model):
    """The logits behind `model`'s final softmax, in `model`'s own graph.

    Returns `(tensor, kind, layer)` like `logits_source`, or `None` when the
    model does not end in a softmax whose input can be reached. A nested
    model ending in a softmax (a classifier head, a model wrapped in a
    `Sequential`) is looked into: a model from its inputs to its logits,
    sharing its layers, is called on the nested model's inputs in the outer
    graph.
    """
    last, node_index = _last_operation(model)
    if last is None:
        return None
    node = last._inbound_nodes[node_index]
    if _is_final_softmax(last):
        return node.input_tensors[0], "logits", last
    if isinstance(last, keras.layers.Dense) and _is_softmax(last.activation):
        return node.input_tensors[0], "dense_softmax", last
    if not isinstance(last, keras.Model):
        return None
    inner = _before_softmax(last)
    if inner is None:
        return None
    tensor, kind, layer = inner
    arguments = node.arguments.args
    if len(arguments) != 1:
        return None
    try:
        view = keras.Model(model_inputs(last), tensor, name=f"{last.name}_logits")
        return view(arguments[0]), kind, layer
    except (ValueError, TypeError):
        # The nested model's graph cannot be cut there (e.g. several
        # inputs it does not use): its probabilities are used instead.
        return None


def logits_source(model, layer_name, role, outputs="auto"):
    """Where a model's logits are: `(symbolic tensor, kind, layer)`.

    kind "logits": the tensor is the logits; "dense_softmax": the tensor is
    the input of a softmax Dense layer, whose pre-activation gives them;
    "probabilities": the model ends in a softmax out of reach, so the loss
    uses log-probabilities.

    `outputs` is what the user says the model's output is: `"auto"` finds
    out from the graph, `"logits"` takes the output as it is,
    `"probabilities"` looks for the logits before the softmax and falls
    back on the log of the output.
    """
    if layer_name is None and outputs != "logits":
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
                return layer_tensor(model, layer, "input"), "dense_softmax", layer
            return layer_tensor(model, layer, "output"), "probabilities", layer
        return layer_tensor(model, layer, "output"), "logits", layer
    if outputs == "logits":
        if _ends_in_softmax(model):
            warnings.warn(
                f"{role}_outputs='logits', but the {role} {model.name!r} ends "
                "in a softmax: its probabilities are used as logits, which "
                f"flattens the soft targets. Use {role}_outputs='auto'.",
                stacklevel=4,
            )
        return model.outputs[0], "logits", None
    found = _before_softmax(model)
    if found is not None:
        return found
    if outputs == "probabilities" or _ends_in_softmax(model):
        return model.outputs[0], "probabilities", None
    return model.outputs[0], "logits", None


def outputs_kind(values, role="teacher"):
    """`"probabilities"` or `"logits"`, read from a batch of outputs.

    For models without a graph (subclassed): rows in [0, 1] that sum to 1
    are probabilities. Says what it decided and why, in a warning.
    """
    values = np.asarray(values, np.float64)
    if values.ndim < 2 or values.shape[-1] < 2 or values.size == 0:
        raise ValueError(
            f"The {role} gives outputs of shape {values.shape}; distillation "
            "needs one row of at least two class scores per example."
        )
    rows = values.reshape(-1, values.shape[-1])
    sums = rows.sum(-1)
    low, high = float(rows.min()), float(rows.max())
    worst = float(np.max(np.abs(sums - 1.0)))
    probabilities = low >= -1e-6 and high <= 1.0 + 1e-6 and worst <= _SUM_TOLERANCE
    if probabilities:
        found = (
            f"all its {len(rows)} rows are in [0, 1] and sum to 1, so they are "
            "taken as probabilities (their log is used as logits)"
        )
    else:
        found = (
            f"on its {len(rows)} rows the values span [{low:.3g}, {high:.3g}] "
            f"and the sums are up to {worst:.3g} from 1, so they are taken as "
            "logits"
        )
    warnings.warn(
        f"The {role} is a subclassed model, whose softmax (if any) cannot be "
        f"found in a graph; checked on a batch of its outputs: {found}. Pass "
        f"{role}_outputs='logits' or 'probabilities' to say which.",
        stacklevel=4,
    )
    return "probabilities" if probabilities else "logits"


def to_logits(value, kind, layer):
    if kind == "dense_softmax":
        logits = ops.matmul(value, layer.kernel)
        if layer.use_bias:
            logits = logits + layer.bias
        return logits
    if kind == "probabilities":
        # softmax(log(p) / T) is p tempered: log(p) differs from the logits
        # by a per-example constant only.
        return ops.log(ops.clip(ops.cast(value, "float32"), _MIN_PROBABILITY, 1.0))
    return value
