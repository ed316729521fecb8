"""Export to LiteRT (TFLite) for phones, checked in the real runtime.

`to_tflite` converts a Keras model to a `.tflite` file (float32, float16,
dynamic-range or full-integer int8) with TFLite Metadata that MediaPipe
Tasks read (`metadata.py`), writes `<stem>.labels.txt` and the report
`<stem>.json` beside it, and runs the file in the LiteRT interpreter
(`ai_edge_litert`) on held-out data: how often it agrees with Keras, its
accuracy, and its median single-sample latency next to the float32 file's,
measured side by side. An int8 file that would agree with Keras on fewer
than `min_agreement` of the samples keeps the ops that lose most in float
(`selective.py`).

Text classifiers (KerasHub BERT family) export with `text_to_tflite`: the
tokenizer cannot run inside TFLite, so the file holds the encoder and head on
token ids, and `TFLiteTextClassifier` tokenizes raw strings in Python and runs
it.
"""

from keras_tl.export.convert import DEFAULT_CALIBRATION_SAMPLES
from keras_tl.export.convert import IO_DTYPES
from keras_tl.export.convert import QUANTIZATIONS
from keras_tl.export.errors import UnsupportedOpsError
from keras_tl.export.image import GRAYSCALE_INPUTS
from keras_tl.export.image import GRAYSCALE_WEIGHTS
from keras_tl.export.image import to_tflite
from keras_tl.export.interpreter import LiteRTModel
from keras_tl.export.labels import LABELS_FILE
from keras_tl.export.labels import labels_path
from keras_tl.export.labels import read_labels
from keras_tl.export.metadata import METADATA_NAME
from keras_tl.export.metadata import populate_image_classifier_metadata
from keras_tl.export.metadata import populate_text_classifier_metadata
from keras_tl.export.metadata import read_associated_files
from keras_tl.export.metadata import read_metadata
from keras_tl.export.report import DEFAULT_CHECK_SAMPLES
from keras_tl.export.report import LATENCY_REPEATS
from keras_tl.export.report import ExportReport
from keras_tl.export.report import compare_outputs
from keras_tl.export.report import measure_latency
from keras_tl.export.selective import DEFAULT_MIN_AGREEMENT
from keras_tl.export.selective import MAX_SIZE_RATIO
from keras_tl.export.selective import RANKING_SAMPLES
from keras_tl.export.selective import QuantizedOp
from keras_tl.export.selective import SelectiveQuantization
from keras_tl.export.selective import quantize_selectively
from keras_tl.export.text import TOKENIZER_DIR
from keras_tl.export.text import VOCABULARY_FILE
from keras_tl.export.text import TFLiteTextClassifier
from keras_tl.export.text import text_to_tflite

__all__ = [
    "DEFAULT_CALIBRATION_SAMPLES",
    "DEFAULT_CHECK_SAMPLES",
    "DEFAULT_MIN_AGREEMENT",
    "GRAYSCALE_INPUTS",
    "GRAYSCALE_WEIGHTS",
    "IO_DTYPES",
    "LABELS_FILE",
    "LATENCY_REPEATS",
    "MAX_SIZE_RATIO",
    "METADATA_NAME",
    "QUANTIZATIONS",
    "RANKING_SAMPLES",
    "TOKENIZER_DIR",
    "VOCABULARY_FILE",
    "ExportReport",
    "LiteRTModel",
    "QuantizedOp",
    "SelectiveQuantization",
    "TFLiteTextClassifier",
    "UnsupportedOpsError",
    "compare_outputs",
    "labels_path",
    "measure_latency",
    "populate_image_classifier_metadata",
    "populate_text_classifier_metadata",
    "quantize_selectively",
    "read_associated_files",
    "read_labels",
    "read_metadata",
    "text_to_tflite",
    "to_tflite",
]
