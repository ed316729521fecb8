"""The fine_tune recipe: head phase, progressive unfreezing, saving."""

import keras
import numpy as np
import pytest

from keras_tl.recipes.fine_tuning import fine_tune


def mnist_backbone(source):
    copy = keras.models.clone_model(source)
    copy.set_weights(source.get_weights())
    return keras.Model(copy.input, copy.get_layer("avg_pool").output, name="mnist_backbone")


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
