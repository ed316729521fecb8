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

import csv
import dataclasses
import os
import re
import socket
import threading
import urllib.parse

import keras
import numpy as np
import tensorflow as tf

from keras_tl.heads import build_head
from keras_tl.stages import Stage

DEFAULT_TEXT_PRESET = "bert_base_multi"

# KerasHub task classes whose backbones form the BERT family (encoder-only
# transformers with a text-classification task).
_BERT_FAMILY_TASKS = (
    "BertTextClassifier",
    "DistilBertTextClassifier",
    "RobertaTextClassifier",
    "XLMRobertaTextClassifier",
    "AlbertTextClassifier",
    "DebertaV3TextClassifier",
)

_REMOTE_SCHEMES = {
    "hf": "huggingface.co",
    "kaggle": "api.kaggle.com",
    "modelscope": "www.modelscope.cn",
}

# Seconds to wait for a preset's host before declaring the network absent.
_PROBE_TIMEOUT = 5.0


# ----------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------


@dataclasses.dataclass
class TextData:
    """Batched text datasets plus the class names.

    Args:
        train: `tf.data.Dataset` of `(strings, int labels)` batches.
        validation: the held-out split, or `None`.
        class_names: list of class names.
        texts: the training texts as a numpy array of `str`.
        labels: the training labels as int32.

    Example:

    >>> data = as_text_dataset((["bom", "ruim"], [1, 0]))
    >>> data.num_classes
    2
    """

    train: tf.data.Dataset
    validation: tf.data.Dataset = None
    class_names: list = None
    texts: np.ndarray = None
    labels: np.ndarray = None

    @property
    def num_classes(self):
        return len(self.class_names)


def read_text_csv(path, text_column="text", label_column="label"):
    """Reads texts and labels from a CSV file with a header row.

    Args:
        path: path of the CSV file (UTF-8, a byte-order mark is accepted).
        text_column: name of the column holding the texts.
        label_column: name of the column holding the labels (integers, or
            names such as `"positive"` that become classes in sorted order).

    Returns:
        `(texts, labels)`: lists of strings as read.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: a named column is missing (the message lists the columns
            the file has).

    Example:

    >>> texts, labels = read_text_csv("reviews.csv", "review_text", "rating")
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"CSV file {path!r} does not exist. Pass the path of a CSV file with "
            "a header row, a text column and a label column."
        )
    # Some review corpora hold very long fields.
    csv.field_size_limit(min(2**31 - 1, 1 << 30))
    with open(path, newline="", encoding="utf-8-sig") as file:
        reader = csv.DictReader(file)
        columns = reader.fieldnames or []
        for role, column in (("text", text_column), ("label", label_column)):
            if column not in columns:
                raise ValueError(
                    f"CSV file {path!r} has no {role} column {column!r}; its columns "
                    f"are {columns}. Pass {role}_column= with one of them."
                )
        texts, labels = [], []
        for row in reader:
            texts.append(row[text_column])
            labels.append(row[label_column])
    return texts, labels


def _labels_to_int(labels, class_names):
    """Integer labels, and class names when the labels are names."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(
            f"Labels must be one class per text, shape (n,); got shape {labels.shape}. "
            "Convert one-hot labels with y.argmax(-1)."
        )
    if labels.dtype.kind in "iub":
        return labels.astype(np.int64), class_names
    if labels.dtype.kind == "f":
        if np.all(np.mod(labels, 1) == 0):
            return labels.astype(np.int64), class_names
        raise ValueError(f"Labels must be integers or class names; got floats such as {labels[:3]}.")
    as_text = [str(label).strip() for label in labels]
    if all(re.fullmatch(r"-?\d+", value) for value in as_text):
        return np.asarray([int(value) for value in as_text], np.int64), class_names
    names = list(class_names) if class_names is not None else sorted(set(as_text))
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted(set(as_text) - set(index))
    if unknown:
        raise ValueError(
            f"Labels {unknown[:5]} are not among class_names {names}."
        )
    return np.asarray([index[value] for value in as_text], np.int64), names


def _check_texts_and_labels(texts, labels, num_classes, class_names, what="data"):
    texts = [t.decode("utf-8") if isinstance(t, bytes) else t for t in list(texts)]
    not_strings = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if not_strings:
        raise ValueError(
            f"The {what} has {len(not_strings)} text(s) that are not strings (e.g. at "
            f"index {not_strings[:5]}: {[texts[i] for i in not_strings[:3]]}). Pass "
            "strings; fill or drop missing values first."
        )
    labels, class_names = _labels_to_int(labels, class_names)
    if len(texts) != len(labels):
        raise ValueError(
            f"The {what} has {len(texts)} texts but {len(labels)} labels. Pass one "
            "label per text."
        )
    if not texts:
        raise ValueError(f"The {what} is empty: no texts.")
    empty = [i for i, t in enumerate(texts) if not t.strip()]
    if empty:
        raise ValueError(
            f"The {what} has {len(empty)} empty text(s) (e.g. at index {empty[:5]}). "
            "Remove them or fill them in: an empty string carries nothing to "
            "classify."
        )
    if num_classes is None:
        num_classes = len(class_names) if class_names is not None else int(labels.max()) + 1
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        raise ValueError(
            f"Labels out of range in the {what}: {int(bad.sum())} label(s) outside "
            f"[0, {num_classes - 1}] (values {np.unique(labels[bad])[:5].tolist()}). Labels must be "
            "0 .. num_classes-1; pass num_classes= or class_names= for more classes."
        )
    if num_classes < 2:
        raise ValueError("Classification needs at least two classes; the labels have one.")
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class_names given for {num_classes} classes.")
    return np.asarray(texts, dtype=object), labels.astype(np.int32), num_classes, class_names


def _read_texts(data, text_column, label_column):
    """`(texts, labels)` from any accepted input form."""
    if isinstance(data, (str, os.PathLike)):
        return read_text_csv(data, text_column, label_column)
    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        if not (isinstance(spec, tuple) and len(spec) == 2):
            raise ValueError(
                "A tf.data.Dataset must yield (text, label) pairs; got element spec "
                f"{spec}."
            )
        if len(spec[0].shape) == 1:
            data = data.unbatch()
        texts, labels = [], []
        for text, label in data.as_numpy_iterator():
            texts.append(text)
            labels.append(label)
        return texts, labels
    if isinstance(data, (tuple, list)) and len(data) == 2:
        texts, labels = data
        if isinstance(texts, str):
            raise TypeError(
                "texts must be a list or array of strings, not a single string."
            )
        return list(np.asarray(texts, dtype=object).reshape(-1)), np.asarray(labels)
    raise TypeError(
        "Text data must be a tuple (texts, labels), a CSV path or a "
        f"tf.data.Dataset of (text, label); got {type(data).__name__}."
    )


def as_text_dataset(
    data,
    *,
    text_column="text",
    label_column="label",
    batch_size=32,
    validation_split=None,
    validation_data=None,
    num_classes=None,
    class_names=None,
    shuffle=True,
    seed=0,
):
    """Turns texts with labels into batched `tf.data` datasets.

    All forms are read into memory once and checked: every text must be a
    non-empty string and every label a class index (or a class name).

    Args:
        data: a tuple `(texts, labels)` of lists or arrays, a CSV path with a
            header row, or a `tf.data.Dataset` of `(text, label)` (batched or
            not).
        text_column: CSV column of the texts.
        label_column: CSV column of the labels (integers or class names).
        batch_size: batch size of the returned datasets.
        validation_split: fraction held out for validation (the same texts
            every run for a given `seed`).
        validation_data: a separate validation set in any of the same forms;
            excludes `validation_split`.
        num_classes: number of classes; inferred from the labels otherwise.
        class_names: names of the classes (default: the label names found in
            a CSV, else `"0"`, `"1"`, ...).
        shuffle: shuffle the training split every epoch.
        seed: seed of the split and the shuffle.

    Returns:
        A `TextData`.

    Raises:
        ValueError: empty texts, labels out of range, a missing CSV column,
            texts and labels of different lengths.

    Example:

    >>> data = as_text_dataset("reviews.csv", text_column="review",
    ...                        label_column="sentiment", validation_split=0.1)
    >>> data.class_names
    ['negative', 'positive']
    """
    if isinstance(data, TextData):
        return data
    if validation_split is not None and validation_data is not None:
        raise ValueError("Pass either validation_split or validation_data, not both.")
    if validation_split is not None and not 0.0 < validation_split < 1.0:
        raise ValueError(f"validation_split must be in (0, 1); got {validation_split}.")
    texts, labels = _read_texts(data, text_column, label_column)
    texts, labels, num_classes, class_names = _check_texts_and_labels(
        texts, labels, num_classes, class_names, "training data"
    )
    val_ds = None
    if validation_split:
        order = np.random.default_rng(seed).permutation(len(texts))
        n_val = int(round(len(texts) * validation_split))
        if n_val == 0 or n_val == len(texts):
            raise ValueError(
                f"validation_split={validation_split} of {len(texts)} texts leaves an "
                "empty split; pass more data or another fraction."
            )
        val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
        val_ds = _text_batches(texts[val_idx], labels[val_idx], batch_size, False, seed)
        texts, labels = texts[train_idx], labels[train_idx]
    elif validation_data is not None:
        val_texts, val_labels = _read_texts(validation_data, text_column, label_column)
        val_texts, val_labels, _, _ = _check_texts_and_labels(
            val_texts, val_labels, num_classes, class_names, "validation data"
        )
        val_ds = _text_batches(val_texts, val_labels, batch_size, False, seed)
    class_names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
    train_ds = _text_batches(texts, labels, batch_size, shuffle, seed)
    return TextData(train_ds, val_ds, class_names, texts, labels)


def _text_batches(texts, labels, batch_size, shuffle, seed):
    ds = tf.data.Dataset.from_tensor_slices((texts.astype(str), labels))
    if shuffle:
        ds = ds.shuffle(len(texts), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


# ----------------------------------------------------------------------------
# Presets
# ----------------------------------------------------------------------------


def list_text_presets():
    """The KerasHub built-in preset names of the BERT family.

    Read from the installed KerasHub (BERT, DistilBERT, RoBERTa, XLM-RoBERTa,
    ALBERT, DeBERTa-v3 and the sentence encoders built on them). Any of them,
    a local preset folder or an `hf://` handle can be passed as `preset`.

    Returns:
        A sorted list of names.

    Example:

    >>> "bert_base_multi" in list_text_presets()
    True
    """
    import keras_hub

    names = set()
    for task_name in _BERT_FAMILY_TASKS:
        task = getattr(keras_hub.models, task_name, None)
        if task is not None:
            names.update(task.backbone_cls.presets.keys())
    return sorted(names)


def _remote_host(preset):
    """The host a remote preset is fetched from, or `None` for local ones."""
    if "://" in preset:
        scheme = preset.split("://", 1)[0]
        if scheme == "hf":
            endpoint = os.environ.get("HF_ENDPOINT")
            if endpoint:
                return urllib.parse.urlparse(endpoint).hostname
        return _REMOTE_SCHEMES.get(scheme)
    return _REMOTE_SCHEMES["kaggle"]


def _host_reachable(host, port=443, timeout=_PROBE_TIMEOUT):
    """Whether a TCP connection to `host` opens within `timeout` seconds.

    Runs in a thread because name resolution has no timeout of its own.
    """
    result = {}

    def probe():
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result["ok"] = True
        except OSError as error:
            result["error"] = error

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    return bool(result.get("ok")), result.get("error", "no answer")


def _cached_hf_folder(preset):
    """The local snapshot of an `hf://` preset already downloaded, or `None`."""
    try:
        import huggingface_hub

        repo_id = preset.split("://", 1)[1]
        return huggingface_hub.snapshot_download(repo_id, local_files_only=True)
    except Exception:
        return None


def _offline_message(preset, reason):
    return (
        f"Cannot fetch text preset {preset!r}: {reason}. Without network access, "
        "pass a local preset folder instead: on a machine online, save one with "
        f"`keras_hub.models.TextClassifier.from_preset({preset!r}, "
        "num_classes=2).save_to_preset('my_preset')`, or download a Hugging Face "
        "BERT model folder (config.json, vocab.txt, model.safetensors), copy it "
        "here and pass preset='path/to/folder'."
    )


def resolve_text_preset(preset):
    """Checks a text preset and returns what KerasHub should load.

    Local folders must exist and hold a `config.json`. Built-in names must
    belong to the BERT family. Remote presets (built-in names, `hf://`,
    `kaggle://`, `modelscope://`) are probed first, so a machine without
    network fails in seconds with a message on how to pass a local folder
    (an `hf://` model already in the Hugging Face cache is used from there).

    Args:
        preset: a built-in name (`list_text_presets()`), a local folder or a
            `hf://` / `kaggle://` / `modelscope://` handle.

    Returns:
        A string `keras_hub` `from_preset` accepts.

    Raises:
        ValueError: an unknown name (the message lists the BERT-family names).
        FileNotFoundError: a folder that does not exist or has no config.json.
        ConnectionError: a remote preset with no network.

    Example:

    >>> resolve_text_preset("/models/bertimbau")
    '/models/bertimbau'
    """
    preset = os.fspath(preset)
    if os.path.isdir(preset):
        if not os.path.isfile(os.path.join(preset, "config.json")):
            raise FileNotFoundError(
                f"Preset folder {preset!r} has no config.json. A preset folder is "
                "one saved by KerasHub `save_to_preset`, or a Hugging Face model "
                "folder with config.json, vocab.txt and model.safetensors."
            )
        return preset
    if "://" not in preset:
        if os.sep in preset or preset.startswith((".", "~")) or (
            os.altsep and os.altsep in preset
        ):
            raise FileNotFoundError(
                f"Preset folder {preset!r} does not exist. Pass an existing folder, a "
                "KerasHub preset name or an hf:// handle."
            )
        names = list_text_presets()
        if preset not in names:
            raise ValueError(
                f"Unknown text preset {preset!r}. BERT-family KerasHub presets: "
                f"{', '.join(names)}. Or pass a local preset folder, or a Hugging "
                "Face handle such as 'hf://neuralmind/bert-base-portuguese-cased'."
            )
    host = _remote_host(preset)
    if host is None:
        raise ValueError(
            f"Unsupported preset handle {preset!r}; use hf://, kaggle:// or "
            "modelscope://, a built-in name or a local folder."
        )
    ok, error = _host_reachable(host)
    if ok:
        return preset
    if preset.startswith("hf://"):
        cached = _cached_hf_folder(preset)
        if cached is not None:
            return cached
    raise ConnectionError(_offline_message(preset, f"{host} is unreachable ({error})"))


def load_text_preset(preset=DEFAULT_TEXT_PRESET, sequence_length=128):
    """Loads a BERT-family backbone and its text preprocessor.

    Args:
        preset: a built-in name, a local preset folder (KerasHub or Hugging
            Face layout) or an `hf://` handle, e.g.
            `"hf://neuralmind/bert-base-portuguese-cased"` (BERTimbau).
        sequence_length: tokens per text after truncation and padding.

    Returns:
        `(backbone, preprocessor)`: a `keras_hub.models.Backbone` and a
        `keras_hub.models.TextClassifierPreprocessor`.

    Raises:
        ValueError, FileNotFoundError, ConnectionError: see
        `resolve_text_preset`.

    Example:

    >>> backbone, preprocessor = load_text_preset("bert_base_multi", 128)
    """
    import keras_hub

    source = resolve_text_preset(preset)
    try:
        backbone = keras_hub.models.Backbone.from_preset(source)
        preprocessor = keras_hub.models.TextClassifierPreprocessor.from_preset(
            source, sequence_length=sequence_length
        )
    except (ConnectionError, OSError) as error:
        if os.path.isdir(source):
            raise
        raise ConnectionError(_offline_message(preset, error)) from error
    if _sequence_output_of(backbone) is None:
        raise ValueError(
            f"Preset {preset!r} loads a {type(backbone).__name__}, not a BERT-family "
            "text encoder."
        )
    max_length = getattr(backbone, "max_sequence_length", None)
    if max_length is not None and sequence_length > max_length:
        raise ValueError(
            f"sequence_length={sequence_length} exceeds the {max_length} positions "
            f"of preset {preset!r}; pass sequence_length <= {max_length}."
        )
    return backbone, preprocessor


def _sequence_output_of(backbone):
    outputs = backbone.output
    if isinstance(outputs, dict):
        return outputs.get("sequence_output")
    return outputs if len(outputs.shape) == 3 else None


# ----------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------

POOLINGS = ("mean", "pooled")


def _text_classifier_base():
    import keras_hub

    return keras_hub.models.TextClassifier


@keras.saving.register_keras_serializable(package="keras_tl")
class PooledTextClassifier(_text_classifier_base()):
    """A BERT-family encoder, a pooling and the keras-tl classification head.

    A KerasHub `TextClassifier`: `fit`, `predict` and `evaluate` take raw
    strings (the preprocessor tokenizes them in the input pipeline), and the
    model saves to `.keras` and loads back with `safe_mode=True`. The head is
    `keras_tl.heads.build_head` (L2 normalization, dense logits, softmax,
    class names), so its dense layer can be fitted in closed form on cached
    embeddings before fine-tuning.

    Args:
        backbone: a KerasHub BERT-family backbone.
        num_classes: number of classes.
        preprocessor: the `keras_hub.models.TextClassifierPreprocessor` that
            tokenizes strings, or `None` for models fed token ids.
        pooling: `"mean"` (average of the token vectors under the padding
            mask; sentence encoders such as MiniLM are trained for it) or
            `"pooled"` (BERT's pooler on the `[CLS]` token).
        class_names: names stored in the model (default `"0"`, `"1"`, ...).
        dropout: dropout rate before the head's dense layer.
        **kwargs: `keras_hub.models.Task` arguments (`name`, `compile`).

    Example:

    >>> backbone, preprocessor = load_text_preset("bert_base_multi", 128)
    >>> model = PooledTextClassifier(backbone, 2, preprocessor,
    ...                              class_names=["neg", "pos"])
    >>> model.predict(["Que filme maravilhoso!"]).shape
    (1, 2)
    """

    def __init__(
        self,
        backbone,
        num_classes,
        preprocessor=None,
        pooling="mean",
        class_names=None,
        dropout=0.1,
        **kwargs,
    ):
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}; got {pooling!r}.")
        class_names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
        if len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class_names given for {num_classes} classes.")
        inputs = backbone.input
        outputs = backbone(inputs)
        if pooling == "pooled":
            if not (isinstance(outputs, dict) and "pooled_output" in outputs):
                raise ValueError(
                    f"{type(backbone).__name__} has no pooler output; use pooling='mean'."
                )
            pooled = outputs["pooled_output"]
        else:
            sequence = outputs["sequence_output"] if isinstance(outputs, dict) else outputs
            pooled = keras.layers.GlobalAveragePooling1D(name="mean_pooling")(
                sequence, mask=inputs["padding_mask"]
            )
        hidden_dim = int(pooled.shape[-1])
        head = build_head(hidden_dim, num_classes, class_names, dropout=dropout)
        probabilities = head(pooled)
        # Set before the base class compiles: `TextClassifier.compile("auto")`
        # reads it and picks a loss on probabilities rather than logits.
        self.activation = keras.activations.softmax
        super().__init__(inputs=inputs, outputs=probabilities, **kwargs)
        self.backbone = backbone
        self.preprocessor = preprocessor
        self.head = head
        self.num_classes = int(num_classes)
        self.pooling = pooling
        self.class_names = class_names
        self.dropout = dropout
        # The pooler takes no part in mean pooling; frozen, it gets no
        # "missing gradient" warnings and no optimizer slots.
        if pooling == "mean" and _has_layer(backbone, "pooled_dense"):
            backbone.get_layer("pooled_dense").trainable = False

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "pooling": self.pooling,
                "class_names": list(self.class_names),
                "dropout": self.dropout,
            }
        )
        return config


def _has_layer(model, name):
    return any(layer.name == name for layer in model.layers)


def text_encoder(model):
    """The part of a `PooledTextClassifier` from token ids to embeddings.

    Args:
        model: a `PooledTextClassifier`.

    Returns:
        A `keras.Model` sharing the classifier's layers (not a copy): token
        ids in, the pooled embedding the head reads out.

    Example:

    >>> embeddings = text_encoder(model).predict(model.preprocessor(texts))
    """
    if model.pooling == "mean":
        pooled = model.get_layer("mean_pooling").output
    else:
        pooled = model.backbone(model.input)["pooled_output"]
    return keras.Model(model.input, pooled, name="text_encoder")


def build_text_classifier(
    preset=DEFAULT_TEXT_PRESET,
    num_classes=2,
    *,
    sequence_length=128,
    pooling="mean",
    class_names=None,
    dropout=0.1,
):
    """A `PooledTextClassifier` on a preset, or on a backbone you built.

    Args:
        preset: a preset name, folder or `hf://` handle (see
            `load_text_preset`), a `(backbone, preprocessor)` pair, or a
            KerasHub `TextClassifier` whose backbone and preprocessor are
            reused.
        num_classes: number of classes.
        sequence_length: tokens per text (for presets).
        pooling: `"mean"` or `"pooled"` (see `PooledTextClassifier`).
        class_names: names stored in the model.
        dropout: dropout before the head's dense layer.

    Returns:
        A `PooledTextClassifier`.

    Example:

    >>> model = build_text_classifier("hf://neuralmind/bert-base-portuguese-cased",
    ...                               2, sequence_length=128)
    """
    import keras_hub

    if isinstance(preset, keras_hub.models.Task):
        backbone, preprocessor = preset.backbone, preset.preprocessor
    elif isinstance(preset, tuple) and len(preset) == 2:
        backbone, preprocessor = preset
    else:
        backbone, preprocessor = load_text_preset(preset, sequence_length)
    if preprocessor is None:
        raise ValueError(
            "The text model needs a preprocessor (tokenizer) to predict from raw "
            "strings; pass a (backbone, preprocessor) pair."
        )
    return PooledTextClassifier(
        backbone, num_classes, preprocessor, pooling=pooling,
        class_names=class_names, dropout=dropout,
    )


# ----------------------------------------------------------------------------
# Stages and features
# ----------------------------------------------------------------------------


def _transformer_layer_index(layer):
    match = re.fullmatch(r".*transformer_layer_(\d+)", layer.name)
    return int(match.group(1)) if match else None


def get_text_stages(model):
    """Splits a BERT-family encoder into stages for top-down unfreezing.

    Args:
        model: a `PooledTextClassifier`, a KerasHub text task or a backbone.

    Returns:
        A list of `keras_tl.stages.Stage` from input to output: `"embeddings"`
        (token, position and segment embeddings and their normalization),
        then `"transformer_layer_0"` ... `"transformer_layer_{n-1}"`, then
        `"pooler"` when the model reads BERT's pooler. The last stage is the
        one next to the head, which fine-tuning unfreezes first; the
        embeddings come last.

    Raises:
        ValueError: the backbone has no layer named `transformer_layer_<i>`.

    Example:

    >>> [s.name for s in get_text_stages(model)][:2], len(get_text_stages(model))
    (['embeddings', 'transformer_layer_0'], 7)
    """
    backbone = getattr(model, "backbone", None) or model
    pooling = getattr(model, "pooling", "pooled")
    layers = [layer for layer in backbone.layers if layer.weights]
    indices = [_transformer_layer_index(layer) for layer in layers]
    positions = [i for i, index in enumerate(indices) if index is not None]
    if not positions:
        raise ValueError(
            f"{type(backbone).__name__} {backbone.name!r} has no layers named "
            "'transformer_layer_<i>'; it is not a KerasHub BERT-family encoder."
        )
    first, last = positions[0], positions[-1]
    stages = [Stage("embeddings", layers[:first])]
    for position in positions:
        stages.append(Stage(layers[position].name, [layers[position]]))
    after = layers[last + 1 :]
    if after and pooling == "pooled":
        stages.append(Stage("pooler", after))
    return stages


def extract_text_features(model, data, batch_size=64, verbose=0):
    """Pooled embeddings of a text classifier's frozen encoder.

    The encoder runs once over the texts; the head can then be trained on
    the stored vectors (`keras_tl.heads.fit_linear_head`).

    Args:
        model: a `PooledTextClassifier`.
        data: a list or array of strings, anything `as_text_dataset` accepts,
            or a `TextData` (its training split, unshuffled).
        batch_size: batch size of the forward pass.
        verbose: Keras verbosity.

    Returns:
        `(features, labels)`: float32 `(n, hidden_dim)` and int32 `(n,)`
        (`labels` is `None` for bare strings).

    Example:

    >>> features, labels = extract_text_features(model, (texts, labels))
    """
    labels = None
    if isinstance(data, TextData):
        texts, labels = data.texts, data.labels
    elif isinstance(data, (list, np.ndarray)) and not (
        len(data) == 2 and not isinstance(data[0], str)
    ):
        texts = np.asarray(data, dtype=object)
        texts, _, _, _ = _check_texts_and_labels(texts, np.zeros(len(texts), np.int64), 2, None)
    else:
        text_data = as_text_dataset(data, shuffle=False, num_classes=None)
        texts, labels = text_data.texts, text_data.labels
    tokens = (
        tf.data.Dataset.from_tensor_slices(texts.astype(str))
        .batch(batch_size)
        .map(model.preprocessor, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    features = text_encoder(model).predict(tokens, verbose=verbose)
    return np.asarray(features, np.float32), labels
