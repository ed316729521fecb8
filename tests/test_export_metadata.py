"""Exports with TFLite Metadata, run in MediaPipe Tasks like on a phone.

Each file is classified by `mediapipe.tasks.python.vision.ImageClassifier`
(or `text.TextClassifier`) from raw pixels (or raw strings) and compared with
the Keras model it came from. Also: grayscale models behind an RGB input,
exports that fail without touching earlier files, and file permissions.
"""

import json
import os
import stat
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

# One worker runs the whole file, so its trained models (module fixtures)
# are built once per run, not once per worker.
pytestmark = [pytest.mark.tensorflow_only, pytest.mark.xdist_group("export_metadata")]

mediapipe = pytest.importorskip("mediapipe")

from keras_tl.export import (  # noqa: E402
    GRAYSCALE_WEIGHTS,
    LiteRTModel,
    populate_image_classifier_metadata,
    read_associated_files,
    read_labels,
    read_metadata,
    text_to_tflite,
    to_tflite,
)
from keras_tl.export.metadata import _min_parser_version  # noqa: E402

DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


@pytest.fixture(scope="module")
def rgb_digits():
    """A small RGB CNN trained on scikit-learn's digits (about 6 s).

    Returns the model, 300 calibration images and the 397 held-out images
    with their labels; images are uint8-valued floats in [0, 255].
    """
    from keras_tl.domain_adaptation import adabn
    from keras_tl.backbones import build_small_cnn
    from keras_tl.examples.datasets import load_digits_target

    x, y = load_digits_target()
    x = np.repeat(x, 3, axis=-1).astype("float32")
    order = np.random.default_rng(0).permutation(len(x))
    train, held_out = order[:1400], order[1400:]
    keras.utils.set_random_seed(0)
    model = build_small_cnn((28, 28, 3), 10, width=16, name="rgb_digits")
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[train], y[train], batch_size=32, epochs=4, verbose=0)
    # Moving BatchNorm statistics from the training images (see the
    # mnist_cnn_small fixture): inference mode then matches training.
    adabn(model, x[train])
    return model, x[train[:300]], x[held_out], y[held_out]


def _mediapipe_image_scores(path, images, num_classes):
    """Scores `(n, num_classes)` and the category names MediaPipe returns."""
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.ImageClassifierOptions(
        base_options=BaseOptions(model_asset_path=str(path)), max_results=num_classes,
    )
    scores = np.zeros((len(images), num_classes), np.float32)
    names = {}
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for i, image in enumerate(images):
            pixels = np.ascontiguousarray(np.clip(np.round(image), 0, 255).astype(np.uint8))
            result = classifier.classify(
                mediapipe.Image(image_format=mediapipe.ImageFormat.SRGB, data=pixels)
            )
            for category in result.classifications[0].categories:
                scores[i, category.index] = category.score
                names[category.index] = category.category_name
    return scores, [names[i] for i in sorted(names)]


# `make test-fast` runs the full-int8 variant, the one with calibration.
_SLOW = pytest.mark.slow
VARIANTS = [
    # quantization, io_dtype, lowest top-1 agreement with Keras
    pytest.param(None, "float32", 0.99, marks=_SLOW),
    pytest.param("float16", "float32", 0.99, marks=_SLOW),
    pytest.param("dynamic", "float32", 0.97, marks=_SLOW),
    ("int8", "float32", 0.97),
    pytest.param("int8", "uint8", 0.97, marks=_SLOW),
]


@pytest.mark.parametrize("quantization,io_dtype,min_agreement", VARIANTS)
def test_mediapipe_image_classifier_agrees_with_keras(rgb_digits, tmp_path, quantization,
                                                      io_dtype, min_agreement):
    model, x_calibration, x_val, y_val = rgb_digits
    path = tmp_path / "digits.tflite"
    report = to_tflite(model, path, quantization=quantization, io_dtype=io_dtype,
                       representative_data=x_calibration, check_data=(x_val, y_val),
                       class_names=DIGIT_NAMES)
    assert report.metadata == "image_classifier"

    scores, names = _mediapipe_image_scores(path, x_val, 10)
    keras_scores = model.predict(x_val, verbose=0)
    agreement = np.mean(scores.argmax(-1) == keras_scores.argmax(-1))
    assert agreement >= min_agreement
    assert names == DIGIT_NAMES  # from the labels packed in the file
    # MediaPipe runs the same file as the LiteRT check: the same scores.
    np.testing.assert_allclose(scores, LiteRTModel(path).predict(x_val), atol=2e-3)
    assert agreement == pytest.approx(report.top1_agreement, abs=0.005)
    if quantization is None:
        np.testing.assert_allclose(scores, keras_scores, atol=1e-4)


def test_image_metadata_describes_the_file(rgb_digits, tmp_path):
    model = rgb_digits[0]
    path = tmp_path / "digits.tflite"
    to_tflite(model, path, class_names=DIGIT_NAMES, normalization=(127.5, 127.5))
    metadata = read_metadata(path)
    assert metadata["min_parser_version"] == "1.0.0"
    assert metadata["name"] == "rgb_digits"
    (subgraph,) = metadata["subgraph_metadata"]
    (image,) = subgraph["input_tensor_metadata"]
    assert image["content"]["content_properties_type"] == "ImageProperties"
    assert image["content"]["content_properties"]["color_space"] == "RGB"
    (unit,) = image["process_units"]
    assert unit["options_type"] == "NormalizationOptions"
    assert unit["options"]["mean"] == [127.5] and unit["options"]["std"] == [127.5]
    assert image["stats"]["min"] == [-1.0] and image["stats"]["max"] == [1.0]
    (score,) = subgraph["output_tensor_metadata"]
    (labels,) = score["associated_files"]
    assert labels["type"] == "TENSOR_AXIS_LABELS"
    packed = read_associated_files(path)
    assert packed[labels["name"]].decode().split() == DIGIT_NAMES
    assert read_labels(path) == DIGIT_NAMES
    os.remove(tmp_path / "digits.labels.txt")
    assert read_labels(path) == DIGIT_NAMES  # from inside the file
    (tmp_path / "labels.txt").write_text("a\nb\n")  # an older export's shared file
    assert read_labels(path) == ["a", "b"]
    # Other runtimes read the file as an ordinary model.
    np.testing.assert_allclose(LiteRTModel(path).predict(rgb_digits[2][:8]),
                               model.predict(rgb_digits[2][:8], verbose=0), atol=1e-4)


def test_metadata_false_gives_a_bare_file_mediapipe_refuses(rgb_digits, tmp_path):
    from mediapipe.tasks.python import BaseOptions, vision

    model = rgb_digits[0]
    bare = to_tflite(model, tmp_path / "bare.tflite", metadata=False)
    full = to_tflite(model, tmp_path / "full.tflite")
    assert bare.metadata is None and read_metadata(bare.path) is None
    assert read_associated_files(bare.path) == {}
    assert full.size_bytes > bare.size_bytes
    options = vision.ImageClassifierOptions(
        base_options=BaseOptions(model_asset_path=bare.path))
    # mediapipe 1.2.3 raises FileNotFoundError here; the message is what counts.
    with pytest.raises(Exception, match="NormalizationOptions"):
        vision.ImageClassifier.create_from_options(options)


def test_populating_twice_replaces_metadata_and_keeps_weights_aligned(rgb_digits, tmp_path):
    from mediapipe.tasks.metadata import schema_py_generated as model_fb

    report = to_tflite(rgb_digits[0], tmp_path / "a.tflite", metadata=False)
    with open(report.path, "rb") as f:
        bare = f.read()
    once = populate_image_classifier_metadata(bare, DIGIT_NAMES)
    twice = populate_image_classifier_metadata(once, [name.upper() for name in DIGIT_NAMES])
    assert read_associated_files(twice)["labels.txt"].decode().split()[0] == "ZERO"
    assert len(read_associated_files(twice)) == 1
    assert len(twice) == len(once)  # replaced, not appended
    model = model_fb.Model.GetRootAs(twice, 0)
    names = [model.Metadata(i).Name() for i in range(model.MetadataLength())]
    assert names.count(b"TFLITE_METADATA") == 1
    # Weight buffers start on 16-byte boundaries, as the converter wrote them.
    start = np.frombuffer(twice, np.uint8).__array_interface__["data"][0]
    for i in range(model.BuffersLength()):
        data = model.Buffers(i).DataAsNumpy()
        if isinstance(data, np.ndarray) and data.size >= 16:
            assert (data.__array_interface__["data"][0] - start) % 16 == 0


def test_min_parser_version_follows_the_members_used():
    from mediapipe.tasks.metadata import metadata_schema_py_generated as metadata_fb

    metadata = metadata_fb.ModelMetadataT()
    subgraph = metadata_fb.SubGraphMetadataT()
    metadata.subgraphMetadata = [subgraph]
    assert _min_parser_version(metadata, metadata_fb) == "1.0.0"
    vocabulary = metadata_fb.AssociatedFileT()
    vocabulary.type = metadata_fb.AssociatedFileType.VOCABULARY
    subgraph.associatedFiles = [vocabulary]
    assert _min_parser_version(metadata, metadata_fb) == "1.0.1"
    tokenizer = metadata_fb.ProcessUnitT()
    tokenizer.optionsType = metadata_fb.ProcessUnitOptions.RegexTokenizerOptions
    subgraph.inputProcessUnits = [tokenizer]
    assert _min_parser_version(metadata, metadata_fb) == "1.2.1"
    subgraph.customMetadata = []
    assert _min_parser_version(metadata, metadata_fb) == "1.5.0"


@pytest.fixture(scope="module")
def gray_digits(mnist_cnn_small):
    from keras_tl.examples.datasets import load_mnist_5k

    x, y = load_mnist_5k()
    # The fixture trained on the first 2,000 of this permutation.
    held_out = np.random.default_rng(0).permutation(len(x))[2000:2300]
    return x[held_out].astype("float32"), y[held_out]


def test_grayscale_model_takes_rgb_in_mediapipe(mnist_cnn_small, gray_digits, tmp_path):
    x_gray, y = gray_digits
    path = tmp_path / "gray.tflite"
    report = to_tflite(mnist_cnn_small, path, check_data=(x_gray, y))
    assert report.input_channels == 3
    litert = LiteRTModel(path)
    assert tuple(litert.input_details[litert.input_names[0]]["shape"]) == (1, 28, 28, 3)
    assert report.top1_agreement == 1.0  # gray repeated to RGB gives back gray

    keras_scores = mnist_cnn_small.predict(x_gray, verbose=0)
    scores, _ = _mediapipe_image_scores(path, np.repeat(x_gray, 3, axis=-1), 10)
    assert np.mean(scores.argmax(-1) == keras_scores.argmax(-1)) >= 0.99
    np.testing.assert_allclose(scores, keras_scores, atol=1e-4)

    # A colour image is converted with the BT.601 weights, as
    # tf.image.rgb_to_grayscale does: three different digits as R, G, B.
    colour = np.concatenate([x_gray[:50], x_gray[50:100], x_gray[100:150]], axis=-1)
    expected = mnist_cnn_small.predict(tf.image.rgb_to_grayscale(colour).numpy(), verbose=0)
    # Float rounding of the weighted sum (up to ~0.03 of a grey level) moves
    # scores by up to ~3e-4; other weights move grey levels by tens.
    np.testing.assert_allclose(litert.predict(colour), expected, atol=1e-3)
    assert np.all(litert.predict(colour).argmax(-1) == expected.argmax(-1))
    assert GRAYSCALE_WEIGHTS == (0.299, 0.587, 0.114)


def test_grayscale_input_keep_warns_for_mediapipe(mnist_cnn_small, tmp_path):
    with pytest.warns(UserWarning, match="3 or 4 channels"):
        report = to_tflite(mnist_cnn_small, tmp_path / "one.tflite", grayscale_input="keep")
    litert = LiteRTModel(report.path)
    assert litert.input_details[litert.input_names[0]]["shape"][-1] == 1
    assert report.input_channels == 1
    with pytest.raises(ValueError, match="grayscale_input must be one of"):
        to_tflite(mnist_cnn_small, tmp_path / "x.tflite", grayscale_input="gray")


def _snapshot(folder):
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


@pytest.mark.slow
def test_failed_export_leaves_the_previous_export_byte_identical(rgb_digits, tmp_path,
                                                                 monkeypatch):
    model, x_calibration, x_val, y_val = rgb_digits
    path = tmp_path / "digits.tflite"
    to_tflite(model, path, class_names=DIGIT_NAMES, check_data=(x_val[:50], y_val[:50]))
    before = _snapshot(tmp_path)
    assert sorted(before) == ["digits.json", "digits.labels.txt", "digits.tflite"]

    # Fails in the checks before conversion ...
    with pytest.raises(ValueError, match="3 class names for a model with 10 outputs"):
        to_tflite(model, path, class_names=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"check_data samples have shape \(20, 20, 3\)"):
        to_tflite(model, path, check_data=x_val[:, :20, :20])

    # ... after conversion, in the LiteRT check ...
    def crash(*args, **kwargs):
        raise RuntimeError("interpreter crashed")

    monkeypatch.setattr("keras_tl.export.image.fill_parity", crash)
    with pytest.raises(RuntimeError, match="interpreter crashed"):
        to_tflite(model, path, quantization="int8", representative_data=x_calibration,
                  check_data=x_val[:20])
    monkeypatch.undo()

    # ... and while writing: the disk fills up at the third file.
    flushed = []
    fsync = os.fsync

    def fsync_until_full(descriptor):
        flushed.append(descriptor)
        if len(flushed) == 3:
            raise OSError(28, "No space left on device")
        fsync(descriptor)

    monkeypatch.setattr(os, "fsync", fsync_until_full)
    with pytest.raises(OSError, match="No space left"):
        to_tflite(model, path, quantization="float16", class_names=DIGIT_NAMES)
    monkeypatch.undo()
    assert _snapshot(tmp_path) == before  # same names, same bytes, no temporaries


def test_export_files_follow_the_umask_and_report_is_json(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    x = np.random.default_rng(0).normal(size=(20, 4)).astype("float32")
    previous = os.umask(0o022)
    try:
        report = to_tflite(model, tmp_path / "m.tflite", check_data=x)
        os.umask(0o027)
        other = to_tflite(model, tmp_path / "n.tflite")
    finally:
        os.umask(previous)
    for name in ("m.tflite", "m.labels.txt", "m.json"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o644
    for name in ("n.tflite", "n.labels.txt", "n.json"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o640
    assert report.metadata is None and other.metadata is None  # not an image model
    with open(report.report_path, encoding="utf-8") as f:
        saved = json.load(f)
    assert saved == json.loads(json.dumps(report.to_dict()))
    assert saved["top1_agreement"] == 1.0 and saved["labels_path"].endswith("m.labels.txt")
    with pytest.raises(ValueError, match="metadata=True needs an image classifier"):
        to_tflite(model, tmp_path / "o.tflite", metadata=True)
    assert not (tmp_path / "o.tflite").exists()


TEXT_VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ",", "!", "."] + (
    "the a good bad movie film great awful was is not very i it this plot acting"
).split()
TEXT_SENTENCES = ["the movie was good", "Awful plot!", "i did NOT like it.",
                  "very, very great film", "bad acting", "This film is great",
                  "the plot was awful", "not a good movie", "a b c unknown words"]


@pytest.fixture(scope="module")
def small_bert():
    """A one-layer BERT classifier fitted for a few steps on the sentences."""
    import keras_hub

    keras.utils.set_random_seed(1)
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=TEXT_VOCABULARY, lowercase=True)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=12)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(TEXT_VOCABULARY), num_layers=1, num_heads=2, hidden_dim=16,
        intermediate_dim=32, max_sequence_length=12,
    )
    classifier = keras_hub.models.BertTextClassifier(backbone, 2, preprocessor=preprocessor)
    labels = np.array([1, 0, 0, 1, 0, 1, 0, 0, 0])
    classifier.fit(TEXT_SENTENCES, labels, batch_size=9, epochs=3, verbose=0)
    return classifier


@pytest.mark.slow
def test_mediapipe_text_classifier_agrees_with_keras_on_raw_strings(small_bert, tmp_path):
    from mediapipe.tasks.python import BaseOptions, text

    path = tmp_path / "text.tflite"
    report = text_to_tflite(small_bert, path, class_names=["negative", "positive"],
                            check_data=TEXT_SENTENCES)
    assert report.metadata == "text_classifier"
    metadata = read_metadata(path)
    assert metadata["min_parser_version"] == "1.1.0"  # BERT tokenizer process unit
    (subgraph,) = metadata["subgraph_metadata"]
    assert sorted(t["name"] for t in subgraph["input_tensor_metadata"]) == [
        "ids", "mask", "segment_ids"]
    assert read_associated_files(path)["vocab.txt"].decode().split() == TEXT_VOCABULARY

    options = text.TextClassifierOptions(base_options=BaseOptions(model_asset_path=str(path)))
    scores = np.zeros((len(TEXT_SENTENCES), 2), np.float32)
    with text.TextClassifier.create_from_options(options) as classifier:
        for i, sentence in enumerate(TEXT_SENTENCES):
            for category in classifier.classify(sentence).classifications[0].categories:
                scores[i, category.index] = category.score
                assert category.category_name in ("negative", "positive")
    keras_scores = small_bert.predict(TEXT_SENTENCES, verbose=0)
    # The same token ids reach the same network: the same scores.
    np.testing.assert_allclose(scores, keras_scores, atol=1e-4)
    assert np.all(scores.argmax(-1) == keras_scores.argmax(-1))


@pytest.mark.slow
def test_pixel_range_mismatches_are_reported(rgb_digits, tmp_path):
    model, x_calibration, x_val, _ = rgb_digits
    # Images in [0, 1] for a model that scales [0, 255] pixels itself.
    with pytest.warns(UserWarning, match=r"look like \[0, 1\] floats.*takes pixels in \[0, 255\]"):
        to_tflite(model, tmp_path / "unit.tflite", check_data=x_val[:20] / 255.0)
    # A model without its own scaling: MediaPipe's normalization is the issue.
    inputs = keras.Input(model.input_shape[1:])
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    bare = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(pooled))
    with pytest.warns(UserWarning, match=r"normalization=\(0, 255\)"):
        to_tflite(bare, tmp_path / "bare.tflite", check_data=x_val[:20] / 255.0)
    # Calibration images that never reach 255: the uint8 input's scale is
    # not 1, so the raw pixels MediaPipe copies in would be misread.
    with pytest.warns(UserWarning, match="MediaPipe feeds raw pixels"):
        report = to_tflite(model, tmp_path / "dim.tflite", quantization="int8",
                           io_dtype="uint8", representative_data=x_calibration * 0.5)
    litert = LiteRTModel(report.path)
    scale, _ = litert.input_details[litert.input_names[0]]["quantization"]
    assert scale < 0.9


@pytest.mark.slow
def test_two_identical_exports_are_identical_byte_for_byte(rgb_digits, tmp_path):
    # The labels packed inside the file carry no time stamp.
    model = rgb_digits[0]
    first = to_tflite(model, tmp_path / "a.tflite", class_names=DIGIT_NAMES)
    time.sleep(2)  # zip time stamps have a resolution of two seconds
    to_tflite(model, tmp_path / "b.tflite", class_names=DIGIT_NAMES)
    assert first.metadata == "image_classifier"
    assert (tmp_path / "a.tflite").read_bytes() == (tmp_path / "b.tflite").read_bytes()
