"""Bad or unusual inputs get a clear error naming what is wrong, before any
work, and training never returns a model with NaN weights."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from test_text import tiny_parts

from keras_tl import NonFiniteLossError
from keras_tl import StopOnNonFiniteLoss
from keras_tl.domain_adaptation import adabn
from keras_tl.data import as_dataset
from keras_tl.data import scan_image_folder
from keras_tl.recipes import adapt_domain
from keras_tl.recipes import distill
from keras_tl.recipes import feature_extraction
from keras_tl.recipes import fine_tune
from keras_tl.recipes import text_classifier
from keras_tl.text import as_text_dataset
from keras_tl.text import read_text_csv

TEXTS = ["good film", "great movie", "loved it", "fine actors",
         "bad film", "awful movie", "hated it", "dull actors"]
TEXT_LABELS = [1, 1, 1, 1, 0, 0, 0, 0]


def _images(n=12, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (n, 8, 8, 1)).astype("float32"), np.arange(n) % 2


def _tiny_backbone():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(2, 3, name="conv")(inputs)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x), name="tiny")


def test_one_nan_pixel_is_named_with_its_image():
    x, y = _images()
    x[7, 3, 4, 0] = np.nan
    with pytest.raises(ValueError, match=r"1 non-finite value.*image 7"):
        as_dataset((x, y))
    with pytest.raises(ValueError, match="image 7"):
        fine_tune(_tiny_backbone(), (x, y), epochs=1, verbose=0)
    x[:] = np.inf
    with pytest.raises(ValueError, match=r"768 non-finite value.*image 0"):
        feature_extraction(_tiny_backbone(), (x, y), verbose=0)


@pytest.mark.parametrize("learning_rate", [float("nan"), -1e-3, 0.0])
def test_bad_learning_rate_is_refused_before_any_work(learning_rate):
    x, y = _images()
    with pytest.raises(ValueError, match="learning_rate must be a positive"):
        fine_tune(_tiny_backbone(), (x, y), learning_rate=learning_rate, verbose=0)
    with pytest.raises(ValueError, match="learning_rate must be a positive"):
        feature_extraction(_tiny_backbone(), (x, y), learning_rate=learning_rate,
                           augmentation="light", verbose=0)


@pytest.mark.parametrize("epochs", [0, -1, 1.5])
def test_distill_refuses_epochs_below_one(epochs):
    x, y = _images()
    teacher = keras.Sequential([_tiny_backbone(), keras.layers.Dense(2, name="logits")])
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        distill(teacher, keras.models.clone_model(teacher), (x, y), epochs=epochs, verbose=0)


def test_batch_size_and_split_that_leave_nothing_are_refused():
    x, y = _images(n=10)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        as_dataset((x, y), batch_size=0)
    with pytest.raises(ValueError, match="leaves 10 for validation and 0 for training"):
        as_dataset((x, y), validation_split=0.99)
    with pytest.raises(ValueError, match="leaves 0 for validation"):
        as_dataset((x, y), validation_split=0.01)


def test_training_that_turns_nan_stops_restores_and_raises():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x @ rng.normal(size=(4, 1))).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    # Plain SGD at an absurd rate overflows to inf, then NaN, within an epoch
    # or two; the first epoch at a sane rate leaves finite weights to keep.
    model.compile(keras.optimizers.SGD(1e-3), "mse")
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    finite = [w.copy() for w in model.get_weights()]
    model.compile(keras.optimizers.SGD(1e12), "mse")
    with pytest.raises(NonFiniteLossError, match="NaN or infinite.*restored"):
        model.fit(x, y, epochs=5, batch_size=16, verbose=0,
                  callbacks=[StopOnNonFiniteLoss()])
    for restored, expected in zip(model.get_weights(), finite):
        assert np.all(np.isfinite(restored))
        np.testing.assert_array_equal(restored, expected)


def test_truncated_jpeg_is_skipped_at_scan_time_and_named(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
                tmp_path / name / f"{i}.jpg", quality=95)
    broken = tmp_path / "a" / "1.jpg"
    content = broken.read_bytes()
    broken.write_bytes(content[: int(len(content) * 0.8)])
    with pytest.warns(UserWarning, match="1.jpg"):
        paths, labels, names = scan_image_folder(tmp_path)
    assert str(broken) not in paths and len(paths) == 3
    data = as_dataset(str(tmp_path), batch_size=4, shuffle=False)
    images = np.concatenate([batch for batch, _ in data.train.as_numpy_iterator()])
    assert images.shape == (3, 32, 32, 3)


def test_folder_class_names_must_match_the_folders(tmp_path):
    for name in ("cat", "dog"):
        (tmp_path / name).mkdir()
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / name / "0.png")
    with pytest.raises(ValueError, match=r"do not match the class folders.*\['cat', 'dog'\]"):
        as_dataset(str(tmp_path), class_names=["cat", "dog", "bird"])
    assert as_dataset(str(tmp_path), class_names=["cat", "dog"]).class_names == ["cat", "dog"]


def test_labels_of_any_dtype_map_to_classes():
    x, _ = _images(n=6)
    data = as_dataset((x, np.array(["dog", "cat", "dog", "cat", "bird", "cat"])))
    assert data.class_names == ["bird", "cat", "dog"]
    assert data.train_arrays[1].tolist() == [2, 1, 2, 1, 0, 1]
    assert as_dataset((x, np.array([0.0, 1.0, 1.0, 0.0, 1.0, 0.0]))).num_classes == 2
    with pytest.raises(ValueError, match=r"fractional label.*rows \[1\]"):
        as_dataset((x, np.array([0.0, 0.5, 1.0, 0.0, 1.0, 0.0])))
    with pytest.raises(ValueError, match=r"missing.*rows \[2\]"):
        as_dataset((x, np.array([0.0, 1.0, np.nan, 0.0, 1.0, 0.0])))
    with pytest.raises(ValueError, match="Images must be numbers"):
        as_dataset((np.array([["a"] * 4] * 6), np.arange(6) % 2))


def test_uint8_images_without_a_channel_axis_just_work():
    x, y = _images()
    data = as_dataset((x[..., 0].astype(np.uint8), y))
    assert data.image_shape == (8, 8, 1)


def test_text_labels_blank_missing_or_equal_numbers():
    texts = ["good", "bad", "fine", "awful"]
    with pytest.raises(ValueError, match=r"2 missing or blank label\(s\) at rows \[1, 3\]"):
        as_text_dataset((texts, ["pos", " ", "pos", None]))
    data = as_text_dataset((texts, ["1", "1.0", "0", "0"]), shuffle=False)
    assert data.num_classes == 2
    assert np.concatenate([l for _, l in data.train.as_numpy_iterator()]).tolist() == [1, 1, 0, 0]


def test_non_utf8_text_names_the_row_and_the_line(tmp_path):
    texts = ["good".encode(), "caf\xe9".encode("latin-1"), b"bad"]
    with pytest.raises(ValueError, match="row 1 .*not UTF-8"):
        as_text_dataset((texts, [0, 1, 0]))
    path = tmp_path / "reviews.csv"
    path.write_bytes("text,label\ngood,1\nfine,1\ncaf\xe9,0\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"reviews.csv.*not UTF-8.*line 4"):
        read_text_csv(path)


def test_export_refuses_what_is_not_a_model(tmp_path):
    """`None`, a path (missing or not) or an array as the model: a TypeError
    naming what was passed and the fix, before any file is touched."""
    from keras_tl import export

    target = tmp_path / "model.tflite"
    with pytest.raises(TypeError, match=r"to_tflite\(\) takes a keras.Model.*got NoneType: None"):
        export.to_tflite(None, target)
    missing = str(tmp_path / "missing.keras")
    with pytest.raises(TypeError, match=r"got the path .*missing\.keras.*no such file.*load_model"):
        export.to_tflite(missing, target)
    saved = tmp_path / "tiny.keras"
    _tiny_backbone().save(saved)
    with pytest.raises(TypeError, match=r"got the path .*tiny\.keras.*an existing file.*load_model"):
        export.to_tflite(saved, target)
    with pytest.raises(TypeError, match=r"got ndarray"):
        export.to_tflite(np.zeros((2, 8, 8, 1)), target)
    with pytest.raises(TypeError, match=r"text_to_tflite\(\) takes a keras.Model.*NoneType"):
        export.text_to_tflite(None, target)
    with pytest.raises(TypeError, match=r"quantize_selectively\(\) takes a keras.Model.*path 'model'"):
        export.quantize_selectively("model", np.zeros((2, 8, 8, 1)), np.zeros((2, 8, 8, 1)))
    assert list(tmp_path.iterdir()) == [saved]


def test_text_batch_size_below_one_is_refused():
    with pytest.raises(ValueError, match=r"batch_size must be an integer >= 1; got 0\."):
        as_text_dataset((TEXTS, TEXT_LABELS), batch_size=0)
    with pytest.raises(ValueError, match=r"batch_size must be an integer >= 1; got 0\."):
        text_classifier((TEXTS, TEXT_LABELS), preset=tiny_parts(), batch_size=0, verbose=0)


def test_tf_dataset_split_that_leaves_nothing_is_refused(capsys, caplog):
    x, y = _images(n=10)
    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    with pytest.raises(ValueError, match="leaves 10 for validation and 0 for training"):
        as_dataset(dataset, validation_split=0.99)
    # Batched with known classes: the examples are counted in a pass.
    with pytest.raises(ValueError, match="leaves 0 for validation and 10 for training"):
        as_dataset(dataset.batch(3), validation_split=0.01, num_classes=2)
    data = as_dataset(dataset, validation_split=0.3)
    sizes = [sum(len(b) for b, _ in split) for split in (data.train, data.validation)]
    assert sum(sizes) == 10 and min(sizes) > 0
    # No AutoGraph notice about the split's functions on the terminal.
    captured = capsys.readouterr()
    assert "could not parse" not in captured.out + captured.err + caplog.text


def _bn_image_model():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(2, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))


def test_adabn_refuses_non_finite_targets_and_leaves_the_model_unchanged():
    model = _bn_image_model()
    before = [w.copy() for w in model.get_weights()]
    target, _ = _images()
    target[2, 1, 1, 0] = np.nan
    with pytest.raises(ValueError, match=r"target_images has 1 non-finite value.*image 2"):
        adabn(model, target)
    with pytest.raises(ValueError, match=r"target_unlabeled has 1 non-finite value.*image 2"):
        adapt_domain(model, None, target, method="adabn", verbose=0)
    with pytest.raises(ValueError, match=r"layer 'bn'.*target data has non-finite values"):
        adabn(model, tf.data.Dataset.from_tensor_slices(target).batch(4))
    for weight, expected in zip(model.get_weights(), before):
        np.testing.assert_array_equal(weight, expected)


@pytest.mark.parametrize("epochs", [-1, float("nan"), "3"])
def test_text_classifier_refuses_bad_epochs(epochs):
    with pytest.raises(ValueError, match=r"epochs must be a number >= 0 \(0 fits the head only\)"):
        text_classifier((TEXTS, TEXT_LABELS), preset=tiny_parts(), epochs=epochs, verbose=0)


@pytest.mark.slow
def test_text_classifier_verbose_shows_the_encoder_pass(capsys):
    text_classifier((TEXTS, TEXT_LABELS), preset=tiny_parts(), mode="feature_extraction",
                    batch_size=2, validation_split=0.25, verbose=1)
    out = capsys.readouterr().out
    # Progress of the encoder's one pass over the 6 training and the 2
    # validation texts (batches of 4).
    assert "━" in out and "2/2" in out
    model = text_classifier((TEXTS, TEXT_LABELS), preset=tiny_parts(), epochs=0,
                            batch_size=2, verbose=0)
    assert capsys.readouterr().out == ""
    assert model.history.history["phase"] == ["head"]
