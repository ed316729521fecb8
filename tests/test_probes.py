"""Bad-input probes: each odd input gets a clear error that names what is
wrong (and, where there is one, the fix), or is handled correctly.

Every probe is tiny (a few 8x8 or 16x16 images, a two-class CNN of width 2,
at most one epoch) so the whole file runs in well under a minute. Cases
already covered by `test_bad_inputs.py`, `test_data.py` and the other test
files are not repeated here.
"""

import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import keras_tl
from keras_tl.data import as_dataset
from keras_tl.data import scan_image_folder


def _images(n=4, size=16, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (n, size, size, channels)).astype("float32")


def _labels(n=4):
    return np.arange(n) % 2


def _cnn(size=16, channels=3, classes=2):
    return keras_tl.build_small_cnn((size, size, channels), classes, width=2)


def _png(path, size=(8, 8), color=(10, 120, 200), fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), color, np.uint8)).save(path, format=fmt)
    return path


def _two_class_folder(root, size=(8, 8)):
    _png(root / "cat" / "0.png", size, (200, 0, 0))
    _png(root / "dog" / "0.png", size, (0, 200, 0))
    return root


def _count(dataset):
    return sum(int(images.shape[0]) for images, _ in dataset)


# --- image arrays -----------------------------------------------------------


@pytest.mark.parametrize("shape", [(4, 2, 8, 8, 3), (4, 192), (4,)],
                         ids=["5d", "2d", "1d"])
def test_array_of_wrong_rank_names_the_expected_shape(shape):
    with pytest.raises(ValueError, match=r"must have shape \(n, height, width, channels\); got "
                       + re.escape(repr(shape))):
        as_dataset((np.zeros(shape, np.float32), _labels()))


@pytest.mark.parametrize("dtype", [bool, np.complex64, object])
def test_non_numeric_pixel_dtype_is_refused_by_name(dtype):
    x = _images().astype(dtype)
    with pytest.raises(ValueError, match=r"Images must be numbers \(uint8 or float pixels\); "
                                         r"got dtype " + np.dtype(dtype).name):
        as_dataset((x, _labels()))


def test_float16_images_keep_their_shape_and_values():
    x = _images().round().astype(np.float16)
    data = as_dataset((x, _labels()), shuffle=False, batch_size=4)
    assert data.image_shape == (16, 16, 3)
    images, labels = next(iter(data.train))
    np.testing.assert_array_equal(np.asarray(images, np.float32), x.astype(np.float32))
    assert labels.numpy().tolist() == [0, 1, 0, 1]


def test_float16_overflow_to_inf_is_named_as_non_finite():
    with np.errstate(over="ignore"):
        x = np.full((4, 8, 8, 3), 70000.0).astype(np.float16)  # inf in float16
    with pytest.raises(ValueError, match=r"x has 768 non-finite value\(s\).*image 0"):
        as_dataset((x, _labels()))


def test_empty_arrays_are_refused():
    with pytest.raises(ValueError, match="The data is empty: x has no images"):
        as_dataset((np.zeros((0, 8, 8, 3), np.float32), np.zeros(0, int)))


def test_a_label_column_gets_the_argmax_hint():
    with pytest.raises(ValueError, match=r"one class per example, shape \(n,\); got shape "
                                         r"\(4, 1\).*y\.argmax\(-1\)"):
        as_dataset((_images(), _labels()[:, None]))


def test_one_hot_labels_are_multi_label_with_the_argmax_hint():
    # A 0/1 matrix is a multi-label task; one-hot rows say how to get one
    # class per example instead.
    with pytest.warns(UserWarning, match=r"exactly one class.*y\.argmax\(-1\)"):
        data = as_dataset((_images(), np.eye(2)[_labels()]))
    assert data.multi_label


def test_boolean_labels_are_two_classes():
    data = as_dataset((_images(), np.array([False, True, True, False])), shuffle=False)
    assert data.num_classes == 2 and data.class_names == ["0", "1"]
    assert data.train_arrays[1].tolist() == [0, 1, 1, 0]


def test_one_string_class_is_refused():
    with pytest.raises(ValueError, match="at least two classes"):
        as_dataset((_images(), np.array(["cat"] * 4)))


def test_pixels_above_255_warn_that_they_exceed_the_range():
    x = np.full((4, 8, 8, 3), 4000, np.uint16)
    with pytest.warns(UserWarning, match=r"exceed 255 \(up to 4000\).*\[0, 255\]"):
        as_dataset((x, _labels()))


def test_validation_data_label_outside_the_classes_is_refused():
    with pytest.raises(ValueError, match=r"Labels out of range.*\[0, 1\].*\[5\]"):
        as_dataset((_images(), _labels()), validation_data=(_images(2), np.array([0, 5])))


def test_validation_data_of_another_size_is_resized_to_the_training_images():
    data = as_dataset((_images(), _labels()),
                      validation_data=(_images(2, size=8), np.array([0, 1])))
    images, _ = next(iter(data.validation))
    assert tuple(images.shape) == (2, 16, 16, 3)


@pytest.mark.parametrize("split", [1.0, 0.0, -0.2])
def test_validation_split_outside_zero_one_is_refused(split):
    with pytest.raises(ValueError, match=r"validation_split must be in \(0, 1\)"):
        as_dataset((_images(), _labels()), validation_split=split)


@pytest.mark.parametrize("batch_size", [2.5, None, "4"])
def test_non_integer_batch_size_is_refused(batch_size):
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        as_dataset((_images(), _labels()), batch_size=batch_size)


def test_a_tuple_of_three_arrays_is_refused_with_the_accepted_forms():
    with pytest.raises(TypeError, match=r"a tuple \(x, y\) of arrays"):
        as_dataset((_images(), _labels(), _labels()))


# --- tf.data ------------------------------------------------------------------


def test_tf_dataset_without_labels_is_refused():
    dataset = tf.data.Dataset.from_tensor_slices(_images())
    with pytest.raises(ValueError, match=r"must yield \(image, label\) pairs"):
        as_dataset(dataset)


def test_empty_tf_dataset_is_refused():
    dataset = tf.data.Dataset.from_tensor_slices((_images()[:0], _labels()[:0]))
    with pytest.raises(ValueError, match="The tf.data.Dataset is empty"):
        as_dataset(dataset)


def test_tf_dataset_with_negative_labels_is_refused():
    dataset = tf.data.Dataset.from_tensor_slices((_images(), np.array([0, -1, 0, 1])))
    with pytest.raises(ValueError, match="Labels out of range: negative labels"):
        as_dataset(dataset)


# --- image folders ------------------------------------------------------------


def test_empty_folder_asks_for_class_subfolders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"has 0 class subfolder\(s\).*at least two"):
        as_dataset(tmp_path / "empty")


def test_images_without_class_subfolders_ask_for_subfolders(tmp_path):
    _png(tmp_path / "flat" / "a.png")
    _png(tmp_path / "flat" / "b.png")
    with pytest.raises(ValueError, match=r"0 class subfolder\(s\).*one subfolder of images "
                                         "per class"):
        as_dataset(tmp_path / "flat")


def test_folder_one_level_too_high_reports_one_class(tmp_path):
    _two_class_folder(tmp_path / "dataset" / "train")
    with pytest.raises(ValueError, match=r"has 1 class subfolder\(s\)"):
        as_dataset(tmp_path / "dataset")


def test_images_in_nested_subfolders_belong_to_their_class(tmp_path):
    _png(tmp_path / "cat" / "indoor" / "a.png")
    _png(tmp_path / "dog" / "a" / "b" / "c.png")
    _png(tmp_path / "dog" / "d.png")
    paths, labels, names = scan_image_folder(tmp_path)
    assert names == ["cat", "dog"] and labels.tolist() == [0, 1, 1]
    assert _count(as_dataset(tmp_path).train) == 3


def test_zero_byte_image_is_skipped_and_named(tmp_path):
    _two_class_folder(tmp_path)
    (tmp_path / "dog" / "empty.png").write_bytes(b"")
    with pytest.warns(UserWarning, match=r"Skipped 1 file.*empty\.png"):
        paths, _, _ = scan_image_folder(tmp_path)
    assert len(paths) == 2


def test_class_with_only_a_zero_byte_file_is_named(tmp_path):
    _png(tmp_path / "dog" / "0.png")
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "0.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match=r"cat.*has no readable image.*Add images or remove"):
        as_dataset(tmp_path)


def test_class_of_webp_files_only_is_named(tmp_path):
    _png(tmp_path / "cat" / "0.png")
    _png(tmp_path / "dog" / "0.webp", fmt="WEBP")
    with pytest.raises(ValueError, match=r"dog.*has no readable image"):
        as_dataset(tmp_path)


def test_upper_case_extensions_are_read(tmp_path):
    _png(tmp_path / "cat" / "0.PNG", fmt="PNG")
    _png(tmp_path / "dog" / "0.JPG", fmt="JPEG")
    data = as_dataset(tmp_path)
    assert data.class_names == ["cat", "dog"] and _count(data.train) == 2


def test_mixed_image_sizes_ask_for_image_size(tmp_path):
    _png(tmp_path / "cat" / "0.png", (8, 8))
    _png(tmp_path / "dog" / "0.png", (10, 12))
    with pytest.raises(ValueError, match=r"different sizes.*pass image_size=\(height, width\)"):
        as_dataset(tmp_path)
    images, _ = next(iter(as_dataset(tmp_path, image_size=(8, 8)).train))
    assert tuple(images.shape) == (2, 8, 8, 3)


def test_grayscale_and_rgba_files_become_three_channels(tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "dog").mkdir()
    Image.fromarray(np.full((8, 8), 90, np.uint8)).save(tmp_path / "cat" / "gray.png")
    Image.fromarray(np.full((8, 8, 4), 90, np.uint8)).save(tmp_path / "dog" / "rgba.png")
    data = as_dataset(tmp_path, shuffle=False)
    images, _ = next(iter(data.train))
    assert data.image_shape == (8, 8, 3) and tuple(images.shape) == (2, 8, 8, 3)
    np.testing.assert_array_equal(images.numpy(), np.full((2, 8, 8, 3), 90.0))


def test_symlink_loop_in_a_class_folder_neither_hangs_nor_repeats(tmp_path):
    _two_class_folder(tmp_path)
    os.symlink(tmp_path / "dog", tmp_path / "dog" / "loop")
    paths, labels, _ = scan_image_folder(tmp_path)
    assert len(paths) == 2 and labels.tolist() == [0, 1]


def test_unicode_and_space_class_names_are_kept(tmp_path):
    _png(tmp_path / "chat noir" / "0.png")
    _png(tmp_path / "狗" / "0.png")
    assert as_dataset(tmp_path).class_names == ["chat noir", "狗"]


def test_empty_string_as_folder_is_refused():
    with pytest.raises(FileNotFoundError, match="Image folder '' does not exist"):
        as_dataset("")


# --- texts (no model) ---------------------------------------------------------


@pytest.mark.parametrize("item", [None, 5, float("nan"), ["a", "b"]],
                         ids=["None", "int", "nan", "list"])
def test_non_string_text_is_named_with_its_index(item):
    from keras_tl.text import as_text_dataset

    with pytest.raises(ValueError, match=r"1 text\(s\) that are not strings.*index \[1\]"):
        as_text_dataset((["good", item, "fine", "awful"], [1, 0, 1, 0]))


def test_empty_text_list_is_refused():
    from keras_tl.text import as_text_dataset

    with pytest.raises(ValueError, match="empty: no texts"):
        as_text_dataset(([], []))


def test_a_bare_string_is_not_taken_as_texts():
    from keras_tl.text import as_text_dataset

    with pytest.raises(TypeError, match="not a single string"):
        as_text_dataset(("good bad", [1, 0]))


# --- backbones ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["resnet_9000", "", None])
def test_get_spec_of_an_unknown_name_points_to_list_backbones(name):
    with pytest.raises(ValueError, match=r"Unknown backbone.*keras_tl\.list_backbones\(\)"):
        keras_tl.get_spec(name)


def test_build_backbone_of_none_is_a_type_error():
    with pytest.raises(TypeError, match=r"must be a zoo name.*got NoneType"):
        keras_tl.build_backbone(None)


def test_two_number_input_shape_gets_three_channels():
    with pytest.raises(ValueError, match=r"input_shape=\(8, 8, 3\) is too small.*32x32"):
        keras_tl.build_backbone("mobilenet_v2", weights=None, input_shape=(8, 8))
    model = keras_tl.build_backbone("mobilenet_v2", weights=None, input_shape=(32, 32))
    assert model.input_shape == (None, 32, 32, 3)


@pytest.mark.parametrize("shape", [(32, 32, 5), (32, 32, 1), (1, 32, 32, 3)],
                         ids=["5-channels", "1-channel", "4-d"])
def test_input_shape_that_is_not_rgb_is_refused(shape):
    with pytest.raises(ValueError, match=r"takes RGB images of shape \(height, width, 3\)"):
        keras_tl.build_backbone("mobilenet_v2", weights=None, input_shape=shape)


def test_unknown_weights_name_is_read_as_a_missing_file():
    with pytest.raises(FileNotFoundError, match=r"'imagenet21k' does not exist.*"
                                                r"weights='imagenet', weights=None"):
        keras_tl.build_backbone("mobilenet_v2", weights="imagenet21k", input_shape=(32, 32, 3))


def test_unknown_backbone_source_lists_the_sources():
    with pytest.raises(ValueError, match="source must be one of"):
        keras_tl.list_backbones("tfhub")


# --- checkpoints --------------------------------------------------------------


def test_empty_checkpoint_dir_is_refused():
    from keras_tl.checkpoints import TrainingCheckpoint

    with pytest.raises(ValueError, match="checkpoint_dir is empty.*None for no checkpoint"):
        TrainingCheckpoint("")


def test_missing_nested_checkpoint_dir_is_created_and_cleaned(tmp_path):
    from keras_tl.checkpoints import TrainingCheckpoint

    folder = tmp_path / "runs" / "a" / "b"
    model = _cnn()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(_images(), _labels(), epochs=1, verbose=0,
              callbacks=[TrainingCheckpoint(folder)])
    assert folder.is_dir() and os.listdir(folder) == []



def test_one_checkpoint_reused_for_a_second_fit_starts_clean(tmp_path):
    from keras_tl.checkpoints import TrainingCheckpoint

    checkpoint = TrainingCheckpoint(tmp_path / "ckpt")
    model = _cnn()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(_images(), _labels(), epochs=1, verbose=0, callbacks=[checkpoint])
    history = model.fit(_images(), _labels(), epochs=2, verbose=0, callbacks=[checkpoint])
    assert len(history.history["loss"]) == 2
    assert os.listdir(tmp_path / "ckpt") == []

# --- feature caches -----------------------------------------------------------


def _features_model():
    cnn = _cnn()
    return keras.Model(cnn.input, cnn.get_layer("features").output)


def test_cache_path_without_npy_extension_still_round_trips(tmp_path):
    from keras_tl.features import extract

    backbone = _features_model()
    cache = tmp_path / "cache.bin"
    first, labels = extract(backbone, (_images(), _labels()), cache_path=str(cache))
    assert sorted(os.listdir(tmp_path)) == ["cache.bin", "cache.labels.npy"]
    again, labels_again = extract(backbone, (_images(), _labels()), cache_path=str(cache))
    np.testing.assert_array_equal(np.asarray(again), np.asarray(first))
    assert labels_again.tolist() == labels.tolist() == [0, 1, 0, 1]


# --- evaluation and prediction ------------------------------------------------


@pytest.mark.parametrize("keyword", [{"top_k": 0}, {"batch_size": 0}, {"top_k": -1},
                                     {"batch_size": 2.0}, {"top_k": True}],
                         ids=["top_k=0", "batch_size=0", "top_k=-1", "batch_size=2.0",
                              "top_k=True"])
def test_predict_refuses_counts_below_one(keyword):
    name, value = next(iter(keyword.items()))
    with pytest.raises(ValueError, match=f"{name} must be an integer >= 1; got {value!r}"):
        keras_tl.predict(_cnn(), _images(), **keyword)


def test_predict_top_k_above_the_classes_is_refused():
    with pytest.raises(ValueError, match="top_k=3 exceeds the model's 2 classes"):
        keras_tl.predict(_cnn(), _images(), top_k=3)


def test_predict_on_an_uncompiled_model_works():
    model = _cnn()
    labels, scores = keras_tl.predict(model, _images(), top_k=2)
    probabilities = model.predict(_images(), verbose=0)
    assert [row[0] for row in labels] == [str(i) for i in probabilities.argmax(-1)]
    np.testing.assert_allclose(scores, -np.sort(-probabilities, axis=1), atol=1e-6)


def test_predict_names_the_missing_file_among_existing_ones(tmp_path):
    present = _png(tmp_path / "here.png", (16, 16))
    with pytest.raises(FileNotFoundError, match=r"'.*gone\.jpg' does not exist"):
        keras_tl.predict(_cnn(), [str(present), str(tmp_path / "gone.jpg")])


@pytest.mark.parametrize("content", [b"", b"hello, not an image"], ids=["zero-byte", "text"])
def test_predict_names_an_unreadable_image_file(tmp_path, content):
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"Cannot read image '.*broken\.png'"):
        keras_tl.predict(_cnn(), str(path))


@pytest.mark.parametrize("keyword", [{"batch_size": 0}, {"top_k_wrong": -1}],
                         ids=["batch_size=0", "top_k_wrong=-1"])
def test_evaluate_refuses_bad_counts(keyword):
    name = next(iter(keyword))
    with pytest.raises(ValueError, match=f"{name} must be"):
        keras_tl.evaluate(_cnn(), (_images(), _labels()), **keyword)


def test_evaluate_refuses_negative_labels():
    with pytest.raises(ValueError, match=r"Labels must lie in \[0, 2\).*from -1 to 1"):
        keras_tl.evaluate(_cnn(), (_images(), np.array([0, -1, 0, 1])))


def test_evaluate_refuses_more_labels_than_images():
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        keras_tl.evaluate(_cnn(), (_images(), _labels()[:3]))


def test_evaluate_refuses_class_names_of_another_length():
    with pytest.raises(ValueError, match=r"3 class names for a model with 2 outputs"):
        keras_tl.evaluate(_cnn(), (_images(), _labels()), class_names=["a", "b", "c"])


def test_evaluate_of_a_missing_folder_says_it_does_not_exist(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing' does not exist"):
        keras_tl.evaluate(_cnn(), str(tmp_path / "missing"))


def test_evaluate_reads_one_hot_labels_as_their_argmax():
    model = _cnn()
    plain = keras_tl.evaluate(model, (_images(), _labels()))
    one_hot = keras_tl.evaluate(model, (_images(), np.eye(2)[_labels()]))
    assert one_hot.accuracy == plain.accuracy
    assert one_hot.labels.tolist() == [0, 1, 0, 1]



def _named_model(names):
    from keras_tl.heads import ClassNames

    inputs = keras.Input((16, 16, 3))
    return keras.Model(inputs, ClassNames(names)(_cnn()(inputs)))


def _colour_folder(root, classes=("cat", "dog")):
    colours = {"cat": (200, 0, 0), "dog": (0, 200, 0), "fox": (0, 0, 200)}
    for name in classes:
        _png(root / name / "0.png", (16, 16), colours[name])
    return root


def test_evaluate_maps_folders_to_the_models_class_order(tmp_path):
    report = keras_tl.evaluate(_named_model(["dog", "cat"]), str(_colour_folder(tmp_path)))
    assert report.class_names == ["dog", "cat"]
    assert report.labels.tolist() == [1, 0]  # cat/0.png, then dog/0.png
    assert report.support == {"dog": 1, "cat": 1}


def test_evaluate_names_a_folder_that_is_not_a_class_of_the_model(tmp_path):
    folder = _colour_folder(tmp_path, ("cat", "dog", "fox"))
    with pytest.raises(ValueError, match=r"Folders \['fox'\].*are not classes of the model"):
        keras_tl.evaluate(_named_model(["dog", "cat"]), str(folder))


def test_evaluate_of_more_folders_than_outputs_is_refused(tmp_path):
    folder = _colour_folder(tmp_path, ("cat", "dog", "fox"))
    with pytest.raises(ValueError, match=r"3 class names for a model with 2 outputs"):
        keras_tl.evaluate(_cnn(), str(folder))


def test_predict_files_with_a_model_of_free_input_size_is_refused(tmp_path):
    image = _png(tmp_path / "a.png", (16, 16))
    with pytest.raises(ValueError, match="needs a model with a fixed image input size"):
        keras_tl.predict(keras_tl.build_small_cnn((None, None, 3), 2, width=2), [str(image)])

# --- export (LiteRT) ----------------------------------------------------------


@pytest.mark.tensorflow_only
@pytest.mark.parametrize("name", ["model.TFLITE", "model.tflite.bak", ""],
                         ids=["upper-case", "suffix-after", "the-folder"])
def test_export_path_must_end_in_tflite(tmp_path, name):
    with pytest.raises(ValueError, match="must end with '.tflite'"):
        keras_tl.to_tflite(_cnn(), tmp_path / name if name else tmp_path)
    assert os.listdir(tmp_path) == []


@pytest.mark.tensorflow_only
def test_export_quantization_names_are_case_sensitive(tmp_path):
    with pytest.raises(ValueError, match=r"quantization must be one of.*got 'INT8'"):
        keras_tl.to_tflite(_cnn(), tmp_path / "m.tflite", quantization="INT8")


@pytest.mark.tensorflow_only
@pytest.mark.parametrize("shape", [(4, 8, 8, 3), (4, 16, 16, 1)], ids=["size", "channels"])
def test_int8_representative_data_of_another_shape_is_refused(tmp_path, shape):
    with pytest.raises(ValueError, match=r"representative_data samples have shape "
                                         r"\(.*\); the model takes \(16, 16, 3\)"):
        keras_tl.to_tflite(_cnn(), tmp_path / "m.tflite", quantization="int8",
                           representative_data=np.zeros(shape, np.float32))
    assert os.listdir(tmp_path) == []


@pytest.mark.tensorflow_only
def test_check_data_labels_of_another_length_are_refused(tmp_path):
    with pytest.raises(ValueError, match="4 samples but 3 labels. Pass one label per sample"):
        keras_tl.to_tflite(_cnn(), tmp_path / "m.tflite", check_data=(_images(), _labels()[:3]))
    assert os.listdir(tmp_path) == []


@pytest.mark.tensorflow_only
@pytest.mark.slow
def test_second_export_to_the_same_path_replaces_the_first_cleanly(tmp_path):
    model = _cnn()
    path = tmp_path / "m.tflite"
    keras_tl.to_tflite(model, path)
    keras.utils.set_random_seed(1)
    other = _cnn()
    keras_tl.to_tflite(other, path, class_names=["cat", "dog"])
    assert sorted(os.listdir(tmp_path)) == ["m.json", "m.labels.txt", "m.tflite"]
    assert (tmp_path / "m.labels.txt").read_text() == "cat\ndog\n"
    litert = keras_tl.LiteRTModel(path)
    np.testing.assert_allclose(litert.predict(_images()), other.predict(_images(), verbose=0),
                               atol=1e-5)


@pytest.mark.tensorflow_only
def test_export_creates_missing_parent_folders(tmp_path):
    path = tmp_path / "new" / "sub" / "m.tflite"
    report = keras_tl.to_tflite(_cnn(), path)
    assert report.size_bytes == path.stat().st_size
    assert sorted(os.listdir(path.parent)) == ["m.json", "m.labels.txt", "m.tflite"]



@pytest.mark.tensorflow_only
def test_export_of_an_unbuilt_model_says_to_build_it(tmp_path):
    model = keras.Sequential([keras.layers.Dense(2, activation="softmax")])
    with pytest.raises(ValueError, match="has not yet been built"):
        keras_tl.to_tflite(model, tmp_path / "m.tflite")
    assert os.listdir(tmp_path) == []

# --- command line -------------------------------------------------------------


def _cli(capsys, *argv):
    from keras_tl.cli import main

    status = main(list(argv))
    return status, capsys.readouterr().err


@pytest.mark.tensorflow_only
def test_cli_export_of_a_missing_model_file(capsys, tmp_path):
    status, err = _cli(capsys, "export", str(tmp_path / "missing.keras"))
    assert status == 2
    assert "keras-tl export: error:" in err and "missing.keras' does not exist" in err


@pytest.mark.tensorflow_only
def test_cli_export_int8_without_data(capsys, tmp_path):
    _cnn().save(tmp_path / "m.keras")
    status, err = _cli(capsys, "export", str(tmp_path / "m.keras"), "--quantization", "int8")
    assert status == 2 and "int8" in err and "pass --data DIR" in err
    assert os.listdir(tmp_path) == ["m.keras"]


@pytest.mark.tensorflow_only
def test_cli_export_output_not_ending_in_tflite(capsys, tmp_path):
    _cnn().save(tmp_path / "m.keras")
    status, err = _cli(capsys, "export", str(tmp_path / "m.keras"),
                       "--output", str(tmp_path / "m.bin"))
    assert status == 2 and "must end with '.tflite'" in err
    assert os.listdir(tmp_path) == ["m.keras"]


def test_cli_evaluate_on_a_missing_folder(capsys, tmp_path):
    _cnn().save(tmp_path / "m.keras")
    status, err = _cli(capsys, "evaluate", str(tmp_path / "m.keras"), str(tmp_path / "nope"))
    assert status == 2
    assert "keras-tl evaluate: error:" in err and "nope' does not exist" in err


def test_cli_evaluate_with_a_missing_model(capsys, tmp_path):
    _two_class_folder(tmp_path / "data")
    status, err = _cli(capsys, "evaluate", str(tmp_path / "none.keras"), str(tmp_path / "data"))
    assert status == 2 and "none.keras' does not exist" in err


def test_cli_predict_top_k_zero(capsys, tmp_path):
    _cnn().save(tmp_path / "m.keras")
    image = _png(tmp_path / "a.png", (16, 16))
    status, err = _cli(capsys, "predict", str(tmp_path / "m.keras"), str(image), "--top-k", "0")
    assert status == 2 and "top_k must be an integer >= 1; got 0" in err


def test_cli_train_on_a_missing_folder_writes_nothing(capsys, tmp_path):
    out = tmp_path / "m.keras"
    status, err = _cli(capsys, "train", str(tmp_path / "nodata"), "--out", str(out),
                       "--weights", "none", "--image-size", "32")
    assert status == 2 and "nodata' does not exist" in err
    assert os.listdir(tmp_path) == []


def test_cli_train_with_zero_epochs(capsys, tmp_path):
    _two_class_folder(tmp_path / "data")
    status, err = _cli(capsys, "train", str(tmp_path / "data"), "--out",
                       str(tmp_path / "m.keras"), "--weights", "none", "--image-size", "32",
                       "--method", "fine-tune", "--epochs", "0")
    assert status == 2 and "epochs must be an integer >= 1; got 0" in err
    assert os.listdir(tmp_path) == ["data"]


def test_cli_unknown_command_exits_2_with_the_choices(capsys):
    from keras_tl.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["fly"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'fly'" in capsys.readouterr().err


# --- defects these probes found, fixed --------------------------------------


def test_cli_train_with_an_out_that_is_not_keras_returns_status_2(tmp_path, capsys):
    from keras_tl.cli import main

    assert main(["train", str(tmp_path), "--out", str(tmp_path / "m.h5")]) == 2
    assert "keras-tl train: error: --output must end in .keras" in capsys.readouterr().err


@pytest.mark.tensorflow_only
def test_export_to_a_folder_named_tflite_is_refused_and_writes_nothing(tmp_path):
    (tmp_path / "d.tflite").mkdir()
    with pytest.raises(ValueError, match="is a folder"):
        keras_tl.to_tflite(_cnn(), tmp_path / "d.tflite")
    assert os.listdir(tmp_path) == ["d.tflite"]


@pytest.mark.tensorflow_only
def test_export_check_labels_beyond_the_model_classes_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"labels from 0 to 7, and the model has 2 classes"):
        keras_tl.to_tflite(_cnn(), tmp_path / "m.tflite", check_data=(_images(), [0, 1, 0, 7]))
    assert os.listdir(tmp_path) == []


@pytest.mark.tensorflow_only
def test_export_with_zero_check_samples_is_refused(tmp_path):
    with pytest.raises(ValueError, match="num_check_samples must be an integer >= 1"):
        keras_tl.to_tflite(_cnn(), tmp_path / "m.tflite", check_data=(_images(), _labels()),
                           num_check_samples=0)


@pytest.mark.tensorflow_only
def test_export_with_repeated_class_names_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"\['a'\] appear more than once"):
        keras_tl.to_tflite(_cnn(), tmp_path / "m.tflite", class_names=["a", "a"])


@pytest.mark.parametrize("cache", ["missing_folder", "empty", "a_folder"])
def test_extract_with_a_bad_cache_path_names_it(tmp_path, cache):
    from keras_tl.features import extract

    path = {"missing_folder": tmp_path / "nofolder" / "c.npy", "empty": "",
            "a_folder": tmp_path}[cache]
    with pytest.raises(ValueError, match="cache_path"):
        extract(_cnn(), (_images(), _labels()), cache_path=path)
    assert not (tmp_path / "nofolder").exists()


def test_extract_of_a_bare_array_with_a_cache_path_says_why_not(tmp_path):
    from keras_tl.features import extract

    with pytest.raises(ValueError, match="cache_path caches embeddings with their labels"):
        extract(_cnn(), _images(), cache_path=tmp_path / "bare.npy")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("images", [np.zeros((0, 16, 16, 3), "float32")], ids=["empty"])
def test_extract_of_no_images_is_refused(images):
    from keras_tl.features import extract

    with pytest.raises(ValueError, match="empty"):
        extract(_cnn(), images)


def test_extract_with_batch_size_zero_is_refused():
    from keras_tl.features import extract

    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        extract(_cnn(), (_images(), _labels()), batch_size=0)


def test_checkpoint_dir_under_a_file_or_over_a_file_or_none_is_refused(tmp_path):
    from keras_tl.checkpoints import TrainingCheckpoint

    (tmp_path / "f.txt").write_text("mine")
    with pytest.raises(ValueError, match="which is a file"):
        TrainingCheckpoint(tmp_path / "f.txt" / "sub")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keras_tl_checkpoint").write_text("mine too")
    with pytest.raises(ValueError, match="is a file, and keras-tl keeps its checkpoint"):
        TrainingCheckpoint(tmp_path / "run")
    with pytest.raises(TypeError, match="checkpoint_dir must be a folder path"):
        TrainingCheckpoint(None)
    assert (tmp_path / "run" / "keras_tl_checkpoint").read_text() == "mine too"


def test_arrays_without_labels_name_the_labels():
    with pytest.raises(TypeError, match="Labels y must be a sequence"):
        as_dataset((_images(), None))


@pytest.mark.parametrize("images,match", [
    (np.full((1, 16, 16, 3), np.nan, "float32"), "non-finite"),
    (np.zeros((0, 16, 16, 3), "float32"), "array is empty"),
    (np.zeros((2, 8, 8, 3), "float32"), r"shape \(8, 8, 3\) and the model takes \(16, 16, 3\)"),
    (np.zeros((2, 16, 16, 1), "float32"), r"shape \(16, 16, 1\) and the model takes"),
    (np.zeros((1, 2, 16, 16, 3), "float32"), "the model takes"),
    (np.zeros((2, 16, 16, 3), "complex64"), "numeric image array"),
], ids=["nan", "empty", "smaller", "one-channel", "5d", "complex"])
def test_predict_names_images_it_cannot_take_even_after_a_first_predict(images, match):
    model = _cnn()
    keras_tl.predict(model, _images(2))  # a traced predict function must not hide the check
    with pytest.raises((ValueError, TypeError), match=match):
        keras_tl.predict(model, images)


def test_predict_on_a_folder_says_what_to_pass(tmp_path):
    _two_class_folder(tmp_path / "data")
    with pytest.raises(ValueError, match="is a folder; pass image files"):
        keras_tl.predict(_cnn(), str(tmp_path / "data"))


@pytest.mark.parametrize("size", [(0, 8), (8,), "big", (8.5, 8)])
def test_bad_image_size_is_named(size):
    with pytest.raises(ValueError, match=r"image_size must be \(height, width\)"):
        as_dataset((_images(), _labels()), image_size=size)


def test_one_number_image_size_is_a_square():
    assert as_dataset((_images(), _labels()), image_size=8).image_shape == (8, 8, 3)


def test_channels_other_than_one_or_three_are_refused_up_front(tmp_path):
    with pytest.raises(ValueError, match="channels must be 1"):
        as_dataset(str(_two_class_folder(tmp_path / "data")), channels=2)


def test_label_ids_instead_of_class_indices_are_named():
    with pytest.raises(ValueError, match="class indices 0 .. num_classes-1, not ids"):
        as_dataset((_images(), [0, 1, 0, 1_000_000]))


@pytest.mark.parametrize("labels,match", [(["a", "b", "a", "b"], "integer class indices"),
                                          ([0.0, 1.5, 0.0, 1.0], "integer class indices")],
                         ids=["strings", "fractional"])
def test_tf_dataset_labels_that_are_not_indices_are_named(labels, match):
    dataset = tf.data.Dataset.from_tensor_slices((_images(), labels))
    with pytest.raises(ValueError, match=match):
        as_dataset(dataset)


def test_small_cnn_takes_height_and_width_as_grayscale_and_refuses_zero_channels():
    assert keras_tl.build_small_cnn((8, 8), 2, width=2).input_shape == (None, 8, 8, 1)
    with pytest.raises(ValueError, match=r"input_shape must be \(height, width, channels\)"):
        keras_tl.build_small_cnn((16, 16, 0), 2, width=2)
