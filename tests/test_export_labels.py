"""Exports that cannot be misread: two labelled classes for a one-unit
sigmoid model, no blank or multi-line class names in any mode."""

import os

import keras
import numpy as np
import pytest

from keras_tl.export import LiteRTModel
from keras_tl.export import read_labels
from keras_tl.export import read_metadata
from keras_tl.export import to_tflite

pytestmark = pytest.mark.tensorflow_only


def _binary(activation="sigmoid"):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(1, activation=activation)(x), name="binary")


def _images(n=16):
    return np.random.default_rng(0).uniform(0, 255, (n, 8, 8, 3)).astype("float32")


def test_one_unit_sigmoid_exports_as_two_labelled_classes(tmp_path):
    model, x = _binary(), _images()
    path = tmp_path / "b.tflite"
    report = to_tflite(model, path, class_names=["cat", "dog"], check_data=x)
    assert read_labels(path) == ["cat", "dog"]
    assert read_metadata(path)["name"] == "binary"
    scores = LiteRTModel(path).predict(x)
    p = model.predict(x, verbose=0)[:, 0]
    np.testing.assert_allclose(scores[:, 1], p, atol=1e-5)
    np.testing.assert_allclose(scores.sum(-1), 1.0, atol=1e-5)
    assert report.top1_agreement == 1.0
    # Without names: two default ones, not a single "0".
    assert read_labels(to_tflite(model, tmp_path / "c.tflite").path) == ["0", "1"]


def test_one_unit_without_sigmoid_is_refused_with_metadata(tmp_path):
    with pytest.raises(ValueError, match="one output unit that is not a sigmoid"):
        to_tflite(_binary(activation=None), tmp_path / "l.tflite")
    assert os.listdir(tmp_path) == []
    # Without metadata it is a plain one-output file.
    to_tflite(_binary(activation=None), tmp_path / "l.tflite", metadata=False)


@pytest.mark.parametrize("metadata", [None, False])
@pytest.mark.parametrize("names", [["cat", " "], ["cat", ""], ["cat", "big\ndog"],
                                   ["cat\r", "dog"]])
def test_blank_or_multiline_class_names_are_refused_in_every_mode(tmp_path, metadata, names):
    with pytest.raises(ValueError, match="non-blank and on one line"):
        to_tflite(_binary(), tmp_path / "n.tflite", class_names=names, metadata=metadata)
    assert os.listdir(tmp_path) == []
