"""Schedules equal their closed forms and survive saving."""

import math

import keras
import numpy as np
import pytest

from keras_tl.schedules import ExponentialSweep
from keras_tl.schedules import OneCycle
from keras_tl.schedules import SlantedTriangular
from keras_tl.schedules import StageLearningRate
from keras_tl.schedules import WarmupDecay


def value(schedule, step):
    return float(keras.ops.convert_to_numpy(schedule(step)))


def approx(expected, abs=1e-12):
    # Schedules compute in float32.
    return pytest.approx(expected, rel=1e-5, abs=abs)


def test_warmup_cosine_equals_keras_cosine_decay_with_warmup():
    ours = WarmupDecay(1e-3, total_steps=200, warmup_steps=20, final_learning_rate=1e-5,
                       initial_learning_rate=1e-6)
    keras_schedule = keras.optimizers.schedules.CosineDecay(
        1e-6, decay_steps=180, alpha=1e-5 / 1e-3, warmup_target=1e-3, warmup_steps=20
    )
    for step in (0, 1, 10, 19, 20, 21, 65, 110, 199, 200):
        assert value(ours, step) == approx(value(keras_schedule, step))


def test_warmup_decay_closed_forms():
    cosine = WarmupDecay(0.1, total_steps=110, warmup_steps=10, final_learning_rate=0.01)
    assert value(cosine, 0) == 0.0
    assert value(cosine, 5) == approx(0.05)
    assert value(cosine, 10) == approx(0.1)
    # Half-way through the decay: cos(pi/2) = 0.
    assert value(cosine, 60) == approx(0.01 + 0.09 * 0.5)
    assert value(cosine, 35) == approx(0.01 + 0.09 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert value(cosine, 110) == approx(0.01)
    assert value(cosine, 500) == approx(0.01)  # stays at the floor
    linear = WarmupDecay(0.1, total_steps=110, warmup_steps=10, decay="linear")
    assert value(linear, 35) == approx(0.075)
    assert value(linear, 110) == approx(0.0, abs=1e-9)


def test_slanted_triangular_closed_form():
    # ULMFiT eq. 3 with T=1000, cut_frac=0.1 (cut=100), ratio=32.
    stlr = SlantedTriangular(0.01, total_steps=1000, cut_fraction=0.1, ratio=32)
    expected = lambda p: 0.01 * (1 + p * 31) / 32  # noqa: E731
    assert value(stlr, 0) == approx(expected(0.0))
    assert value(stlr, 50) == approx(expected(0.5))
    assert value(stlr, 100) == approx(0.01)
    # p = 1 - (550 - 100) / (100 * (1 / 0.1 - 1)) = 0.5
    assert value(stlr, 550) == approx(expected(0.5))
    assert value(stlr, 1000) == approx(expected(0.0))


def test_one_cycle_closed_form():
    schedule = OneCycle(1e-3, total_steps=400, warmup_fraction=0.25, div_factor=25,
                        final_div_factor=1e4)
    assert value(schedule, 0) == approx(1e-3 / 25)
    assert value(schedule, 50) == approx((1e-3 + 1e-3 / 25) / 2)
    assert value(schedule, 100) == approx(1e-3)
    assert value(schedule, 250) == approx((1e-3 + 1e-7) / 2)
    assert value(schedule, 400) == approx(1e-7)


def test_stage_learning_rate_multiplier_and_rewarm():
    base = WarmupDecay(1e-2, total_steps=100, warmup_steps=0, decay="linear")
    rate = StageLearningRate(base, multiplier=1 / 2.6**2, rewarm_begin=40, rewarm_steps=4)
    full = lambda step: 1e-2 * (1 - step / 100) / 2.6**2  # noqa: E731
    assert value(rate, 30) == 0.0  # not started yet
    assert value(rate, 40) == approx(full(40) * 1 / 4)
    assert value(rate, 42) == approx(full(42) * 3 / 4)
    assert value(rate, 43) == approx(full(43))
    assert value(rate, 80) == approx(full(80))
    assert value(StageLearningRate(3e-4, multiplier=0.5), 7) == approx(1.5e-4)


def test_exponential_sweep_closed_form():
    sweep = ExponentialSweep(1e-6, 1.0, num_steps=60, begin=10)
    assert value(sweep, 10) == approx(1e-6)
    assert value(sweep, 40) == approx(1e-3)
    assert value(sweep, 70) == approx(1.0)


SCHEDULES = [
    WarmupDecay(1e-3, 100, 10, decay="linear", final_learning_rate=1e-5),
    SlantedTriangular(1e-2, 300),
    OneCycle(1e-3, 50),
    StageLearningRate(OneCycle(1e-3, 50), multiplier=0.25, rewarm_begin=5, rewarm_steps=3),
    ExponentialSweep(1e-7, 10.0, 100),
]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: type(s).__name__)
def test_schedules_serialize(schedule):
    config = keras.saving.serialize_keras_object(schedule)
    restored = keras.saving.deserialize_keras_object(config, safe_mode=True)
    assert type(restored) is type(schedule)
    for step in (0, 3, 17, 49):
        assert value(restored, step) == approx(value(schedule, step))


@pytest.mark.training_path
def test_schedule_saves_with_model(tmp_path):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    rate = StageLearningRate(WarmupDecay(1e-2, 20, 5), multiplier=0.5)
    model.compile(keras.optimizers.Adam(rate), "mse")
    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    model.fit(x, np.zeros((8, 2)), epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    schedule = loaded.optimizer._learning_rate
    assert isinstance(schedule, StageLearningRate)
    assert value(schedule, 7) == approx(value(rate, 7))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="warmup_steps"):
        WarmupDecay(1e-3, total_steps=10, warmup_steps=20)
    with pytest.raises(ValueError, match="decay"):
        WarmupDecay(1e-3, total_steps=10, decay="step")
    with pytest.raises(ValueError, match="cut_fraction"):
        SlantedTriangular(1e-2, 100, cut_fraction=1.5)
    with pytest.raises(ValueError, match="min_learning_rate"):
        ExponentialSweep(1.0, 1e-3, 10)
