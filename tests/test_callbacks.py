"""ProgressiveUnfreezing (inside one fit, single device and MirroredStrategy)
and the learning-rate finder."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_tl.callbacks import LRFinder
from keras_tl.callbacks import ProgressiveUnfreezing
from keras_tl.callbacks import SyncBatchNormStatistics
from keras_tl.callbacks import sync_batchnorm_statistics
from keras_tl.heads import attach_head
from keras_tl.heads import build_head
from keras_tl.lr_finder import find_learning_rate
from keras_tl.optimizers import discriminative_optimizer
from keras_tl.optimizers import learning_rates
from keras_tl.stages import get_stages


def transfer_model(source):
    """A copy of the MNIST-trained CNN's convolutional part (frozen) with a
    new head; the session fixture itself is left untouched."""
    copy = keras.models.clone_model(source)
    copy.set_weights(source.get_weights())
    backbone = keras.Model(copy.input, copy.get_layer("avg_pool").output, name="backbone")
    backbone.trainable = False
    model = attach_head(backbone, build_head(backbone.output.shape[-1], 10))
    return model, get_stages(backbone, num_groups=3)


@pytest.fixture
def target(digits_target):
    x, y = digits_target
    return x[:96], y[:96]


class WeightLog(keras.callbacks.Callback):
    """Records every weight of the model at the end of each epoch."""

    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_train_begin(self, logs=None):
        self.start = self.snapshot()

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(self.snapshot())

    def snapshot(self):
        return {v.path: np.array(v.numpy()) for v in self.model.weights}


def is_batchnorm_statistic(path):
    return path.endswith("moving_mean") or path.endswith("moving_variance")


def check_top_down_unfreezing(log, stages, order):
    """After stage k unfreezes its weights change; every frozen weight and
    every BatchNorm statistic stays bit-identical."""
    previous = log.start
    for epoch, snapshot in enumerate(log.epochs):
        trainable = {s.name for s in stages if s.name in order[: order_count(epoch)]}
        for stage in stages:
            for variable in stage.weights:
                unchanged = np.array_equal(snapshot[variable.path], previous[variable.path])
                if stage.name in trainable and "conv/kernel" in variable.path:
                    assert not unchanged, (epoch, variable.path)
                elif stage.name not in trainable:
                    assert unchanged, (epoch, variable.path)
        for path in snapshot:
            if is_batchnorm_statistic(path) or "_bn/" in path:
                np.testing.assert_array_equal(snapshot[path], log.start[path])
        assert not np.array_equal(snapshot["logits/kernel"], previous["logits/kernel"])
        previous = snapshot


def order_count(epoch):
    return epoch  # every=1, initially_trainable=0: `epoch` stages train in epoch `epoch`


@pytest.mark.training_path
@pytest.mark.slow
def test_unfreezes_top_down_inside_one_fit(mnist_cnn_small, target):
    model, stages = transfer_model(mnist_cnn_small)
    model.compile(discriminative_optimizer(stages, 1e-3),
                  "sparse_categorical_crossentropy", metrics=["accuracy"])
    log = WeightLog()
    unfreezing = ProgressiveUnfreezing(stages, initially_trainable=0, every=1, verbose=0)
    history = model.fit(*target, batch_size=32, epochs=4, callbacks=[unfreezing, log],
                        verbose=0)
    assert history.history["trainable_stages"] == [0, 1, 2, 3]
    params = history.history["trainable_params"]
    assert params[0] == 64 * 10 + 10 and params == sorted(params) and len(set(params)) == 4
    assert [e["stage"] for e in unfreezing.events] == ["group3", "group2", "group1"]
    check_top_down_unfreezing(log, stages, ["group3", "group2", "group1"])
    rates = learning_rates(model.optimizer)
    assert rates["group1_adam"] == pytest.approx(rates["head_adam"] / 2.6**3, rel=1e-5)


@pytest.mark.slow
def test_unfreezing_under_mirrored_strategy(mnist_cnn_small, target, two_cpu_strategy):
    strategy = two_cpu_strategy
    with strategy.scope():
        model, stages = transfer_model(mnist_cnn_small)
        model.compile(discriminative_optimizer(stages, 1e-3),
                      "sparse_categorical_crossentropy")
    assert model.distribute_strategy is strategy
    log = WeightLog()
    unfreezing = ProgressiveUnfreezing(stages, initially_trainable=0, every=1, verbose=0)
    history = model.fit(*target, batch_size=32, epochs=3, callbacks=[unfreezing, log],
                        verbose=0)
    assert history.history["trainable_stages"] == [0, 1, 2]
    check_top_down_unfreezing(log, stages, ["group3", "group2", "group1"])
    assert model.optimizer.iterations.numpy() == 9


def test_plain_optimizer_and_at_epochs(mnist_cnn_small, target):
    model, stages = transfer_model(mnist_cnn_small)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    unfreezing = ProgressiveUnfreezing(stages, initially_trainable=0, at_epochs=[1, 1], verbose=0)
    history = model.fit(*target, batch_size=48, epochs=2, callbacks=[unfreezing],
                        verbose=0)
    assert history.history["trainable_stages"] == [0, 2]
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert int(model.optimizer.iterations.numpy()) == 4


def test_patience_rule_waits_for_a_stall(mnist_cnn_small, target):
    class Plateau(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["stalled_metric"] = 1.0

    model, stages = transfer_model(mnist_cnn_small)
    model.compile(discriminative_optimizer(stages, 1e-3), "sparse_categorical_crossentropy")
    unfreezing = ProgressiveUnfreezing(
        stages, patience=1, monitor="stalled_metric", verbose=0, initially_trainable=0
    )
    history = model.fit(*target, batch_size=96, epochs=5,
                        callbacks=[Plateau(), unfreezing], verbose=0)
    # best at epoch 0, no progress at 1 -> unfreeze at 2; again at 4.
    assert history.history["trainable_stages"] == [0, 0, 1, 1, 2]


def test_rewarm_and_batchnorm_training(mnist_cnn_small, target):
    model, stages = transfer_model(mnist_cnn_small)
    model.compile(discriminative_optimizer(stages, 1e-3), "sparse_categorical_crossentropy")
    log = WeightLog()
    unfreezing = ProgressiveUnfreezing(stages, initially_trainable=0, at_epochs=[1], train_batchnorm=True,
                                       rewarm_steps=5, verbose=0)
    model.fit(*target, batch_size=32, epochs=2, callbacks=[unfreezing, log], verbose=0)
    top = [o for o in model.optimizer.optimizers if o.name == "group3_adam"][0]
    assert top._learning_rate.rewarm_begin == 3 and top._learning_rate.rewarm_steps == 5
    # The unfrozen stage's BatchNorm trained; the frozen stages' did not.
    changed = lambda p: not np.array_equal(log.epochs[1][p], log.start[p])  # noqa: E731
    assert changed("block3_bn/moving_mean") and changed("block3_bn/gamma")
    assert not changed("block2_bn/moving_mean") and not changed("block1_bn/gamma")


def test_bad_arguments_are_named(mnist_cnn_small, target):
    with pytest.raises(ValueError, match="only one unfreezing rule"):
        ProgressiveUnfreezing(every=1, patience=2)
    with pytest.raises(ValueError, match="every"):
        ProgressiveUnfreezing(every=0)
    model, stages = transfer_model(mnist_cnn_small)
    model.compile(keras.optimizers.Adam(), "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="rewarm_steps"):
        model.fit(*target, epochs=1, verbose=0,
                  callbacks=[ProgressiveUnfreezing(stages, initially_trainable=0, rewarm_steps=3, verbose=0)])
    with pytest.raises(ValueError, match="val_loss"):
        model.fit(*target, epochs=1, verbose=0,
                  callbacks=[ProgressiveUnfreezing(stages, initially_trainable=0, patience=1, verbose=0)])


@pytest.mark.slow
def test_find_learning_rate_restores_the_model(mnist_cnn_small, target, tmp_path):
    model, stages = transfer_model(mnist_cnn_small)
    stages[-1].set_trainable(True)
    model.compile(discriminative_optimizer(stages, 1e-3), "sparse_categorical_crossentropy")
    model.fit(*target, batch_size=32, epochs=1, verbose=0)
    optimizer = model.optimizer
    weights = [np.array(w) for w in model.get_weights()]
    slots = [np.array(v.numpy()) for v in optimizer.variables]
    plot = tmp_path / "lr_find.png"
    result = find_learning_rate(model, target, min_learning_rate=1e-5,
                                max_learning_rate=10.0, num_steps=40, batch_size=32,
                                plot_path=plot)
    assert model.optimizer is optimizer
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(before, after)
    for before, variable in zip(slots, optimizer.variables):
        np.testing.assert_array_equal(before, variable.numpy())
    rates = np.asarray(result.learning_rates)
    steps = np.arange(len(rates))
    np.testing.assert_allclose(rates, 1e-5 * (1e6) ** (steps / 40), rtol=1e-4)
    assert 3 <= len(result.losses) <= 40
    assert 1e-5 <= result.suggestion <= 10.0 and result.suggestion < rates[-1]
    # The loss at the end of the sweep is above its minimum: the sweep
    # went past the useful range.
    assert result.smoothed_losses[-1] > min(result.smoothed_losses)
    assert os.path.getsize(plot) > 0
    model.fit(*target, batch_size=32, epochs=1, verbose=0)  # still trains as before


def test_lr_finder_callback_recovers_each_batch_loss(mnist_cnn_small, target):
    model, _ = transfer_model(mnist_cnn_small)
    model.compile(keras.optimizers.SGD(1e-3), "sparse_categorical_crossentropy")
    finder = LRFinder(1e-7, 1e-6, num_steps=3, smoothing=0.0)
    x, y = target
    model.fit(x, y, batch_size=32, shuffle=False, epochs=1, callbacks=[finder], verbose=0)
    # At rates below 1e-6 the weights barely move: each recorded loss is
    # the loss of its own batch.
    expected = [model.evaluate(x[i:i + 32], y[i:i + 32], verbose=0) for i in (0, 32, 64)]
    np.testing.assert_allclose(finder.result.losses, expected, rtol=1e-3)


def _replica_copies(variable):
    return [c.numpy() for c in variable.value.values]


@pytest.mark.slow
def test_batchnorm_statistics_stay_equal_across_replicas(two_cpu_strategy):
    """Keras 3 lets each replica update its own copy of BatchNorm's moving
    statistics; the callback averages the copies, so the model predicts the
    same under the strategy as on one device."""
    rng = np.random.default_rng(0)
    # Two halves of every batch with different statistics: the replicas see
    # different data, so their copies drift apart without the callback.
    x = np.concatenate([rng.normal(0, 1, (16, 6)), rng.normal(3, 2, (16, 6))]).astype("float32")
    x = np.concatenate([x] * 4)
    y = rng.integers(0, 2, len(x)).astype("int32")

    def build():
        keras.utils.set_random_seed(0)
        with two_cpu_strategy.scope():
            inputs = keras.Input((6,))
            h = keras.layers.BatchNormalization(momentum=0.5, name="bn")(inputs)
            outputs = keras.layers.Dense(2, activation="softmax")(h)
            model = keras.Model(inputs, outputs)
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        return model

    drifting = build()
    drifting.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    mean_copies = _replica_copies(drifting.get_layer("bn").moving_mean)
    assert np.abs(mean_copies[0] - mean_copies[1]).max() > 0.5
    # The function alone averages them (mean and variance).
    assert sync_batchnorm_statistics(drifting) == 2
    synced = _replica_copies(drifting.get_layer("bn").moving_mean)
    np.testing.assert_allclose(synced[0], synced[1])
    np.testing.assert_allclose(synced[0], (mean_copies[0] + mean_copies[1]) / 2, rtol=1e-6)

    model = build()
    model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0,
              callbacks=[SyncBatchNormStatistics()])
    for variable in (model.get_layer("bn").moving_mean, model.get_layer("bn").moving_variance):
        copies = _replica_copies(variable)
        np.testing.assert_array_equal(copies[0], copies[1])
    under_strategy = model.predict(x[:32], batch_size=32, verbose=0)
    np.testing.assert_allclose(under_strategy, model(x[:32]).numpy(), atol=1e-6)
    # Outside a strategy there is nothing to average.
    single = keras.Sequential([keras.Input((6,)), keras.layers.BatchNormalization()])
    assert sync_batchnorm_statistics(single) == 0


class _Interrupt(keras.callbacks.Callback):
    """Stops the process's training after `epoch` (after the backup)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


@pytest.mark.training_path
@pytest.mark.slow
def test_backup_and_restore_resumes_with_the_same_stages_and_optimizer(
    mnist_cnn_small, target, tmp_path, caplog
):
    backup_dir = tmp_path / "backup"

    def run(callbacks, model=None):
        keras.utils.set_random_seed(0)
        if model is None:
            model, stages = transfer_model(mnist_cnn_small)
        else:
            stages = get_stages(model.get_layer("backbone"), num_groups=3)
        model.compile(discriminative_optimizer(stages, 1e-3),
                      "sparse_categorical_crossentropy", metrics=["accuracy"])
        unfreezing = ProgressiveUnfreezing(stages, initially_trainable=0, every=1, verbose=0, backup_dir=backup_dir)
        history = model.fit(*target, batch_size=32, epochs=4, shuffle=False, verbose=0,
                            callbacks=[unfreezing, keras.callbacks.BackupAndRestore(backup_dir)]
                            + callbacks)
        return model, history, unfreezing

    with pytest.raises(KeyboardInterrupt):
        run([_Interrupt(epoch=1)])
    assert (backup_dir / ProgressiveUnfreezing.STATE_FILE).exists()
    # A fresh process would build a fresh model: so does the resumed run.
    with caplog.at_level("WARNING"):
        resumed, history, unfreezing = run([])
    assert "Skipping variable loading" not in caplog.text
    # Epochs 3 and 4 ran with 2 then 3 stages, as in an uninterrupted run.
    assert history.history["trainable_stages"] == [2, 3]
    assert [e["stage"] for e in unfreezing.events] == ["group3", "group2", "group1"]
    reference, reference_history, _ = run([])
    assert reference_history.history["trainable_stages"] == [0, 1, 2, 3]
    x, _ = target
    np.testing.assert_allclose(resumed.predict(x, verbose=0), reference.predict(x, verbose=0),
                               atol=1e-4)


def test_one_unfreezing_specification_and_default(mnist_cnn_small, target):
    from keras_tl.engine import unfreeze_rule

    model, stages = transfer_model(mnist_cnn_small)
    model.compile(discriminative_optimizer(stages, 1e-3), "sparse_categorical_crossentropy")
    # The recipes' default: the top stage trains from the first epoch.
    unfreezing = ProgressiveUnfreezing(stages, unfreeze={"phases": 2}, verbose=0)
    history = model.fit(*target, batch_size=96, epochs=4, callbacks=[unfreezing], verbose=0)
    assert history.history["trainable_stages"] == [1, 1, 3, 3]
    assert unfreeze_rule(3, 4, 1, unfreeze={"phases": 2}) == {"at_epochs": [2, 2]}
    assert unfreeze_rule(3, 4, 1, unfreeze={"every": 2}) == {"every": 2}
    for bad in ({"every": 0}, {"often": 2}, {"every": 1, "patience": 2}, "every"):
        with pytest.raises(ValueError, match="unfreeze"):
            ProgressiveUnfreezing(stages, unfreeze=bad)
    with pytest.raises(ValueError, match="Pass the unfreezing rule once"):
        ProgressiveUnfreezing(stages, unfreeze={"every": 1}, every=2)
