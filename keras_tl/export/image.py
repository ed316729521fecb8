"""`to_tflite`: export of a Keras model (images or arrays), checked in LiteRT."""

import warnings

import keras
import numpy as np

from keras_tl._utils.validation import check_pixel_range
from keras_tl._utils.validation import check_positive_int
from keras_tl._utils.validation import takes_raw_pixels
from keras_tl.export.convert import DEFAULT_CALIBRATION_SAMPLES
from keras_tl.export.convert import check_model
from keras_tl.export.convert import check_options
from keras_tl.export.convert import check_path
from keras_tl.export.convert import convert_model
from keras_tl.export.convert import is_keras3
from keras_tl.export.convert import shared_saved_models
from keras_tl._utils.logs import quiet_native_logs
from keras_tl.data import as_arrays
from keras_tl.export.data import representative_dataset
from keras_tl.export.data import take_rows
from keras_tl.export.files import check_report_path
from keras_tl.export.files import export_paths
from keras_tl.export.files import write_export
from keras_tl.export.labels import labels_for
from keras_tl.export.metadata import schemas_available
from keras_tl.export.metadata import populate_image_classifier_metadata
from keras_tl.export.report import DEFAULT_CHECK_SAMPLES
from keras_tl.export.report import ExportReport
from keras_tl.export.report import fill_parity
from keras_tl.export.report import keras_predict
from keras_tl.export.report import thresholds_by_name
from keras_tl.heads import get_thresholds
from keras_tl.export.selective import DEFAULT_MIN_AGREEMENT
from keras_tl.export.selective import quantize_selectively

# Check samples below which none are held out from choosing the float layers.
MIN_HELD_OUT = 20

__all__ = ["GRAYSCALE_INPUTS", "GRAYSCALE_WEIGHTS", "to_tflite"]

# ITU-R BT.601 luma, the weights of `tf.image.rgb_to_grayscale`:
# gray = 0.299 R + 0.587 G + 0.114 B.
GRAYSCALE_WEIGHTS = (0.299, 0.587, 0.114)
GRAYSCALE_INPUTS = ("rgb", "keep")
# Image depths MediaPipe's ImageClassifier accepts.
_MEDIAPIPE_CHANNELS = (3, 4)


def _model_image_size(model):
    shape = getattr(model, "input_shape", None)
    if isinstance(shape, tuple) and len(shape) == 4 and None not in shape[1:3]:
        return tuple(shape[1:3])
    return None


def _image_channels(model):
    """Channels of the model's single image input, or `None` for others."""
    shape = getattr(model, "input_shape", None)
    if isinstance(shape, tuple) and len(shape) == 4 and shape[-1] in (1, 3, 4):
        return int(shape[-1])
    return None


def _rgb_input_model(model):
    """`model` behind a 3-channel input that it converts to grayscale.

    Cameras and MediaPipe deliver RGB; a fixed 1x1 convolution with the
    BT.601 weights turns it into the one channel the model was trained on,
    inside the file.
    """
    height, width = model.input_shape[1:3]
    inputs = keras.Input((height, width, 3), name="image")
    to_gray = keras.layers.Conv2D(1, 1, use_bias=False, trainable=False,
                                  name="rgb_to_grayscale")
    gray = to_gray(inputs)
    to_gray.set_weights([np.asarray(GRAYSCALE_WEIGHTS, np.float32).reshape(1, 1, 3, 1)])
    return keras.Model(inputs, model(gray), name=model.name)


def _gray_to_rgb(inputs):
    # R = G = B = gray gives back gray: the BT.601 weights sum to 1.
    return np.repeat(np.asarray(inputs, np.float32), 3, axis=-1)


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
    metadata=None,
    grayscale_input="rgb",
    normalization=(0.0, 1.0),
    min_agreement=DEFAULT_MIN_AGREEMENT,
    verbose=0,
):
    """Exports `model` to a `.tflite` file and checks it in LiteRT.

    Conversion goes through `model.export(path, format="litert")` with
    TFLite builtin ops only. An image classifier's file carries TFLite
    Metadata (RGB input, pixel normalization, class names packed inside), so
    MediaPipe's `ImageClassifier` runs it on camera images as it is.
    With `check_data`, the final file runs in
    `ai_edge_litert.interpreter.Interpreter` and the report compares it with
    the Keras model; the median single-sample latency is measured
    alternately with the float32 conversion's.

    Nothing is written until conversion and checks have succeeded; then the
    file, `<stem>.labels.txt` (one class name per line) and `<stem>.json`
    (the report) are written beside each other, each atomically (temporary
    file, then rename, mode `0666 & ~umask`). A failed export leaves an
    earlier export under the same name byte for byte as it was.

    A grayscale model (one input channel) gets, with `grayscale_input="rgb"`,
    a 3-channel input converted inside the file with the ITU-R BT.601 luma
    weights of `tf.image.rgb_to_grayscale` (`GRAYSCALE_WEIGHTS`: gray =
    0.299 R + 0.587 G + 0.114 B): MediaPipe accepts only 3- or 4-channel
    images, and for a gray picture (R = G = B) the model sees the same values
    as in Keras. The check and calibration data stay grayscale; they are
    repeated to RGB for the file.

    An int8 file whose top-1 answers agree with Keras on fewer than
    `min_agreement` of the check samples (of the calibration samples
    without `check_data`) keeps the ops that lose most in float
    (`keras_tl.export.selective`): calibrated once, then re-quantized with
    one more float op at a time, in order of measured error per extra byte,
    until the agreement is met. The report names these layers and gives the
    size next to the full-int8 file's. The check samples that chose the
    layers also measure the report's agreement, so expect a little less on
    other data. When the target is not met before the file would outgrow
    the float16 file, the full-int8 file is exported, with a warning.
    A file with float ops needs TFLite's float kernels (any phone CPU,
    MediaPipe); integer-only hardware (microcontrollers, some NPUs) needs
    `min_agreement=None`, which keeps every op int8. With `io_dtype="int8"`
    or `"uint8"` the ops that read the input or write the output stay int8
    (an integer input must be quantized before any float op, and only an
    int8 op writes an integer output), so fewer ops can help.
    Models with several inputs or outputs, non-array data, files with
    `allow_select_tf_ops` (which the Python interpreter may not run) and
    `tf_keras` models (quantization-aware training copies, whose int8
    ranges are learned) are exported in full int8.

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
        class_names: names for the labels; default: the names stored in the
            model (`keras_tl.heads.get_class_names`), else `0 .. N-1`.
        io_dtype: `"float32"`, `"int8"` or `"uint8"` inputs and outputs of an
            int8 file (integer I/O suits camera pixels; `LiteRTModel`
            quantizes for you).
        allow_select_tf_ops: add `SELECT_TF_OPS` (TensorFlow kernels through
            the Flex delegate) for ops TFLite lacks.
        num_calibration_samples: samples drawn from `representative_data`
            (default 1,000: all of a small labelled set; the int8 ranges are
            the extremes of the calibration activations, which a larger draw
            makes less dependent on which images were drawn).
        num_check_samples: samples of `check_data` run.
        num_threads: interpreter threads for the check and the latency.
        input_signature: optional `tf.TensorSpec`s, as for `model.export`.
        sparse_weights: store kernels with many zeros (after
            `keras_tl.compression.prune`) in TFLite's sparse format
            (`tf.lite.Optimize.EXPERIMENTAL_SPARSITY`): a smaller file with
            the same outputs. The report's size ratio is against the dense
            float32 conversion.
        metadata: TFLite Metadata in the file. `None` (default): for an
            image classifier (one image input with 1, 3 or 4 channels, one
            output), bare for other models, and bare with a warning when
            `mediapipe` (whose schemas it is written with) is not installed.
            `True`: always, or raise. `False`: a bare file.
        grayscale_input: for a 1-channel model, `"rgb"` (a 3-channel input
            converted to gray inside the file) or `"keep"` (the 1-channel
            input; MediaPipe refuses such files).
        normalization: `(mean, std)` that MediaPipe applies to pixels in
            [0, 255] before a float input: `(0, 1)` for keras-tl models,
            which rescale inside; `(0, 255)` for a model that expects
            [0, 1]; `(127.5, 127.5)` for [-1, 1]. A number or one per
            channel each.
        min_agreement: for `quantization="int8"`, the top-1 agreement with
            Keras below which ops are kept in float (default 0.99); `None`
            or 0 keeps every op int8. Ignored for other quantizations.
        verbose: 0 drops the converter's and the interpreter's C++ notices
            (`fully_quantize: ...`, one line per calibration tensor) from
            stderr, keeping every other line; 1 shows them.

    Returns:
        An `ExportReport`.

    Raises:
        TypeError: `model` is not a Keras model (e.g. `None` or a path:
            load a saved model with `keras.models.load_model` first).
        ValueError: a bad path or option, int8 without representative
            data, or class names that do not match the outputs.
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
    if not verbose:
        options = {k: v for k, v in locals().items() if k not in ("model", "path", "verbose")}
        with quiet_native_logs():
            return to_tflite(model, path, verbose=1, **options)
    check_model(model, "to_tflite")
    if _is_text_classifier(model):
        return _text_to_tflite(
            model, path, quantization=quantization, representative_data=representative_data,
            check_data=check_data, class_names=class_names,
            allow_select_tf_ops=allow_select_tf_ops,
            num_calibration_samples=num_calibration_samples,
            num_check_samples=num_check_samples, num_threads=num_threads, metadata=metadata,
            image_options={"io_dtype": (io_dtype, "float32"),
                           "input_signature": (input_signature, None),
                           "sparse_weights": (sparse_weights, False),
                           "grayscale_input": (grayscale_input, "rgb"),
                           "normalization": (tuple(normalization), (0.0, 1.0))},
        )
    path = check_path(path)
    check_report_path(export_paths(path)[1])
    _check_tensorflow_backend()
    check_options(quantization, representative_data, io_dtype, min_agreement)
    if grayscale_input not in GRAYSCALE_INPUTS:
        raise ValueError(
            f"grayscale_input must be one of {GRAYSCALE_INPUTS}; got {grayscale_input!r}."
        )
    model, class_names = _two_classes_from_sigmoid(model, class_names)
    num_outputs = _num_outputs(model)
    labels = labels_for(model, class_names, num_outputs)
    image_size = _model_image_size(model)
    channels = _image_channels(model)
    exported = model
    to_file_inputs = _unchanged
    if channels == 1 and grayscale_input == "rgb" and is_keras3(model):
        exported, channels, to_file_inputs = _rgb_input_model(model), 3, _gray_to_rgb
    with_metadata = _writes_metadata(model, metadata, channels, io_dtype, normalization)
    if with_metadata and num_outputs == 1:
        raise ValueError(
            f"The model {model.name!r} has one output unit that is not a sigmoid: "
            "MediaPipe would report that one score under one label. End the model in a "
            "softmax over the classes, or in a one-unit sigmoid (exported as two "
            "classes), or pass metadata=False."
        )
    representative = None
    raw_pixels = takes_raw_pixels(model)
    if quantization == "int8":
        calibration, _ = as_arrays(
            representative_data, limit=num_calibration_samples, seed=0,
            image_size=image_size, split="train",
        )
        _check_input_shape(model, calibration, "representative_data")
        if raw_pixels:
            check_pixel_range(calibration, "representative_data")
        elif with_metadata:
            _check_pixel_range(calibration, normalization)
        representative = representative_dataset(to_file_inputs(calibration))
    if check_data is not None:
        check_positive_int(num_check_samples, "num_check_samples")
        inputs, targets = as_arrays(check_data, limit=num_check_samples,
                                     image_size=image_size)
        _check_input_shape(model, inputs, "check_data")
        multi_label = get_thresholds(model) is not None
        if targets is not None and multi_label:
            if targets.ndim != 2 or targets.shape[1] != num_outputs:
                raise ValueError(
                    f"check_data of a multi-label model needs 0/1 label rows of "
                    f"{num_outputs} columns; got labels of shape {targets.shape}."
                )
        elif targets is not None and targets.ndim == 2:
            # One-hot labels: the agreement compares class indices.
            targets = targets.argmax(-1)
        if targets is not None and num_outputs >= 2 and not multi_label:
            check_labels = np.asarray(targets).reshape(-1)
            if check_labels.size and (check_labels.min() < 0
                                      or check_labels.max() >= num_outputs):
                raise ValueError(
                    f"check_data has labels from {check_labels.min()} to "
                    f"{check_labels.max()}, and the "
                    f"model has {num_outputs} classes (0 to {num_outputs - 1}). Pass the "
                    "labels as class indices of this model."
                )
        if raw_pixels:
            check_pixel_range(inputs, "check_data")
        elif with_metadata:
            _check_pixel_range(inputs, normalization)
    with shared_saved_models():
        content = convert_model(exported, quantization, representative, io_dtype,
                           allow_select_tf_ops, input_signature, sparse_weights)
        float32_content = content if quantization is None and not sparse_weights else convert_model(
            exported, None, None, "float32", allow_select_tf_ops, input_signature
        )
        selection = None
        if (quantization == "int8" and min_agreement and not allow_select_tf_ops
                and _selectable(exported, calibration)):
            choosing = inputs if check_data is not None else None
            if check_data is not None and len(inputs) >= 2 * MIN_HELD_OUT:
                # Half the check samples choose the float layers; if any are
                # chosen, the other half measures the file (held out).
                choosing = take_rows(inputs, slice(0, None, 2))
            selection = _select_float_ops(
                model, exported, content, calibration,
                choosing, to_file_inputs, min_agreement,
                io_dtype, input_signature, sparse_weights, num_threads,
            )
    full_int8_content = content
    if selection is not None:
        content = selection["content"]
    if with_metadata:
        mean, std = normalization

        def add_metadata(plain):
            return populate_image_classifier_metadata(
                plain, labels, mean=mean, std=std, name=model.name,
            )

        same_file = float32_content is content
        unchanged = full_int8_content is content
        content = add_metadata(content)
        float32_content = content if same_file else add_metadata(float32_content)
        full_int8_content = content if unchanged else add_metadata(full_int8_content)
        if io_dtype == "uint8":
            _check_pixel_quantization(content, mean, std)
    labels_file, report_file = export_paths(path)
    report = ExportReport(
        path=path,
        quantization=quantization,
        size_bytes=len(content),
        float32_size_bytes=len(float32_content),
        labels_path=labels_file,
        report_path=report_file,
        metadata="image_classifier" if with_metadata else None,
        input_channels=channels,
        num_threads=num_threads,
        float_layers=[] if quantization == "int8" else None,
        thresholds=thresholds_by_name(model, labels),
    )
    if selection is not None:
        report.min_agreement = min_agreement
        report.selection_data = selection["data"]
        if selection["data"] == "check_data" and choosing is not inputs:
            report.selection_data = "half of check_data"
        report.full_int8_agreement = selection["full_int8_agreement"]
        report.full_int8_size_bytes = len(full_int8_content)
        report.selection_agreement = selection["agreement"]
        report.float_layers = selection["float_layers"]
    if check_data is not None:
        report.checked_on = "check_data"
        if selection is not None and selection["data"] == "check_data" and \
                selection["float_layers"]:
            if choosing is not inputs:
                # The samples that chose the float layers would flatter the file.
                inputs = take_rows(inputs, slice(1, None, 2))
                targets = None if targets is None else targets[1::2]
                report.checked_on = "held-out half of check_data"
            else:
                report.checked_on = "check_data (the same samples chose the float layers)"
        reference = None
        if selection is not None and selection["data"] == "check_data" and \
                choosing is inputs:
            reference = selection["reference"]
        if reference is None:
            reference = keras_predict(model, inputs)
        fill_parity(report, content, float32_content, to_file_inputs(inputs), targets,
                     reference, num_threads)
    write_export(report, content, labels)
    return report


def _selectable(exported, calibration):
    """Whether selective int8 applies: it compares the top-1 answers of a
    Keras 3 model with one array input and one output of class scores.

    A `tf_keras` model here is a quantization-aware training copy: its int8
    ranges were learned, not calibrated, so it is exported as it is.
    """
    if not is_keras3(exported) or not isinstance(calibration, np.ndarray):
        return False
    inputs, outputs = getattr(exported, "inputs", None), getattr(exported, "outputs", None)
    return (inputs is not None and len(inputs) == 1 and outputs is not None
            and len(outputs) == 1 and _num_outputs(exported) >= 2)


def _select_float_ops(model, exported, content, calibration, check_inputs, to_file_inputs,
                      min_agreement, io_dtype, input_signature, sparse_weights, num_threads):
    """The full-int8 `content` if it keeps `min_agreement` of the Keras
    answers, else the selective file; with what was measured, as a dict.

    When no float op reaches the target, `content` stays: the same file as
    with `min_agreement=None`.
    """
    from keras_tl.export.interpreter import LiteRTModel

    if check_inputs is not None:
        samples, data = check_inputs, "check_data"
    else:
        samples, data = calibration, "representative_data"
    reference = keras_predict(model, samples)
    file_samples = to_file_inputs(samples)
    outputs = LiteRTModel(content, num_threads=num_threads).predict(file_samples)
    agreement = float(np.mean(outputs.argmax(-1) == reference.argmax(-1)))
    result = dict(content=content, data=data, reference=reference, float_layers=[],
                  full_int8_agreement=agreement, agreement=agreement)
    if agreement >= min_agreement:
        return result
    selection = quantize_selectively(
        exported, to_file_inputs(calibration), file_samples, min_agreement=min_agreement,
        reference=reference, io_dtype=io_dtype, input_signature=input_signature,
        sparse_weights=sparse_weights,
    )
    if selection.float_layers:
        result.update(content=selection.content, float_layers=selection.float_layers,
                      agreement=selection.agreement)
    return result


def _writes_metadata(model, metadata, channels, io_dtype, normalization):
    """Whether the file gets image classifier metadata; raises for a
    `metadata=True` that cannot be met, warns where MediaPipe will refuse."""
    if metadata not in (None, True, False):
        raise ValueError(f"metadata must be None, True or False; got {metadata!r}.")
    image_classifier = channels is not None and _single_output(model)
    if metadata is True and not image_classifier:
        raise ValueError(
            "metadata=True needs an image classifier: one image input (height, "
            "width, 1, 3 or 4 channels) and one output; the model takes "
            f"{getattr(model, 'input_shape', None)}. Pass metadata=False."
        )
    if not image_classifier or metadata is False:
        return False
    if not (isinstance(normalization, (tuple, list)) and len(normalization) == 2):
        raise ValueError(f"normalization must be (mean, std); got {normalization!r}.")
    if not schemas_available(required=metadata is True, stacklevel=4):
        return False
    if channels not in _MEDIAPIPE_CHANNELS:
        warnings.warn(
            f"The file takes {channels}-channel images: MediaPipe's ImageClassifier "
            "accepts only 3 or 4 channels (grayscale_input='rgb' converts RGB "
            "to gray inside the file).", stacklevel=3,
        )
    if io_dtype == "int8":
        warnings.warn(
            "MediaPipe Tasks take uint8 or float32 inputs, not int8: use "
            "io_dtype='uint8' for camera pixels.", stacklevel=3,
        )
    return True


def _unchanged(inputs):
    return inputs


def _check_input_shape(model, inputs, argument):
    """Samples must have the model's input shape: the interpreter would
    otherwise resize the file's input to fit them and check another model."""
    shape = getattr(model, "input_shape", None)
    if not isinstance(shape, tuple) or not isinstance(inputs, np.ndarray):
        return
    expected = shape[1:]
    if inputs.ndim != len(shape) or any(
        size is not None and size != actual for size, actual in zip(expected, inputs.shape[1:])
    ):
        raise ValueError(
            f"The {argument} samples have shape {inputs.shape[1:]}; the model "
            f"takes {expected}."
        )


def _check_pixel_range(inputs, normalization):
    """Warns when data looks like pixels in [0, 1] but the metadata tells
    MediaPipe to feed [0, 255] as it is."""
    mean, std = (np.ravel(v).astype(float) for v in normalization)
    if isinstance(inputs, np.ndarray) and np.all(mean == 0) and np.all(std == 1):
        if inputs.size and float(np.max(inputs)) <= 1.0:
            warnings.warn(
                "The images are in [0, 1], but normalization=(0, 1) makes "
                "MediaPipe feed pixels in [0, 255]: pass normalization=(0, 255) "
                "if the model expects [0, 1].", stacklevel=3,
            )


def _check_pixel_quantization(content, mean, std):
    """Warns when a uint8 input does not take pixels as they are.

    MediaPipe copies camera pixels into a uint8 input unchanged, so the
    input's quantization must read pixel p as the value the model expects,
    `(p - mean) / std`: scale `1 / std`, zero point `mean`. The converter
    takes the scale from the calibration images' range, which gives this
    when they span 0 to 255.
    """
    from keras_tl.export.interpreter import LiteRTModel

    litert = LiteRTModel(content)
    scale, zero_point = litert.input_details[litert.input_names[0]]["quantization"]
    mean, std = float(np.mean(mean)), float(np.mean(std))
    if not (np.isclose(scale * std, 1.0, rtol=1e-3) and round(mean) == zero_point):
        warnings.warn(
            f"The uint8 input has scale {scale:.4g} and zero point {zero_point}; "
            f"MediaPipe feeds raw pixels, which this file reads correctly only "
            f"with scale {1 / std:.4g} and zero point {round(mean)}. Calibrate with "
            "images whose pixels span 0 to 255, or use io_dtype='float32'.",
            stacklevel=3,
        )


def _is_text_classifier(model):
    """A KerasHub text classifier (a BERT-family classifier, keras-tl's
    `PooledTextClassifier`): it tokenizes strings in a preprocessor."""
    preprocessor = getattr(model, "preprocessor", None)
    return preprocessor is not None and getattr(preprocessor, "tokenizer", None) is not None


def _text_to_tflite(model, path, image_options, **options):
    """`to_tflite` of a text classifier: `text_to_tflite`, which exports the
    encoder and head on token ids, with the tokenizer beside the file."""
    from keras_tl.export.text import text_to_tflite

    image_only = sorted(name for name, (value, default) in image_options.items()
                        if value != default)
    if image_only:
        raise ValueError(
            f"{image_only} apply to image models; a text classifier's file takes token "
            "ids (int32) and carries its tokenizer. Leave them out."
        )
    return text_to_tflite(model, path, **options)


def _two_classes_from_sigmoid(model, class_names):
    """A one-unit sigmoid classifier as a two-class one: `[1 - p, p]`.

    MediaPipe, the labels file and top-1 agreement all read one score per
    class; a one-unit model would be exported with a single label over
    P(class 1). Two names are kept (the model's or `class_names`); one or
    none become `["0", "1"]`-style names.
    """
    if not (is_keras3(model) and _single_output(model) and _num_outputs(model) == 1):
        return model, class_names
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    if getattr(activation, "__name__", None) != "sigmoid":
        return model, class_names
    if class_names is None:
        from keras_tl.heads import get_class_names

        class_names = get_class_names(model)
    if class_names is None or len(class_names) != 2:
        class_names = ["0", "1"]
    probability = model.outputs[0]
    both = keras.layers.Concatenate(name="two_class_probabilities")(
        [keras.layers.Lambda(lambda p: 1.0 - p, name="not_class_1")(probability), probability])
    return keras.Model(model.inputs, both, name=model.name), list(class_names)


def _num_outputs(model):
    shape = getattr(model, "output_shape", None)
    if isinstance(shape, tuple) and shape and isinstance(shape[-1], int):
        return shape[-1]
    return 0


def _single_output(model):
    outputs = getattr(model, "outputs", None)
    return outputs is not None and len(outputs) == 1


def _check_tensorflow_backend():
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            "LiteRT conversion runs on the TensorFlow backend; this process runs "
            f"Keras on {keras.backend.backend()!r}. Save the model "
            "(`model.save('model.keras')`: the file does not depend on the "
            "backend) and run `keras-tl export model.keras`, which converts it "
            "on TensorFlow."
        )
