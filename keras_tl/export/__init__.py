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

from keras_tl.export.convert import DEFAULT_CALIBRATION_SAMPLES
from keras_tl.export.convert import IO_DTYPES
from keras_tl.export.convert import QUANTIZATIONS
from keras_tl.export.errors import UnsupportedOpsError
from keras_tl.export.image import to_tflite
from keras_tl.export.interpreter import LiteRTModel
from keras_tl.export.labels import LABELS_FILE
from keras_tl.export.labels import read_labels
from keras_tl.export.report import DEFAULT_CHECK_SAMPLES
from keras_tl.export.report import LATENCY_REPEATS
from keras_tl.export.report import ExportReport
from keras_tl.export.report import compare_outputs
from keras_tl.export.report import measure_latency
from keras_tl.export.text import TOKENIZER_DIR
from keras_tl.export.text import VOCABULARY_FILE
from keras_tl.export.text import TFLiteTextClassifier
from keras_tl.export.text import text_to_tflite

__all__ = [
    "DEFAULT_CALIBRATION_SAMPLES",
    "DEFAULT_CHECK_SAMPLES",
    "IO_DTYPES",
    "LABELS_FILE",
    "LATENCY_REPEATS",
    "QUANTIZATIONS",
    "TOKENIZER_DIR",
    "VOCABULARY_FILE",
    "ExportReport",
    "LiteRTModel",
    "TFLiteTextClassifier",
    "UnsupportedOpsError",
    "compare_outputs",
    "measure_latency",
    "read_labels",
    "text_to_tflite",
    "to_tflite",
]
