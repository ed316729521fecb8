"""`extract(..., cache_path=)`: a cache knows what it belongs to, and its
files are created exclusively."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_tl.features import extract


def _backbone(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6, 6, 1))
    x = keras.layers.Flatten()(inputs)
    return keras.Model(inputs, keras.layers.Dense(5)(x))


def _data(seed, n=20):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, 6, 6, 1)).astype("float32")
    y = rng.integers(0, 3, n).astype("int32")
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(8)


def test_cache_is_reused_for_the_same_data_and_backbone(tmp_path):
    path = str(tmp_path / "train.npy")
    first, labels = extract(_backbone(), _data(0), cache_path=path)
    again, again_labels = extract(_backbone(), _data(0), cache_path=path)
    np.testing.assert_array_equal(np.asarray(first), np.asarray(again))
    np.testing.assert_array_equal(labels, again_labels)
    assert sorted(os.listdir(tmp_path)) == ["train.labels.npy", "train.npy"]


@pytest.mark.parametrize("change", ["data", "size", "backbone"])
def test_cache_of_other_data_or_backbone_is_refused_by_name(tmp_path, change):
    path = str(tmp_path / "train.npy")
    extract(_backbone(), _data(0), cache_path=path)
    backbone, data = _backbone(), _data(0)
    if change == "data":
        data = _data(1)
    elif change == "size":
        data = _data(0, n=30)
    else:
        backbone = _backbone(seed=1)
    with pytest.raises(ValueError, match="train.npy.*other data or by another backbone"):
        extract(backbone, data, cache_path=path)


def test_a_link_planted_in_the_cache_folder_is_not_written_through(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    cache = tmp_path / "cache"
    cache.mkdir()
    # The partial file's former predictable names.
    for name in ("train.npy.partial.npy", "train.partial.npy"):
        os.symlink(victim, cache / name)
    extract(_backbone(), _data(0), cache_path=str(cache / "train.npy"))
    assert victim.read_text() == "precious"
    assert np.load(cache / "train.npy").shape == (20, 5)
    assert not [n for n in os.listdir(cache) if n.startswith(".tmp-")]
