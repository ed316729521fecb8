"""Conversion of a Keras model to `.tflite` bytes.

The converter options for each quantization, the checks of those options,
and the translation of converter errors about non-builtin ops into
`UnsupportedOpsError`.
"""

import contextlib
import functools
import numbers
import os
import re
import tempfile
import threading

from keras_tl.export.errors import UnsupportedOpsError

__all__ = [
    "check_model",
    "check_options",
    "check_path",
    "convert_model",
    "DEFAULT_CALIBRATION_SAMPLES",
    "IO_DTYPES",
    "is_keras3",
    "QUANTIZATIONS",
    "saved_model_folder",
    "shared_saved_models",
]

QUANTIZATIONS = (None, "float16", "dynamic", "int8")
IO_DTYPES = ("float32", "int8", "uint8")
# int8 ranges are the min and max of each activation over the calibration
# samples: extremes, which depend on which samples were drawn. On the demo's
# digits models (benchmarks/int8_agreement.py --calibration, five draws
# each), going from 300 samples to all 948 raised the mean agreement with
# Keras by 0.2 points (fine-tuned 0.9972 -> 0.9988, scratch 0.9875 ->
# 0.9894) and removed the spread between draws (0.35 and 0.94 points at
# 300). 1,000 takes all of a small labelled set, so the file no longer
# depends on the draw; calibration costs about 1 to 3 ms per 28x28 image.
DEFAULT_CALIBRATION_SAMPLES = 1000


# The SavedModels written inside `shared_saved_models()`, per thread: a
# stack of (root folder, {(id(model), signature): (model, SavedModel folder)}).
_SHARED = threading.local()


@contextlib.contextmanager
def shared_saved_models():
    """Within this block, each model is written as a SavedModel once.

    One export converts a model several times: the file, its float32
    reference, the calibration of the selective int8 search. Tracing and
    writing the SavedModel is most of a small model's conversion time, and
    every conversion reads the same graph, so it is written once.
    """
    stack = getattr(_SHARED, "stack", None)
    if stack is None:
        stack = _SHARED.stack = []
    with tempfile.TemporaryDirectory() as root:
        stack.append((root, {}))
        try:
            yield
        finally:
            stack.pop()


@contextlib.contextmanager
def saved_model_folder(model, input_signature=None):
    """The folder of `model`'s SavedModel, as `model.export(format="litert")`
    writes it before converting: one `serve` endpoint calling the model in
    inference mode, so the converted file has the same signature and tensor
    names. Inside `shared_saved_models()` it is written once per model."""
    stack = getattr(_SHARED, "stack", None)
    if not stack:
        with tempfile.TemporaryDirectory() as folder:
            yield _write_saved_model(model, folder, input_signature)
        return
    root, written = stack[-1]
    # The model object is kept in the key, so its id is not reused while
    # the block lasts.
    key = (id(model), repr(input_signature))
    if key not in written:
        folder = os.path.join(root, str(len(written)))
        written[key] = (model, _write_saved_model(model, folder, input_signature))
    yield written[key][1]


def _write_saved_model(model, folder, input_signature):
    import keras
    # What `model.export` infers when no signature is given.
    from keras.src.export.export_utils import get_input_signature

    if input_signature is None:
        input_signature = get_input_signature(model)
    if not isinstance(input_signature, (list, tuple)):
        input_signature = [input_signature]
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", functools.partial(model.__call__, training=False),
                         input_signature=input_signature)
    archive.write_out(folder, verbose=False)
    return folder


def is_keras3(model):
    import keras

    return isinstance(model, keras.Model)


def _converter_options(quantization, representative, io_dtype, allow_select_tf_ops,
                       sparse_weights=False):
    import tensorflow as tf

    ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    options = {}
    if quantization in ("float16", "dynamic", "int8"):
        options["optimizations"] = [tf.lite.Optimize.DEFAULT]
    if sparse_weights:
        # Pruned kernels are stored in TFLite's sparse tensor format (values
        # plus indices); the runtime densifies them when it loads the file.
        options.setdefault("optimizations", []).append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    if quantization == "float16":
        options["target_spec"] = {"supported_types": [tf.float16]}
    if quantization == "int8":
        options["representative_dataset"] = representative
        # Full integer: every op int8, or the conversion fails (rather than
        # silently leaving float ops in the file).
        ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if io_dtype != "float32":
            options["inference_input_type"] = getattr(tf, io_dtype)
            options["inference_output_type"] = getattr(tf, io_dtype)
    if allow_select_tf_ops:
        ops = ops + [tf.lite.OpsSet.SELECT_TF_OPS]
    options.setdefault("target_spec", {})["supported_ops"] = ops
    return options


def convert_model(model, quantization=None, representative=None, io_dtype="float32",
             allow_select_tf_ops=False, input_signature=None, sparse_weights=False):
    """The `.tflite` bytes of `model`; raises `UnsupportedOpsError` on flex ops."""
    import tensorflow as tf

    options = _converter_options(quantization, representative, io_dtype, allow_select_tf_ops,
                                 sparse_weights)
    try:
        with contextlib.ExitStack() as stack:
            if is_keras3(model):
                folder = stack.enter_context(saved_model_folder(model, input_signature))
                converter = tf.lite.TFLiteConverter.from_saved_model(folder)
                # As `model.export(format="litert")` converts: variables
                # read in the graph (e.g. a BatchNorm's statistics) fold.
                converter.experimental_enable_resource_variables = True
            else:
                # A tf_keras model (e.g. a quantization-aware training copy).
                converter = tf.lite.TFLiteConverter.from_keras_model(model)
            for key, value in options.pop("target_spec").items():
                setattr(converter.target_spec, key, value)
            for key, value in options.items():
                setattr(converter, key, value)
            return converter.convert()
    except Exception as error:  # the converter raises ConverterError
        message = str(error)
        if "neither a custom op nor a flex op" in message or "TF Select ops" in message:
            raise UnsupportedOpsError(*_unsupported_ops(message)) from error
        raise


def _unsupported_ops(message):
    ops = re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", message)
    listed = re.search(r"TF Select ops: ([\w, ]+)", message)
    if listed:
        ops += [op.strip() for op in listed.group(1).split(",")]
    # Locations read like "functional_1/det_1/MatrixDeterminant@...": the
    # part before the op is the layer path.
    layers = []
    for op in dict.fromkeys(ops):
        for match in re.findall(r'"([\w/.-]+)/' + op + r'@', message):
            layers.append(match.split("/")[-1])
    return list(dict.fromkeys(ops)), list(dict.fromkeys(layers))


def _is_tf_keras(model):
    # tf_keras models (quantization-aware training copies) convert too; they
    # are recognised by their classes' module, so tf_keras is never imported.
    return any(
        cls.__module__.split(".")[0] == "tf_keras" for cls in type(model).__mro__
    ) and hasattr(model, "layers")


def check_model(model, function):
    """Refuses a first argument that is not a model, naming what it is.

    Without this, `None` or a path fails deep inside the converter with an
    `AttributeError` that names neither the argument nor the fix.
    """
    if is_keras3(model) or _is_tf_keras(model):
        return
    if isinstance(model, (str, bytes, os.PathLike)):
        path = os.fsdecode(model)
        state = "an existing file" if os.path.exists(path) else "no such file"
        raise TypeError(
            f"{function}() takes a keras.Model as `model`; got the path "
            f"{path!r} ({state}). Load the model first: "
            f"{function}(keras.models.load_model({path!r}), ...)."
        )
    shown = repr(model)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    raise TypeError(
        f"{function}() takes a keras.Model as `model`; got "
        f"{type(model).__name__}: {shown}."
    )


def check_path(path):
    path = os.fspath(path)
    if not path.endswith(".tflite"):
        raise ValueError(f"The export path must end with '.tflite'; got {path!r}.")
    if os.path.isdir(path):
        raise ValueError(f"The export path {path!r} is a folder; pass a file name ending "
                         "with '.tflite'.")
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ValueError(f"The export path {path!r} is inside {folder!r}, which is a file.")
    return path


def check_options(quantization, representative_data, io_dtype, min_agreement=None):
    if quantization not in QUANTIZATIONS:
        raise ValueError(
            f"quantization must be one of {QUANTIZATIONS}; got {quantization!r}."
        )
    if io_dtype not in IO_DTYPES:
        raise ValueError(f"io_dtype must be one of {IO_DTYPES}; got {io_dtype!r}.")
    if io_dtype != "float32" and quantization != "int8":
        raise ValueError(
            f"io_dtype={io_dtype!r} needs quantization='int8'; other files take "
            "float inputs."
        )
    if quantization == "int8" and representative_data is None:
        raise ValueError(
            "quantization='int8' needs representative_data: a few hundred "
            "training samples (array, (x, y), tf.data.Dataset or folder) to "
            "calibrate the activation ranges. Use quantization='dynamic' to "
            "quantize the weights only, without data."
        )
    if min_agreement is not None and (
        isinstance(min_agreement, bool) or not isinstance(min_agreement, numbers.Real)
        or not 0 <= min_agreement <= 1
    ):
        raise ValueError(
            f"min_agreement must be None or a number in [0, 1]; got {min_agreement!r}."
        )
