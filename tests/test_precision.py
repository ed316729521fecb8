"""Mixed precision and XLA in the recipes: policies, outputs, loss scaling."""

import keras
import numpy as np
import pytest

from keras_tl._utils.precision import accelerator_platform
from keras_tl._utils.precision import apply_policy
from keras_tl._utils.precision import output_layers
from keras_tl._utils.precision import precision_scope
from keras_tl._utils.precision import resolve_policy
from keras_tl.optimizers import rebuild_optimizer

# What `mixed_precision=True` resolves to on this machine.
MIXED = "mixed_float16" if accelerator_platform() == "gpu" else "mixed_bfloat16"
HALF = MIXED.replace("mixed_", "")


@pytest.fixture(autouse=True)
def float32_policy():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy(previous)


def tiny_backbone(name="tiny_backbone"):
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(8, 3, name="conv1")(x)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(8, 3, name="conv2")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, x, name=name)


def tiny_classifier(num_classes=3):
    backbone = tiny_backbone("tiny_features")
    x = keras.layers.Dense(num_classes, name="logits")(backbone.output)
    outputs = keras.layers.Activation("softmax", name="probabilities")(x)
    return keras.Model(backbone.input, outputs, name="tiny_classifier")


def toy_images(n=48, num_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % num_classes
    x = rng.uniform(0, 80, (n, 16, 16, 3)) + 60.0 * np.eye(3)[y][:, None, None, :]
    return x.astype("float32"), y


def assert_mixed_model(model, x, tmp_path, atol=1e-5):
    """Inner layers in the half type, probabilities in float32, reload equal."""
    assert keras.config.dtype_policy().name == "float32"
    assert model.get_layer("logits").compute_dtype == "float32"
    assert model.get_layer("probabilities").compute_dtype == "float32"
    probabilities = model.predict(x, verbose=0)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    path = tmp_path / "mixed.keras"
    model.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), probabilities, atol=atol)
    return reloaded


# --- the helpers ---------------------------------------------------------------


def test_resolve_policy_and_jit_argument():
    from keras_tl._utils.precision import check_jit_compile

    assert resolve_policy(False) is None and resolve_policy(None) is None
    assert resolve_policy("float32") is None
    assert resolve_policy(True) == MIXED
    assert resolve_policy("mixed_float16") == "mixed_float16"
    with pytest.raises(ValueError, match="mixed_precision must be"):
        resolve_policy("float16")
    with pytest.raises(ValueError, match="jit_compile must be"):
        check_jit_compile("yes")


def test_precision_scope_restores_the_global_policy_even_on_error():
    keras.config.set_dtype_policy("bfloat16")
    with precision_scope("mixed_float16"):
        assert keras.config.dtype_policy().name == "mixed_float16"
        assert keras.layers.Dense(2).compute_dtype == "float16"
    assert keras.config.dtype_policy().name == "bfloat16"
    with pytest.raises(RuntimeError):
        with precision_scope("mixed_bfloat16"):
            raise RuntimeError("inside")
    assert keras.config.dtype_policy().name == "bfloat16"


def test_apply_policy_keeps_the_output_layers_in_float32():
    model = tiny_classifier()
    assert [layer.name for layer in output_layers(model)] == ["probabilities", "logits"]
    apply_policy(model, "mixed_bfloat16", output_layers(model))
    assert model.get_layer("conv1").compute_dtype == "bfloat16"
    assert model.get_layer("conv1").variable_dtype == "float32"
    assert model.get_layer("logits").compute_dtype == "float32"
    x, _ = toy_images(4)
    assert model.predict(x, verbose=0).dtype == np.float32


def test_rebuilt_optimizer_keeps_the_loss_scale_wrapper():
    a, b = keras.Variable(np.ones(3, "float32")), keras.Variable(np.ones(2, "float32"))
    optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(0.1))
    optimizer.build([a])
    # One step of the inner optimizer (the wrapper's own eager `apply` traces
    # a cond that JAX only runs inside `fit`'s compiled step).
    optimizer.inner_optimizer.apply([keras.ops.ones(3)], [a])
    optimizer.dynamic_scale.assign(512.0)
    rebuilt = rebuild_optimizer(optimizer, [a, b])
    assert isinstance(rebuilt, keras.optimizers.LossScaleOptimizer)
    assert float(rebuilt.dynamic_scale) == 512.0
    assert int(rebuilt.iterations) == 1
    # Adam's slots of `a` carried over; `b` starts fresh.
    inner = rebuilt.inner_optimizer
    momentum = inner._momentums[inner._get_variable_index(a)]
    assert np.all(keras.ops.convert_to_numpy(momentum) > 0)
    assert rebuild_optimizer(rebuilt, [a, b]) is rebuilt


# --- the recipes ---------------------------------------------------------------


@pytest.mark.slow
def test_fine_tune_mixed_precision_and_xla(tmp_path):
    from keras_tl.recipes.fine_tuning import fine_tune

    x, y = toy_images()
    model = fine_tune(tiny_backbone(), (x, y), num_classes=3, epochs=2, batch_size=16,
                      num_groups=2, mixed_precision=True, jit_compile=True, verbose=0)
    assert model.get_layer("tiny_backbone").get_layer("conv1").compute_dtype == HALF
    assert model.jit_compile is True
    assert np.all(np.isfinite(model.history.history["loss"]))
    assert len(model.history.unfreeze_events) == 1
    assert_mixed_model(model, x, tmp_path)


def test_fine_tune_float16_scales_the_loss_through_unfreezing():
    from keras_tl.recipes.fine_tuning import fine_tune

    x, y = toy_images()
    model = fine_tune(tiny_backbone(), (x, y), num_classes=3, epochs=2, batch_size=16,
                      num_groups=2, mixed_precision="mixed_float16", verbose=0)
    assert model.get_layer("tiny_backbone").get_layer("conv1").compute_dtype == "float16"
    # compile wrapped the per-stage optimizer; the unfreezing rebuilt both.
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(model.optimizer.inner_optimizer, keras.optimizers.MultiOptimizer)
    assert len(model.history.unfreeze_events) == 1
    assert np.isfinite(float(model.optimizer.dynamic_scale))
    assert np.all(np.isfinite(model.history.history["loss"]))
    assert model.predict(x[:4], verbose=0).dtype == np.float32


@pytest.mark.slow
def test_feature_extraction_zoo_backbone_in_loop(tmp_path):
    from keras_tl.recipes.frozen_backbone import feature_extraction

    x, y = toy_images(24)
    x = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)  # 32 x 32
    model = feature_extraction("mobilenet_v3_small", (x, y), weights=None, epochs=1,
                               batch_size=12, augmentation="light",
                               mixed_precision=True, jit_compile=False, verbose=0)
    convs = [layer for layer in model.layers[1]._flatten_layers()
             if isinstance(layer, keras.layers.Conv2D)]
    assert convs and all(layer.compute_dtype == HALF for layer in convs)
    assert model.jit_compile is False
    assert_mixed_model(model, x, tmp_path)


def test_recipe_restores_the_global_policy_after_an_error():
    from keras_tl.recipes.frozen_backbone import feature_extraction

    keras.config.set_dtype_policy("bfloat16")
    x, y = toy_images(12)
    with pytest.raises(ValueError):
        feature_extraction("no_such_backbone", (x, y), weights=None,
                           mixed_precision=True, verbose=0)
    assert keras.config.dtype_policy().name == "bfloat16"


@pytest.mark.slow
def test_distill_mixed_precision_student(tmp_path):
    from keras_tl.recipes.distillation import distill

    x, y = toy_images()
    teacher = tiny_classifier()
    teacher.compile("adam", "sparse_categorical_crossentropy")
    teacher.fit(x, y, epochs=2, verbose=0)
    student = distill(teacher, tiny_classifier(), (x, y), epochs=2, batch_size=16,
                      mixed_precision=True, jit_compile=True, verbose=0)
    assert student.get_layer("conv2").compute_dtype == HALF
    assert student.jit_compile is True
    assert np.all(np.isfinite(student.history.history["loss"]))
    assert_mixed_model(student, x, tmp_path)


@pytest.mark.slow
def test_adapt_domain_mixed_precision(tmp_path):
    from keras_tl.recipes.domain_adaptation import adapt_domain

    x, y = toy_images()
    model = tiny_classifier()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    target = x[:, ::-1] * 0.8
    model = adapt_domain(model, (x, y), target, method="coral", epochs=1, batch_size=16,
                         feature_layer="avg_pool", mixed_precision=True,
                         jit_compile=True, verbose=0)
    assert model.get_layer("conv1").compute_dtype == HALF
    assert model.jit_compile is True
    assert np.all(np.isfinite(model.history.history["loss"]))
    assert_mixed_model(model, x, tmp_path)


@pytest.mark.slow
def test_text_classifier_mixed_precision(tmp_path):
    import keras_hub

    from keras_tl.recipes.text_classification import text_classifier

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + (
        "the film movie is good great bad awful loved hated it plot".split())
    keras.utils.set_random_seed(1)
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocab, lowercase=True)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(tokenizer,
                                                                   sequence_length=8)
    texts = ["good film", "great movie", "loved it", "good plot",
             "bad film", "awful movie", "hated it", "bad plot"] * 2
    labels = [1, 1, 1, 1, 0, 0, 0, 0] * 2
    # Built in float32 before the recipe: it is switched to the policy.
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocab), num_layers=2, num_heads=2, hidden_dim=16,
        intermediate_dim=32, max_sequence_length=8, dropout=0.0)
    model = text_classifier((texts, labels), preset=(backbone, preprocessor), epochs=1,
                            batch_size=4, learning_rate=1e-3, unfreeze={"phases": 1},
                            mixed_precision=True, jit_compile=True, verbose=0)
    assert model.backbone.get_layer("transformer_layer_0").compute_dtype == HALF
    assert model.head.get_layer("logits").compute_dtype == "float32"
    assert model.jit_compile is True
    assert keras.config.dtype_policy().name == "float32"
    probabilities = model.predict(texts[:4], verbose=0)
    assert probabilities.dtype == np.float32
    model.save(tmp_path / "text.keras")
    reloaded = keras.models.load_model(tmp_path / "text.keras", safe_mode=True)
    assert reloaded.backbone.get_layer("transformer_layer_0").compute_dtype == HALF
    np.testing.assert_allclose(reloaded.predict(texts[:4], verbose=0), probabilities,
                               atol=1e-2)
