"""A recipe's `.keras` file reloaded to keep training: frozen variables stay
frozen and the optimizer's state comes back (`keras_tl.load_model`), on
every backend."""

import keras
import numpy as np
import pytest

import keras_tl

SIZE = 32


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.uniform(0, 120, (n, SIZE, SIZE, 3)) + 120 * y[:, None, None, None]
    return x.astype("float32"), y


def _optimizer_values(model):
    return [keras.ops.convert_to_numpy(v) for v in model.optimizer.variables]


@pytest.mark.training_path
@pytest.mark.slow
def test_reloaded_hub_backbone_stays_frozen_and_the_optimizer_continues(tmp_path):
    import keras_hub

    keras.utils.set_random_seed(0)
    vit = keras_hub.models.ViTBackbone(
        image_shape=(SIZE, SIZE, 3), patch_size=8, num_layers=2, num_heads=2,
        hidden_dim=32, mlp_dim=64)
    x, y = _images(32)
    model = keras_tl.feature_extraction(vit, (x, y), verbose=0)
    # A few Adam steps on the head, so the optimizer has state to keep.
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    trainable = sorted(v.path for v in model.trainable_variables)
    state = _optimizer_values(model)
    path = tmp_path / "vit_head.keras"
    model.save(path)

    reloaded = keras_tl.load_model(path)
    # The KerasHub backbone's variables are frozen again: only the head trains.
    assert sorted(v.path for v in reloaded.trainable_variables) == trainable
    restored = _optimizer_values(reloaded)
    assert len(restored) == len(state) and int(restored[0]) == int(state[0]) > 0
    for before, after in zip(state, restored):
        np.testing.assert_array_equal(before, after)
    backbone = [v for v in reloaded.weights if "vi_t" in v.path or "transformer" in v.path]
    values = [keras.ops.convert_to_numpy(v).copy() for v in backbone]
    reloaded.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert int(keras.ops.convert_to_numpy(reloaded.optimizer.iterations)) == int(state[0]) + 2
    assert all(np.array_equal(v, keras.ops.convert_to_numpy(w)) for v, w in zip(values, backbone))


@pytest.mark.training_path
@pytest.mark.filterwarnings("ignore:fine_tune")
@pytest.mark.slow
def test_reloaded_fine_tuned_model_keeps_every_stage_optimizer(tmp_path):
    keras.utils.set_random_seed(0)
    cnn = keras_tl.build_small_cnn((SIZE, SIZE, 3), 2, width=8)
    backbone = keras.Model(cnn.input, cnn.get_layer("avg_pool").output)
    x, y = _images(32, seed=1)
    model = keras_tl.fine_tune(backbone, (x, y), (x, y), epochs=2, num_groups=2,
                               unfreeze={"every": 1}, batch_size=16, verbose=0,
                               restore_best_weights=False, keep_head_if_worse=False)
    assert len(model.optimizer.optimizers) == 3  # head and two stages
    if keras.backend.backend() == "torch":
        # jit_compile="auto" leaves PyTorch eager: torch.compile costs far
        # more than it saves on a model this size (84 s against 2 s).
        assert model.jit_compile is False
    state = _optimizer_values(model)
    path = tmp_path / "fine_tuned.keras"
    model.save(path)
    reloaded = keras_tl.load_model(path)
    restored = _optimizer_values(reloaded)
    assert [o.name for o in reloaded.optimizer.optimizers] == [
        o.name for o in model.optimizer.optimizers]
    assert len(restored) == len(state)
    for before, after in zip(state, restored):
        np.testing.assert_array_equal(before, after)
    reloaded.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert int(keras.ops.convert_to_numpy(reloaded.optimizer.iterations)) == int(state[0]) + 2


def test_load_model_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="No .keras file"):
        keras_tl.load_model(tmp_path / "missing.keras")
