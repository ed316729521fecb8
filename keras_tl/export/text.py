"""Text classifiers on phones: `text_to_tflite` and `TFLiteTextClassifier`.

The tokenizer cannot run inside TFLite, so the file holds the encoder and
head on token ids. For a BERT WordPiece model the file carries TFLite
Metadata with the vocabulary, which MediaPipe's `TextClassifier` tokenizes
with on the phone; the KerasHub tokenizer is also saved beside the file for
`TFLiteTextClassifier`, which tokenizes in Python.
"""

import json
import os
import warnings

import numpy as np

from keras_tl._utils.io import save_directory_atomic
from keras_tl._utils.io import write_atomic
from keras_tl.export.convert import DEFAULT_CALIBRATION_SAMPLES
from keras_tl.export.convert import check_model
from keras_tl.export.convert import check_options
from keras_tl.export.convert import check_path
from keras_tl.export.convert import convert_model
from keras_tl.export.convert import shared_saved_models
from keras_tl.export.data import representative_dataset
from keras_tl.export.files import check_report_path
from keras_tl.export.files import export_paths
from keras_tl.export.files import write_export
from keras_tl.export.interpreter import LiteRTModel
from keras_tl.export.labels import labels_for
from keras_tl.export.labels import read_labels
from keras_tl.export.metadata import schemas_available
from keras_tl.export.metadata import populate_text_classifier_metadata
from keras_tl.export.report import DEFAULT_CHECK_SAMPLES
from keras_tl.export.report import ExportReport
from keras_tl.export.report import fill_parity
from keras_tl.export.report import thresholds_by_name
from keras_tl.export.report import keras_predict

__all__ = ["TOKENIZER_DIR", "VOCABULARY_FILE", "TFLiteTextClassifier", "text_to_tflite"]

# Names older keras-tl versions gave the vocabulary and tokenizer beside
# every text export in a folder; exports now write `<stem>.vocab.txt` and
# `<stem>.tokenizer/`, and `TFLiteTextClassifier.load` reads either.
VOCABULARY_FILE = "vocab.txt"
TOKENIZER_DIR = "tokenizer"


def _vocabulary_path(path):
    return os.path.splitext(os.fspath(path))[0] + "." + VOCABULARY_FILE


def _tokenizer_path(path):
    return os.path.splitext(os.fspath(path))[0] + "." + TOKENIZER_DIR


def _wordpiece_vocabulary(preprocessor):
    """The WordPiece vocabulary MediaPipe's BERT tokenizer can use, or None.

    MediaPipe's tokenizer lower-cases (ASCII) and splits on punctuation like
    KerasHub's `WordPieceTokenizer` with `lowercase=True`; other tokenizers
    (SentencePiece, byte-pair) have no BERT tokenizer metadata.
    """
    import keras_hub

    tokenizer = getattr(preprocessor, "tokenizer", None)
    if not isinstance(tokenizer, keras_hub.tokenizers.WordPieceTokenizer):
        return None
    if not getattr(tokenizer, "lowercase", True):
        warnings.warn(
            "The tokenizer keeps case; MediaPipe's BERT tokenizer lower-cases "
            "ASCII letters, so on the phone capitalized words map to other "
            "tokens.", stacklevel=3,
        )
    return list(tokenizer.get_vocabulary())


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
    metadata=None,
):
    """Exports a KerasHub text classifier (encoder + head) to `.tflite`.

    The tokenizer cannot run in TFLite (`FastWordpieceTokenizeWithOffsets`
    is neither a builtin nor a flex op), so the file takes `token_ids`,
    `segment_ids` and `padding_mask` (int32, `(batch, sequence_length)`).
    For a WordPiece (BERT-family) tokenizer the file carries TFLite Metadata:
    BERT tokenizer options with the vocabulary and the class names packed
    inside, so MediaPipe's `TextClassifier` classifies raw strings with it
    alone. Beside it go `<stem>.labels.txt`, `<stem>.json` (the report),
    `<stem>.vocab.txt` and `<stem>.tokenizer/` (the preprocessor saved as a
    KerasHub preset) that `TFLiteTextClassifier` loads to classify raw
    strings in Python. Parity is checked from raw strings: Keras
    `model.predict(texts)` against the tokenizer plus the file. Nothing is
    written until conversion and checks have succeeded.

    MediaPipe tokenizes with its own C++ BERT tokenizer: it lower-cases
    ASCII letters only, splits on whitespace, punctuation and CJK
    characters, looks WordPiece pieces up in the packed vocabulary and keeps
    `[CLS]`, the first `sequence_length - 2` pieces and `[SEP]`, as KerasHub
    does. KerasHub's uncased tokenizers also lower-case other letters and
    strip accents, so words with accents or non-ASCII capitals can get other
    ids on the phone (`café` is `cafe` in KerasHub, not in MediaPipe); see
    `benchmarks/mediapipe_tasks.py` for the measured agreement.

    Args:
        model: a KerasHub `TextClassifier` (e.g. `BertTextClassifier`, a
            keras-tl `PooledTextClassifier`).
        path: output path ending in `.tflite`.
        quantization: as for `to_tflite`.
        representative_data: texts (or `(texts, labels)`) for int8.
        check_data: held-out texts, or `(texts, labels)`.
        preprocessor: the tokenizing preprocessor; default
            `model.preprocessor`.
        class_names: names for the labels; default from the model.
        allow_select_tf_ops: as for `to_tflite`.
        num_calibration_samples: texts drawn for int8 calibration.
        num_check_samples: texts checked.
        num_threads: interpreter threads.
        metadata: BERT tokenizer metadata in the file. `None` (default):
            for WordPiece tokenizers, bare for others (`report.metadata` is
            `None`) and bare with a warning without `mediapipe`. `True`:
            always, or raise. `False`: a bare file.

    Returns:
        An `ExportReport`.

    Example:

    ```python
    report = text_to_tflite(classifier, "phone/sentiment.tflite",
                            check_data=(texts, labels))
    TFLiteTextClassifier.load("phone/sentiment.tflite").predict(["Great!"])
    ```
    """
    check_model(model, "text_to_tflite")
    path = check_path(path)
    check_report_path(export_paths(path)[1])
    check_options(quantization, representative_data, "float32")
    preprocessor, sequence_length = _text_parts(model, preprocessor)
    signature = _text_signature(model, sequence_length)
    representative = None
    if quantization == "int8":
        texts, _ = _texts_and_labels(representative_data)
        rng = np.random.default_rng(0)
        if len(texts) > num_calibration_samples:
            texts = [texts[i] for i in rng.choice(len(texts), num_calibration_samples, replace=False)]
        representative = representative_dataset(_token_inputs(preprocessor, texts))
    num_outputs = int(model.output_shape[-1])
    labels = labels_for(model, class_names or getattr(model, "class_names", None), num_outputs)
    if metadata not in (None, True, False):
        raise ValueError(f"metadata must be None, True or False; got {metadata!r}.")
    vocabulary = None if metadata is False else _wordpiece_vocabulary(preprocessor)
    if metadata is True and vocabulary is None:
        raise ValueError(
            f"metadata=True needs a WordPiece (BERT-family) tokenizer; the model's is "
            f"{type(getattr(preprocessor, 'tokenizer', None)).__name__}. Pass metadata=False."
        )
    if vocabulary is not None and not schemas_available(required=metadata is True):
        vocabulary = None
    with shared_saved_models():
        content = convert_model(model, quantization, representative, "float32",
                           allow_select_tf_ops, signature)
        float32_content = content if quantization is None else convert_model(
            model, None, None, "float32", allow_select_tf_ops, signature
        )
    if vocabulary is not None:
        def add_metadata(plain):
            return populate_text_classifier_metadata(plain, labels, vocabulary,
                                                     name=model.name)

        same_file = float32_content is content
        content = add_metadata(content)
        float32_content = content if same_file else add_metadata(float32_content)
    labels_file, report_file = export_paths(path)
    report = ExportReport(
        path=path, quantization=quantization, size_bytes=len(content),
        float32_size_bytes=len(float32_content), labels_path=labels_file,
        report_path=report_file,
        metadata="text_classifier" if vocabulary is not None else None,
        num_threads=num_threads, thresholds=thresholds_by_name(model, labels),
    )
    if check_data is not None:
        texts, targets = _texts_and_labels(check_data)
        texts = texts[:num_check_samples]
        targets = None if targets is None else targets[:num_check_samples]
        reference = keras_predict(model, texts)
        classifier = TFLiteTextClassifier(content, preprocessor, labels, num_threads)
        tokens = classifier.tokenize(texts)
        fill_parity(report, content, float32_content, tokens, targets,
                     reference, num_threads)
    _write_tokenizer(preprocessor, path)
    write_export(report, content, labels)
    return report


def _write_tokenizer(preprocessor, path):
    """Saves the preprocessor as a KerasHub preset in `<stem>.tokenizer/`,
    and its vocabulary as `<stem>.vocab.txt`."""

    def save(staging):
        preprocessor.save_to_preset(staging)
        config = {"sequence_length": int(preprocessor.sequence_length)}
        with open(os.path.join(staging, "tflite_text.json"), "w", encoding="utf-8") as f:
            json.dump(config, f)

    save_directory_atomic(_tokenizer_path(path), save)
    vocabulary = preprocessor.tokenizer.get_vocabulary()
    write_atomic(_vocabulary_path(path), "\n".join(vocabulary) + "\n")


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

    ```python
    classifier = TFLiteTextClassifier.load("phone/sentiment.tflite")
    classifier.predict_labels(["What a wonderful film"])  # -> ['positive']
    ```
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
        """Loads the file and the tokenizer and labels beside it.

        Reads `<stem>.tokenizer/` and the labels (`read_labels`); exports
        of older keras-tl versions have `tokenizer/` and `labels.txt`.

        Args:
            path: the `.tflite` written by `text_to_tflite`.
            num_threads: interpreter threads.
        """
        import keras

        folder = os.path.dirname(os.path.abspath(path))
        preset = _tokenizer_path(path)
        if not os.path.isdir(preset):
            preset = os.path.join(folder, TOKENIZER_DIR)
        if not os.path.isdir(preset):
            raise FileNotFoundError(
                f"No {os.path.basename(_tokenizer_path(path))}/ folder beside {path}; "
                "export with text_to_tflite, which writes it."
            )
        with open(os.path.join(preset, "tflite_text.json"), encoding="utf-8") as f:
            config = json.load(f)
        # The preprocessor's own config plus its tokenizer's vocabulary
        # assets: the parts of a KerasHub preset that concern tokenization.
        with open(os.path.join(preset, "preprocessor.json"), encoding="utf-8") as f:
            preprocessor = keras.saving.deserialize_keras_object(json.load(f))
        preprocessor.load_preset_assets(preset)
        preprocessor.sequence_length = config["sequence_length"]
        try:
            names = read_labels(path)
        except FileNotFoundError:
            names = None
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
