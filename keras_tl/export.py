"""Export to LiteRT (TFLite) for phones, checked in the real runtime.

`to_tflite` converts a Keras model to a `.tflite` file (float32, float16,
dynamic-range or full-integer int8), writes `labels.txt` beside it, and runs
the file in the LiteRT interpreter (`ai_edge_litert`) on held-out data: how
often it agrees with Keras, its accuracy, and its median single-sample latency
next to the float32 file's, measured side by side.

Text classifiers (KerasHub BERT family) export with `text_to_tflite`: the
tokenizer cannot run inside TFLite, so the file holds the encoder and head on
token ids, and `TFLiteTextClassifier` tokenizes raw strings in Python and runs
it.
"""

import dataclasses
import json
import os
import re
import shutil
import statistics
import tempfile
import time

import numpy as np

QUANTIZATIONS = (None, "float16", "dynamic", "int8")
IO_DTYPES = ("float32", "int8", "uint8")
LABELS_FILE = "labels.txt"
VOCABULARY_FILE = "vocab.txt"
TOKENIZER_DIR = "tokenizer"
DEFAULT_CALIBRATION_SAMPLES = 300
DEFAULT_CHECK_SAMPLES = 1000
LATENCY_REPEATS = 100


class UnsupportedOpsError(ValueError):
    """The model uses TensorFlow ops that TFLite's builtin op set lacks.

    Args:
        ops: names of the TensorFlow ops (e.g. `["MatrixDeterminant"]`).
        layers: names of the layers that use them, where the converter says.

    Example:

    >>> try:
    ...     to_tflite(model, "model.tflite")
    ... except UnsupportedOpsError as error:
    ...     print(error.ops)
    ['MatrixDeterminant']
    """

    def __init__(self, ops, layers=()):
        self.ops = list(ops)
        self.layers = list(layers)
        where = f" (in layer {', '.join(self.layers)})" if self.layers else ""
        super().__init__(
            f"The model uses TensorFlow ops that are not TFLite builtins: "
            f"{', '.join(self.ops) or 'unknown'}{where}. Replace them with "
            "builtin ops, or pass allow_select_tf_ops=True to add "
            "tf.lite.OpsSet.SELECT_TF_OPS (the app then needs the Flex "
            "delegate, several MB, and the Python ai_edge_litert interpreter "
            "cannot run the file)."
        )


@dataclasses.dataclass
class ExportReport:
    """What `to_tflite` wrote, and how the file behaves in LiteRT.

    Sizes are of the files; the parity fields come from running the `.tflite`
    in `ai_edge_litert.interpreter.Interpreter` on the check data and compare
    with the Keras model on the same inputs. Fields that need check data (or
    labels) are `None` without it.

    Args:
        path: the `.tflite` file.
        quantization: `None` (float32), `"float16"`, `"dynamic"` or `"int8"`.
        size_bytes: size of the file.
        float32_size_bytes: size of the float32 conversion of the same model.
        labels_path: the `labels.txt` written beside the file.
        num_checked: number of check samples run.
        max_abs_diff: largest absolute difference between the LiteRT and
            Keras outputs.
        top1_agreement: fraction of samples where both pick the same class.
        accuracy: LiteRT accuracy on the check labels.
        keras_accuracy: Keras accuracy on the same samples.
        latency_ms: median single-sample latency of the file on this CPU.
        float32_latency_ms: the same for the float32 file, measured in the
            same rounds.
        num_threads: interpreter threads used for the latency.

    Example:

    >>> report = to_tflite(model, "out/model.tflite", quantization="int8",
    ...                    representative_data=x_train, check_data=(x_val, y_val))
    >>> report.size_ratio, report.top1_agreement
    (0.27, 0.995)
    """

    path: str
    quantization: str = None
    size_bytes: int = 0
    float32_size_bytes: int = 0
    labels_path: str = None
    num_checked: int = 0
    max_abs_diff: float = None
    top1_agreement: float = None
    accuracy: float = None
    keras_accuracy: float = None
    latency_ms: float = None
    float32_latency_ms: float = None
    num_threads: int = 1

    @property
    def size_ratio(self):
        """Size of the file over the float32 file's."""
        if not self.float32_size_bytes:
            return None
        return self.size_bytes / self.float32_size_bytes

    @property
    def latency_ratio(self):
        """Median latency over the float32 file's (same run, same sample)."""
        if not self.latency_ms or not self.float32_latency_ms:
            return None
        return self.latency_ms / self.float32_latency_ms

    @property
    def accuracy_drop(self):
        """Keras accuracy minus LiteRT accuracy, in points (percent)."""
        if self.accuracy is None or self.keras_accuracy is None:
            return None
        return 100.0 * (self.keras_accuracy - self.accuracy)

    def to_dict(self):
        """The fields and derived ratios as a plain dict (for JSON)."""
        result = dataclasses.asdict(self)
        result.update(
            size_ratio=self.size_ratio,
            latency_ratio=self.latency_ratio,
            accuracy_drop=self.accuracy_drop,
        )
        return result

    def __str__(self):
        def fmt(value, spec):
            return "-" if value is None else format(value, spec)

        lines = [
            f"LiteRT export: {self.path}",
            f"  quantization      {self.quantization or 'float32'}",
            f"  size              {self.size_bytes:,} bytes "
            f"({fmt(self.size_ratio, '.3f')}x float32)",
            f"  labels            {self.labels_path}",
        ]
        if self.num_checked:
            lines += [
                f"  checked on        {self.num_checked} samples in the LiteRT interpreter",
                f"  max |diff|        {fmt(self.max_abs_diff, '.3g')}",
                f"  top-1 agreement   {fmt(self.top1_agreement, '.4f')}",
                f"  accuracy          {fmt(self.accuracy, '.4f')} "
                f"(Keras {fmt(self.keras_accuracy, '.4f')})",
                f"  latency (median)  {fmt(self.latency_ms, '.3f')} ms "
                f"({fmt(self.latency_ratio, '.2f')}x float32, "
                f"{self.num_threads} thread(s))",
            ]
        return "\n".join(lines)


class LiteRTModel:
    """A `.tflite` file in the LiteRT interpreter, with a `predict` like Keras.

    Quantized inputs and outputs are handled: float inputs are quantized with
    the file's scale and zero point, and outputs dequantized, so results
    compare directly with the Keras model's. The batch size is free.

    Args:
        model: path of a `.tflite` file, or its bytes.
        num_threads: interpreter threads.

    Example:

    >>> litert = LiteRTModel("model.tflite")
    >>> litert.predict(x_val).argmax(-1)[:5]
    array([7, 2, 1, 0, 4])
    """

    def __init__(self, model, num_threads=1):
        from ai_edge_litert.interpreter import Interpreter

        if isinstance(model, (bytes, bytearray)):
            self._interpreter = Interpreter(model_content=bytes(model), num_threads=num_threads)
        else:
            self._interpreter = Interpreter(model_path=str(model), num_threads=num_threads)
        signatures = self._interpreter.get_signature_list()
        self.signature_key = next(iter(signatures))
        self._runner = self._interpreter.get_signature_runner(self.signature_key)
        self.input_details = self._runner.get_input_details()
        self.output_details = self._runner.get_output_details()
        self.input_names = list(signatures[self.signature_key]["inputs"])
        self.output_names = list(signatures[self.signature_key]["outputs"])

    def _feed(self, inputs):
        if not isinstance(inputs, dict):
            if len(self.input_names) != 1:
                raise ValueError(
                    f"The model has inputs {self.input_names}; pass a dict of arrays."
                )
            inputs = {self.input_names[0]: inputs}
        missing = set(self.input_names) - set(inputs)
        if missing:
            raise ValueError(
                f"Missing model inputs {sorted(missing)}; the model takes {self.input_names}."
            )
        feed = {}
        for name in self.input_names:
            details = self.input_details[name]
            value = np.asarray(inputs[name])
            feed[name] = _to_tensor_dtype(value, details)
        return feed

    def __call__(self, inputs):
        """Runs one batch; returns the output array (a dict for several)."""
        outputs = self._runner(**self._feed(inputs))
        outputs = {
            name: _dequantize(outputs[name], self.output_details[name])
            for name in self.output_names
        }
        if len(outputs) == 1:
            return next(iter(outputs.values()))
        return outputs

    def predict(self, inputs, batch_size=32):
        """Runs `inputs` (array or dict of arrays) in batches.

        Args:
            inputs: an array of samples, or a dict of arrays for models with
                several inputs.
            batch_size: samples per interpreter call.

        Returns:
            The outputs, float32 (a dict for several outputs).
        """
        n = len(next(iter(inputs.values()))) if isinstance(inputs, dict) else len(inputs)
        results = []
        for start in range(0, n, batch_size):
            results.append(self(_take(inputs, slice(start, start + batch_size))))
        if isinstance(results[0], dict):
            return {k: np.concatenate([r[k] for r in results]) for k in results[0]}
        return np.concatenate(results)

    def timed_call(self, sample):
        """Runs one prepared feed; returns seconds spent in the interpreter."""
        start = time.perf_counter()
        self._runner(**sample)
        return time.perf_counter() - start

    def prepare(self, inputs):
        """The feed dict for `timed_call` (quantized if the file wants)."""
        return self._feed(inputs)


def _take(inputs, index):
    if isinstance(inputs, dict):
        return {k: np.asarray(v)[index] for k, v in inputs.items()}
    return np.asarray(inputs)[index]


def _to_tensor_dtype(value, details):
    dtype = details["dtype"]
    scale, zero_point = details["quantization"]
    if np.issubdtype(dtype, np.integer) and scale:
        info = np.iinfo(dtype)
        value = np.round(value.astype(np.float32) / scale + zero_point)
        return np.clip(value, info.min, info.max).astype(dtype)
    return value.astype(dtype)


def _dequantize(value, details):
    scale, zero_point = details["quantization"]
    if np.issubdtype(value.dtype, np.integer) and scale:
        return (value.astype(np.float32) - zero_point) * scale
    return value.astype(np.float32, copy=False)


# ----------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------


def _as_arrays(data, limit=None, seed=None, image_size=None, split="validation"):
    """`(inputs, labels or None)` from the forms of data keras-tl accepts.

    Arrays, `(x, y)` tuples, dicts of arrays (models with several inputs),
    `tf.data.Dataset`s (batched or not), `keras_tl.data.ImageData` (its
    `split`, else the training set) and image folders. `limit` samples at
    most: the first ones, or a random draw when `seed` is given.
    """
    import tensorflow as tf

    from keras_tl.data import ImageData, as_dataset

    if isinstance(data, (str, os.PathLike)):
        data = as_dataset(data, image_size=image_size, shuffle=False)
    if isinstance(data, ImageData):
        data = (split == "validation" and data.validation) or data.train
    labels = None
    if isinstance(data, tf.data.Dataset):
        data = _dataset_arrays(data, limit if seed is None else None)
    if isinstance(data, tuple) and len(data) == 2:
        data, labels = data
        labels = None if labels is None else np.asarray(labels).reshape(-1)
    if isinstance(data, dict):
        data = {k: np.asarray(v) for k, v in data.items()}
        n = len(next(iter(data.values())))
    elif isinstance(data, (np.ndarray, list)) or hasattr(data, "__array__"):
        data = np.asarray(data)
        n = len(data)
    else:
        raise TypeError(
            "Data must be an array, a tuple (x, y), a dict of arrays, a "
            f"tf.data.Dataset, keras_tl ImageData or an image folder; got "
            f"{type(data).__name__}."
        )
    if n == 0:
        raise ValueError("The data is empty.")
    if labels is not None and len(labels) != n:
        raise ValueError(f"{n} samples but {len(labels)} labels.")
    if limit is not None and n > limit:
        if seed is None:
            index = np.arange(limit)
        else:
            index = np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))
        data = _take(data, index)
        labels = None if labels is None else labels[index]
    return data, labels


def _dataset_arrays(dataset, limit):
    spec = dataset.element_spec
    has_labels = isinstance(spec, tuple) and len(spec) == 2
    inputs, labels, count = [], [], 0
    for element in dataset.as_numpy_iterator():
        x, y = element if has_labels else (element, None)
        batched = _is_batched(spec[0] if has_labels else spec)
        if not batched:
            x = {k: v[None] for k, v in x.items()} if isinstance(x, dict) else np.asarray(x)[None]
            y = None if y is None else np.asarray(y)[None]
        inputs.append(x)
        if y is not None:
            labels.append(np.asarray(y).reshape(-1))
        count += len(next(iter(x.values()))) if isinstance(x, dict) else len(x)
        if limit is not None and count >= limit:
            break
    if not inputs:
        raise ValueError("The tf.data.Dataset is empty.")
    if isinstance(inputs[0], dict):
        x = {k: np.concatenate([b[k] for b in inputs]) for k in inputs[0]}
    else:
        x = np.concatenate(inputs)
    return (x, np.concatenate(labels)) if labels else x


def _is_batched(spec):
    import tensorflow as tf

    if isinstance(spec, dict):
        spec = next(iter(spec.values()))
    # Image batches are rank 4; token-id batches rank 2 with a free batch
    # dimension. Anything else is taken as single samples.
    if isinstance(spec, tf.TensorSpec):
        return spec.shape.rank == 4 or (spec.shape.rank == 2 and spec.shape[0] is None)
    return True


def _representative_dataset(inputs):
    n = len(next(iter(inputs.values()))) if isinstance(inputs, dict) else len(inputs)

    def generate():
        for i in range(n):
            sample = _take(inputs, slice(i, i + 1))
            if isinstance(sample, dict):
                yield {k: v.astype(np.int32 if v.dtype == bool else v.dtype) for k, v in sample.items()}
            else:
                yield [sample.astype(np.float32)]

    return generate


# ----------------------------------------------------------------------------
# Conversion
# ----------------------------------------------------------------------------


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


def _write_atomic(path, content):
    """Writes bytes or text through a temporary file in the same folder."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(content.encode("utf-8") if isinstance(content, str) else content)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def _labels_for(model, class_names, num_outputs):
    if class_names is None:
        from keras_tl.heads import get_class_names

        class_names = get_class_names(model) if _is_keras3(model) else None
    if class_names is None:
        class_names = [str(i) for i in range(num_outputs)]
    return [str(name) for name in class_names]


def _check_path(path):
    path = os.fspath(path)
    if not path.endswith(".tflite"):
        raise ValueError(f"The export path must end with '.tflite'; got {path!r}.")
    return path


def _check_options(quantization, representative_data, io_dtype):
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

    >>> report = to_tflite(model, "phone/digits.tflite", quantization="int8",
    ...                    representative_data=(x_train, y_train),
    ...                    check_data=(x_val, y_val))
    >>> print(report)
    """
    path = _check_path(path)
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
    _write_atomic(path, content)
    num_outputs = int(model.output_shape[-1]) if hasattr(model, "output_shape") else 0
    labels = _labels_for(model, class_names, num_outputs)
    labels_path = os.path.join(os.path.dirname(os.path.abspath(path)), LABELS_FILE)
    _write_atomic(labels_path, "\n".join(labels) + "\n")
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


def _keras_predict(model, inputs, batch_size=64):
    outputs = model.predict(inputs, batch_size=batch_size, verbose=0)
    if isinstance(outputs, dict) and len(outputs) == 1:
        outputs = next(iter(outputs.values()))
    return np.asarray(outputs, np.float32)


def _fill_parity(report, content, float32_content, inputs, targets, reference,
                 num_threads, latency_inputs=None):
    litert = LiteRTModel(content, num_threads=num_threads)
    outputs = litert.predict(inputs)
    parity = compare_outputs(outputs, reference, targets)
    report.num_checked = parity["num_checked"]
    report.max_abs_diff = parity["max_abs_diff"]
    report.top1_agreement = parity["top1_agreement"]
    report.accuracy = parity["accuracy"]
    report.keras_accuracy = parity["keras_accuracy"]
    sample = _take(latency_inputs if latency_inputs is not None else inputs, slice(0, 1))
    float32 = litert if float32_content is content else LiteRTModel(
        float32_content, num_threads=num_threads
    )
    latencies = measure_latency([litert, float32], sample)
    report.latency_ms, report.float32_latency_ms = latencies


def compare_outputs(outputs, reference, labels=None):
    """Parity of LiteRT outputs with Keras outputs on the same inputs.

    Args:
        outputs: LiteRT outputs `(n, num_classes)`.
        reference: Keras outputs for the same samples.
        labels: optional int labels `(n,)`.

    Returns:
        A dict: `num_checked`, `max_abs_diff`, `top1_agreement`, and
        `accuracy` / `keras_accuracy` (`None` without labels).

    Example:

    >>> compare_outputs(litert.predict(x), model.predict(x), y)["top1_agreement"]
    0.998
    """
    outputs = np.asarray(outputs, np.float32)
    reference = np.asarray(reference, np.float32)
    if outputs.shape != reference.shape:
        raise ValueError(
            f"LiteRT outputs have shape {outputs.shape} but Keras outputs "
            f"{reference.shape}; the file and the model do not match."
        )
    predicted, expected = outputs.argmax(-1), reference.argmax(-1)
    result = {
        "num_checked": int(len(outputs)),
        "max_abs_diff": float(np.max(np.abs(outputs - reference))),
        "top1_agreement": float(np.mean(predicted == expected)),
        "accuracy": None,
        "keras_accuracy": None,
    }
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        result["accuracy"] = float(np.mean(predicted == labels))
        result["keras_accuracy"] = float(np.mean(expected == labels))
    return result


def measure_latency(models, sample, repeats=LATENCY_REPEATS, warmup=5):
    """Median single-sample latency of LiteRT models, measured side by side.

    The models run in alternation, `repeats` rounds, so load on a shared
    machine affects them alike and their ratio is meaningful.

    Args:
        models: list of `LiteRTModel`.
        sample: one sample with its batch dimension (array or dict).
        repeats: timed calls per model.
        warmup: untimed calls per model first.

    Returns:
        A list of median latencies in milliseconds, one per model.

    Example:

    >>> int8_ms, float32_ms = measure_latency([int8, float32], x[:1])
    """
    feeds = [model.prepare(sample) for model in models]
    for model, feed in zip(models, feeds):
        for _ in range(warmup):
            model.timed_call(feed)
    times = [[] for _ in models]
    for _ in range(repeats):
        for i, (model, feed) in enumerate(zip(models, feeds)):
            times[i].append(model.timed_call(feed))
    return [1000.0 * statistics.median(t) for t in times]


def read_labels(path):
    """Reads a `labels.txt` written by `to_tflite` (one name per line).

    Args:
        path: the `labels.txt` file, or the `.tflite` file beside it.

    Example:

    >>> read_labels("phone/digits.tflite")[:3]
    ['0', '1', '2']
    """
    path = os.fspath(path)
    if path.endswith(".tflite"):
        path = os.path.join(os.path.dirname(os.path.abspath(path)), LABELS_FILE)
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


# ----------------------------------------------------------------------------
# Text classifiers
# ----------------------------------------------------------------------------


def _text_parts(model, preprocessor):
    preprocessor = preprocessor or getattr(model, "preprocessor", None)
    if preprocessor is None:
        raise ValueError(
            "The text model has no preprocessor; pass preprocessor= (the "
            "KerasHub TextClassifierPreprocessor that tokenizes its input)."
        )
    sequence_length = getattr(preprocessor, "sequence_length", None)
    if not sequence_length:
        raise ValueError(
            f"{type(preprocessor).__name__} has no sequence_length; the file "
            "needs fixed-length token inputs."
        )
    return preprocessor, int(sequence_length)


def _token_inputs(preprocessor, texts):
    features = preprocessor(list(texts))
    if isinstance(features, tuple):
        features = features[0]
    return {k: np.asarray(v).astype(np.int32) for k, v in features.items()}


def _text_signature(model, sequence_length):
    import tensorflow as tf

    names = list(model.input.keys()) if isinstance(model.input, dict) else None
    if not names:
        raise ValueError(
            "The text model must take a dict of token inputs (token_ids, "
            "segment_ids, padding_mask), as KerasHub BERT-family models do."
        )
    return [{name: tf.TensorSpec((None, sequence_length), tf.int32, name=name) for name in names}]


def _texts_and_labels(data):
    if isinstance(data, tuple) and len(data) == 2:
        return [str(t) for t in data[0]], np.asarray(data[1]).reshape(-1)
    if isinstance(data, (list, np.ndarray)):
        return [str(t) for t in data], None
    raise TypeError(
        "Text data must be a list of strings or a tuple (texts, labels); got "
        f"{type(data).__name__}."
    )


def text_to_tflite(
    model,
    path,
    *,
    quantization=None,
    representative_data=None,
    check_data=None,
    preprocessor=None,
    class_names=None,
    allow_select_tf_ops=False,
    num_calibration_samples=DEFAULT_CALIBRATION_SAMPLES,
    num_check_samples=DEFAULT_CHECK_SAMPLES,
    num_threads=1,
):
    """Exports a KerasHub text classifier (encoder + head) to `.tflite`.

    The tokenizer cannot run in TFLite (`FastWordpieceTokenizeWithOffsets`
    is neither a builtin nor a flex op), so the file takes `token_ids`,
    `segment_ids` and `padding_mask` (int32, `(batch, sequence_length)`).
    Beside it go `labels.txt`, `vocab.txt` and a `tokenizer/` folder (the
    preprocessor saved as a KerasHub preset) that `TFLiteTextClassifier`
    loads to classify raw strings. Parity is checked from raw strings:
    Keras `model.predict(texts)` against the tokenizer plus the file.

    Args:
        model: a KerasHub `TextClassifier` (e.g. `BertTextClassifier`, a
            keras-tl `PooledTextClassifier`).
        path: output path ending in `.tflite`.
        quantization: as for `to_tflite`.
        representative_data: texts (or `(texts, labels)`) for int8.
        check_data: held-out texts, or `(texts, labels)`.
        preprocessor: the tokenizing preprocessor; default
            `model.preprocessor`.
        class_names: names for `labels.txt`; default from the model.
        allow_select_tf_ops: as for `to_tflite`.
        num_calibration_samples: texts drawn for int8 calibration.
        num_check_samples: texts checked.
        num_threads: interpreter threads.

    Returns:
        An `ExportReport`.

    Example:

    >>> report = text_to_tflite(classifier, "phone/sentiment.tflite",
    ...                         check_data=(texts, labels))
    >>> TFLiteTextClassifier.load("phone/sentiment.tflite").predict(["Great!"])
    """
    path = _check_path(path)
    _check_options(quantization, representative_data, "float32")
    preprocessor, sequence_length = _text_parts(model, preprocessor)
    signature = _text_signature(model, sequence_length)
    representative = None
    if quantization == "int8":
        texts, _ = _texts_and_labels(representative_data)
        rng = np.random.default_rng(0)
        if len(texts) > num_calibration_samples:
            texts = [texts[i] for i in rng.choice(len(texts), num_calibration_samples, replace=False)]
        representative = _representative_dataset(_token_inputs(preprocessor, texts))
    content = _convert(model, quantization, representative, "float32",
                       allow_select_tf_ops, signature)
    float32_content = content if quantization is None else _convert(
        model, None, None, "float32", allow_select_tf_ops, signature
    )
    folder = os.path.dirname(os.path.abspath(path))
    _write_tokenizer(preprocessor, folder)
    _write_atomic(path, content)
    num_outputs = int(model.output_shape[-1])
    labels = _labels_for(model, class_names or getattr(model, "class_names", None), num_outputs)
    labels_path = os.path.join(folder, LABELS_FILE)
    _write_atomic(labels_path, "\n".join(labels) + "\n")
    report = ExportReport(
        path=path, quantization=quantization, size_bytes=len(content),
        float32_size_bytes=len(float32_content), labels_path=labels_path,
        num_threads=num_threads,
    )
    if check_data is not None:
        texts, targets = _texts_and_labels(check_data)
        texts = texts[:num_check_samples]
        targets = None if targets is None else targets[:num_check_samples]
        reference = _keras_predict(model, texts)
        classifier = TFLiteTextClassifier(content, preprocessor, labels, num_threads)
        tokens = classifier.tokenize(texts)
        _fill_parity(report, content, float32_content, tokens, targets,
                     reference, num_threads)
    return report


def _write_tokenizer(preprocessor, folder):
    """Saves the preprocessor as a KerasHub preset in `folder/tokenizer`."""
    target = os.path.join(folder, TOKENIZER_DIR)
    os.makedirs(folder, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".tmp-tokenizer-", dir=folder)
    try:
        preprocessor.save_to_preset(staging)
        vocabulary = preprocessor.tokenizer.get_vocabulary()
        _write_atomic(os.path.join(folder, VOCABULARY_FILE), "\n".join(vocabulary) + "\n")
        config = {"sequence_length": int(preprocessor.sequence_length)}
        with open(os.path.join(staging, "tflite_text.json"), "w", encoding="utf-8") as f:
            json.dump(config, f)
        if os.path.isdir(target):
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


class TFLiteTextClassifier:
    """Classifies raw strings with a `.tflite` text model and its tokenizer.

    Tokenizes in Python with the model's KerasHub preprocessor, then runs the
    encoder + head in the LiteRT interpreter: the same steps a phone app
    takes with `vocab.txt` and the file.

    Args:
        model: a `.tflite` path or its bytes (from `text_to_tflite`).
        preprocessor: the KerasHub `TextClassifierPreprocessor` that
            tokenized the training data.
        class_names: list of class names (default: `0 .. N-1`).
        num_threads: interpreter threads.

    Example:

    >>> classifier = TFLiteTextClassifier.load("phone/sentiment.tflite")
    >>> classifier.predict_labels(["What a wonderful film"])
    ['positive']
    """

    def __init__(self, model, preprocessor, class_names=None, num_threads=1):
        self.litert = LiteRTModel(model, num_threads=num_threads)
        self.preprocessor = preprocessor
        self.class_names = list(class_names) if class_names else None
        expected = {"token_ids", "segment_ids", "padding_mask"}
        if not set(self.litert.input_names) <= expected | {"token_type_ids"}:
            raise ValueError(
                f"The file takes inputs {self.litert.input_names}; expected "
                f"token inputs {sorted(expected)} (export with text_to_tflite)."
            )

    @classmethod
    def load(cls, path, num_threads=1):
        """Loads the file and the `tokenizer/` and `labels.txt` beside it.

        Args:
            path: the `.tflite` written by `text_to_tflite`.
            num_threads: interpreter threads.
        """
        import keras

        folder = os.path.dirname(os.path.abspath(path))
        preset = os.path.join(folder, TOKENIZER_DIR)
        if not os.path.isdir(preset):
            raise FileNotFoundError(
                f"No {TOKENIZER_DIR}/ folder beside {path}; export with "
                "text_to_tflite, which writes it."
            )
        with open(os.path.join(preset, "tflite_text.json"), encoding="utf-8") as f:
            config = json.load(f)
        # The preprocessor's own config plus its tokenizer's vocabulary
        # assets: the parts of a KerasHub preset that concern tokenization.
        with open(os.path.join(preset, "preprocessor.json"), encoding="utf-8") as f:
            preprocessor = keras.saving.deserialize_keras_object(json.load(f))
        preprocessor.load_preset_assets(preset)
        preprocessor.sequence_length = config["sequence_length"]
        labels_path = os.path.join(folder, LABELS_FILE)
        names = read_labels(labels_path) if os.path.exists(labels_path) else None
        return cls(path, preprocessor, names, num_threads)

    def tokenize(self, texts):
        """The int32 token inputs of the file for a list of strings."""
        if isinstance(texts, str):
            texts = [texts]
        tokens = _token_inputs(self.preprocessor, texts)
        return {name: tokens[name] for name in self.litert.input_names}

    def predict(self, texts, batch_size=32):
        """Model outputs `(n, num_classes)` for a list of strings."""
        return self.litert.predict(self.tokenize(texts), batch_size=batch_size)

    def predict_labels(self, texts):
        """The predicted class name of each string."""
        indices = self.predict(texts).argmax(-1)
        names = self.class_names or [str(i) for i in range(int(indices.max()) + 1)]
        return [names[i] for i in indices]
