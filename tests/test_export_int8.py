"""Tests for selective int8: `to_tflite(quantization="int8", min_agreement=...)`
and `keras_tl.export.selective`."""

import json
import os

import keras
import numpy as np
import pytest

pytestmark = pytest.mark.tensorflow_only

from keras_tl.export import LiteRTModel
from keras_tl.export import quantize_selectively
from keras_tl.export import read_labels
from keras_tl.export import read_metadata
from keras_tl.export import to_tflite
from keras_tl.export.selective import _describe
from keras_tl.export.selective import _layer_names

# The selective search's target. The model below misses it in full int8 by
# construction, and meets it with two named layers in float, on any CPU.
TARGET = 0.99
NUM_CLASSES = 10
SIDE = 28


def _fragile_int8_model():
    """A 28x28 grayscale classifier that full int8 breaks and two float layers
    fix, whatever the CPU's arithmetic.

    `templates` matches each image against ten random binary patterns: the
    images are those patterns with a few pixels flipped, so the true class
    leads the next one by about 1.9 logits in a range of about 2.2, far more
    than int8 rounding moves them. `spread` copies the ten logits and adds
    an eleventh output of 10,000 that `gather` ignores: full int8 gives
    that tensor a step of about 39, every logit rounds to the same level and
    the file answers class 0 for every image. Kept in float, `spread` and
    `gather` give back the float answers.
    """
    rng = np.random.default_rng(0)
    patterns = rng.integers(0, 2, size=(NUM_CLASSES, SIDE * SIDE)).astype("float32")
    inputs = keras.Input((SIDE, SIDE, 1), name="image")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Flatten()(x)
    templates = keras.layers.Dense(NUM_CLASSES, name="templates")
    spread = keras.layers.Dense(NUM_CLASSES + 1, name="spread")
    gather = keras.layers.Dense(NUM_CLASSES, name="gather")
    outputs = keras.layers.Softmax()(gather(spread(templates(x))))
    model = keras.Model(inputs, outputs, name="fragile_int8")
    templates.set_weights([((patterns - 0.5) / 100).T, np.zeros(NUM_CLASSES, "float32")])
    spread.set_weights([np.eye(NUM_CLASSES, NUM_CLASSES + 1, dtype="float32"),
                        np.r_[np.zeros(NUM_CLASSES), 1e4].astype("float32")])
    gather.set_weights([np.eye(NUM_CLASSES + 1, NUM_CLASSES, dtype="float32"),
                        np.zeros(NUM_CLASSES, "float32")])

    def images(count):
        labels = rng.integers(0, NUM_CLASSES, size=count)
        flipped = rng.random((count, SIDE * SIDE)) < 0.05
        pixels = np.abs(patterns[labels] - flipped) * 255
        return pixels.reshape(count, SIDE, SIDE, 1).astype("float32"), labels

    return model, images(300)[0], images(400)


@pytest.fixture(scope="module")
def fragile():
    """The model, its calibration images and its held-out (images, labels)."""
    return _fragile_int8_model()


def test_the_fragile_model_is_what_its_tests_need(fragile):
    # The preconditions of the selective tests, checked in Keras: the float
    # model answers every held-out image right by a wide margin.
    model, _, (x_val, y_val) = fragile
    scores = model.predict(x_val, verbose=0)
    assert np.all(scores.argmax(-1) == y_val)
    top2 = np.sort(scores, -1)[:, -2:]
    assert np.all(top2[:, 1] > 3 * top2[:, 0])


@pytest.fixture(scope="module")
def digits(mnist_cnn_small):
    from keras_tl.examples.datasets import load_mnist_5k

    x, y = load_mnist_5k()
    # The fixture trained on the first 2,000 of this permutation.
    order = np.random.default_rng(0).permutation(len(x))
    held_out = order[2000:2400]
    return x[order[:300]].astype("float32"), x[held_out].astype("float32"), y[held_out]


@pytest.fixture(scope="module")
def full_int8(fragile, tmp_path_factory):
    """The full-int8 export (`min_agreement=None`) of the fragile model."""
    model, x_train, (x_val, y_val) = fragile
    path = tmp_path_factory.mktemp("full") / "fragile.tflite"
    return to_tflite(model, path, quantization="int8", min_agreement=None,
                     representative_data=x_train, check_data=(x_val, y_val))


@pytest.mark.slow
def test_selective_int8_meets_the_target_with_named_float_layers(
        fragile, full_int8, tmp_path, monkeypatch):
    from keras_tl.export import convert

    model, x_train, (x_val, y_val) = fragile
    full = full_int8
    # The case this exists for: full int8 loses more answers than allowed.
    assert full.top1_agreement < TARGET

    written = []
    write = convert._write_saved_model
    monkeypatch.setattr(convert, "_write_saved_model",
                        lambda *args: written.append(args[1]) or write(*args))
    path = tmp_path / "fragile.tflite"
    report = to_tflite(model, path, quantization="int8", min_agreement=TARGET,
                       representative_data=x_train, check_data=(x_val, y_val))
    assert full.top1_agreement < 0.5
    # Half the check samples chose the float layers; the other half, held
    # out, measures the file.
    assert report.selection_data == "half of check_data"
    assert report.checked_on == "held-out half of check_data"
    assert report.num_checked == len(x_val) // 2
    assert report.selection_agreement >= TARGET and report.top1_agreement >= TARGET
    assert "held-out half of check_data" in str(report)
    assert report.min_agreement == TARGET
    assert report.full_int8_agreement < 0.5
    # The layers kept in float are named after the model's layers (fused
    # ops join theirs with "+"), and cost a little size, far from float32.
    assert report.float_layers
    known = set(_layer_names(model)) | {"rgb_to_grayscale"}
    named = [part for layers in report.float_layers if " (" not in layers
             for part in layers.split("+")]
    assert named and set(named) <= known
    assert {"spread", "gather"} <= set(named)
    assert report.full_int8_size_bytes == full.size_bytes
    # Three conversions (int8, its float32 reference, the calibration of the
    # search) read one SavedModel, written once and removed after.
    assert len(written) == 1 and not os.path.exists(written[0])
    assert full.size_bytes < report.size_bytes < 0.5 * report.float32_size_bytes
    assert report.full_int8_size_ratio == pytest.approx(full.size_ratio)
    assert "kept in float" in str(report)
    # The final file keeps its metadata, labels and float I/O.
    assert read_metadata(path)["name"] == model.name
    assert read_labels(path) == [str(i) for i in range(10)]
    litert = LiteRTModel(path)
    assert litert.input_details[litert.input_names[0]]["dtype"] == np.float32
    with open(tmp_path / "fragile.json", encoding="utf-8") as f:
        saved = json.load(f)
    assert saved["float_layers"] == report.float_layers
    assert saved["min_agreement"] == TARGET
    assert saved["full_int8_size_ratio"] == pytest.approx(report.full_int8_size_ratio)


@pytest.mark.slow
def test_min_agreement_none_or_zero_keeps_full_int8(fragile, full_int8,
                                                     tmp_path):
    model, x_train, _ = fragile
    full = full_int8
    assert full.float_layers == []
    assert full.min_agreement is None and full.full_int8_size_bytes is None

    def export(name, min_agreement):
        # Bare files: the metadata's packed labels carry the time of writing.
        report = to_tflite(model, tmp_path / f"{name}.tflite", quantization="int8",
                           min_agreement=min_agreement, representative_data=x_train,
                           metadata=False)
        with open(report.path, "rb") as f:
            return report, f.read()

    _, content = export("none", None)
    zero, zero_content = export("zero", 0)
    assert zero_content == content
    assert zero.float_layers == [] and zero.min_agreement is None
    # A target the full-int8 file meets changes nothing either; without
    # check data, the agreement is measured on the calibration images.
    met, met_content = export("met", 0.05)
    assert met_content == content
    assert met.selection_data == "representative_data"
    assert met.float_layers == [] and met.selection_agreement >= 0.05
    assert met.full_int8_size_bytes == met.size_bytes


@pytest.mark.parametrize("bad", [1.5, -0.1, "high", True])
def test_bad_min_agreement_raises_before_any_file(mnist_cnn_small, digits, tmp_path, bad):
    x_train, _, _ = digits
    with pytest.raises(ValueError, match="min_agreement must be None or a number"):
        to_tflite(mnist_cnn_small, tmp_path / "m.tflite", quantization="int8",
                  representative_data=x_train, min_agreement=bad)
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_integer_io_keeps_boundary_ops_int8_and_says_so(mnist_cnn_small, digits, tmp_path):
    # With uint8 inputs and outputs the ops that read the input or write the
    # output cannot be float, and uint8 probabilities tie: no set of the other
    # ops in float agrees on every sample, so the full-int8 file is exported
    # and the warning names the boundary ops. (How close a set comes depends
    # on the trained weights, which differ from CPU to CPU: a perfect target
    # is out of reach on every one.)
    x_train, x_val, y_val = digits
    with pytest.warns(UserWarning, match="io_dtype='float32' lets them be float"):
        report = to_tflite(mnist_cnn_small, tmp_path / "u8.tflite", quantization="int8",
                           io_dtype="uint8", min_agreement=1.0,
                           representative_data=x_train, check_data=(x_val, y_val))
    assert report.float_layers == []
    # No layer chose float: the file is the full-int8 one, and all the check
    # samples measure it.
    assert report.selection_agreement == report.full_int8_agreement
    assert report.checked_on == "check_data" and report.num_checked == len(x_val)
    litert = LiteRTModel(report.path)
    assert litert.input_details[litert.input_names[0]]["dtype"] == np.uint8
    assert litert.output_details[litert.output_names[0]]["dtype"] == np.uint8


def test_failed_selective_export_leaves_previous_files(fragile,
                                                       tmp_path, monkeypatch):
    model, x_train, (x_val, y_val) = fragile
    path = tmp_path / "digits.tflite"
    to_tflite(model, path, check_data=(x_val[:20], y_val[:20]))
    before = {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)}

    def crash(*args, **kwargs):
        raise RuntimeError("quantizer crashed")

    monkeypatch.setattr("keras_tl.export.image.quantize_selectively", crash)
    with pytest.raises(RuntimeError, match="quantizer crashed"):
        to_tflite(model, path, quantization="int8", min_agreement=TARGET,
                  representative_data=x_train, check_data=(x_val, y_val))
    assert {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)} == before


def test_quantize_selectively_ranks_ops_and_meets_the_target(fragile):
    # The 1-channel model as it is, without the RGB input `to_tflite` adds.
    model, x_train, (x_val, _) = fragile
    selection = quantize_selectively(model, x_train, x_val, min_agreement=TARGET)
    assert selection.full_int8_agreement < TARGET <= selection.agreement
    assert selection.target_met
    assert selection.num_samples == len(x_val)
    assert len(selection.float_layers) == len(selection.float_tensors) >= 2
    assert selection.full_int8_size_bytes < selection.size_bytes
    # Ranked ops carry what was measured: the chosen ones come first.
    assert [op.tensor for op in selection.ops[:len(selection.float_tensors)]] == \
        selection.float_tensors
    assert all(op.error > 0 for op in selection.ops)
    assert all(op.debugger_error is not None for op in selection.ops)
    outputs = LiteRTModel(selection.content).predict(x_val)
    reference = model.predict(x_val, verbose=0)
    assert np.mean(outputs.argmax(-1) == reference.argmax(-1)) == selection.agreement


@pytest.mark.slow
def test_models_without_class_scores_stay_full_int8(tmp_path):
    # One regression output: there is no top class to agree on.
    inputs = keras.Input((8,))
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Dense(16)(inputs)))
    x = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
    report = to_tflite(model, tmp_path / "r.tflite", quantization="int8",
                       representative_data=x, check_data=x, metadata=False)
    assert report.min_agreement is None and report.float_layers == []
    with pytest.raises(ValueError, match="one output of class scores"):
        quantize_selectively(model, x, x)
    # Other quantizations report no int8 selection.
    half = to_tflite(model, tmp_path / "h.tflite", quantization="float16", metadata=False)
    assert half.float_layers is None and half.min_agreement is None


def test_describe_names_the_fused_keras_layers():
    layer_names = {"classifier": 0, "backbone": 1, "block1_conv": 2, "block1_bn": 3,
                   "block1_relu": 4, "dense": 5, "dense_1": 6}
    fused = ("classifier_1/backbone_1/block1_relu_1/Relu;"
             "classifier_1/backbone_1/block1_bn_1/batchnorm/add_1;"
             "classifier_1/backbone_1/block1_conv_1/convolution;"
             "classifier_1/backbone_1/block1_bn_1/batchnorm/sub1")
    assert _describe(fused, "CONV_2D", layer_names) == "block1_conv+block1_bn+block1_relu"
    # Export traces add "_1" to every scope; a layer named "dense_1" reads "dense_1_1".
    assert _describe("classifier_1/dense_1_1/MatMul", "FULLY_CONNECTED", layer_names) == \
        "dense_1"
    assert _describe("classifier_1/dense_1/MatMul", "FULLY_CONNECTED", layer_names) == "dense"
    assert _describe("StatefulPartitionedCall_1:0", "SOFTMAX", layer_names) == \
        "SOFTMAX (model output)"
    assert _describe("tfl.quantize", "QUANTIZE", layer_names) == "QUANTIZE (tfl.quantize)"
