"""Augmentation presets (keras_tl.augment)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_tl import augment


def _images(n=8, size=16, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, size=(n, size, size, channels)).astype("float32")


@pytest.mark.parametrize("preset", augment.PRESETS)
def test_presets_change_images_only_in_training(preset):
    x = _images(channels=3)
    layer = augment.Augmentation(preset, seed=1)
    assert np.array_equal(keras.ops.convert_to_numpy(layer(x)), x)
    out = keras.ops.convert_to_numpy(layer(x, training=True))
    assert out.shape == x.shape
    assert np.abs(out - x).mean() > 1.0
    assert out.min() >= -1e-3 and out.max() <= 255 + 1e-3


def test_presets_grow_stronger_and_heavy_mixes_labels():
    assert not augment.Augmentation("light").mixes_labels
    assert not augment.mixes_labels("medium")
    assert augment.mixes_labels("heavy")
    assert not augment.Augmentation("heavy", mixing="none").mixes_labels
    names = lambda p: [l.name for l in augment.Augmentation(p, flip=None).image_layers]  # noqa: E731
    assert "flip" not in names("light")
    assert "rand_augment" not in names("light") and "rand_augment" not in names("medium")
    assert "rand_augment" in names("heavy") and "contrast" in names("medium")
    strength = {p: augment._PRESET_SETTINGS[p][:4] for p in augment.PRESETS}
    assert all(a < b for a, b in zip(strength["light"], strength["medium"]))
    assert all(a < b for a, b in zip(strength["medium"], strength["heavy"]))


def test_layers_of_a_seeded_preset_draw_independently():
    layers = augment.Augmentation("heavy", seed=3).image_layers
    seeds = [layer.seed for layer in layers]
    assert None not in seeds and len(set(seeds)) == len(seeds)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="Unknown augmentation preset"):
        augment.Augmentation("extreme")
    with pytest.raises(ValueError, match="flip"):
        augment.Augmentation("light", flip="diagonal")
    with pytest.raises(ValueError, match="mixing"):
        augment.Augmentation("light", mixing="blend")
    ds = tf.data.Dataset.from_tensor_slices((_images(), np.zeros(8, "int32"))).batch(4)
    with pytest.raises(ValueError, match="num_classes"):
        augment.augment_dataset(ds, "heavy")
    with pytest.raises(ValueError, match="at least 1"):
        augment.augmented_copies(ds, "light", 0)


@pytest.mark.backend_independent
@pytest.mark.slow
def test_augment_dataset_mixes_into_soft_labels_that_sum_to_one():
    x, y = _images(16), np.arange(16) % 4
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    out = augment.augment_dataset(ds, augment.Augmentation("heavy", flip=None, seed=2), 4)
    for images, labels in out:
        assert images.shape == (8, 16, 16, 1) and labels.shape == (8, 4)
        np.testing.assert_allclose(labels.numpy().sum(-1), 1.0, atol=1e-5)
    # New transformations every epoch.
    first = next(iter(out))[0].numpy()
    second = next(iter(out))[0].numpy()
    assert np.abs(first - second).mean() > 1.0
    # Image-only presets keep integer labels.
    _, labels = next(iter(augment.augment_dataset(ds, "light")))
    assert labels.shape == (8,)


@pytest.mark.slow
def test_soft_labels_train_with_categorical_crossentropy():
    x, y = _images(32, 8), np.arange(32) % 2
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    train = augment.augment_dataset(ds, augment.Augmentation("heavy", flip=None), 2)
    model = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Rescaling(1 / 255.0),
         keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")]
    )
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(
        train, validation_data=augment.one_hot_labels(ds, 2), epochs=1, verbose=0
    )
    assert np.isfinite(history.history["loss"][0])
    assert "val_accuracy" in history.history


def test_augmented_copies_multiplies_the_data():
    x, y = _images(6), np.arange(6) % 2
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(3)
    copies = list(augment.augmented_copies(ds, augment.Augmentation("light", flip=None), 2))
    assert len(copies) == 6
    np.testing.assert_array_equal(copies[0][0].numpy(), x[:3])
    assert np.abs(copies[2][0].numpy() - x[:3]).mean() > 0.5
    np.testing.assert_array_equal(copies[4][1].numpy(), y[:3])


def test_augmentation_inside_a_model_saves_in_safe_mode(tmp_path):
    inputs = keras.Input((16, 16, 1))
    x = augment.Augmentation("heavy", flip=None, seed=0)(inputs)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    path = tmp_path / "augmented.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    layer = loaded.get_layer("augment_heavy")
    assert isinstance(layer, augment.Augmentation) and layer.preset == "heavy"
    x = _images(2)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5)


def _tiny_backbone():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x), name="tiny")


@pytest.mark.parametrize("preset, copies", [
    pytest.param("heavy", 0, marks=pytest.mark.slow), ("medium", 2)])
def test_feature_extraction_recipe_accepts_presets(preset, copies):
    from keras_tl.recipes import feature_extraction

    rng = np.random.default_rng(0)
    y = np.arange(24) % 3
    x = rng.uniform(0, 60, size=(24, 8, 8, 1)).astype("float32") + 60 * y[:, None, None, None]
    model = feature_extraction(
        _tiny_backbone(), (x, y), (x, y), augmentation=augment.Augmentation(preset, flip=None),
        augmented_copies=copies, epochs=1, batch_size=8, verbose=0,
    )
    history = model.history.history
    if copies:
        # Fast path kept: the head was fitted on the original + 2 copies.
        assert "C" in history
    else:
        assert "val_accuracy" in history and np.isfinite(history["loss"][0])
    assert model.predict(x, verbose=0).shape == (24, 3)
