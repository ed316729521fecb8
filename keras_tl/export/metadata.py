"""TFLite Metadata: the description of a `.tflite` file that MediaPipe reads.

MediaPipe Tasks (`ImageClassifier`, `TextClassifier`), Android Studio's ML
model binding and the LiteRT Support Library read how to feed a model and
name its outputs from TFLite Metadata: a FlatBuffer (schema
`metadata_schema.fbs`, identifier `M001`) stored in the model's `metadata`
list under the name `"TFLITE_METADATA"`, plus the files it names (labels,
vocabulary) appended to the `.tflite` as a zip archive. A file with metadata
is still an ordinary model for the LiteRT interpreter, which ignores both.

The metadata is built here with the FlatBuffers classes generated from the
schemas that ship in the `mediapipe` wheel
(`mediapipe.tasks.metadata.metadata_schema_py_generated` and
`schema_py_generated`); the `mediapipe` writers themselves are not used (in
mediapipe 1.2.3 they fail to import: they need a compiled module the wheel
lacks).
"""

import io
import os
import re
import warnings
import zipfile

__all__ = [
    "METADATA_NAME",
    "populate_image_classifier_metadata",
    "populate_text_classifier_metadata",
    "read_associated_files",
    "read_metadata",
    "schemas_available",
]

METADATA_NAME = "TFLITE_METADATA"

_MODEL_IDENTIFIER = b"TFL3"
_METADATA_IDENTIFIER = b"M001"
# The converter writes weight buffers 16-byte aligned (`force_align: 16` in
# the TFLite schema) so kernels can read them in place; the generated Python
# packer aligns bytes to 1, so buffers are packed here by hand.
_BUFFER_ALIGNMENT = 16
_PACKED_LABELS = "labels.txt"
_PACKED_VOCABULARY = "vocab.txt"
# Pixel values MediaPipe feeds an image model before normalization.
_PIXEL_RANGE = (0.0, 255.0)

# Schema members added after metadata 1.0.0, with the version that added
# them (the history in metadata_schema.fbs). `_min_parser_version` derives
# `min_parser_version` from the members a metadata object uses, as the
# metadata writers do (mediapipe/tasks/cc/metadata/metadata_version.cc).
_VOCABULARY_FILE_VERSION = (1, 0, 1)
_PROCESS_UNITS_VERSION = (1, 1, 0)
_TOKENIZER_VERSIONS = {
    "BertTokenizerOptions": (1, 1, 0),
    "SentencePieceTokenizerOptions": (1, 1, 0),
    "RegexTokenizerOptions": (1, 2, 1),
}
_TENSOR_GROUPS_VERSION = (1, 2, 0)
_AUDIO_PROPERTIES_VERSION = (1, 3, 0)
_SCANN_INDEX_FILE_VERSION = (1, 4, 0)
_ASSOCIATED_FILE_VERSION_FIELD = (1, 4, 1)
_CUSTOM_METADATA_VERSION = (1, 5, 0)


def _schemas():
    """The generated metadata and model schema modules from `mediapipe`."""
    try:
        from mediapipe.tasks.metadata import metadata_schema_py_generated as metadata_fb
        from mediapipe.tasks.metadata import schema_py_generated as model_fb
    except ImportError as error:
        raise ImportError(
            "Writing TFLite Metadata (what MediaPipe Tasks read) needs the "
            "FlatBuffers schemas of the `mediapipe` package: "
            "`pip install 'keras-tl[mobile]'`, or export with metadata=False "
            "for a bare .tflite file."
        ) from error
    return metadata_fb, model_fb


def schemas_available(required, stacklevel=3):
    """Whether metadata can be written; `required` raises if it cannot,
    else a warning says how to get it."""
    try:
        _schemas()
    except ImportError as error:
        if required:
            raise
        warnings.warn(f"{error} Exporting a bare file.", stacklevel=stacklevel)
        return False
    return True


def _model_bytes(model):
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model)
    with open(os.fspath(model), "rb") as f:
        return f.read()


def _check_model(content, model_fb):
    if not model_fb.Model.ModelBufferHasIdentifier(content, 0):
        raise ValueError("The content is not a TFLite model (no 'TFL3' identifier).")


# ---------------------------------------------------------------------------
# Building metadata objects


def _associated_file(metadata_fb, name, description, file_type):
    packed = metadata_fb.AssociatedFileT()
    packed.name = name
    packed.description = description
    packed.type = file_type
    return packed


def _tensor_metadata(metadata_fb, name, description, content_type, properties):
    tensor = metadata_fb.TensorMetadataT()
    tensor.name = name
    tensor.description = description
    tensor.content = metadata_fb.ContentT()
    tensor.content.contentPropertiesType = content_type
    tensor.content.contentProperties = properties
    return tensor


def _scores_metadata(metadata_fb, labels_name):
    scores = _tensor_metadata(
        metadata_fb, "score", "Score of each class, in the order of the labels file.",
        metadata_fb.ContentProperties.FeatureProperties, metadata_fb.FeaturePropertiesT(),
    )
    scores.associatedFiles = [_associated_file(
        metadata_fb, labels_name, "Class names, one a line, in output order.",
        metadata_fb.AssociatedFileType.TENSOR_AXIS_LABELS,
    )]
    return scores


def _tensor_details(content, model_fb):
    """`(name, dtype name)` of the main subgraph's inputs and outputs, and
    the signature name of each input tensor index."""
    model = model_fb.Model.GetRootAs(content, 0)
    if model.SubgraphsLength() != 1:
        raise ValueError(
            f"The model has {model.SubgraphsLength()} subgraphs; TFLite Metadata "
            "describes files with one."
        )
    subgraph = model.Subgraphs(0)
    type_names = {v: k for k, v in vars(model_fb.TensorType).items() if not k.startswith("_")}

    def describe(index):
        tensor = subgraph.Tensors(index)
        return tensor.Name().decode("utf-8"), type_names.get(tensor.Type(), "UNKNOWN")

    inputs = [describe(subgraph.Inputs(i)) for i in range(subgraph.InputsLength())]
    outputs = [describe(subgraph.Outputs(i)) for i in range(subgraph.OutputsLength())]
    signature_names = {}
    if model.SignatureDefsLength():
        signature = model.SignatureDefs(0)
        for i in range(signature.InputsLength()):
            entry = signature.Inputs(i)
            signature_names[entry.TensorIndex()] = entry.Name().decode("utf-8")
    input_signature_names = [
        signature_names.get(subgraph.Inputs(i)) for i in range(subgraph.InputsLength())
    ]
    return inputs, outputs, input_signature_names


def _check_single_output(outputs, num_labels):
    if len(outputs) != 1:
        raise ValueError(
            f"The model has {len(outputs)} outputs; classifier metadata describes "
            "one output of class scores."
        )
    if not num_labels:
        raise ValueError("Classifier metadata needs at least one class name.")


def _labels_text(class_names):
    names = [str(name) for name in class_names]
    bad = [name for name in names if "\n" in name or "\r" in name]
    if bad:
        raise ValueError(f"Class names cannot contain line breaks: {bad}.")
    return ("\n".join(names) + "\n").encode("utf-8")


def populate_image_classifier_metadata(
    model,
    class_names,
    *,
    mean=0.0,
    std=1.0,
    name="ImageClassifier",
    description="Classifies an image into one of the classes in labels.txt.",
    version=None,
):
    """The `.tflite` bytes with image classifier metadata and labels inside.

    The metadata tells MediaPipe's `ImageClassifier` (and Android Studio's
    model binding) that the input is an RGB image, how to normalize pixels,
    and where the class names are: `labels.txt` packed into the file and
    linked to the output. MediaPipe computes a float input as
    `(pixel - mean) / std` from pixels in [0, 255]; models built by keras-tl
    rescale inside, so they take raw pixels: `mean=0, std=1`. A model that
    expects pixels in [0, 1] needs `mean=0, std=255`, one that expects
    [-1, 1] needs `mean=127.5, std=127.5`. Integer (uint8) inputs take
    pixels as they are; MediaPipe ignores the normalization for them.

    Args:
        model: the `.tflite` file, or its bytes (one image input, one output
            of class scores).
        class_names: the class names in output order.
        mean: a number, or one per channel.
        std: a number, or one per channel.
        name: model name stored in the metadata.
        description: model description stored in the metadata.
        version: optional model version string.

    Returns:
        The model bytes with metadata; any metadata and packed files it had
        are replaced.

    Example:

    ```python
    content = populate_image_classifier_metadata("plain.tflite", ["cat", "dog"])
    read_metadata(content)["subgraph_metadata"][0]["input_tensor_metadata"][0]["name"]
    # -> 'image'
    ```
    """
    metadata_fb, model_fb = _schemas()
    content = _strip_associated_files(_model_bytes(model))
    _check_model(content, model_fb)
    inputs, outputs, _ = _tensor_details(content, model_fb)
    labels = _labels_text(class_names)
    _check_single_output(outputs, len(class_names))
    if len(inputs) != 1:
        raise ValueError(
            f"The model has {len(inputs)} inputs; image classifier metadata "
            "describes one image input."
        )
    means = [float(m) for m in (mean if isinstance(mean, (list, tuple)) else [mean])]
    stds = [float(s) for s in (std if isinstance(std, (list, tuple)) else [std])]
    if len(means) != len(stds) or any(s == 0 for s in stds):
        raise ValueError(
            f"mean and std need the same number of values and no zero std; got "
            f"mean={means}, std={stds}."
        )

    properties = metadata_fb.ImagePropertiesT()
    properties.colorSpace = metadata_fb.ColorSpaceType.RGB
    image = _tensor_metadata(
        metadata_fb, "image", "Input image, RGB pixels in [0, 255].",
        metadata_fb.ContentProperties.ImageProperties, properties,
    )
    normalization = metadata_fb.ProcessUnitT()
    normalization.optionsType = metadata_fb.ProcessUnitOptions.NormalizationOptions
    normalization.options = metadata_fb.NormalizationOptionsT()
    normalization.options.mean = means
    normalization.options.std = stds
    image.processUnits = [normalization]
    image.stats = metadata_fb.StatsT()
    if inputs[0][1] == "FLOAT32":
        # The range of the normalized values the model receives.
        image.stats.min = [(_PIXEL_RANGE[0] - m) / s for m, s in zip(means, stds)]
        image.stats.max = [(_PIXEL_RANGE[1] - m) / s for m, s in zip(means, stds)]
    else:
        image.stats.min, image.stats.max = [_PIXEL_RANGE[0]], [_PIXEL_RANGE[1]]

    subgraph = metadata_fb.SubGraphMetadataT()
    subgraph.inputTensorMetadata = [image]
    subgraph.outputTensorMetadata = [_scores_metadata(metadata_fb, _PACKED_LABELS)]
    metadata = _model_metadata(metadata_fb, name, description, version, subgraph)
    return _populate(content, metadata, {_PACKED_LABELS: labels})


# MediaPipe finds the token inputs of a BERT model by these metadata names.
_BERT_INPUT_NAMES = {
    "token_ids": ("ids", "Token ids of the text, [CLS] first, then [SEP] and padding."),
    "padding_mask": ("mask", "1 for the tokens of the text, 0 for padding."),
    "segment_ids": ("segment_ids", "0 for the first (only) sentence."),
}


def populate_text_classifier_metadata(
    model,
    class_names,
    vocabulary,
    *,
    name="TextClassifier",
    description="Classifies a text into one of the classes in labels.txt.",
    version=None,
):
    """The `.tflite` bytes with BERT text classifier metadata inside.

    For a file from `text_to_tflite` (inputs `token_ids`, `padding_mask`,
    `segment_ids`): the metadata names the three inputs as MediaPipe expects
    (`ids`, `mask`, `segment_ids`), adds a BERT tokenizer process unit with
    the WordPiece vocabulary packed as `vocab.txt`, and links `labels.txt` to
    the output. MediaPipe's `TextClassifier` then classifies raw strings on
    the phone: it tokenizes with its own C++ BERT tokenizer (ASCII lower
    case, WordPiece, `[CLS] ... [SEP]`, truncated to the input length).

    Args:
        model: the `.tflite` file or its bytes.
        class_names: the class names in output order.
        vocabulary: the WordPiece vocabulary, a list of tokens in id order
            (`tokenizer.get_vocabulary()`).
        name: model name stored in the metadata.
        description: model description stored in the metadata.
        version: optional model version string.

    Returns:
        The model bytes with metadata; any metadata and packed files it had
        are replaced.

    Example:

    ```python
    content = populate_text_classifier_metadata(
        "text.tflite", ["negative", "positive"],
        classifier.preprocessor.tokenizer.get_vocabulary())
    ```
    """
    metadata_fb, model_fb = _schemas()
    content = _strip_associated_files(_model_bytes(model))
    _check_model(content, model_fb)
    inputs, outputs, signature_names = _tensor_details(content, model_fb)
    labels = _labels_text(class_names)
    _check_single_output(outputs, len(class_names))
    if sorted(n for n in signature_names if n) != sorted(_BERT_INPUT_NAMES) or len(inputs) != 3:
        raise ValueError(
            f"The model takes inputs {signature_names}; BERT text classifier "
            f"metadata needs exactly {sorted(_BERT_INPUT_NAMES)} (export with "
            "text_to_tflite)."
        )
    if not vocabulary:
        raise ValueError("The vocabulary is empty.")

    # Tensor metadata follows the order of the subgraph's inputs.
    input_metadata = []
    for signature_name in signature_names:
        tensor_name, description_text = _BERT_INPUT_NAMES[signature_name]
        input_metadata.append(_tensor_metadata(
            metadata_fb, tensor_name, description_text,
            metadata_fb.ContentProperties.FeatureProperties, metadata_fb.FeaturePropertiesT(),
        ))
    tokenizer = metadata_fb.ProcessUnitT()
    tokenizer.optionsType = metadata_fb.ProcessUnitOptions.BertTokenizerOptions
    tokenizer.options = metadata_fb.BertTokenizerOptionsT()
    tokenizer.options.vocabFile = [_associated_file(
        metadata_fb, _PACKED_VOCABULARY, "WordPiece vocabulary, one token a line, in id order.",
        metadata_fb.AssociatedFileType.VOCABULARY,
    )]

    subgraph = metadata_fb.SubGraphMetadataT()
    subgraph.inputTensorMetadata = input_metadata
    subgraph.inputProcessUnits = [tokenizer]
    subgraph.outputTensorMetadata = [_scores_metadata(metadata_fb, _PACKED_LABELS)]
    metadata = _model_metadata(metadata_fb, name, description, version, subgraph)
    vocabulary_text = ("\n".join(str(token) for token in vocabulary) + "\n").encode("utf-8")
    return _populate(content, metadata, {
        _PACKED_LABELS: labels, _PACKED_VOCABULARY: vocabulary_text,
    })


def _model_metadata(metadata_fb, name, description, version, subgraph):
    metadata = metadata_fb.ModelMetadataT()
    metadata.name = name
    metadata.description = description
    metadata.version = version
    metadata.subgraphMetadata = [subgraph]
    metadata.minParserVersion = _min_parser_version(metadata, metadata_fb)
    return metadata


# ---------------------------------------------------------------------------
# min_parser_version


def _min_parser_version(metadata, metadata_fb):
    """The oldest metadata parser that understands every member used.

    1.0.0 unless the metadata uses a member added later (see the version
    constants above): e.g. image classifier metadata (normalization, image
    properties, a labels file) stays 1.0.0, BERT tokenizer metadata needs
    1.1.0 (input process units).
    """
    versions = [(1, 0, 0)]

    def files(entries):
        for entry in entries or ():
            if entry.type == metadata_fb.AssociatedFileType.VOCABULARY:
                versions.append(_VOCABULARY_FILE_VERSION)
            if entry.type == metadata_fb.AssociatedFileType.SCANN_INDEX_FILE:
                versions.append(_SCANN_INDEX_FILE_VERSION)
            if entry.version is not None:
                versions.append(_ASSOCIATED_FILE_VERSION_FIELD)

    option_names = {v: k for k, v in vars(metadata_fb.ProcessUnitOptions).items()
                    if not k.startswith("_")}

    def process_units(units):
        for unit in units or ():
            option = option_names.get(unit.optionsType)
            if option in _TOKENIZER_VERSIONS:
                versions.append(_TOKENIZER_VERSIONS[option])

    def tensors(entries):
        for tensor in entries or ():
            files(tensor.associatedFiles)
            process_units(tensor.processUnits)
            content = tensor.content
            if content is not None and (
                content.contentPropertiesType == metadata_fb.ContentProperties.AudioProperties
            ):
                versions.append(_AUDIO_PROPERTIES_VERSION)

    for subgraph in metadata.subgraphMetadata or ():
        tensors(subgraph.inputTensorMetadata)
        tensors(subgraph.outputTensorMetadata)
        files(subgraph.associatedFiles)
        for units in (subgraph.inputProcessUnits, subgraph.outputProcessUnits):
            if units is not None:
                versions.append(_PROCESS_UNITS_VERSION)
                process_units(units)
        if subgraph.inputTensorGroups is not None or subgraph.outputTensorGroups is not None:
            versions.append(_TENSOR_GROUPS_VERSION)
        if subgraph.customMetadata is not None:
            versions.append(_CUSTOM_METADATA_VERSION)
    files(metadata.associatedFiles)
    return ".".join(str(part) for part in max(versions))


# ---------------------------------------------------------------------------
# Writing into the model


class _AlignedBuffer:
    """Packs a TFLite `Buffer` whose data starts on a 16-byte boundary."""

    def __init__(self, buffer, model_fb):
        self._buffer = buffer
        self._model_fb = model_fb

    def Pack(self, builder):  # noqa: N802 (the name the generated packer calls)
        import numpy as np

        data_offset = None
        if self._buffer.data is not None:
            payload = np.asarray(self._buffer.data, np.uint8).tobytes()
            builder.StartVector(1, len(payload), _BUFFER_ALIGNMENT)
            builder.head -= len(payload)
            builder.Bytes[builder.head: builder.head + len(payload)] = payload
            data_offset = builder.EndVector()
        fb = self._model_fb
        fb.BufferStart(builder)
        if data_offset is not None:
            fb.BufferAddData(builder, data_offset)
        fb.BufferAddOffset(builder, self._buffer.offset)
        fb.BufferAddSize(builder, self._buffer.size)
        return fb.BufferEnd(builder)


def _metadata_buffer(metadata, metadata_fb):
    import flatbuffers

    builder = flatbuffers.Builder(0)
    builder.Finish(metadata.Pack(builder), _METADATA_IDENTIFIER)
    return bytes(builder.Output())


def _populate(content, metadata, associated_files):
    """`content` with `metadata` stored under METADATA_NAME and the files
    appended as a zip archive."""
    import flatbuffers
    import numpy as np

    metadata_fb, model_fb = _schemas()
    model = model_fb.ModelT.InitFromObj(model_fb.Model.GetRootAs(content, 0))
    if any(buffer.offset > 1 for buffer in model.buffers or ()):
        # Models over 2 GB keep weights after the FlatBuffer, addressed by
        # offset; repacking would move them.
        raise ValueError("The model stores its weights outside the FlatBuffer (over 2 GB); "
                         "TFLite Metadata cannot be added here.")
    metadata_bytes = _metadata_buffer(metadata, metadata_fb)
    entry = next(
        (m for m in model.metadata or () if _text(m.name) == METADATA_NAME), None
    )
    if entry is None:
        entry = model_fb.MetadataT()
        entry.name = METADATA_NAME
        model.buffers.append(model_fb.BufferT())
        entry.buffer = len(model.buffers) - 1
        model.metadata = (model.metadata or []) + [entry]
    model.buffers[entry.buffer] = model_fb.BufferT(data=np.frombuffer(metadata_bytes, np.uint8))
    model.buffers = [_AlignedBuffer(buffer, model_fb) for buffer in model.buffers]

    builder = flatbuffers.Builder(len(content) + len(metadata_bytes) + 1024)
    builder.Finish(model.Pack(builder), _MODEL_IDENTIFIER)
    archive = io.BytesIO()
    archive.write(builder.Output())
    # Appended to a file that is not a zip, zipfile writes the entries after
    # the model and records offsets from the start of the file: the layout
    # MediaPipe's loader reads the packed files from.
    with zipfile.ZipFile(archive, "a") as packed:
        for file_name, file_content in associated_files.items():
            # A fixed timestamp (zip's earliest): two identical exports are
            # identical byte for byte, so a changed file means a changed model.
            entry = zipfile.ZipInfo(file_name, date_time=(1980, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_STORED
            entry.external_attr = 0o644 << 16
            packed.writestr(entry, file_content)
    return archive.getvalue()


def _strip_associated_files(content):
    """`content` without a zip archive appended by an earlier population."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as packed:
            infos = packed.infolist()
    except zipfile.BadZipFile:
        return content
    if not infos:
        return content
    return content[: min(info.header_offset for info in infos)]


# ---------------------------------------------------------------------------
# Reading


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _snake_case(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _as_plain(value, metadata_fb, field=None):
    """A metadata object as dicts, lists, strings and numbers; enum fields
    (`type`, `color_space`, union types) as their schema names."""
    import numpy as np

    enums = {
        "type": metadata_fb.AssociatedFileType,
        "colorSpace": metadata_fb.ColorSpaceType,
        "contentPropertiesType": metadata_fb.ContentProperties,
        "optionsType": metadata_fb.ProcessUnitOptions,
    }
    if field in enums and isinstance(value, int):
        names = {v: k for k, v in vars(enums[field]).items() if not k.startswith("_")}
        return names.get(value, value)
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_as_plain(item, metadata_fb) for item in value]
    if hasattr(value, "__dict__"):
        return {_snake_case(key): _as_plain(item, metadata_fb, key)
                for key, item in vars(value).items()}
    return value


def read_metadata(model):
    """The TFLite Metadata of a `.tflite` file as a dict, or `None`.

    Keys are the field names of `metadata_schema.fbs` (`subgraph_metadata`,
    `input_tensor_metadata`, `process_units`, `min_parser_version`, ...);
    enum values are their schema names (`"RGB"`, `"TENSOR_AXIS_LABELS"`).

    Args:
        model: the `.tflite` file or its bytes.

    Returns:
        A dict, or `None` when the file has no metadata.

    Example:

    ```python
    metadata = read_metadata("phone/digits.tflite")
    metadata["min_parser_version"]  # -> '1.0.0'
    ```
    """
    metadata_fb, model_fb = _schemas()
    content = _model_bytes(model)
    _check_model(content, model_fb)
    tflite = model_fb.Model.GetRootAs(content, 0)
    for i in range(tflite.MetadataLength()):
        entry = tflite.Metadata(i)
        if _text(entry.Name()) != METADATA_NAME:
            continue
        data = tflite.Buffers(entry.Buffer()).DataAsNumpy()
        if isinstance(data, int):  # an empty buffer
            continue
        buffer = data.tobytes()
        if not metadata_fb.ModelMetadata.ModelMetadataBufferHasIdentifier(buffer, 0):
            raise ValueError("The TFLITE_METADATA buffer is not TFLite Metadata ('M001').")
        metadata = metadata_fb.ModelMetadataT.InitFromObj(
            metadata_fb.ModelMetadata.GetRootAs(buffer, 0)
        )
        return _as_plain(metadata, metadata_fb)
    return None


def read_associated_files(model):
    """The files packed into a `.tflite` file with its metadata.

    Args:
        model: the `.tflite` file or its bytes.

    Returns:
        A dict from file name (`"labels.txt"`, `"vocab.txt"`) to bytes;
        empty when nothing is packed.

    Example:

    ```python
    read_associated_files("phone/digits.tflite")["labels.txt"].decode().split()
    # -> ['0', '1', ..., '9']
    ```
    """
    content = _model_bytes(model)
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as packed:
            return {name: packed.read(name) for name in packed.namelist()}
    except zipfile.BadZipFile:
        return {}
