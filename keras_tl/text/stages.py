"""Stages of a text encoder for unfreezing, and its pooled embeddings."""

import re

import numpy as np
import tensorflow as tf

from keras_tl.stages import Stage
from keras_tl.text.classifier import text_encoder
from keras_tl.text.data import TextData
from keras_tl.text.data import check_texts_and_labels
from keras_tl.text.data import as_text_dataset

__all__ = ["extract_text_features", "get_text_stages"]


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

    ```python
    [s.name for s in get_text_stages(model)][:2], len(get_text_stages(model))
    # -> (['embeddings', 'transformer_layer_0'], 7)
    ```
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

    ```python
    features, labels = extract_text_features(model, (texts, labels))
    ```
    """
    labels = None
    if isinstance(data, TextData):
        texts, labels = data.texts, data.labels
    elif isinstance(data, (list, np.ndarray)) and not (
        len(data) == 2 and not isinstance(data[0], str)
    ):
        texts = np.asarray(data, dtype=object)
        texts, _, _, _ = check_texts_and_labels(texts, np.zeros(len(texts), np.int64), 2, None)
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
