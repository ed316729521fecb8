"""Learning-rate schedules for fine-tuning.

Every schedule is a serializable `keras.optimizers.schedules.LearningRateSchedule`
(saved with the optimizer in `.keras` files, loadable with `safe_mode=True`):

- `WarmupDecay`: linear warm-up, then cosine or linear decay to a floor.
- `SlantedTriangular`: ULMFiT's short linear rise and long linear decay
  (Howard & Ruder, 2018).
- `OneCycle`: fastai's one-cycle policy (Smith, 2018): cosine rise from
  `max / div_factor` to `max`, cosine fall to `max / final_div_factor`.
- `StageLearningRate`: a base rate or schedule times a per-stage multiplier,
  with an optional short re-warm-up that starts when the stage is unfrozen;
  the building block of discriminative learning rates.
- `ExponentialSweep`: the exponentially growing rate of the LR finder.
"""

import math

import keras
from keras import ops

__all__ = [
    "ExponentialSweep",
    "OneCycle",
    "SlantedTriangular",
    "StageLearningRate",
    "WarmupDecay",
]

LearningRateSchedule = keras.optimizers.schedules.LearningRateSchedule


def _as_float(step):
    return ops.cast(step, "float32")


def _serialize_rate(rate):
    if isinstance(rate, LearningRateSchedule):
        return keras.saving.serialize_keras_object(rate)
    return float(rate)


def _deserialize_rate(rate):
    if isinstance(rate, dict):
        return keras.saving.deserialize_keras_object(rate)
    return rate


def _evaluate(rate, step):
    if isinstance(rate, LearningRateSchedule):
        return ops.cast(rate(step), "float32")
    return ops.convert_to_tensor(float(rate), "float32")


def _check_steps(name, value, minimum=1):
    if int(value) != value or value < minimum:
        raise ValueError(
            f"`{name}` must be an integer >= {minimum}; got {value!r}."
        )


@keras.saving.register_keras_serializable(package="keras_tl")
class WarmupDecay(LearningRateSchedule):
    """Linear warm-up to a peak rate, then cosine or linear decay to a floor.

    For `step < warmup_steps` the rate rises linearly from
    `initial_learning_rate` to `peak_learning_rate`; over the remaining
    `total_steps - warmup_steps` steps it decays to `final_learning_rate`
    (cosine: `final + (peak - final) * (1 + cos(pi * p)) / 2`; linear:
    `peak + (final - peak) * p`, with `p` the fraction of the decay done)
    and stays there afterwards. With `decay="cosine"` it equals Keras's
    `CosineDecay(initial_learning_rate, total_steps - warmup_steps,
    alpha=final / peak, warmup_target=peak, warmup_steps=warmup_steps)`;
    this class adds the linear decay and names the floor directly.

    Args:
        peak_learning_rate: the rate at the end of the warm-up.
        total_steps: warm-up plus decay steps (e.g. `epochs * steps_per_epoch`).
        warmup_steps: steps of linear warm-up; 0 for none.
        decay: `"cosine"` or `"linear"`.
        final_learning_rate: the floor reached at `total_steps`.
        initial_learning_rate: the rate at step 0 of the warm-up.
        name: optional name.

    Example:

    ```python
    schedule = WarmupDecay(1e-3, total_steps=1000, warmup_steps=100)
    float(schedule(100))  # -> 0.001
    optimizer = keras.optimizers.Adam(schedule)
    ```
    """

    def __init__(
        self,
        peak_learning_rate,
        total_steps,
        warmup_steps=0,
        decay="cosine",
        final_learning_rate=0.0,
        initial_learning_rate=0.0,
        name="warmup_decay",
    ):
        super().__init__()
        _check_steps("total_steps", total_steps)
        _check_steps("warmup_steps", warmup_steps, minimum=0)
        if warmup_steps > total_steps:
            raise ValueError(
                f"warmup_steps={warmup_steps} exceeds total_steps={total_steps}; "
                "the warm-up must fit inside the schedule."
            )
        if decay not in ("cosine", "linear"):
            raise ValueError(f"decay must be 'cosine' or 'linear'; got {decay!r}.")
        self.peak_learning_rate = float(peak_learning_rate)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.decay = decay
        self.final_learning_rate = float(final_learning_rate)
        self.initial_learning_rate = float(initial_learning_rate)
        self.name = name

    def __call__(self, step):
        step = _as_float(step)
        peak, final = self.peak_learning_rate, self.final_learning_rate
        warmup = self.initial_learning_rate + (peak - self.initial_learning_rate) * (
            step / max(self.warmup_steps, 1)
        )
        decay_steps = max(self.total_steps - self.warmup_steps, 1)
        progress = ops.clip((step - self.warmup_steps) / decay_steps, 0.0, 1.0)
        if self.decay == "cosine":
            decayed = final + (peak - final) * 0.5 * (1.0 + ops.cos(math.pi * progress))
        else:
            decayed = peak + (final - peak) * progress
        return ops.where(step < self.warmup_steps, warmup, decayed)

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "decay": self.decay,
            "final_learning_rate": self.final_learning_rate,
            "initial_learning_rate": self.initial_learning_rate,
            "name": self.name,
        }


@keras.saving.register_keras_serializable(package="keras_tl")
class SlantedTriangular(LearningRateSchedule):
    """ULMFiT's slanted triangular learning rate (Howard & Ruder, 2018, eq. 3).

    A short linear rise over the first `cut_fraction` of training, then a
    long linear decay: with `cut = floor(total_steps * cut_fraction)`,
    `p = step / cut` before the cut and
    `p = 1 - (step - cut) / (cut * (1 / cut_fraction - 1))` after, the rate
    is `max_learning_rate * (1 + p * (ratio - 1)) / ratio`.

    Args:
        max_learning_rate: the peak rate (ULMFiT: 0.01).
        total_steps: steps of training.
        cut_fraction: fraction of the steps spent rising (ULMFiT: 0.1).
        ratio: how much smaller the lowest rate is than the peak (ULMFiT: 32).
        name: optional name.

    Example:

    ```python
    schedule = SlantedTriangular(0.01, total_steps=1000)
    float(schedule(100))  # -> 0.01
    ```
    """

    def __init__(
        self,
        max_learning_rate,
        total_steps,
        cut_fraction=0.1,
        ratio=32.0,
        name="slanted_triangular",
    ):
        super().__init__()
        _check_steps("total_steps", total_steps)
        if not 0.0 < cut_fraction < 1.0:
            raise ValueError(f"cut_fraction must be in (0, 1); got {cut_fraction!r}.")
        if ratio < 1.0:
            raise ValueError(f"ratio must be >= 1; got {ratio!r}.")
        self.max_learning_rate = float(max_learning_rate)
        self.total_steps = int(total_steps)
        self.cut_fraction = float(cut_fraction)
        self.ratio = float(ratio)
        self.name = name

    def __call__(self, step):
        step = _as_float(step)
        cut = max(math.floor(self.total_steps * self.cut_fraction), 1)
        rising = step / cut
        falling = 1.0 - (step - cut) / (cut * (1.0 / self.cut_fraction - 1.0))
        p = ops.clip(ops.where(step < cut, rising, falling), 0.0, 1.0)
        return self.max_learning_rate * (1.0 + p * (self.ratio - 1.0)) / self.ratio

    def get_config(self):
        return {
            "max_learning_rate": self.max_learning_rate,
            "total_steps": self.total_steps,
            "cut_fraction": self.cut_fraction,
            "ratio": self.ratio,
            "name": self.name,
        }


@keras.saving.register_keras_serializable(package="keras_tl")
class OneCycle(LearningRateSchedule):
    """The one-cycle policy (Smith, 2018) with fastai's cosine annealing.

    Over the first `warmup_fraction` of the steps the rate rises from
    `max_learning_rate / div_factor` to `max_learning_rate` along half a
    cosine; over the rest it falls along half a cosine to
    `max_learning_rate / final_div_factor`. Defaults are fastai's
    `fit_one_cycle` (`pct_start=0.25`, `div=25`, `div_final=1e5`). Momentum
    is not cycled: Keras optimizers keep `beta_1` fixed.

    Args:
        max_learning_rate: the peak rate.
        total_steps: steps of training.
        warmup_fraction: fraction of the steps spent rising.
        div_factor: the starting rate is `max_learning_rate / div_factor`.
        final_div_factor: the final rate is
            `max_learning_rate / final_div_factor`.
        name: optional name.

    Example:

    >>> schedule = OneCycle(1e-3, total_steps=400)
    >>> round(float(schedule(0)), 6), round(float(schedule(100)), 6)
    (4e-05, 0.001)
    """

    def __init__(
        self,
        max_learning_rate,
        total_steps,
        warmup_fraction=0.25,
        div_factor=25.0,
        final_div_factor=1e5,
        name="one_cycle",
    ):
        super().__init__()
        _check_steps("total_steps", total_steps)
        if not 0.0 <= warmup_fraction <= 1.0:
            raise ValueError(
                f"warmup_fraction must be in [0, 1]; got {warmup_fraction!r}."
            )
        self.max_learning_rate = float(max_learning_rate)
        self.total_steps = int(total_steps)
        self.warmup_fraction = float(warmup_fraction)
        self.div_factor = float(div_factor)
        self.final_div_factor = float(final_div_factor)
        self.name = name

    def __call__(self, step):
        step = _as_float(step)
        peak = self.max_learning_rate
        start = peak / self.div_factor
        end = peak / self.final_div_factor
        rise_steps = self.total_steps * self.warmup_fraction
        fall_steps = self.total_steps - rise_steps
        rise = ops.clip(step / max(rise_steps, 1e-9), 0.0, 1.0)
        fall = ops.clip((step - rise_steps) / max(fall_steps, 1e-9), 0.0, 1.0)
        rising = peak + (start - peak) * 0.5 * (1.0 + ops.cos(math.pi * rise))
        falling = end + (peak - end) * 0.5 * (1.0 + ops.cos(math.pi * fall))
        return ops.where(step < rise_steps, rising, falling)

    def get_config(self):
        return {
            "max_learning_rate": self.max_learning_rate,
            "total_steps": self.total_steps,
            "warmup_fraction": self.warmup_fraction,
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
            "name": self.name,
        }


@keras.saving.register_keras_serializable(package="keras_tl")
class StageLearningRate(LearningRateSchedule):
    """One stage's rate: a base rate or schedule times a multiplier.

    Discriminative fine-tuning gives each stage `multiplier = factor ** -d`
    of the base rate, `d` being the stage's distance from the head. When a
    stage is unfrozen mid-training, `rewarm_begin` and `rewarm_steps` ramp
    its rate linearly from `1 / rewarm_steps` of the target up to the
    target, so fresh optimizer slots (zero momentum, zero second moment)
    do not meet the full rate at once. The rate is, for `step >=
    rewarm_begin`:
    `multiplier * base(step) * min(1, (step - rewarm_begin + 1) / rewarm_steps)`.

    Args:
        base: a float or a `LearningRateSchedule` evaluated at the global step.
        multiplier: constant factor of this stage.
        rewarm_begin: the global step at which the stage was unfrozen.
        rewarm_steps: length of the re-warm-up; 0 for none.
        name: optional name.

    Example:

    >>> rate = StageLearningRate(WarmupDecay(1e-3, 1000, 100), multiplier=1 / 2.6)
    >>> optimizer = keras.optimizers.Adam(rate)
    """

    def __init__(
        self, base, multiplier=1.0, rewarm_begin=0, rewarm_steps=0,
        name="stage_learning_rate",
    ):
        super().__init__()
        if not isinstance(base, (int, float, LearningRateSchedule)):
            raise TypeError(
                "`base` must be a float or a keras LearningRateSchedule; got "
                f"{type(base).__name__}."
            )
        _check_steps("rewarm_begin", rewarm_begin, minimum=0)
        _check_steps("rewarm_steps", rewarm_steps, minimum=0)
        self.base = base
        self.multiplier = float(multiplier)
        self.rewarm_begin = int(rewarm_begin)
        self.rewarm_steps = int(rewarm_steps)
        self.name = name

    def __call__(self, step):
        rate = self.multiplier * _evaluate(self.base, step)
        if self.rewarm_steps:
            done = (_as_float(step) - self.rewarm_begin + 1.0) / self.rewarm_steps
            rate = rate * ops.clip(done, 0.0, 1.0)
        return rate

    def get_config(self):
        return {
            "base": _serialize_rate(self.base),
            "multiplier": self.multiplier,
            "rewarm_begin": self.rewarm_begin,
            "rewarm_steps": self.rewarm_steps,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["base"] = _deserialize_rate(config["base"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_tl")
class ExponentialSweep(LearningRateSchedule):
    """Rate growing exponentially from `min_learning_rate` to `max_learning_rate`.

    `rate(step) = min * (max / min) ** ((step - begin) / num_steps)`; the
    sweep of the learning-rate range test (Smith, 2017) used by
    `keras_tl.find_learning_rate`.

    Args:
        min_learning_rate: the rate at `begin`.
        max_learning_rate: the rate `num_steps` steps later.
        num_steps: length of the sweep.
        begin: the optimizer step the sweep starts at.
        name: optional name.

    Example:

    ```python
    sweep = ExponentialSweep(1e-7, 1.0, num_steps=100)
    float(sweep(100))  # -> 1.0
    ```
    """

    def __init__(self, min_learning_rate, max_learning_rate, num_steps, begin=0,
                 name="exponential_sweep"):
        super().__init__()
        _check_steps("num_steps", num_steps)
        if not 0.0 < min_learning_rate < max_learning_rate:
            raise ValueError(
                "Need 0 < min_learning_rate < max_learning_rate; got "
                f"{min_learning_rate!r} and {max_learning_rate!r}."
            )
        self.min_learning_rate = float(min_learning_rate)
        self.max_learning_rate = float(max_learning_rate)
        self.num_steps = int(num_steps)
        self.begin = int(begin)
        self.name = name

    def __call__(self, step):
        fraction = (_as_float(step) - self.begin) / self.num_steps
        log_ratio = math.log(self.max_learning_rate / self.min_learning_rate)
        return self.min_learning_rate * ops.exp(log_ratio * fraction)

    def get_config(self):
        return {
            "min_learning_rate": self.min_learning_rate,
            "max_learning_rate": self.max_learning_rate,
            "num_steps": self.num_steps,
            "begin": self.begin,
            "name": self.name,
        }
