"""Checks and conversions of training data and models shared across keras-tl.

Each helper exists once here so that the modules using it agree on what
counts as a batch, an empty data set, a leaf layer or a label mismatch.
"""

import numpy as np

__all__ = [
    "pair_spec",
    "check_same_length",
    "count_steps",
    "dataset_arrays",
    "is_batched",
    "leaf_layers",
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
