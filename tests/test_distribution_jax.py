"""Several devices on JAX: `keras.distribution.DataParallel` over two host
devices (`--xla_force_host_platform_device_count=2`, set in conftest), the
counterpart of the `MirroredStrategy` tests on TensorFlow."""

import keras
import numpy as np
import pytest

from keras_tl.backbones import build_small_cnn
from keras_tl.distillation import Distiller
from keras_tl.recipes import fine_tune

pytestmark = [pytest.mark.jax_only, pytest.mark.training_path]


@pytest.fixture
def data_parallel():
    devices = keras.distribution.list_devices("cpu")
    assert len(devices) == 2, "conftest asks XLA for two host devices"
    distribution = keras.distribution.DataParallel(devices=devices)
    keras.distribution.set_distribution(distribution)
    yield distribution
    keras.distribution.set_distribution(None)


def _devices_of(variable):
    return {device.id for device in variable.value.sharding.device_set}


def test_fine_tune_runs_data_parallel_on_two_devices(data_parallel, digits_target):
    x, y = digits_target
    keras.utils.set_random_seed(0)
    network = build_small_cnn((28, 28, 1), 10, width=8, name="cnn")
    backbone = keras.Model(network.input, network.get_layer("avg_pool").output)
    model = fine_tune(backbone, (x[:96], y[:96]), num_classes=10, epochs=2,
                      batch_size=32, num_groups=2, verbose=0)
    kernel = model.get_layer("logits").kernel
    # Variables are replicated on both devices; batches are split between them.
    assert _devices_of(kernel) == {0, 1}
    assert np.all(np.isfinite(model.history.history["loss"]))
    assert model.history.history["trainable_stages"][1:] == [1, 2]
    distributed = model.predict(x[:64], verbose=0)
    keras.distribution.set_distribution(None)
    single = keras.ops.convert_to_numpy(model(x[:64], training=False))
    np.testing.assert_allclose(distributed, single, atol=1e-5)


def test_distiller_loss_under_data_parallel_equals_single_device(data_parallel):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 5)).astype("float32")
    y = rng.integers(0, 3, 32)

    def dense(name, seed):
        keras.utils.set_random_seed(seed)
        inputs = keras.Input((5,))
        hidden = keras.layers.Dense(4, activation="relu")(inputs)
        logits = keras.layers.Dense(3, name="logits")(hidden)
        return keras.Model(inputs, keras.layers.Softmax()(logits), name=name)

    distiller = Distiller(student=dense("student", 2), teacher=dense("teacher", 1))
    distiller.compile(optimizer="adam", metrics=["accuracy"])
    distributed = distiller.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    assert _devices_of(distiller.student.get_layer("logits").kernel) == {0, 1}
    trained = distiller.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    keras.distribution.set_distribution(None)
    single = Distiller(student=dense("student", 2), teacher=dense("teacher", 1))
    single.compile(optimizer="adam", metrics=["accuracy"])
    expected = single.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    assert distributed["loss"] == pytest.approx(expected["loss"], rel=1e-5)
    # Training on two devices follows the single-device run step for step.
    reference = single.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    assert np.all(np.isfinite(trained.history["loss"]))
    np.testing.assert_allclose(trained.history["loss"], reference.history["loss"], rtol=1e-4)
