"""Data for an export: the accepted forms as arrays, and calibration samples.

Arrays, `(x, y)` tuples, dicts of arrays, `tf.data.Dataset`s, keras-tl
`ImageData` and image folders become numpy arrays for the LiteRT check;
`representative_dataset` feeds them one by one to the int8 converter.
"""

import os

import numpy as np

from keras_tl._utils.validation import check_same_length
from keras_tl._utils.validation import dataset_arrays

__all__ = [
    "as_arrays",
    "representative_dataset",
    "take_rows",
]


def take_rows(inputs, index):
    if isinstance(inputs, dict):
        return {k: np.asarray(v)[index] for k, v in inputs.items()}
    return np.asarray(inputs)[index]


def as_arrays(data, limit=None, seed=None, image_size=None, split="validation"):
    """`(inputs, labels or None)` from the forms of data keras-tl accepts.

    Arrays, `(x, y)` tuples, dicts of arrays (models with several inputs),
    `tf.data.Dataset`s (batched or not), `keras_tl.data.ImageData` (its
    `split`, else the training set) and image folders. `limit` samples at
    most: the first ones, or a random draw when `seed` is given.
    """
    import tensorflow as tf

    from keras_tl.data import ImageData, as_dataset

    if isinstance(data, (str, os.PathLike)):
        data = as_dataset(data, image_size=image_size, shuffle=False)
    if isinstance(data, ImageData):
        data = (split == "validation" and data.validation) or data.train
    labels = None
    if isinstance(data, tf.data.Dataset):
        data = dataset_arrays(data, limit if seed is None else None)
    if isinstance(data, tuple) and len(data) == 2:
        data, labels = data
        labels = None if labels is None else np.asarray(labels).reshape(-1)
    if isinstance(data, dict):
        data = {k: np.asarray(v) for k, v in data.items()}
        n = len(next(iter(data.values())))
    elif isinstance(data, (np.ndarray, list)) or hasattr(data, "__array__"):
        data = np.asarray(data)
        n = len(data)
    else:
        raise TypeError(
            "Data must be an array, a tuple (x, y), a dict of arrays, a "
            f"tf.data.Dataset, keras_tl ImageData or an image folder; got "
            f"{type(data).__name__}."
        )
    if n == 0:
        raise ValueError("The data is empty.")
    if labels is not None:
        check_same_length(n, len(labels))
    if limit is not None and n > limit:
        if seed is None:
            index = np.arange(limit)
        else:
            index = np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))
        data = take_rows(data, index)
        labels = None if labels is None else labels[index]
    return data, labels


def representative_dataset(inputs):
    n = len(next(iter(inputs.values()))) if isinstance(inputs, dict) else len(inputs)

    def generate():
        for i in range(n):
            sample = take_rows(inputs, slice(i, i + 1))
            if isinstance(sample, dict):
                yield {k: v.astype(np.int32 if v.dtype == bool else v.dtype) for k, v in sample.items()}
            else:
                yield [sample.astype(np.float32)]

    return generate
