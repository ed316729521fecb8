"""KerasHub image presets as backbones: building, pooling, stages, LoRA, export.

No preset can be downloaded here, so the presets are tiny KerasHub networks
built from their constructors and written as local preset folders with
`Backbone.save_to_preset` + `ImageConverter.save_to_preset`: the same files,
and the same loading path, as a downloaded preset.
"""

import keras
import numpy as np
import pytest

import keras_tl
from keras_tl._utils import presets as presets_module
from keras_tl import hub_backbones
from keras_tl.lora import enable_lora
from keras_tl.lora import lora_layers
from keras_tl.lora import merge_lora
from keras_tl.recipes.frozen_backbone import feature_extraction
from keras_tl.recipes.fine_tuning import TRANSFORMER_LAYER_DECAY
from keras_tl.recipes.fine_tuning import ULMFIT_LAYER_DECAY
from keras_tl.recipes.fine_tuning import fine_tune

SIZE = 32
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    """Local preset folders: a 2-block ViT and a 2-stack ResNet, 32x32 input."""
    import keras_hub

    root = tmp_path_factory.mktemp("hub_presets")
    keras.utils.set_random_seed(0)
    vit = str(root / "vit_tiny")
    keras_hub.models.ViTBackbone(
        image_shape=(SIZE, SIZE, 3), patch_size=8, num_layers=2, num_heads=2,
        hidden_dim=32, mlp_dim=64,
    ).save_to_preset(vit)
    keras_hub.layers.ViTImageConverter(
        image_size=(SIZE, SIZE), scale=1 / 127.5, offset=-1.0
    ).save_to_preset(vit)
    resnet = str(root / "resnet_tiny")
    keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[7],
        stackwise_num_filters=[64, 64], stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2], block_type="basic_block",
    ).save_to_preset(resnet)
    keras_hub.layers.ResNetImageConverter(
        image_size=(SIZE, SIZE), scale=list(1 / (255 * IMAGENET_STD)),
        offset=list(-IMAGENET_MEAN / IMAGENET_STD),
    ).save_to_preset(resnet)
    return {"vit": vit, "resnet": resnet}


def color_images(n, seed=0, size=SIZE):
    """Reddish (class 0) and bluish (class 1) noise images in [0, 255]."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = rng.uniform(0, 255, (n, size, size, 3))
    red = labels[:, None, None] == 0
    images[..., 0] = np.where(red, 128 + images[..., 0] / 2, images[..., 0] / 2)
    images[..., 2] = np.where(red, images[..., 2] / 2, 128 + images[..., 2] / 2)
    return images.astype("float32"), labels


def preset_weights(folder):
    import keras_hub

    backbone = keras_hub.models.Backbone.from_preset(folder)
    return {v.path: np.array(keras.ops.convert_to_numpy(v)) for v in backbone.weights}


def network_weights(model):
    _, network = hub_backbones.find_hub_network(model)
    return {v.path: np.array(keras.ops.convert_to_numpy(v)) for v in network.weights}


# --- building and pooling --------------------------------------------------


def test_vit_preset_builds_with_its_converter_and_class_token(presets):
    import keras_hub

    model = keras_tl.build_backbone(presets["vit"])
    assert keras_tl.backbones.backbone_source(presets["vit"]) == "keras_hub"
    assert model.name == "vit_backbone" and model.input_shape == (None, SIZE, SIZE, 3)
    assert model.output_shape == (None, 32) and model.trainable_weights == []
    images, _ = color_images(4)
    # The preprocessing layer is the preset converter's arithmetic.
    converter = keras_hub.layers.ImageConverter.from_preset(presets["vit"])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model.get_layer("preprocessing")(images)),
        keras.ops.convert_to_numpy(converter(images)), atol=1e-6)
    # The features are the class token of the preset's own network.
    network = keras_hub.models.Backbone.from_preset(presets["vit"])
    tokens = keras.ops.convert_to_numpy(network(converter(images)))
    np.testing.assert_allclose(model.predict(images, verbose=0), tokens[:, 0], atol=1e-5)
    # Other input sizes are resized inside the model (position embeddings
    # exist for one patch grid only); other poolings on request.
    small = keras_tl.build_backbone(presets["vit"], input_shape=(24, 24, 3), pooling="token_mean")
    assert small.get_layer("resizing").output.shape[1:3] == (SIZE, SIZE)
    assert small.output_shape == (None, 64)
    with pytest.raises(ValueError, match="outputs tokens"):
        keras_tl.build_backbone(presets["vit"], pooling="avg")


def test_cnn_preset_is_average_pooled_and_depth_grouped(presets, tmp_path):
    model = keras_tl.build_backbone(presets["resnet"], input_shape=(40, 40, 3))
    assert model.output_shape == (None, 64) and model.get_layer("avg_pool")
    # Per-channel ImageNet normalization, as the converter says.
    white = np.full((1, 4, 4, 3), 255.0, "float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model.get_layer("preprocessing")(white))[0, 0, 0],
        (1 - IMAGENET_MEAN) / IMAGENET_STD, rtol=1e-5)
    assert not keras_tl.stages.is_transformer(model)
    stages = keras_tl.get_stages(model, num_groups=3)
    assert [s.name for s in stages] == ["group1", "group2", "group3"]
    _, network = hub_backbones.find_hub_network(model)
    staged = {id(w) for s in stages for w in s.weights}
    assert staged == {id(w) for w in network.weights}
    x, y = color_images(32, seed=7, size=40)
    tuned = fine_tune(presets["resnet"], (x, y), input_shape=(40, 40, 3), epochs=1,
                      batch_size=16, num_groups=3, verbose=0)
    multipliers = {o.name: o._learning_rate.multiplier for o in tuned.optimizer.optimizers
                   if o.name != "head_adam"}
    assert multipliers["group2_adam"] / multipliers["group3_adam"] == pytest.approx(
        ULMFIT_LAYER_DECAY)
    images = x[:2]
    path = str(tmp_path / "resnet.keras")
    model.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(reloaded.predict(images, verbose=0),
                               model.predict(images, verbose=0), atol=1e-5)


def test_listing_and_preset_errors(presets, tmp_path):
    zoo = keras_tl.list_backbones()
    assert "resnet50" in zoo and "dinov2_small" not in zoo
    both = keras_tl.list_backbones("all")
    assert both[: len(zoo)] == zoo
    assert {"dinov2_small", "vit_base_patch16_224_imagenet"} <= set(both[len(zoo):])
    assert set(hub_backbones.list_hub_presets("siglip")) <= set(both)
    assert hub_backbones.HUB_FAMILIES["deit"].pooling == "token"
    with pytest.raises(ValueError, match="source must be one of"):
        keras_tl.list_backbones("timm")
    empty = tmp_path / "not_a_preset"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        keras_tl.build_backbone(str(empty))
    with pytest.raises(ValueError, match="Unknown backbone 'vit_nonexistent'"):
        keras_tl.build_backbone("vit_nonexistent")


def test_remote_preset_without_network_fails_fast(monkeypatch):
    monkeypatch.setattr(presets_module, "host_reachable", lambda host: (False, "no network"))
    monkeypatch.setattr(presets_module, "cached_hf_folder", lambda preset: None)
    with pytest.raises(ConnectionError, match="local preset folder"):
        keras_tl.build_backbone("dinov2_small")
    with pytest.raises(ConnectionError, match="huggingface.co is unreachable"):
        keras_tl.build_backbone("hf://timm/vit_tiny_patch16_224.augreg_in21k")


# --- recipes ---------------------------------------------------------------


@pytest.mark.training_path
def test_feature_extraction_on_vit_preset_saves_and_reloads(presets, tmp_path):
    x, y = color_images(64, seed=1)
    model = feature_extraction(presets["vit"], (x[:48], y[:48]), (x[48:], y[48:]),
                               batch_size=16, verbose=0)
    assert model.input_shape == (None, SIZE, SIZE, 3)
    assert model.history.history["val_accuracy"][0] >= 0.9
    path = str(tmp_path / "vit_head.keras")
    model.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(reloaded.predict(x[48:], verbose=0),
                               model.predict(x[48:], verbose=0), atol=1e-5)
    assert [s.name for s in keras_tl.get_stages(reloaded)] == [
        "patch_embedding", "block_0", "block_1", "final_norm"]


@pytest.mark.slow
def test_fine_tune_vit_unfreezes_blocks_top_down_with_layer_decay(presets):
    x, y = color_images(48, seed=2)
    before = preset_weights(presets["vit"])
    # The mechanics of unfreezing, on random labels: the end of the run is
    # kept as it is (no best epoch, no return to the head).
    model = fine_tune(presets["vit"], (x[:32], y[:32]), (x[32:], y[32:]), epochs=2,
                      batch_size=16, unfreeze={"every": 1}, verbose=0,
                      restore_best_weights=False, keep_head_if_worse=False)
    assert [e["stage"] for e in model.history.unfreeze_events] == ["block_1"]
    assert model.history.history["trainable_stages"][1:] == [1, 2]
    # The default decay for a transformer: 0.7 per block, not ULMFiT's 1/2.6.
    multipliers = {o.name: o._learning_rate.multiplier for o in model.optimizer.optimizers
                   if o.name != "head_adam"}
    assert multipliers["block_1_adam"] / multipliers["final_norm_adam"] == pytest.approx(
        TRANSFORMER_LAYER_DECAY)
    assert multipliers["patch_embedding_adam"] == pytest.approx(TRANSFORMER_LAYER_DECAY ** 4)
    after = network_weights(model)
    for path, value in before.items():
        still_frozen = path.startswith(("vit_patching_and_embedding/",
                                        "vit_encoder/transformer_block_1/"))
        if still_frozen:
            np.testing.assert_array_equal(after[path], value, err_msg=path)
    moved = [p for p in before if p.startswith("vit_encoder/transformer_block_2/")
             and not np.array_equal(after[p], before[p])]
    assert moved, "the unfrozen top block did not train"


@pytest.fixture(scope="module")
def lora_vit(presets):
    """The tiny ViT fine-tuned with rank-2 LoRA, and its data."""
    x, y = color_images(48, seed=3)
    # Random labels: the run's end is kept as it is, whatever it scores.
    model = fine_tune(presets["vit"], (x[:32], y[:32]), (x[32:], y[32:]), epochs=1,
                      batch_size=16, lora_rank=2, learning_rate=1e-2, verbose=0,
                      restore_best_weights=False, keep_head_if_worse=False)
    return model, x, y


@pytest.mark.slow
def test_lora_trains_adapters_and_head_then_merges_them(presets, lora_vit, tmp_path):
    model, x, _ = lora_vit
    before = preset_weights(presets["vit"])
    trained = model.history.history["trainable_params"][-1]
    full = sum(int(np.prod(v.shape)) for v in model.weights)
    assert trained < full / 5
    assert model.history.unfreeze_events == []
    assert not [v.path for v in model.weights if "lora" in v.path]
    assert not lora_layers(model)
    after = network_weights(model)
    changed = {p for p in before if not np.array_equal(after[p], before[p])}
    # The adapters were merged into the dense kernels; nothing else moved.
    assert changed and all(p.endswith("/kernel") and "/patch_embedding/" not in p
                           for p in changed)
    path = str(tmp_path / "vit_lora.keras")
    model.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    assert not [v.path for v in reloaded.weights if "lora" in v.path]
    # The backbone reloads frozen by its own flag. (Keras 3.15 sets a KerasHub
    # backbone's flag before it tracks its layers, so the inner variables
    # come back marked trainable; `freeze` reaches them.)
    assert len(model.trainable_variables) == 2
    _, network = hub_backbones.find_hub_network(reloaded)
    assert not network.trainable
    keras_tl.stages.freeze(network)
    assert len(reloaded.trainable_variables) == 2
    np.testing.assert_allclose(reloaded.predict(x[32:], verbose=0),
                               model.predict(x[32:], verbose=0), atol=1e-5)
    with pytest.raises(ValueError, match="no Dense or EinsumDense"):
        enable_lora(keras_tl.build_backbone(presets["resnet"]), 2)


def test_merge_lora_keeps_predictions(presets, monkeypatch):
    import gc

    collections = []
    real_collect = gc.collect
    monkeypatch.setattr(gc, "collect", lambda *a: collections.append(1) or real_collect(*a))
    model = keras_tl.build_backbone(presets["vit"])
    layers = enable_lora(model, rank=3, exclude=("query",))
    assert len(layers) == 2 * 5 and not any(l.name == "query" for l in layers)
    assert {v.path.rsplit("/", 1)[-1] for v in model.trainable_variables} == {
        "lora_kernel_a", "lora_kernel_b"}
    rng = np.random.default_rng(4)
    for layer in layers:  # B starts at zero: give the adapters an effect
        layer.lora_kernel_b.assign(rng.normal(0, 0.1, layer.lora_kernel_b.shape))
    images, _ = color_images(4)
    with_adapters = model.predict(images, verbose=0)
    assert merge_lora(model) == len(layers)
    # One collection for the whole merge: Keras' `del layer.<variable>`
    # would run one per adapter variable (20 here), seconds on a big model.
    assert len(collections) == 1
    assert not [v.path for v in model.weights if "lora" in v.path]
    np.testing.assert_allclose(model.predict(images, verbose=0), with_adapters, atol=1e-5)
    assert merge_lora(model) == 0


@pytest.mark.tensorflow_only
@pytest.mark.slow
def test_vit_classifier_exports_to_litert_without_lora(lora_vit, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    model, x, y = lora_vit
    path = tmp_path / "vit.tflite"
    report = keras_tl.to_tflite(model, path, check_data=(x[32:], y[32:]))
    assert report.max_abs_diff < 1e-4 and report.top1_agreement == 1.0
    interpreter = Interpreter(model_path=str(path))
    names = [t["name"].lower() for t in interpreter.get_tensor_details()]
    assert names and not [n for n in names if "lora" in n]


@pytest.mark.slow
def test_rank_backbones_over_keras_applications_and_hub_presets(presets):
    x, y = color_images(40, seed=6)
    cnn = keras_tl.build_small_cnn((SIZE, SIZE, 3), 10, width=8)
    features = keras.Model(cnn.input, cnn.get_layer("features").output, name="small_cnn")
    ranking = keras_tl.rank_backbones([features, presets["vit"], presets["resnet"]],
                                      (x, y), batch_size=20, verbose=0)
    assert set(ranking.names()) == {"small_cnn", "vit_tiny", "resnet_tiny"}
    scores = [row.score for row in ranking]
    assert scores == sorted(scores, reverse=True) and np.all(np.isfinite(scores))
    vit_row = next(row for row in ranking if row.name == "vit_tiny")
    assert vit_row.candidate == presets["vit"] and vit_row.input_shape == (SIZE, SIZE, 3)
    features, labels = keras_tl.extract(keras_tl.build_backbone(presets["vit"]), (x, y))
    expected = keras_tl.log_me(keras_tl.normalize_features(features), labels)
    assert vit_row.score == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="metric='logme'"):
        keras_tl.rank_backbones([presets["vit"]], (x, y), metric="leep", verbose=0)
