"""Images in the wrong pixel range get a warning that says what the model takes."""

import warnings

import numpy as np
import pytest

import keras_tl
from keras_tl._utils.validation import takes_raw_pixels
from keras_tl.data import as_dataset


@pytest.fixture(scope="module")
def digits():
    from keras_tl.examples.datasets import load_mnist_5k

    x, y = load_mnist_5k()
    rows = np.random.default_rng(0).permutation(len(x))[:64]
    return x[rows].astype("float32"), y[rows]


def _pixel_warnings(caught):
    return [str(w.message) for w in caught if "pixel values" in str(w.message)]


def _run(function):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        function()
    return _pixel_warnings(caught)


def test_the_shared_cnn_scales_its_own_pixels(mnist_cnn_small):
    assert takes_raw_pixels(mnist_cnn_small)
    import keras

    inputs = keras.Input((4,))
    assert not takes_raw_pixels(keras.Model(inputs, keras.layers.Dense(2)(inputs)))


@pytest.mark.parametrize("scale,found", [(1 / 255, "[0, 1] floats"), (256, "exceed 255"),
                                         (-1, "below 0")])
def test_predict_and_evaluate_warn_on_a_wrong_range(mnist_cnn_small, digits, scale, found):
    x, y = digits
    wrong = x * scale
    (message,) = _run(lambda: keras_tl.predict(mnist_cnn_small, wrong[:8]))
    assert found in message and "[0, 255]" in message
    assert len(_run(lambda: keras_tl.evaluate(mnist_cnn_small, (wrong, y)))) == 1
    # Pixels as read: no warning.
    assert _run(lambda: keras_tl.predict(mnist_cnn_small, x[:8])) == []
    assert _run(lambda: keras_tl.evaluate(mnist_cnn_small, (x, y))) == []


def test_recipes_data_warns_on_unit_range(digits):
    x, y = digits
    assert len(_run(lambda: as_dataset((x / 255, y)))) == 1
    assert _run(lambda: as_dataset((x, y))) == []
    assert _run(lambda: as_dataset((x.astype("uint8"), y))) == []


@pytest.mark.tensorflow_only
def test_export_warns_on_unit_range_check_data(mnist_cnn_small, digits, tmp_path):
    x, y = digits
    messages = _run(lambda: keras_tl.to_tflite(mnist_cnn_small, tmp_path / "m.tflite",
                                               check_data=(x / 255, y), metadata=False))
    assert len(messages) == 1 and "check_data" in messages[0]
