import keras
import numpy as np
import pytest

import keras_tl
from keras_tl.backbones import ZOO, build_backbone, get_spec
from keras_tl.stages import get_stages

# One network per Keras Applications family, and the module whose
# preprocess_input the zoo's preprocessing layer must reproduce.
FAMILIES = {
    "vgg16": "vgg16",
    "resnet50": "resnet50",
    "resnet50_v2": "resnet_v2",
    "inception_v3": "inception_v3",
    "inception_resnet_v2": "inception_resnet_v2",
    "xception": "xception",
    "mobilenet": "mobilenet",
    "mobilenet_v2": "mobilenet_v2",
    "mobilenet_v3_small": "mobilenet_v3",
    "efficientnet_b0": "efficientnet",
    "efficientnet_v2_b0": "efficientnet_v2",
    "convnext_tiny": "convnext",
    "densenet121": "densenet",
    "nasnet_mobile": "nasnet",
}


def test_zoo_names_every_family_and_variant():
    for name in [
        "vgg19", "resnet101", "resnet152", "resnet101_v2", "resnet152_v2",
        "mobilenet_v3_large", "efficientnet_b7", "efficientnet_v2_s",
        "efficientnet_v2_l", "convnext_xlarge", "densenet201", "nasnet_large",
    ]:
        spec = get_spec(name)
        assert hasattr(keras.applications, spec.constructor), spec.constructor
    assert set(FAMILIES) <= set(ZOO)


# The two largest graphs (4 s and 3 s to build) run in `make test` only.
@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.slow)
    if name in ("inception_resnet_v2", "nasnet_mobile") else name
    for name in sorted(FAMILIES)])
def test_family_builds_at_min_size_with_stages_and_preprocessing(name):
    spec = get_spec(name)
    size = spec.min_size
    if name == "nasnet_mobile" and keras.backend.backend() == "torch":
        # Keras Applications refuses NASNetMobile on PyTorch, by name.
        with pytest.raises(ValueError, match="NASNetMobile is not available with the torch"):
            build_backbone(name, weights=None, input_shape=(size, size, 3))
        return
    model = build_backbone(name, weights=None, input_shape=(size, size, 3))
    assert model.output.shape[-1] == spec.feature_dim
    assert model.trainable_weights == []

    # Stages tile the network: non-empty, in order, every weight in one stage.
    stages = get_stages(model)
    assert [s.name for s in stages] == list(spec.stage_names)
    assert all(stage.layers for stage in stages)
    network = model.get_layer(spec.layer_name)
    staged = [id(w) for s in stages for w in s.weights]
    assert len(staged) == len(set(staged))
    assert set(staged) == {id(w) for w in network.weights}

    # The preprocessing layer equals the family's preprocess_input.
    images = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype("float32")
    module = getattr(keras.applications, FAMILIES[name])
    expected = np.asarray(module.preprocess_input(images.copy()))
    got = np.asarray(model.get_layer("preprocessing")(images))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_unknown_name_lists_close_matches():
    with pytest.raises(ValueError, match="Did you mean.*resnet50"):
        build_backbone("resnet_50x", weights=None)
    assert get_spec("ResNet-50").name == "resnet50"


def test_too_small_input_names_the_minimum():
    with pytest.raises(ValueError, match="minimum input size is 75x75"):
        build_backbone("inception_v3", weights=None, input_shape=(64, 64, 3))


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_backbone("mobilenet", weights=str(tmp_path / "nope.h5"),
                       input_shape=(32, 32, 3))


@pytest.mark.slow
def test_local_weights_file_is_loaded(tmp_path):
    reference = build_backbone("resnet50", weights=None, input_shape=(32, 32, 3))
    path = str(tmp_path / "resnet50_notop.weights.h5")
    reference.get_layer("resnet50").save_weights(path)
    loaded = build_backbone("resnet50", weights=path, input_shape=(32, 32, 3))
    images = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(loaded.predict(images, verbose=0),
                               reference.predict(images, verbose=0), atol=1e-5)


def test_any_keras_model_is_a_backbone_and_grouped_by_depth():
    cnn = keras_tl.build_small_cnn((16, 16, 1), 3)
    feature_map = keras.Model(cnn.input, cnn.get_layer("block3_relu").output)
    backbone = build_backbone(feature_map)
    assert len(backbone.output.shape) == 2
    stages = get_stages(backbone, num_groups=3)
    assert [len(s.layers) for s in stages] == [2, 2, 2]  # conv + bn per block
    by_prefix = get_stages(backbone, prefixes=["block1", "block2", "block3"])
    assert [s.name for s in by_prefix] == ["block1", "block2", "block3"]
    with pytest.raises(ValueError, match="matches no layer"):
        get_stages(backbone, prefixes=["block9"])


def test_stage_set_trainable_keeps_batchnorm_frozen():
    backbone = build_backbone("resnet50", weights=None, input_shape=(32, 32, 3))
    top = get_stages(backbone)[-1]
    top.set_trainable(True)
    bns = [l for l in top.layers if isinstance(l, keras.layers.BatchNormalization)]
    convs = [l for l in top.layers if isinstance(l, keras.layers.Conv2D)]
    assert bns and convs
    assert not any(l.trainable for l in bns)
    assert all(l.trainable for l in convs)
    top.set_trainable(True, train_batchnorm=True)
    assert all(l.trainable for l in bns)


def test_backbone_saves_and_reloads_safely(tmp_path):
    model = build_backbone("mobilenet", weights=None, input_shape=(32, 32, 3))
    path = str(tmp_path / "backbone.keras")
    model.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    images = np.random.default_rng(2).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(reloaded.predict(images, verbose=0),
                               model.predict(images, verbose=0), atol=1e-6)
    assert [s.name for s in get_stages(reloaded)] == list(get_spec("mobilenet").stage_names)


def test_failed_imagenet_download_is_one_line_with_the_offline_ways(monkeypatch):
    import keras

    import keras_tl

    def offline(**kwargs):
        raise Exception(
            "URL fetch failure on https://storage.googleapis.com/tensorflow/keras-applications/"
            "mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5: "
            "None -- [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.applications, "MobileNetV2", offline)
    with pytest.raises(ConnectionError) as raised:
        keras_tl.build_backbone("mobilenet_v2")
    message = str(raised.value)
    assert "\n" not in message
    assert "ImageNet weights of 'mobilenet_v2'" in message
    assert "https://storage.googleapis.com/" in message
    assert "Temporary failure in name resolution" in message
    assert "weights=None" in message and "~/.keras/models/" in message
