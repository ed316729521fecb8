"""Conversion of a Keras model to `.tflite` bytes.

The converter options for each quantization, the checks of those options,
and the translation of converter errors about non-builtin ops into
`UnsupportedOpsError`.
"""

import numbers
import os
import re
import tempfile

from keras_tl.export.errors import UnsupportedOpsError

__all__ = ["DEFAULT_CALIBRATION_SAMPLES", "IO_DTYPES", "QUANTIZATIONS"]

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


def _is_keras3(model):
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


def _convert(model, quantization=None, representative=None, io_dtype="float32",
             allow_select_tf_ops=False, input_signature=None, sparse_weights=False):
    """The `.tflite` bytes of `model`; raises `UnsupportedOpsError` on flex ops."""
    import tensorflow as tf

    options = _converter_options(quantization, representative, io_dtype, allow_select_tf_ops,
                                 sparse_weights)
    try:
        if _is_keras3(model):
            with tempfile.TemporaryDirectory() as folder:
                path = os.path.join(folder, "model.tflite")
                model.export(path, format="litert", verbose=False,
                             input_signature=input_signature, **options)
                with open(path, "rb") as f:
                    return f.read()
        # A tf_keras model (e.g. a quantization-aware training copy).
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        target_spec = options.pop("target_spec")
        for key, value in target_spec.items():
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


def _check_model(model, function):
    """Refuses a first argument that is not a model, naming what it is.

    Without this, `None` or a path fails deep inside the converter with an
    `AttributeError` that names neither the argument nor the fix.
    """
    if _is_keras3(model) or _is_tf_keras(model):
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


def _check_path(path):
    path = os.fspath(path)
    if not path.endswith(".tflite"):
        raise ValueError(f"The export path must end with '.tflite'; got {path!r}.")
    return path


def _check_options(quantization, representative_data, io_dtype, min_agreement=None):
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
