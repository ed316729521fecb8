"""The fine_tune recipe: head phase, progressive unfreezing, saving."""

import keras
import numpy as np
import pytest

from keras_tl.recipes.fine_tuning import fine_tune


def mnist_backbone(source):
    copy = keras.models.clone_model(source)
    copy.set_weights(source.get_weights())
    return keras.Model(copy.input, copy.get_layer("avg_pool").output, name="mnist_backbone")


@pytest.mark.training_path
def test_fine_tune_two_phases_save_and_reload(mnist_cnn_small, digits_target, tmp_path):
    x, y = digits_target
    train, test = slice(0, 120), slice(1500, 1797)
    backbone = mnist_backbone(mnist_cnn_small)
    frozen_bn = {v.path: np.array(v.numpy()) for v in backbone.weights if "_bn/" in v.path}
    model = fine_tune(backbone, (x[train], y[train]), num_classes=10, epochs=4,
                      batch_size=32, num_groups=3, verbose=0)
    history = model.history.history
    # Phase 1 (closed-form head, one entry with its C) then 4 epochs of phase 2.
    assert len(history["loss"]) == 5 and np.isfinite(history["C"][0])
    assert np.isnan(history["trainable_stages"][0])
    assert history["trainable_stages"][1:] == [1, 2, 3, 3]
    assert [e["stage"] for e in model.history.unfreeze_events] == ["group2", "group1"]
    assert isinstance(model.optimizer, keras.optimizers.MultiOptimizer)
    assert isinstance(model.optimizer.optimizers[-1]._learning_rate,
                      keras.optimizers.schedules.CosineDecay)
    for path, value in frozen_bn.items():  # BatchNorm statistics kept
        np.testing.assert_array_equal(
            [v for v in backbone.weights if v.path == path][0].numpy(), value)
    accuracy = (model.predict(x[test], verbose=0).argmax(-1) == y[test]).mean()
    assert accuracy > 0.5
    model.save(tmp_path / "fine_tuned.keras")
    loaded = keras.models.load_model(tmp_path / "fine_tuned.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x[test], verbose=0),
                               model.predict(x[test], verbose=0), atol=1e-6)


def test_fine_tune_rejects_bad_arguments(mnist_cnn_small, digits_target):
    x, y = digits_target
    backbone = mnist_backbone(mnist_cnn_small)
    with pytest.raises(ValueError, match="schedule"):
        fine_tune(backbone, (x[:40], y[:40]), schedule="step", verbose=0)
    with pytest.raises(ValueError, match="epochs"):
        fine_tune(backbone, (x[:40], y[:40]), epochs=0, verbose=0)


@pytest.mark.slow
def test_fine_tune_zoo_resnet50_unfreezes_conv5_only():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (16, 32, 32, 3)).astype("float32")
    y = np.arange(16) % 2
    model = fine_tune("resnet50", (x, y), weights=None, input_shape=(32, 32, 3),
                      epochs=1, batch_size=8, verbose=0)
    network = model.get_layer("resnet50_backbone").get_layer("resnet50")
    trainable = {l.name.split("_")[0] for l in network.layers if l.trainable_weights}
    assert trainable == {"conv5"}
    assert model.history.history["trainable_stages"][1:] == [1]


class _SpoilValidation(keras.callbacks.Callback):
    """Before each validation of phase 2, points the head at class 1 alone:
    phase 2 then ends at chance by construction."""

    def on_test_begin(self, logs=None):
        logits = self.model.get_layer("logits")
        kernel, bias = logits.get_weights()
        logits.set_weights([np.zeros_like(kernel), np.array([0.0, 10.0], bias.dtype)])


def _two_level_images():
    # Black images are class 0, white ones class 1: two distinct points in
    # any backbone's feature space, so the closed-form head separates them.
    x = np.concatenate([np.zeros((8, 16, 16, 3)), np.full((8, 16, 16, 3), 255.0)])
    y = np.repeat([0, 1], 8)
    order = np.random.default_rng(0).permutation(16)
    return x[order].astype("float32"), y[order]


def _small_backbone():
    from keras_tl.backbones import build_small_cnn

    keras.utils.set_random_seed(0)
    cnn = build_small_cnn((16, 16, 3), 2, width=8)
    return keras.Model(cnn.input, cnn.get_layer("avg_pool").output, name="small_backbone")


@pytest.mark.parametrize("keep", [True, False])
def test_fine_tune_never_returns_worse_than_its_head(keep):
    x, y = _two_level_images()
    backbone = _small_backbone()
    with pytest.warns(UserWarning, match="below the head alone"):
        model = fine_tune(backbone, (x, y), (x, y), epochs=2, batch_size=8, verbose=0,
                          callbacks=[_SpoilValidation()], keep_head_if_worse=keep)
    history = model.history.history
    assert history["val_accuracy"][0] == 1.0 and history["val_accuracy"][-1] == 0.5
    predicted = model.predict(x, verbose=0).argmax(-1)
    if keep:
        assert model.history.kept == "head" and (predicted == y).all()
    else:
        assert model.history.kept == "fine_tuned" and (predicted == 1).all()


def test_fine_tune_warms_up_for_at_least_a_few_steps():
    from keras_tl.recipes.fine_tuning import MIN_WARMUP_STEPS

    x, y = _two_level_images()
    model = fine_tune(_small_backbone(), (x, y), epochs=3, batch_size=8,
                      verbose=0)
    # 6 steps: 10% would be under one step; a third of the run warms up.
    schedule = model.optimizer.optimizers[-1]._learning_rate
    assert MIN_WARMUP_STEPS == 10 and schedule.warmup_steps == 2


class _SpoilLastValidation(keras.callbacks.Callback):
    """Points the head at class 1 before the last epoch's validation only."""

    def __init__(self, epochs):
        super().__init__()
        self.epochs, self.epoch = epochs, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_test_begin(self, logs=None):
        if self.epoch == self.epochs - 1:
            _SpoilValidation.on_test_begin(self, logs)


def test_fine_tune_keeps_its_best_epoch():
    x, y = _two_level_images()
    model = fine_tune(_small_backbone(), (x, y), (x, y), epochs=3, batch_size=8, verbose=0,
                      callbacks=[_SpoilLastValidation(3)])
    history = model.history.history
    assert history["val_accuracy"][-1] == 0.5 and max(history["val_accuracy"][1:]) == 1.0
    # The best epoch's weights came back: every answer right again.
    assert (model.predict(x, verbose=0).argmax(-1) == y).all()
    assert model.history.kept == "fine_tuned"


def test_label_smoothing_trains_on_smoothed_one_hot_labels():
    import tensorflow as tf

    from keras_tl.augment import augment_training

    x, y = _two_level_images()
    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    train, validation, loss = augment_training(batches, batches, None, 2, recipe="fine_tune",
                                               label_smoothing=0.1)
    assert isinstance(loss, keras.losses.CategoricalCrossentropy)
    assert loss.get_config()["label_smoothing"] == 0.1
    labels = next(iter(train))[1].numpy()
    assert labels.shape == (8, 2) and set(labels.sum(-1)) == {1.0}
    assert next(iter(validation))[1].shape == (8, 2)
    model = fine_tune(_small_backbone(), (x, y), (x, y), epochs=1, batch_size=8, verbose=0,
                      label_smoothing=0.1, class_weight="balanced")
    # Compiled for integer labels again, for evaluation.
    assert np.isfinite(model.evaluate(x, y, verbose=0)[0])
    for bad in (1.0, -0.1, "0.1"):
        with pytest.raises(ValueError, match="label_smoothing must be a number in"):
            fine_tune(_small_backbone(), (x, y), label_smoothing=bad, verbose=0)


@pytest.mark.slow
def test_ema_averages_every_stage_through_an_unfreeze():
    rng = np.random.default_rng(1)
    y = np.arange(32) % 2
    x = (rng.uniform(0, 120, (32, 16, 16, 3)) + 120 * y[:, None, None, None]).astype("float32")
    settings = dict(epochs=2, unfreeze={"every": 1}, num_groups=2, batch_size=8,
                    restore_best_weights=False, keep_head_if_worse=False, verbose=0)
    averaged = fine_tune(_small_backbone(), (x, y), (x, y), ema=0.9, **settings)
    plain = fine_tune(_small_backbone(), (x, y), (x, y), **settings)
    optimizer = averaged.optimizer
    # The head's and each stage's optimizer average their weights, the stage
    # unfrozen at the second epoch included.
    assert sorted(o.name for o in optimizer.optimizers) == ["group1_adam", "group2_adam", "head_adam"]
    assert all(o.use_ema and o.ema_momentum == 0.9 for o in optimizer.optimizers)
    # The model ends with the averages ...
    checked = 0
    for inner in optimizer.optimizers:
        for variable, average in zip(inner._trainable_variables,
                                     inner._model_variables_moving_average):
            np.testing.assert_allclose(keras.ops.convert_to_numpy(variable),
                                       keras.ops.convert_to_numpy(average), rtol=1e-6)
            checked += 1
    assert checked == len(averaged.trainable_variables)
    # ... which are not the last step's weights (the run without averaging).
    assert any(not np.allclose(a, b, atol=1e-6) for a, b in zip(
        averaged.get_weights(), plain.get_weights()))
    with pytest.raises(ValueError, match=r"ema must be False, True or a momentum in \(0, 1\)"):
        fine_tune(_small_backbone(), (x, y), ema=1.0, verbose=0)


@pytest.mark.training_path
@pytest.mark.parametrize("ema", [False, 0.9])
@pytest.mark.slow
def test_ema_survives_an_interrupted_and_resumed_run(tmp_path, ema):
    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                raise KeyboardInterrupt

    rng = np.random.default_rng(2)
    y = np.arange(32) % 2
    x = (rng.uniform(0, 120, (32, 16, 16, 3)) + 120 * y[:, None, None, None]).astype("float32")
    settings = dict(epochs=2, unfreeze={"every": 1}, num_groups=2, batch_size=8, ema=ema,
                    restore_best_weights=False, keep_head_if_worse=False, verbose=0)
    whole = fine_tune(_small_backbone(), (x, y), (x, y), **settings)
    with pytest.raises(KeyboardInterrupt):
        fine_tune(_small_backbone(), (x, y), (x, y), checkpoint_dir=tmp_path,
                  callbacks=[Interrupt()], **settings)
    resumed = fine_tune(_small_backbone(), (x, y), (x, y), checkpoint_dir=tmp_path, **settings)
    # The averages came back with the optimizer: the resumed run ends where
    # the uninterrupted one did (exactly on TensorFlow; within 3e-4 on JAX
    # and PyTorch, whose resumed steps round differently; averages lost or
    # restarted from zero move the weights by about 1e-1).
    for a, b in zip(whole.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, atol=2e-3)
