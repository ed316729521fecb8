"""Embeddings from a frozen backbone, computed once and cached.

When the backbone is frozen and the inputs are not randomly augmented, its
output for an image never changes, so the feature-extraction fast path runs
it once over the data and trains the head on the stored embeddings.
"""

import os
import tempfile

import keras
import numpy as np

from keras_tl._utils.arrays import aligned_empty
from keras_tl._utils.distribute import model_outputs
from keras_tl._utils.io import save_atomic
from keras_tl._utils.io import umask
from keras_tl._utils.memory import release_free_heap
from keras_tl._utils.validation import check_positive_int
from keras_tl.data import as_dataset

__all__ = ["extract"]

# Seconds between returns of freed heap memory to the system during the
# forward pass (see `keras_tl._utils.memory`): each batch's images are
# freed by other threads than those that allocated them, and without it
# the process holds another ~100 MB of freed batches.
_RELEASE_EVERY = 0.25


def extract(backbone, data, batch_size=64, cache_path=None, verbose=0):
    """Runs `backbone` once over `data` and returns the embeddings.

    Args:
        backbone: a `keras.Model` mapping images to feature vectors (e.g.
            from `keras_tl.build_backbone`).
        data: anything `keras_tl.data.as_dataset` accepts, or a batched
            `tf.data.Dataset` of `(images, labels)`, or a bare array of
            images. `(x, y)` arrays go through one `predict` call.
        batch_size: batch size of the forward pass.
        cache_path: optional `.npy` path. Embeddings are written there in
            batches (for data sets larger than memory) and read back on
            later calls with the same path. A cache is checked before it is
            used: its length and its first batch must match `data` run
            through `backbone`, or it is refused with an error that names it.
        verbose: Keras verbosity of the forward pass.

    Text is one more kind of backbone: a text classifier (KerasHub, or
    keras-tl's `PooledTextClassifier`) with texts, `(texts, labels)` or a
    `TextData` goes to `keras_tl.text.extract_text_features` (its encoder's
    pooled embeddings; `cache_path` does not apply).

    Returns:
        `(embeddings, labels)`: float32 `(n, feature_dim)` and int32 `(n,)`
        (`labels` is `None` for a bare array of images or a list of texts).

    Example:

    ```python
    features, labels = extract(backbone, (x, y))
    LogisticRegression().fit(features, labels)
    ```
    """
    check_positive_int(batch_size, "batch_size")
    preprocessor = getattr(backbone, "preprocessor", None)
    if preprocessor is not None and getattr(preprocessor, "tokenizer", None) is not None:
        if cache_path is not None:
            raise ValueError("cache_path caches image embeddings; leave it out for text.")
        from keras_tl.text import extract_text_features

        return extract_text_features(backbone, data, batch_size=batch_size, verbose=verbose)
    if cache_path is not None:
        cache_path = _check_cache_path(cache_path)
    if isinstance(data, np.ndarray):
        if cache_path is not None:
            raise ValueError(
                "cache_path caches embeddings with their labels: pass (images, labels), a "
                "folder or a dataset, or leave cache_path out for a bare array of images."
            )
        if len(data) == 0:
            raise ValueError("The images are empty: no image to extract features from.")
        return _predict_array(backbone, data, batch_size, verbose), None
    if cache_path is None and _is_array_pair(data):
        # Arrays in memory: one `predict` call, the fastest path Keras has.
        x, y = data
        return _predict_array(backbone, np.asarray(x), batch_size, verbose), np.asarray(y)
    if not hasattr(data, "element_spec"):
        data = as_dataset(data, batch_size=batch_size, shuffle=False).train
    if cache_path is not None and os.path.exists(cache_path):
        embeddings, labels = _load_cache(cache_path), np.load(_labels_path(cache_path))
        _check_cache(backbone, data, cache_path, embeddings, labels)
        return embeddings, labels
    # One pass that yields images and labels together: a dataset that
    # reshuffles every iteration would misalign two separate passes. Each
    # batch goes through `predict`, whose compiled function Keras keeps on
    # the model (traced once, reused by later calls) and which splits the
    # batch over the replicas of the model's distribution strategy.
    def forward(images):
        return model_outputs(backbone, images, batch_size=int(images.shape[0]))

    progress = keras.utils.Progbar(_known_length(data)) if verbose else None
    partial_path = None
    chunks, labels, store, offset = [], [], None, 0
    try:
        for images, batch_labels in data:
            features = np.asarray(forward(images), np.float32)
            labels.append(np.asarray(batch_labels))
            if progress is not None:
                progress.add(1)
            release_free_heap(every=_RELEASE_EVERY)
            if store is None and cache_path is not None:
                store = _RowFile(
                    cache_path, _cardinality(data, images.shape[0]), features.shape[-1]
                )
                partial_path = store.path
            elif store is None and _known_length(data) is not None:
                # Filled in place: gathering batches and concatenating them
                # would hold the embeddings twice.
                rows = _known_length(data) * int(images.shape[0])
                store = aligned_empty((rows, features.shape[-1]))
            if store is None:
                chunks.append(features)
                continue
            store[offset : offset + len(features)] = features
            offset += len(features)
        if not labels:
            raise ValueError("The data is empty: no batch to extract features from.")
        labels = np.concatenate(labels)
        release_free_heap()
        if cache_path is None:
            return (np.concatenate(chunks) if chunks else store[:offset]), labels
        store.close()
        allocated, store = store.rows, None
        if offset != allocated:
            # Fewer rows than the dataset announced: keep the rows written.
            _atomic_save(partial_path, np.asarray(_load_cache(partial_path)[:offset]))
        # Labels first, then the embeddings renamed into place: a cache
        # whose embeddings exist is complete, and an interrupted run leaves
        # none behind. The embeddings are never copied into memory.
        _atomic_save(_labels_path(cache_path), labels)
        os.replace(partial_path, cache_path)
        return _load_cache(cache_path), labels
    finally:
        if isinstance(store, _RowFile):
            store.close()
        del store
        if partial_path is not None and os.path.exists(partial_path):
            os.remove(partial_path)


class _RowFile:
    """A `.npy` file of `(rows, dim)` float32, filled batch by batch with writes.

    Plain file writes rather than a writable memory map: the written pages
    then stay in the system's file cache, not in the process's resident
    memory, while the embeddings of a large data set are being computed.
    """

    def __init__(self, cache_path, rows, dim):
        # Created exclusively under a random name beside the cache: a link
        # planted at a predictable partial-file name is never written through.
        handle, self.path = tempfile.mkstemp(
            prefix=".tmp-", suffix=".npy", dir=os.path.dirname(os.path.abspath(cache_path)))
        self.file = os.fdopen(handle, "r+b")
        os.chmod(self.path, 0o666 & ~umask())
        np.lib.format.write_array_header_1_0(
            self.file, {"descr": "<f4", "fortran_order": False, "shape": (rows, dim)})
        self.data_start, self.rows, self.row_bytes = self.file.tell(), rows, dim * 4
        # Sized without touching a page: the rows are written batch by batch.
        self.file.truncate(self.data_start + rows * self.row_bytes)

    def __setitem__(self, rows, features):
        self.file.seek(self.data_start + rows.start * self.row_bytes)
        self.file.write(memoryview(np.ascontiguousarray(features, np.float32)))

    def close(self):
        if not self.file.closed:
            self.file.close()


def _check_cache_path(cache_path):
    cache_path = os.fspath(cache_path)
    if not cache_path or os.path.isdir(cache_path):
        raise ValueError(f"cache_path must be a .npy file path; got {cache_path!r}.")
    folder = os.path.dirname(os.path.abspath(cache_path))
    if not os.path.isdir(folder):
        raise ValueError(
            f"The folder of cache_path {cache_path!r} does not exist; create {folder!r} "
            "first, or choose another cache_dir."
        )
    return cache_path


def _check_cache(backbone, data, cache_path, embeddings, labels):
    """Refuses a cache computed from other data or by another backbone: its
    length must fit `data`'s, and its first rows must be `data`'s first
    batch through `backbone`."""
    def refuse(why):
        raise ValueError(
            f"The embedding cache {cache_path!r} {why}: it was computed from other data "
            f"or by another backbone. Delete it and {_labels_path(cache_path)!r} (or pass "
            "another cache_dir) to compute the embeddings again."
        )

    if len(embeddings) != len(labels):
        refuse(f"holds {len(embeddings)} embeddings but {len(labels)} labels")
    for images, batch_labels in data.take(1):
        count = int(images.shape[0])
        batches = _known_length(data)
        if batches is not None and -(-len(embeddings) // count) != batches:
            refuse(f"holds {len(embeddings)} rows, and the data has {batches} batches of "
                   f"{count}")
        features = np.asarray(backbone.predict(images, batch_size=count, verbose=0),
                              np.float32)
        if features.shape[1:] != embeddings.shape[1:]:
            refuse(f"holds embeddings of width {embeddings.shape[1:]}, and the backbone "
                   f"gives {features.shape[1:]}")
        cached = np.asarray(embeddings[:count])
        scale = max(float(np.abs(features).max()), 1e-6)
        if (len(cached) != count or not np.array_equal(np.asarray(batch_labels), labels[:count])
                or not np.allclose(cached, features, rtol=1e-3, atol=1e-4 * scale)):
            refuse("does not hold this data's first batch")


def _load_cache(cache_path):
    # Copy-on-write: pages are read from the file on demand and never
    # written back, and the map is writable, so TensorFlow can use it in
    # place (see `keras_tl._utils.logistic.shared_tensor`).
    return np.load(cache_path, mmap_mode="c")


def _is_array_pair(data):
    return (isinstance(data, tuple) and len(data) == 2
            and all(isinstance(a, np.ndarray) for a in data))


def _known_length(dataset):
    n = int(dataset.cardinality())
    return n if n >= 0 else None


def _predict_array(backbone, images, batch_size, verbose):
    return np.asarray(model_outputs(backbone, images, batch_size, verbose), np.float32)


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
    save_atomic(path, lambda temporary: np.save(temporary, array), suffix=".npy")
