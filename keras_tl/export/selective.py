"""Selective int8: full-integer quantization with the ops that lose most kept in float.

Full-integer int8 rounds every weight and activation to 256 levels. Most
answers survive, but samples whose two best classes are close can flip: on
the demo's digits models and a small CNN trained briefly on MNIST, 1 to 2 %
of them. Keeping a few ops in float fixes some of these flips. Ops with few
or no weights (the first convolution, a normalization, the logits, the
softmax) cost little in float, while every float weight costs 3 more bytes
than an int8 one.

`quantize_selectively` calibrates once with LiteRT's quantization debugger
(`tf.lite.experimental.QuantizationDebugger`), which also lists every
quantized op and its local error. It then measures how much each op alone,
quantized inside an otherwise float model, moves the model's answers, and
ranks the ops by that error per extra byte in float. It re-quantizes the
calibrated model with the first 1, 2, 3, ... ops of the ranking kept in
float (the quantizer's `denylisted_nodes`) until the top-1 agreement with
Keras reaches `min_agreement`.

The error measure is the squared change of the margin between Keras' two
best classes, taken on the samples nearest a tie (`RANKING_SAMPLES`): these
are the only samples that can flip. The debugger's own per-op statistics
(the error of each op measured on its quantized input, in units of its
quantization step) are kept for reference but do not rank the ops: on
the demo's models every op shows 0.2 to 0.4 steps, about the rounding
error itself, whatever the op does to the answers.
"""

import dataclasses
import functools
import re
import warnings

import numpy as np

from keras_tl.export.convert import check_model
from keras_tl.export.convert import saved_model_folder
from keras_tl.export.data import representative_dataset
from keras_tl.export.data import take_rows
from keras_tl.export.interpreter import LiteRTModel

__all__ = [
    "DEFAULT_MIN_AGREEMENT",
    "MAX_SIZE_RATIO",
    "RANKING_SAMPLES",
    "QuantizedOp",
    "SelectiveQuantization",
    "quantize_selectively",
]

DEFAULT_MIN_AGREEMENT = 0.99
# Only samples whose two best Keras classes are close can flip, so the op
# ranking runs on the samples with the smallest margins. This also bounds
# its cost on large check sets.
RANKING_SAMPLES = 256
# The debugger's per-op statistics come from running its instrumented model;
# a few samples give them, and the op list, without a second calibration.
_DEBUGGER_SAMPLES = 32
# An op without weights costs only a few hundred bytes in float. Ranking
# by error per (extra bytes + 1 % of the int8 file) orders such ops by
# error alone, ahead of weighted ops unless those lose far more.
_COST_FLOOR_FRACTION = 0.01
# A file with more float weights than this fraction of the float model's
# bytes is larger than the float16 file, which keeps nearly every answer:
# the search stops there.
MAX_SIZE_RATIO = 0.5


@dataclasses.dataclass
class QuantizedOp:
    """One op of the int8 file, as `quantize_selectively` measured it.

    Args:
        layers: the Keras layers the op computes, joined by `+` when the
            converter fused several (`"block1_conv+block1_bn+block1_relu"`);
            for an op without a named layer, the op type and its tensor
            (`"SOFTMAX (model output)"`).
        op: the TFLite op (`"CONV_2D"`, `"SOFTMAX"`, ...).
        tensor: the op's output tensor in the file: what the quantizer's
            `denylisted_nodes` takes.
        float_cost_bytes: how much larger the file gets with this op in float.
        error: how much this op alone, in int8 inside an otherwise float
            model, moves the margin between Keras' two best classes (mean
            squared change on the samples nearest a tie, above the error of
            the model with every candidate op in float).
        debugger_error: the debugger's error of the op on its own quantized
            input, in units of its output's quantization step (root mean
            square; about 0.29 is the rounding error itself).

    Example:

    ```python
    selection = quantize_selectively(model, x_train[:1000], x_val)
    [op.layers for op in selection.ops if op.tensor in selection.float_tensors]
    ```
    """

    layers: str
    op: str
    tensor: str
    float_cost_bytes: int = 0
    error: float = None
    debugger_error: float = None


@dataclasses.dataclass
class SelectiveQuantization:
    """The `.tflite` bytes `quantize_selectively` chose and what it measured.

    Args:
        content: the `.tflite` bytes (without TFLite Metadata).
        min_agreement: the target top-1 agreement with Keras.
        agreement: the file's top-1 agreement on the selection samples.
        full_int8_agreement: the same for the file with every op in int8.
        full_int8_size_bytes: the size of that file.
        float_layers: the layers of the ops kept in float, in the order they
            were added (empty: every op is int8).
        float_tensors: the output tensors of those ops (`denylisted_nodes`).
        num_samples: the selection samples the agreement was measured on.
        ops: every op the quantizer can keep in float, ranked, with what was
            measured about it.

    Example:

    ```python
    selection = quantize_selectively(model, x_train[:1000], x_val)
    selection.float_layers, selection.agreement  # -> (['block1_conv+...'], 0.993)
    ```
    """

    content: bytes = dataclasses.field(repr=False)
    min_agreement: float
    agreement: float
    full_int8_agreement: float
    full_int8_size_bytes: int
    float_layers: list = dataclasses.field(default_factory=list)
    float_tensors: list = dataclasses.field(default_factory=list)
    num_samples: int = 0
    ops: list = dataclasses.field(default_factory=list, repr=False)

    @property
    def size_bytes(self):
        """Size of the chosen file."""
        return len(self.content)

    @property
    def target_met(self):
        """Whether the agreement reached `min_agreement`."""
        return self.agreement >= self.min_agreement


def quantize_selectively(
    model,
    representative_data,
    selection_data,
    *,
    min_agreement=DEFAULT_MIN_AGREEMENT,
    reference=None,
    io_dtype="float32",
    allow_select_tf_ops=False,
    input_signature=None,
    sparse_weights=False,
):
    """int8 with the fewest float ops that keep `min_agreement` of the answers.

    The model is calibrated once on `representative_data`. If the file with
    every op in int8 agrees with Keras on at least `min_agreement` of
    `selection_data`, that file is returned. Otherwise ops are kept in float
    in ranked order (see the module docstring) until the agreement is
    reached. The search stops before the file outgrows `MAX_SIZE_RATIO` of
    the float model (the float16 file's size, which keeps nearly every
    answer); if the agreement is still missed, the full-int8 file is
    returned with a warning that says what was tried.

    Float ops need the float kernels of TFLite's builtin op set: the file no
    longer runs on integer-only hardware (microcontrollers, some NPUs), which
    need `to_tflite(..., min_agreement=None)`. With integer inputs and outputs
    (`io_dtype="int8"` or `"uint8"`), ops that read the input or write the
    output stay int8: an integer input has to be quantized before the first
    float op, and only an int8 op can write an integer output.

    Args:
        model: a Keras 3 model with one input and one output of class scores.
        representative_data: calibration samples, an array as the file takes
            them (a few hundred to a thousand).
        selection_data: samples on which the agreement is measured (held-out
            data, or the calibration samples).
        min_agreement: the target top-1 agreement with Keras, in [0, 1].
        reference: the Keras outputs on `selection_data` (default:
            `model.predict(selection_data)`), e.g. when the file wraps the
            model (an RGB input in front of a grayscale model).
        io_dtype: `"float32"`, `"int8"` or `"uint8"` inputs and outputs.
        allow_select_tf_ops: add `SELECT_TF_OPS` to the converter's op sets.
        input_signature: optional `tf.TensorSpec`s, as for `model.export`.
        sparse_weights: store kernels with many zeros in TFLite's sparse
            format, as the converter does for `EXPERIMENTAL_SPARSITY`.

    Returns:
        A `SelectiveQuantization`.

    Raises:
        TypeError: `model` is not a Keras model.
        ValueError: `reference` is not one row of at least two class scores
            per sample.

    Example:

    ```python
    selection = quantize_selectively(model, x_train[:1000], x_val,
                                     min_agreement=0.99)
    print(selection.float_layers, selection.agreement,
          selection.size_bytes / selection.full_int8_size_bytes)
    ```
    """
    check_model(model, "quantize_selectively")
    if reference is None:
        reference = model.predict(selection_data, batch_size=64, verbose=0)
    reference = np.asarray(reference, np.float32)
    if reference.ndim != 2 or reference.shape[1] < 2:
        raise ValueError(
            "Selective int8 compares the top class of LiteRT and Keras: the "
            f"model needs one output of class scores; its outputs have shape "
            f"{reference.shape}."
        )
    debugger = _calibrated_debugger(model, representative_data, allow_select_tf_ops,
                                    input_signature)
    quantizer = _Quantizer(debugger.calibrated_model, io_dtype, sparse_weights)
    expected = reference.argmax(-1)

    def agreement(content):
        outputs = LiteRTModel(content).predict(selection_data)
        return float(np.mean(outputs.argmax(-1) == expected))

    full_int8 = quantizer.file(())
    full_agreement = agreement(full_int8)
    result = functools.partial(
        SelectiveQuantization, min_agreement=min_agreement,
        full_int8_agreement=full_agreement, full_int8_size_bytes=len(full_int8),
        num_samples=len(reference),
    )
    ops = _quantized_ops(debugger, _layer_names(model))
    if full_agreement >= min_agreement:
        return result(content=full_int8, agreement=full_agreement, ops=ops)
    candidates, io_bound = _candidates(ops, quantizer)
    ranked = _rank(candidates, quantizer, selection_data, reference)
    size_cap = MAX_SIZE_RATIO * len(debugger.calibrated_model)
    best = (full_agreement, len(full_int8), 0)
    for count in range(1, len(ranked) + 1):
        kept = ranked[:count]
        content = quantizer.file([op.tensor for op in kept])
        if len(content) > size_cap:
            break
        score = agreement(content)
        if score >= min_agreement:
            return result(
                content=content, agreement=score, ops=ranked,
                float_layers=[op.layers for op in kept],
                float_tensors=[op.tensor for op in kept],
            )
        if score > best[0]:
            best = (score, len(content), count)
    _warn_missed(min_agreement, full_agreement, best, len(full_int8), len(ranked),
                 io_bound, io_dtype)
    return result(content=full_int8, agreement=full_agreement, ops=ranked)


def _warn_missed(min_agreement, full_agreement, best, full_size, num_ranked, io_bound,
                 io_dtype):
    """The target is out of reach: the full-int8 file is kept (a larger file
    for a fraction of a point, chosen on the same samples, is no better a
    promise), and the warning says what was tried and what else helps."""
    score, size, count = best
    tried = (
        f"the best try, {count} of {num_ranked} candidate ops in float, agreed on "
        f"{score:.4f} at {size / full_size:.2f}x the full-int8 size"
        if count else f"no set of the {num_ranked} candidate ops in float agreed more"
    )
    io_note = ""
    if io_bound:
        io_note = (
            f" With io_dtype={io_dtype!r} the ops that read the input or write the "
            f"output stay int8 ({', '.join(op.layers for op in io_bound)}); "
            "io_dtype='float32' lets them be float."
        )
    warnings.warn(
        f"Full int8 agrees with Keras on {full_agreement:.4f} of the samples, under "
        f"min_agreement={min_agreement}, and keeping ops in float does not reach it "
        f"within {MAX_SIZE_RATIO:g}x the float model's size (the float16 file's): "
        f"{tried}. The full-int8 file is exported.{io_note} quantization='dynamic' "
        "(int8 weights, float activations) or 'float16' keeps more of the answers.",
        stacklevel=3,
    )


class _Quantizer:
    """The calibrated model, quantized with a given set of ops in float.

    Ops that share their input's scale (max pooling, reshapes) cannot be
    kept in float on their own: the quantizer gives back the same file.
    They are "passive" and are added to every non-empty float set, so that
    they turn float with their neighbours. Otherwise a max pooling between
    two float convolutions would stay int8 and quantize the activations
    between them anyway.
    """

    def __init__(self, calibrated_model, io_dtype, sparse_weights):
        self.calibrated_model = calibrated_model
        self.io_dtype = io_dtype
        self.sparse_weights = sparse_weights
        self.passive = []
        self.plain = self.bare(())

    def bare(self, float_tensors):
        """Float inputs and outputs, dense weights: for ranking and sizes."""
        tensors = list(float_tensors)
        if tensors:
            tensors += [t for t in self.passive if t not in tensors]
        return _quantize(self.calibrated_model, tensors)

    def file(self, float_tensors):
        """The file as exported: integer inputs and outputs, sparse weights
        if asked."""
        return _finish(self.bare(float_tensors), self.io_dtype, self.sparse_weights)


def _calibrated_debugger(model, calibration, allow_select_tf_ops, input_signature):
    """LiteRT's quantization debugger, calibrated on `calibration` and run on
    a few of its samples."""
    import tensorflow as tf

    representative = representative_dataset(calibration)
    with saved_model_folder(model, input_signature) as folder:
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if allow_select_tf_ops:
            ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
        # Float builtins stay allowed: ops kept in float need their kernels.
        converter.target_spec.supported_ops = ops
        converter.experimental_enable_resource_variables = True
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        with warnings.catch_warnings():
            # The debugger runs its instrumented model in `tf.lite.Interpreter`,
            # which warns that it moved to `ai_edge_litert` on every creation.
            warnings.filterwarnings("ignore", message=r"\s*Warning: tf\.lite\.Interpreter")
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter,
                debug_dataset=representative_dataset(
                    take_rows(calibration, slice(0, _DEBUGGER_SAMPLES))
                ),
            )
    debugger.run()
    return debugger


def _quantize(calibrated_model, float_tensors):
    """The calibrated model in int8, the ops writing `float_tensors` in float.

    `QuantizationDebugger.get_nondebug_quantized_model` makes the same call
    for the denylist of its current options; calling the quantizer directly
    spares rebuilding the instrumented model for every candidate set, and
    accepts sets that leave no op to instrument.
    """
    from tensorflow.lite.python import convert

    return convert.mlir_quantize(
        calibrated_model, fully_quantize=False,
        denylisted_nodes=list(float_tensors) or None,
    )


def _finish(content, io_dtype, sparse_weights):
    """The converter's steps after quantization: integer inputs and outputs
    in place of the float ones, then the sparse weight format."""
    import tensorflow as tf

    if io_dtype != "float32":
        from tensorflow.lite.python.util import modify_model_io_type

        dtype = getattr(tf, io_dtype)
        content = modify_model_io_type(content, dtype, dtype)
    if sparse_weights:
        from tensorflow.lite.python import convert

        content = convert.mlir_sparsify(content)
    return bytes(content)


def _quantized_ops(debugger, layer_names):
    """The ops the debugger instrumented, with its error statistics."""
    import csv
    import io

    table = io.StringIO()
    debugger.layer_statistics_dump(table)
    table.seek(0)
    ops = []
    for row in csv.DictReader(table):
        scale = float(row["scale"])
        rmse = float(np.sqrt(float(row["mean_squared_error"])))
        ops.append(QuantizedOp(
            layers=_describe(row["tensor_name"], row["op_name"], layer_names),
            op=row["op_name"],
            tensor=row["tensor_name"],
            debugger_error=rmse / scale if scale else None,
        ))
    return ops


def _candidates(ops, quantizer):
    """The ops that can be kept in float, each with its extra bytes in float;
    and those left int8 because they read an integer input or write an
    integer output. Finds the passive ops first (see `_Quantizer`)."""
    active = []
    for op in ops:
        if quantizer.bare([op.tensor]) == quantizer.plain:
            quantizer.passive.append(op.tensor)
        else:
            active.append(op)
    candidates, io_bound = [], []
    for op in active:
        if quantizer.io_dtype != "float32" and not _keeps_io_dtype(quantizer, op):
            io_bound.append(op)
            continue
        op.float_cost_bytes = len(quantizer.bare([op.tensor])) - len(quantizer.plain)
        candidates.append(op)
    return candidates, io_bound


def _keeps_io_dtype(quantizer, op):
    """Whether the file keeps integer inputs and outputs with `op` in float:
    not when the float op reads the input or writes the output."""
    try:
        litert = LiteRTModel(quantizer.file([op.tensor]))
    except (ValueError, RuntimeError):
        return False
    tensors = list(litert.input_details.values()) + list(litert.output_details.values())
    return all(np.dtype(t["dtype"]) == np.dtype(quantizer.io_dtype) for t in tensors)


def _rank(candidates, quantizer, inputs, reference):
    """`candidates` with a measured error, most error per extra byte first;
    ops that do not measurably move the answers are left out."""
    order = np.argsort(reference, -1)
    first, second = order[:, -1], order[:, -2]
    rows = np.arange(len(reference))
    margins = reference[rows, first] - reference[rows, second]
    nearest = np.sort(np.argsort(margins, kind="stable")[:RANKING_SAMPLES])
    inputs = take_rows(inputs, nearest)
    first, second, margins = first[nearest], second[nearest], margins[nearest]
    rows = np.arange(len(nearest))

    def margin_error(float_tensors):
        outputs = LiteRTModel(quantizer.bare(float_tensors)).predict(inputs)
        moved = outputs[rows, first] - outputs[rows, second] - margins
        return float(np.mean(moved ** 2))

    tensors = [op.tensor for op in candidates]
    floor = margin_error(tensors)
    for op in candidates:
        op.error = max(0.0, margin_error([t for t in tensors if t != op.tensor]) - floor)
    slack = _COST_FLOOR_FRACTION * len(quantizer.plain)
    useful = [op for op in candidates if op.error > 0]
    return sorted(useful, key=lambda op: -op.error / (max(op.float_cost_bytes, 0) + slack))


def _layer_names(model):
    """Every layer name in `model` and the models nested in it, mapped to
    its position in the model's order (nested layers in their place)."""
    order = {}

    def visit(layer):
        order.setdefault(layer.name, len(order))
        for inner in getattr(layer, "layers", ()):
            visit(inner)

    visit(model)
    return order


def _describe(tensor_name, op_name, layer_names):
    """The Keras layers behind a fused tensor name, in the model's order.

    The converter names an op's output after the TensorFlow ops fused into
    it, `;`-separated, each a name-scope path such as
    `model_1/backbone_1/block1_conv_1/convolution`. Keras suffixes each
    scope with `_1` when it traces the model again for export; the
    innermost scope that names a layer of the model gives that op's layer.
    """
    found = []
    for part in tensor_name.split(";"):
        for scope in reversed(part.split("/")[:-1]):
            stripped = re.sub(r"_\d+$", "", scope)
            name = stripped if stripped in layer_names else scope
            if name in layer_names:
                if name not in found:
                    found.append(name)
                break
    if not found:
        # The op writing the model's output is named after the signature's
        # output (`StatefulPartitionedCall_1:0`), not after a layer.
        where = "model output" if tensor_name.startswith("StatefulPartitionedCall") \
            else tensor_name
        return f"{op_name} ({where})"
    return "+".join(sorted(found, key=layer_names.__getitem__))
