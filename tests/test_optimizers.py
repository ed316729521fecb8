"""Discriminative learning rates and rebuilding optimizers on a new trainable set."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_tl.backbones import build_small_cnn
from keras_tl.heads import attach_head
from keras_tl.heads import build_head
from keras_tl.optimizers import discriminative_optimizer
from keras_tl.optimizers import learning_rates
from keras_tl.optimizers import rebuild_optimizer
from keras_tl.stages import get_stages


def tiny_transfer_model(seed=0):
    """A 3-block BatchNorm CNN backbone (frozen) with a new 3-class head."""
    keras.utils.set_random_seed(seed)
    source = build_small_cnn((12, 12, 1), 4, width=4, name="source")
    backbone = keras.Model(source.input, source.get_layer("avg_pool").output,
                           name="backbone")
    backbone.trainable = False
    model = attach_head(backbone, build_head(16, 3))
    stages = get_stages(backbone, num_groups=3)
    return model, backbone, stages


def batch(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (n, 12, 12, 1)).astype("float32"), rng.integers(0, 3, n)


def test_stages_of_tiny_backbone_are_its_blocks():
    _, _, stages = tiny_transfer_model()
    assert [[l.name for l in s.layers] for s in stages] == [
        ["block1_conv", "block1_bn"], ["block2_conv", "block2_bn"],
        ["block3_conv", "block3_bn"],
    ]


def test_plain_keras_adam_rejects_variables_unfrozen_after_build():
    # The failure ProgressiveUnfreezing exists to avoid (Keras 3.15.1).
    model, backbone, _ = tiny_transfer_model()
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    x, y = batch()
    model.fit(x, y, epochs=1, verbose=0)
    backbone.trainable = True
    model.make_train_function(force=True)
    with pytest.raises((KeyError, ValueError), match="[Uu]nknown variable|built with"):
        model.fit(x, y, epochs=1, verbose=0)


def test_per_stage_rates_are_visible():
    _, _, stages = tiny_transfer_model()
    optimizer = discriminative_optimizer(stages, learning_rate=1e-3, factor=2.6)
    rates = learning_rates(optimizer)
    assert set(rates) == {"head_adam", "group1_adam", "group2_adam", "group3_adam"}
    assert rates["head_adam"] == pytest.approx(1e-3)
    for distance, name in enumerate(["group3_adam", "group2_adam", "group1_adam"], 1):
        assert rates[name] == pytest.approx(1e-3 / 2.6**distance, rel=1e-5)


@pytest.mark.training_path
def test_adam_updates_follow_each_stages_rate():
    # Adam's first update is lr * g / (|g| + eps) ~ lr * sign(g), so each
    # stage's step size reads its own rate. Scaled gradients would give the
    # head's rate everywhere (Adam is scale-invariant).
    model, backbone, stages = tiny_transfer_model()
    backbone.trainable = True
    for stage in stages:
        stage.set_trainable(True)  # BatchNorm stays frozen
    model.compile(discriminative_optimizer(stages, 1e-2, factor=4.0),
                  "sparse_categorical_crossentropy")
    x, y = batch(32)
    kernels = {s.name: s.layers[0].kernel for s in stages}
    kernels["head"] = model.get_layer("logits").kernel
    before = {name: np.array(v.numpy()) for name, v in kernels.items()}
    model.train_on_batch(x, y)
    expected = {"head": 1e-2, "group3": 1e-2 / 4, "group2": 1e-2 / 16, "group1": 1e-2 / 64}
    for name, rate in expected.items():
        step = np.abs(kernels[name].numpy() - before[name])
        moved = step[step > rate * 1e-3]
        assert moved.size > 0.5 * step.size
        assert np.median(moved) == pytest.approx(rate, rel=0.02), name


def test_rebuild_keeps_slots_of_variables_already_training():
    model, backbone, stages = tiny_transfer_model()
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    x, y = batch()
    model.fit(x, y, epochs=3, batch_size=8, verbose=0)
    old = model.optimizer
    old_values = {v.path: np.array(v.numpy()) for v in old.variables}
    backbone.trainable = True
    for stage in stages[:-1]:
        stage.set_trainable(False)
    stages[-1].set_trainable(True)
    new = rebuild_optimizer(old, model.trainable_variables)
    assert new is not old and type(new) is type(old)
    new_values = {v.path: np.array(v.numpy()) for v in new.variables}
    assert int(new.iterations.numpy()) == 6
    for path, value in old_values.items():
        np.testing.assert_array_equal(new_values[path], value)
    fresh = [p for p in new_values if p not in old_values]
    assert any("block3_conv_kernel" in p for p in fresh)
    assert all(not np.any(new_values[p]) for p in fresh)
    model.optimizer = new
    model.make_train_function(force=True)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)  # trains without error


def test_rebuild_multi_optimizer_reuses_unchanged_sub_optimizers():
    model, backbone, stages = tiny_transfer_model()
    optimizer = discriminative_optimizer(stages, 1e-3)
    model.compile(optimizer, "sparse_categorical_crossentropy")
    x, y = batch()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    head = model.optimizer.optimizers[-1]
    assert head.name == "head_adam" and head.built
    backbone.trainable = True
    for stage in stages[:-1]:
        stage.set_trainable(False)
    new = rebuild_optimizer(model.optimizer, model.trainable_variables, rewarm_steps=2)
    top = [o for o in new.optimizers if o.name == "group3_adam"][0]
    assert [o for o in new.optimizers if o.name == "head_adam"][0] is head
    assert top.built and int(top.iterations.numpy()) == 4 == int(new.iterations.numpy())
    assert top._learning_rate.rewarm_begin == 4
    assert not [o for o in new.optimizers if o.name == "group1_adam"][0].built


@pytest.mark.training_path
def test_discriminative_optimizer_saves_and_loads(tmp_path):
    model, _, stages = tiny_transfer_model()
    model.compile(discriminative_optimizer(stages, 2e-3, factor=2.0),
                  "sparse_categorical_crossentropy")
    x, y = batch()
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    assert isinstance(loaded.optimizer, keras.optimizers.MultiOptimizer)
    assert learning_rates(loaded.optimizer) == pytest.approx(learning_rates(model.optimizer))
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)


def test_bad_arguments():
    _, _, stages = tiny_transfer_model()
    with pytest.raises(ValueError, match="factor"):
        discriminative_optimizer(stages, 1e-3, factor=0.5)
    with pytest.raises(ValueError, match="empty"):
        discriminative_optimizer([], 1e-3)
    with pytest.raises(TypeError, match="optimizer"):
        discriminative_optimizer(stages, 1e-3, optimizer=tf.keras.optimizers.MultiOptimizer(
            keras.optimizers.OptimizerMap(keras.optimizers.SGD())))
    with pytest.raises(ValueError, match="MultiOptimizer"):
        rebuild_optimizer(keras.optimizers.Adam(), [], rewarm_steps=3)
