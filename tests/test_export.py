"""Tests for keras_tl.export: LiteRT export, parity report, text export."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

pytestmark = pytest.mark.tensorflow_only

from keras_tl.export import (
    ExportReport,
    LiteRTModel,
    TFLiteTextClassifier,
    UnsupportedOpsError,
    compare_outputs,
    read_labels,
    text_to_tflite,
    to_tflite,
)
from keras_tl.heads import ClassNames


@pytest.fixture(scope="module")
def digits(mnist_cnn_small):
    from keras_tl.examples.datasets import load_mnist_5k

    x, y = load_mnist_5k()
    # The fixture trained on the first 2,000 of this permutation.
    order = np.random.default_rng(0).permutation(len(x))
    held_out = order[2000:2400]
    return x[order[:300]].astype("float32"), x[held_out].astype("float32"), y[held_out]


def _files(folder):
    return sorted(name for name in os.listdir(folder))


def test_float32_export_matches_keras_and_writes_labels(mnist_cnn_small, digits, tmp_path):
    _, x_val, y_val = digits
    path = tmp_path / "cnn.tflite"
    report = to_tflite(mnist_cnn_small, path, check_data=(x_val, y_val))
    assert isinstance(report, ExportReport)
    assert os.path.getsize(path) == report.size_bytes
    assert report.size_ratio == 1.0
    assert report.num_checked == len(x_val)
    assert report.max_abs_diff < 1e-4
    assert report.top1_agreement == 1.0
    assert report.accuracy == pytest.approx(report.keras_accuracy)
    assert report.keras_accuracy > 0.5  # a trained model, not chance
    assert report.latency_ms > 0 and report.float32_latency_ms > 0
    assert read_labels(path) == [str(i) for i in range(10)]
    assert "top-1 agreement" in str(report)
    # No temporary left; the labels and the report are named after the file.
    assert _files(tmp_path) == ["cnn.json", "cnn.labels.txt", "cnn.tflite"]


def test_int8_export_is_small_and_agrees(mnist_cnn_small, digits, tmp_path):
    # Every op int8; test_export_int8.py keeps ops in float for min_agreement.
    x_train, x_val, y_val = digits
    report = to_tflite(mnist_cnn_small, tmp_path / "int8.tflite", quantization="int8",
                       representative_data=x_train, check_data=(x_val, y_val),
                       min_agreement=None)
    assert report.size_ratio < 0.35
    # How many near-tie answers int8 flips depends on the weights trained on
    # this CPU (0.980 to 0.99 measured); a broken quantization lands near
    # chance (0.1), so the bound sits far from both.
    assert report.top1_agreement >= 0.9
    assert abs(report.accuracy_drop) <= 10.0
    litert = LiteRTModel(report.path)
    details = litert.input_details[litert.input_names[0]]
    assert details["dtype"] == np.float32  # float I/O by default


@pytest.mark.slow
def test_int8_integer_io_is_quantized_by_the_runner(mnist_cnn_small, digits, tmp_path):
    x_train, x_val, y_val = digits
    report = to_tflite(mnist_cnn_small, tmp_path / "u8.tflite", quantization="int8",
                       io_dtype="uint8", representative_data=tf.data.Dataset.from_tensor_slices(
                           (x_train, np.zeros(len(x_train), np.int32))).batch(50),
                       check_data=(x_val, y_val), min_agreement=None)
    litert = LiteRTModel(report.path)
    assert litert.input_details[litert.input_names[0]]["dtype"] == np.uint8
    assert report.top1_agreement >= 0.9  # see test_int8_export_is_small_and_agrees


@pytest.mark.slow
def test_float16_and_dynamic(mnist_cnn_small, digits, tmp_path):
    _, x_val, y_val = digits
    half = to_tflite(mnist_cnn_small, tmp_path / "f16.tflite", quantization="float16",
                     check_data=(x_val, y_val))
    assert half.size_ratio < 0.6
    assert half.top1_agreement >= 0.99
    dynamic = to_tflite(mnist_cnn_small, tmp_path / "dyn.tflite", quantization="dynamic",
                        check_data=x_val)
    assert dynamic.size_ratio < 0.6
    assert dynamic.accuracy is None  # no labels given
    assert dynamic.top1_agreement >= 0.9


def test_class_names_come_from_the_model(tmp_path):
    inputs = keras.Input((4,))
    outputs = ClassNames(["cat", "dog"])(keras.layers.Dense(2, activation="softmax")(inputs))
    model = keras.Model(inputs, outputs)
    to_tflite(model, tmp_path / "m.tflite")
    assert read_labels(tmp_path / "m.labels.txt") == ["cat", "dog"]
    to_tflite(model, tmp_path / "n.tflite", class_names=["a", "b"])
    assert read_labels(tmp_path / "n.tflite") == ["a", "b"]


def test_bad_options_raise_clear_errors(mnist_cnn_small, tmp_path):
    with pytest.raises(ValueError, match="representative_data"):
        to_tflite(mnist_cnn_small, tmp_path / "a.tflite", quantization="int8")
    with pytest.raises(ValueError, match="end with '.tflite'"):
        to_tflite(mnist_cnn_small, tmp_path / "a.lite")
    with pytest.raises(ValueError, match="quantization must be one of"):
        to_tflite(mnist_cnn_small, tmp_path / "a.tflite", quantization="int4")
    with pytest.raises(ValueError, match="needs quantization='int8'"):
        to_tflite(mnist_cnn_small, tmp_path / "a.tflite", io_dtype="uint8")
    assert os.listdir(tmp_path) == []


class _Determinant(keras.layers.Layer):
    """A layer on an op TFLite's builtins lack (MatrixDeterminant)."""

    def call(self, inputs):
        return tf.linalg.det(inputs)


def test_unsupported_op_names_the_op_and_leaves_no_file(tmp_path):
    inputs = keras.Input((3, 3))
    model = keras.Model(inputs, _Determinant(name="determinant")(inputs))
    path = tmp_path / "det.tflite"
    path.write_bytes(b"an older export")  # must survive a failed conversion
    with pytest.raises(UnsupportedOpsError, match="SELECT_TF_OPS") as error:
        to_tflite(model, path)
    assert error.value.ops == ["MatrixDeterminant"]
    assert "MatrixDeterminant" in str(error.value)
    assert "allow_select_tf_ops" in str(error.value)
    assert _files(tmp_path) == ["det.tflite"]
    assert path.read_bytes() == b"an older export"


def test_compare_outputs():
    reference = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], np.float32)
    outputs = np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6]], np.float32)
    result = compare_outputs(outputs, reference, labels=[0, 1, 1])
    assert result["top1_agreement"] == pytest.approx(2 / 3)
    assert result["max_abs_diff"] == pytest.approx(0.2)
    assert result["accuracy"] == 1.0 and result["keras_accuracy"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="do not match"):
        compare_outputs(outputs[:, :1], reference)


VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + (
    "the a good bad movie film great awful was is not very i it this plot acting"
).split()
SENTENCES = ["the movie was good", "awful plot", "i did not like it",
             "very very great film", "bad acting", "this film is great",
             "the plot was awful", "not a good movie"]


@pytest.fixture(scope="module")
def tiny_bert():
    import keras_hub

    keras.utils.set_random_seed(1)
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=VOCABULARY, lowercase=True)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=12)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(VOCABULARY), num_layers=1, num_heads=2, hidden_dim=16,
        intermediate_dim=32, max_sequence_length=12,
    )
    return keras_hub.models.BertTextClassifier(backbone, 2, preprocessor=preprocessor)


@pytest.mark.slow
def test_text_export_round_trip_from_raw_strings(tiny_bert, tmp_path):
    labels = [1, 0, 0, 1, 0, 1, 0, 0]
    path = tmp_path / "text.tflite"
    # `to_tflite` takes text classifiers as well as image ones.
    report = to_tflite(tiny_bert, path, check_data=(SENTENCES, labels),
                       class_names=["negative", "positive"])
    assert report.top1_agreement == 1.0
    assert report.max_abs_diff < 1e-4
    assert {"text.tflite", "text.labels.txt", "text.json", "text.vocab.txt",
            "text.tokenizer"} <= set(os.listdir(tmp_path))
    litert = LiteRTModel(path)
    assert sorted(litert.input_names) == ["padding_mask", "segment_ids", "token_ids"]
    assert all(litert.input_details[n]["dtype"] == np.int32 for n in litert.input_names)
    with open(tmp_path / "text.vocab.txt", encoding="utf-8") as f:
        assert f.read().split() == VOCABULARY

    classifier = TFLiteTextClassifier.load(path)
    np.testing.assert_allclose(
        classifier.predict(SENTENCES), tiny_bert.predict(SENTENCES, verbose=0), atol=1e-4
    )
    names = classifier.predict_labels(SENTENCES[:2])
    assert set(names) <= {"negative", "positive"}


def test_to_tflite_refuses_image_options_for_a_text_model(tiny_bert, tmp_path):
    with pytest.raises(ValueError, match=r"\['grayscale_input', 'io_dtype'\] apply to image"):
        to_tflite(tiny_bert, tmp_path / "t.tflite", io_dtype="uint8", grayscale_input="gray")
    assert os.listdir(tmp_path) == []


def test_text_int8_needs_texts(tiny_bert, tmp_path):
    with pytest.raises(ValueError, match="representative_data"):
        text_to_tflite(tiny_bert, tmp_path / "t.tflite", quantization="int8")
    assert os.listdir(tmp_path) == []
