"""Texts with labels: CSV files, lists and `tf.data` into checked datasets.

Every form is read into memory once and checked: each text a non-empty
string, each label a class index or a class name mapped to one.
"""

import csv
import dataclasses
import io
import os

import numpy as np
import tensorflow as tf

from keras_tl._utils.validation import check_positive_int
from keras_tl._utils.validation import check_same_length
from keras_tl._utils.validation import pair_spec
from keras_tl.multi_label import encode_labels
from keras_tl.multi_label import is_multi_label

__all__ = [
    "as_text_dataset",
    "check_texts_and_labels",
    "read_text_csv",
    "TextData",
]


@dataclasses.dataclass
class TextData:
    """Batched text datasets plus the class names.

    Args:
        train: `tf.data.Dataset` of `(strings, int labels)` batches.
        validation: the held-out split, or `None`.
        class_names: list of class names.
        texts: the training texts as a numpy array of `str`.
        labels: the training labels as int32 (float32 0/1 `(n, classes)`
            for a multi-label task).
        multi_label: several classes per text (see `keras_tl.multi_label`).

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
    multi_label: bool = False

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

    ```python
    texts, labels = read_text_csv("reviews.csv", "review_text", "rating")
    ```
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"CSV file {path!r} does not exist. Pass the path of a CSV file with "
            "a header row, a text column and a label column."
        )
    # Some review corpora hold very long fields.
    csv.field_size_limit(min(2**31 - 1, 1 << 30))
    with open(path, "rb") as file:
        raw = file.read()
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ValueError(
            f"CSV file {path!r} is not UTF-8 text: {error.reason} at line {line} "
            f"(byte {error.start}). Save it as UTF-8 (e.g. in Python: "
            "open(path, encoding='latin-1').read() then write it with encoding='utf-8')."
        ) from None
    with io.StringIO(content, newline="") as file:
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


def _decoded(text, row, what):
    if not isinstance(text, bytes):
        return text
    try:
        return text.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"The text at row {row} of the {what} is not UTF-8 ({error.reason} at "
            f"byte {error.start}: {text[:60]!r}). Decode it with its encoding "
            "(e.g. bytes.decode('latin-1')) and pass strings."
        ) from None


def check_texts_and_labels(texts, labels, num_classes, class_names, what="data",
                           label_delimiter=None):
    texts = [_decoded(t, row, what) for row, t in enumerate(list(texts))]
    not_strings = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if not_strings:
        raise ValueError(
            f"The {what} has {len(not_strings)} text(s) that are not strings (e.g. at "
            f"index {not_strings[:5]}: {[texts[i] for i in not_strings[:3]]}). Pass "
            "strings; fill or drop missing values first."
        )
    labels, class_names, multi_label = encode_labels(labels, class_names, what, label_delimiter)
    check_same_length(len(texts), len(labels), "text", f"The {what} has ")
    if not texts:
        raise ValueError(f"The {what} is empty: no texts.")
    empty = [i for i, t in enumerate(texts) if not t.strip()]
    if empty:
        raise ValueError(
            f"The {what} has {len(empty)} empty text(s) (e.g. at index {empty[:5]}). "
            "Remove them or fill them in: an empty string carries nothing to "
            "classify."
        )
    if multi_label:
        if num_classes is not None and num_classes != labels.shape[1]:
            raise ValueError(f"num_classes={num_classes}, and the multi-label labels of the "
                             f"{what} have {labels.shape[1]} classes.")
        return np.asarray(texts, dtype=object), labels, labels.shape[1], class_names
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
        spec = pair_spec(data, "(text, label)")
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
        return list(np.asarray(texts, dtype=object).reshape(-1)), (
            labels if is_multi_label(labels) else np.asarray(labels))
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
    label_delimiter=None,
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
        batch_size: batch size of the returned datasets, an integer >= 1.
        validation_split: fraction held out for validation (the same texts
            every run for a given `seed`).
        validation_data: a separate validation set in any of the same forms;
            excludes `validation_split`.
        num_classes: number of classes; inferred from the labels otherwise.
        class_names: names of the classes (default: the label names found in
            a CSV, else `"0"`, `"1"`, ...).
        shuffle: shuffle the training split every epoch.
        seed: seed of the split and the shuffle.
        label_delimiter: the separator of several class names in one label
            (a multi-label task, as are labels given as a 0/1 matrix or
            lists of names); `None`: one class per label.

    Returns:
        A `TextData`.

    Raises:
        ValueError: empty texts, labels out of range, a missing CSV column,
            texts and labels of different lengths, a `batch_size` below 1.

    Example:

    ```python
    data = as_text_dataset("reviews.csv", text_column="review",
                           label_column="sentiment", validation_split=0.1)
    data.class_names  # -> ['negative', 'positive']
    ```
    """
    if isinstance(data, TextData):
        return data
    # Checked before reading anything: TensorFlow would refuse it only when
    # batching, with an error that does not name the argument.
    batch_size = check_positive_int(batch_size, "batch_size")
    if validation_split is not None and validation_data is not None:
        raise ValueError("Pass either validation_split or validation_data, not both.")
    if validation_split is not None and not 0.0 < validation_split < 1.0:
        raise ValueError(f"validation_split must be in (0, 1); got {validation_split}.")
    texts, labels = _read_texts(data, text_column, label_column)
    texts, labels, num_classes, class_names = check_texts_and_labels(
        texts, labels, num_classes, class_names, "training data", label_delimiter
    )
    multi_label = labels.ndim == 2
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
        val_texts, val_labels, _, _ = check_texts_and_labels(
            val_texts, val_labels, num_classes, class_names, "validation data",
            label_delimiter,
        )
        val_ds = _text_batches(val_texts, val_labels, batch_size, False, seed)
    class_names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
    train_ds = _text_batches(texts, labels, batch_size, shuffle, seed)
    return TextData(train_ds, val_ds, class_names, texts, labels, multi_label)


def _text_batches(texts, labels, batch_size, shuffle, seed):
    ds = tf.data.Dataset.from_tensor_slices((texts.astype(str), labels))
    if shuffle:
        ds = ds.shuffle(len(texts), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
