"""Checks and conversions of training data and models shared across keras-tl.

Each helper exists once here so that the modules using it agree on what
counts as a batch, an empty data set, a leaf layer or a label mismatch.
"""

import math
import re
import warnings

import numpy as np

__all__ = [
    "check_finite",
    "check_pixel_range",
    "check_positive_int",
    "labels_to_indices",
    "pair_spec",
    "check_same_length",
    "count_steps",
    "dataset_arrays",
    "is_batched",
    "leaf_layers",
    "takes_raw_pixels",
]


def check_same_length(num_items, num_labels, item="sample", prefix=""):
    """Raises `ValueError` unless there is exactly one label per item.

    Args:
        num_items: number of inputs (images, texts, embeddings, ...).
        num_labels: number of labels.
        item: singular noun naming the inputs in the message.
        prefix: start of the message, naming the data checked.

    Example:

    >>> check_same_length(4, 3, "image", "x and y have different lengths: ")
    Traceback (most recent call last):
    ValueError: x and y have different lengths: 4 images but 3 labels. Pass one label per image.
    """
    if num_items != num_labels:
        raise ValueError(
            f"{prefix}{num_items} {item}s but {num_labels} labels. Pass one "
            f"label per {item}."
        )


def count_steps(dataset):
    """Batches in one pass over a batched `tf.data.Dataset`.

    Read from its cardinality, or counted by iterating when that is unknown.

    Raises:
        ValueError: the dataset is empty.
    """
    steps = int(dataset.cardinality())
    if steps < 0:
        steps = sum(1 for _ in dataset)
    if steps == 0:
        raise ValueError("The training data is empty.")
    return steps


def is_batched(element_spec):
    """Whether a `tf.data` element spec describes batches or single samples.

    Batches are: inputs of rank 4 or more (images), rank-2 inputs with a
    free first dimension (token ids), or, for `(inputs, labels)` pairs,
    labels with a free first dimension (e.g. text datasets of
    `(strings, labels)`). For a dict of inputs the first one decides;
    inputs that are not a plain `tf.TensorSpec` are taken as batches.
    """
    import tensorflow as tf

    labels = None
    if isinstance(element_spec, tuple):
        inputs = element_spec[0]
        if len(element_spec) == 2:
            labels = element_spec[1]
    else:
        inputs = element_spec
    if isinstance(inputs, dict):
        inputs = next(iter(inputs.values()))
    if not isinstance(inputs, tf.TensorSpec):
        return True
    rank = inputs.shape.rank
    if rank is not None and (rank >= 4 or (rank == 2 and inputs.shape[0] is None)):
        return True
    if isinstance(labels, tf.TensorSpec):
        shape = labels.shape
        return shape.rank is not None and shape.rank >= 1 and shape[0] is None
    return False


def dataset_arrays(dataset, limit=None, batched=None):
    """Reads a `tf.data.Dataset` (batched or not) into numpy arrays.

    Args:
        dataset: yields inputs, or `(inputs, labels)` pairs; inputs may be a
            dict (or other nest) of arrays.
        limit: stop once at least this many samples are read.
        batched: whether the dataset yields batches; default: guessed from
            its element spec (`is_batched`). Pass it when known: a batch
            size fixed by `drop_remainder=True` hides the batch dimension
            of rank-2 inputs from the guess.

    Returns:
        The inputs, or `(inputs, labels)` for a dataset of pairs, with the
        batches concatenated (labels keep their per-sample shape).

    Raises:
        ValueError: the dataset is empty.
    """
    import keras

    spec = dataset.element_spec
    has_labels = isinstance(spec, tuple) and len(spec) == 2
    if batched is None:
        batched = is_batched(spec)
    inputs, labels, count = [], [], 0
    for element in dataset.as_numpy_iterator():
        x, y = element if has_labels else (element, None)
        if not batched:
            x = keras.tree.map_structure(lambda v: np.asarray(v)[None], x)
            y = None if y is None else np.asarray(y)[None]
        inputs.append(x)
        if y is not None:
            labels.append(np.asarray(y))
        count += len(keras.tree.flatten(x)[0])
        if limit is not None and count >= limit:
            break
    if not inputs:
        raise ValueError("The tf.data.Dataset is empty.")
    x = keras.tree.map_structure(lambda *parts: np.concatenate(parts), *inputs)
    return (x, np.concatenate(labels)) if labels else x


def leaf_layers(model):
    """Layers of `model` with nested models expanded, in graph order."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from leaf_layers(layer)
        else:
            yield layer


def pair_spec(dataset, what="(input, label)"):
    """The element spec of a `tf.data.Dataset` that must yield pairs.

    Args:
        dataset: the dataset.
        what: the pair's description in the error, e.g. `"(image, label)"`.

    Raises:
        ValueError: the dataset yields something other than 2-tuples.
    """
    spec = dataset.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 2):
        raise ValueError(
            f"A tf.data.Dataset must yield {what} pairs; got element spec {spec}."
        )
    return spec


def _rows(indices, limit=5):
    shown = ", ".join(str(int(i)) for i in indices[:limit])
    return f"[{shown}{', ...' if len(indices) > limit else ''}]"


def labels_to_indices(labels, class_names=None, what="data"):
    """Class indices from labels of any dtype, or an error naming bad rows.

    Integers pass; integer-valued floats (`1.0`) and numeric strings (`"1"`,
    `"1.0"`) become the same integer; other strings are class names (mapped
    through `class_names` when given, else sorted). Missing labels (`None`,
    NaN, blank strings) are an error, never an extra class.

    Args:
        labels: a sequence or array of labels, one per example.
        class_names: known class names, for string labels.
        what: the data's name in error messages.

    Returns:
        `(indices, class_names)`: int64 indices, and the class names when
        the labels were names (else `class_names` unchanged).

    Example:

    >>> labels_to_indices(["cat", "dog", "cat"])
    (array([0, 1, 0]), ['cat', 'dog'])
    """
    array = np.asarray(labels)
    if array.ndim != 1:
        raise ValueError(
            f"Labels must be one class per example, shape (n,); got shape "
            f"{array.shape} in the {what}. Convert one-hot labels with y.argmax(-1)."
        )
    if array.dtype.kind in "iub":
        return array.astype(np.int64), class_names
    if array.dtype.kind == "f":
        missing = np.flatnonzero(~np.isfinite(array))
        if missing.size:
            raise ValueError(
                f"The {what} has {missing.size} missing (NaN or inf) label(s) at rows "
                f"{_rows(missing)}. Drop those examples or fill in their labels."
            )
        fractional = np.flatnonzero(np.mod(array, 1) != 0)
        if fractional.size:
            raise ValueError(
                f"Labels must be class indices or names; the {what} has "
                f"{fractional.size} fractional label(s) at rows {_rows(fractional)} "
                f"(e.g. {array[fractional[:3]].tolist()})."
            )
        return array.astype(np.int64), class_names
    values = []
    missing = []
    for row, label in enumerate(array.tolist()):
        if isinstance(label, bytes):
            try:
                label = label.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError(
                    f"The label at row {row} of the {what} is not UTF-8 text: {label[:40]!r}."
                ) from None
        if label is None or (isinstance(label, float) and math.isnan(label)):
            missing.append(row)
            label = ""
        label = str(label).strip()
        if not label:
            missing.append(row)
        values.append(label)
    if missing:
        missing = sorted(set(missing))
        raise ValueError(
            f"The {what} has {len(missing)} missing or blank label(s) at rows "
            f"{_rows(missing)}. Drop those examples or fill in their labels."
        )
    if all(re.fullmatch(r"[-+]?\d+(\.0*)?", value) for value in values):
        return np.asarray([int(float(value)) for value in values], np.int64), class_names
    names = [str(n) for n in class_names] if class_names is not None else sorted(set(values))
    index = {name: i for i, name in enumerate(names)}
    unknown = [row for row, value in enumerate(values) if value not in index]
    if unknown:
        raise ValueError(
            f"The {what} has {len(unknown)} label(s) that are not among class_names "
            f"{names} at rows {_rows(unknown)} (e.g. {values[unknown[0]]!r})."
        )
    return np.asarray([index[value] for value in values], np.int64), names


def check_finite(x, what="x", item="image"):
    """Raises `ValueError` when numeric inputs hold NaN or infinity.

    Args:
        x: a numeric array, examples along the first axis.
        what: the array's name in the message.
        item: singular noun for one example.

    Example:

    >>> check_finite(np.array([[0.0, 1.0], [np.nan, 2.0]]))
    Traceback (most recent call last):
    ValueError: x has 1 non-finite value(s) (NaN or inf); the first is in image 1. Fix or drop those images: one NaN input makes every prediction NaN.
    """
    if x.dtype.kind != "f":
        return
    bad = ~np.isfinite(x)
    if bad.any():
        first = int(np.flatnonzero(bad.reshape(len(x), -1).any(axis=1))[0])
        raise ValueError(
            f"{what} has {int(bad.sum())} non-finite value(s) (NaN or inf); the first "
            f"is in {item} {first}. Fix or drop those {item}s: one NaN input makes "
            "every prediction NaN."
        )


# Rows looked at to judge the pixel range: the range of a few hundred images
# tells, at a fixed cost on large arrays.
_RANGE_ROWS = 256


def check_pixel_range(x, what="images", expected="[0, 255]"):
    """Warns when image pixels do not look like the range the model takes.

    keras-tl's models scale pixels inside (`ImagePreprocessing`,
    `Rescaling`): they take [0, 255]. Images already scaled to [0, 1], or
    normalized around zero, are scaled a second time and every prediction
    is meaningless, without an error; values above 255 (16-bit images) are
    off the other way.

    Args:
        x: a numeric array of images, examples along the first axis.
        what: the array's name in the message.
        expected: the range the model takes, for the message.

    Returns:
        The warning's text, or `None` when the range looks right.

    Example:

    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = check_pixel_range(np.full((2, 4, 4, 3), 0.5, np.float32))
    >>> "look like [0, 1]" in str(caught[0].message)
    True
    """
    x = np.asarray(x)
    if x.dtype.kind not in "fiu" or x.size == 0 or x.ndim < 3:
        return None
    sample = x[:_RANGE_ROWS]
    low, high = float(np.nanmin(sample)), float(np.nanmax(sample))
    if x.dtype.kind == "f" and low >= 0 and 0 < high <= 1.0:
        found = "look like [0, 1] floats"
    elif high > 255:
        found = f"exceed 255 (up to {high:g})"
    elif low < 0:
        found = f"go below 0 (down to {low:g}), as if already normalized"
    else:
        return None
    message = (
        f"The {what}' pixel values {found}; the model takes pixels in {expected} and "
        "scales them itself. Pass the images as they are read (e.g. uint8 or 0-255 "
        "floats), without dividing by 255 or normalizing."
    )
    warnings.warn(message, UserWarning, stacklevel=3)
    return message


def takes_raw_pixels(model):
    """Whether `model` scales its own pixels: it holds keras-tl's
    `ImagePreprocessing` or a `Rescaling` layer that divides (so it takes
    [0, 255] images).

    Args:
        model: a Keras model.

    Returns:
        A bool.

    Example:

    ```python
    if takes_raw_pixels(model):
        check_pixel_range(images)
    ```
    """
    import keras

    stack = [model]
    seen = 0
    while stack and seen < 200:
        layer = stack.pop()
        seen += 1
        if type(layer).__name__ == "ImagePreprocessing":
            return True
        if isinstance(layer, keras.layers.Rescaling):
            scale = np.asarray(layer.scale, dtype=np.float64)
            if np.all(scale < 0.5):
                return True
        stack.extend(reversed(getattr(layer, "layers", [])))
    return False


def check_positive_int(value, name):
    """Raises `ValueError` unless `value` is an integer >= 1.

    Args:
        value: the value to check.
        name: the argument's name in the message.

    Example:

    >>> check_positive_int(0, "epochs")
    Traceback (most recent call last):
    ValueError: epochs must be an integer >= 1; got 0.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        if not (isinstance(value, float) and value.is_integer() and value >= 1):
            raise ValueError(f"{name} must be an integer >= 1; got {value!r}.")
    return int(value)
