"""Embeddings from a frozen backbone, computed once and cached.

When the backbone is frozen and the inputs are not randomly augmented, its
output for an image never changes, so the feature-extraction fast path runs
it once over the data and trains the head on the stored embeddings.
"""

import os

import keras
import numpy as np

from keras_tl.data import as_dataset


def extract(backbone, data, batch_size=64, cache_path=None, verbose=0):
    """Runs `backbone` once over `data` and returns the embeddings.

    Args:
        backbone: a `keras.Model` mapping images to feature vectors (e.g.
            from `keras_tl.build_backbone`).
        data: anything `keras_tl.data.as_dataset` accepts, or a batched
            `tf.data.Dataset` of `(images, labels)`, or a bare array of
            images.
        batch_size: batch size of the forward pass.
        cache_path: optional `.npy` path. Embeddings are written there in
            batches through a memory map (for data sets larger than memory)
            and read back on later calls with the same path.
        verbose: Keras verbosity of the forward pass.

    Returns:
        `(embeddings, labels)`: float32 `(n, feature_dim)` and int32 `(n,)`
        (`labels` is `None` for a bare array of images).

    Example:

    >>> features, labels = extract(backbone, (x, y))
    >>> LogisticRegression().fit(features, labels)
    """
    if isinstance(data, np.ndarray):
        return _predict_array(backbone, data, batch_size, verbose), None
    if not hasattr(data, "element_spec"):
        data = as_dataset(data, batch_size=batch_size, shuffle=False).train
    if cache_path is not None and os.path.exists(cache_path):
        labels_path = _labels_path(cache_path)
        return np.load(cache_path, mmap_mode="r"), np.load(labels_path)
    if cache_path is None:
        # One `predict` over the whole set: compiled once, batches spread
        # over the replicas of the backbone's distribution strategy.
        features = backbone.predict(data.map(lambda x, y: x), verbose=verbose)
        labels = [np.asarray(y) for y in data.map(lambda x, y: y).as_numpy_iterator()]
        if not labels:
            raise ValueError("The data is empty: no batch to extract features from.")
        return np.asarray(features, np.float32), np.concatenate(labels)
    chunks, labels, memmap, offset = [], [], None, 0
    for images, batch_labels in data:
        # `predict` (not `predict_on_batch`) splits the batch over the replicas
        # of the backbone's distribution strategy and gathers it back in order.
        features = np.asarray(
            backbone.predict(images, batch_size=int(images.shape[0]), verbose=0), np.float32
        )
        labels.append(np.asarray(batch_labels))
        if cache_path is None:
            chunks.append(features)
            continue
        if memmap is None:
            capacity = _cardinality(data, images.shape[0])
            tmp_path = cache_path + ".partial.npy"
            memmap = np.lib.format.open_memmap(
                tmp_path, mode="w+", dtype=np.float32,
                shape=(capacity, features.shape[-1]),
            )
        memmap[offset : offset + len(features)] = features
        offset += len(features)
    labels = np.concatenate(labels) if labels else np.zeros((0,), np.int32)
    if cache_path is None:
        if not chunks:
            raise ValueError("The data is empty: no batch to extract features from.")
        return np.concatenate(chunks), labels
    memmap.flush()
    embeddings = np.asarray(memmap[:offset])
    del memmap
    os.remove(cache_path + ".partial.npy")
    # Written whole and renamed, so an interrupted run leaves no partial cache.
    _atomic_save(cache_path, embeddings)
    _atomic_save(_labels_path(cache_path), labels)
    return embeddings, labels


def _predict_array(backbone, images, batch_size, verbose):
    return np.asarray(
        backbone.predict(images, batch_size=batch_size, verbose=verbose), np.float32
    )


def _cardinality(dataset, batch):
    n = int(dataset.cardinality())
    if n < 0:
        raise ValueError(
            "cache_path needs a dataset of known length; pass arrays or a folder."
        )
    return n * int(batch)


def _labels_path(cache_path):
    root, _ = os.path.splitext(cache_path)
    return root + ".labels.npy"


def _atomic_save(path, array):
    tmp = path + ".tmp.npy"
    np.save(tmp, array)
    os.replace(tmp, path)
