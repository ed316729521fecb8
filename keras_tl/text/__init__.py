"""Text classification blocks over KerasHub's BERT family.

The text counterpart of `data`, `backbones`, `stages` and `features`:

- `as_text_dataset`: strings + integer labels (lists or arrays, a CSV file
  with named columns, or a `tf.data.Dataset`) become batched datasets, with
  empty texts and out-of-range labels refused up front;
- `load_text_preset`: a KerasHub preset name, a local preset folder (KerasHub
  or Hugging Face layout) or an `hf://` handle becomes a backbone and its
  tokenizing preprocessor, failing fast when the preset cannot be fetched;
- `PooledTextClassifier`: encoder + pooling + the keras-tl head
  (`keras_tl.heads.build_head`), a KerasHub `TextClassifier` that predicts
  from raw strings and saves to `.keras`;
- `get_text_stages`: the embeddings, then one stage per transformer layer,
  as `keras_tl.stages.Stage` objects for top-down unfreezing;
- `extract_text_features`: pooled embeddings of the frozen encoder, computed
  once, for head-only training.
"""

from keras_tl.text.classifier import POOLINGS
from keras_tl.text.classifier import PooledTextClassifier
from keras_tl.text.classifier import build_text_classifier
from keras_tl.text.classifier import text_encoder
from keras_tl.text.data import TextData
from keras_tl.text.data import as_text_dataset
from keras_tl.text.data import read_text_csv
from keras_tl.text.presets import DEFAULT_TEXT_PRESET
from keras_tl.text.presets import list_text_presets
from keras_tl.text.presets import load_text_preset
from keras_tl.text.presets import resolve_text_preset
from keras_tl.text.stages import extract_text_features
from keras_tl.text.stages import get_text_stages

__all__ = [
    "DEFAULT_TEXT_PRESET",
    "POOLINGS",
    "PooledTextClassifier",
    "TextData",
    "as_text_dataset",
    "build_text_classifier",
    "extract_text_features",
    "get_text_stages",
    "list_text_presets",
    "load_text_preset",
    "read_text_csv",
    "resolve_text_preset",
    "text_encoder",
]
