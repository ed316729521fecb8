"""`to_tflite`: export of a Keras model (images or arrays), checked in LiteRT."""

import os

import keras

from keras_tl._utils.io import write_atomic
from keras_tl.export.convert import DEFAULT_CALIBRATION_SAMPLES
from keras_tl.export.convert import _check_options
from keras_tl.export.convert import _check_path
from keras_tl.export.convert import _convert
from keras_tl.export.data import _as_arrays
from keras_tl.export.data import _representative_dataset
from keras_tl.export.labels import LABELS_FILE
from keras_tl.export.labels import _labels_for
from keras_tl.export.report import DEFAULT_CHECK_SAMPLES
from keras_tl.export.report import ExportReport
from keras_tl.export.report import _fill_parity
from keras_tl.export.report import _keras_predict

__all__ = ["to_tflite"]


def _model_image_size(model):
    shape = getattr(model, "input_shape", None)
    if isinstance(shape, tuple) and len(shape) == 4 and None not in shape[1:3]:
        return tuple(shape[1:3])
    return None


def to_tflite(
    model,
    path,
    *,
    quantization=None,
    representative_data=None,
    check_data=None,
    class_names=None,
    io_dtype="float32",
    allow_select_tf_ops=False,
    num_calibration_samples=DEFAULT_CALIBRATION_SAMPLES,
    num_check_samples=DEFAULT_CHECK_SAMPLES,
    num_threads=1,
    input_signature=None,
    sparse_weights=False,
):
    """Exports `model` to a `.tflite` file and checks it in LiteRT.

    Conversion goes through `model.export(path, format="litert")` with
    TFLite builtin ops only. The file is written atomically (temporary file,
    then rename), so a failed conversion leaves no file behind; `labels.txt`
    (one class name per line) is written beside it. With `check_data`, the
    file runs in `ai_edge_litert.interpreter.Interpreter` and the report
    compares it with the Keras model; the median single-sample latency is
    measured alternately with the float32 conversion's.

    Note: `"dynamic"` quantization leaves tensors under 1,024 elements (small
    kernels, biases) in float.

    Args:
        model: a Keras model (a `tf_keras` model is converted with
            `tf.lite.TFLiteConverter.from_keras_model`).
        path: output path, ending in `.tflite`.
        quantization: `None` (float32), `"float16"` (weights in float16),
            `"dynamic"` (int8 weights, float activations) or `"int8"` (full
            integer, calibrated on `representative_data`).
        representative_data: training samples to calibrate int8 activation
            ranges: array, `(x, y)`, `tf.data.Dataset`, `ImageData` or image
            folder; `num_calibration_samples` are drawn at random.
        check_data: held-out data in the same forms; with labels, the report
            includes accuracy. The first `num_check_samples` are run.
        class_names: names for `labels.txt`; default: the names stored in the
            model (`keras_tl.heads.get_class_names`), else `0 .. N-1`.
        io_dtype: `"float32"`, `"int8"` or `"uint8"` inputs and outputs of an
            int8 file (integer I/O suits camera pixels; `LiteRTModel`
            quantizes for you).
        allow_select_tf_ops: add `SELECT_TF_OPS` (TensorFlow kernels through
            the Flex delegate) for ops TFLite lacks.
        num_calibration_samples: samples drawn from `representative_data`.
        num_check_samples: samples of `check_data` run.
        num_threads: interpreter threads for the check and the latency.
        input_signature: optional `tf.TensorSpec`s, as for `model.export`.
        sparse_weights: store kernels with many zeros (after
            `keras_tl.optimize.prune`) in TFLite's sparse format
            (`tf.lite.Optimize.EXPERIMENTAL_SPARSITY`): a smaller file with
            the same outputs. The report's size ratio is against the dense
            float32 conversion.

    Returns:
        An `ExportReport`.

    Raises:
        ValueError: a bad path or option, or int8 without representative
            data.
        UnsupportedOpsError: the model uses ops outside the TFLite builtins;
            the message names them and the `allow_select_tf_ops` option.

    Example:

    ```python
    report = to_tflite(model, "phone/digits.tflite", quantization="int8",
                       representative_data=(x_train, y_train),
                       check_data=(x_val, y_val))
    print(report)
    ```
    """
    path = _check_path(path)
    _check_tensorflow_backend()
    _check_options(quantization, representative_data, io_dtype)
    image_size = _model_image_size(model)
    representative = None
    if quantization == "int8":
        calibration, _ = _as_arrays(
            representative_data, limit=num_calibration_samples, seed=0,
            image_size=image_size, split="train",
        )
        representative = _representative_dataset(calibration)
    content = _convert(model, quantization, representative, io_dtype,
                       allow_select_tf_ops, input_signature, sparse_weights)
    float32_content = content if quantization is None and not sparse_weights else _convert(
        model, None, None, "float32", allow_select_tf_ops, input_signature
    )
    write_atomic(path, content)
    num_outputs = int(model.output_shape[-1]) if hasattr(model, "output_shape") else 0
    labels = _labels_for(model, class_names, num_outputs)
    labels_path = os.path.join(os.path.dirname(os.path.abspath(path)), LABELS_FILE)
    write_atomic(labels_path, "\n".join(labels) + "\n")
    report = ExportReport(
        path=path,
        quantization=quantization,
        size_bytes=len(content),
        float32_size_bytes=len(float32_content),
        labels_path=labels_path,
        num_threads=num_threads,
    )
    if check_data is not None:
        inputs, targets = _as_arrays(check_data, limit=num_check_samples,
                                     image_size=image_size)
        reference = _keras_predict(model, inputs)
        _fill_parity(report, content, float32_content, inputs, targets, reference, num_threads)
    return report


def _check_tensorflow_backend():
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            "LiteRT conversion runs on the TensorFlow backend; this process runs "
            f"Keras on {keras.backend.backend()!r}. Save the model "
            "(`model.save('model.keras')`: the file does not depend on the "
            "backend) and run `keras-tl export model.keras`, which converts it "
            "on TensorFlow."
        )
