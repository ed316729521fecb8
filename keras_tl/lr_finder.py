"""The learning-rate range test (Smith, 2017; fastai's `lr_find`).

The rate grows exponentially from a tiny value to a large one over a few
hundred steps while the loss is recorded; the loss first stalls, then falls,
then explodes. A good rate sits on the falling slope. The model's weights
and optimizer are restored afterwards, so the sweep leaves no trace.
"""

import dataclasses
import math

import keras

from keras_tl._utils.distribute import model_scope
from keras_tl._utils.validation import is_batched
import numpy as np

from keras_tl.schedules import ExponentialSweep
from keras_tl.schedules import StageLearningRate

__all__ = ["LRFinder", "LRFinderResult", "find_learning_rate"]

MultiOptimizer = keras.optimizers.MultiOptimizer
OptimizerMap = keras.optimizers.OptimizerMap


@dataclasses.dataclass
class LRFinderResult:
    """What a learning-rate sweep measured.

    Args:
        learning_rates: the rate of each step.
        losses: the training loss of each step's batch.
        smoothed_losses: the losses after debiased exponential smoothing.
        suggestion: the suggested rate (fastai's "valley": two thirds of the
            way down the longest stretch of falling loss).
        steepest: the rate where the smoothed loss falls fastest.
        minimum: the rate of the lowest smoothed loss (use about a tenth).

    Example:

    ```python
    result = find_learning_rate(model, (x, y))
    result.suggestion  # -> 0.0012
    result.plot("lr_find.png")
    ```
    """

    learning_rates: list
    losses: list
    smoothed_losses: list
    suggestion: float
    steepest: float
    minimum: float

    def plot(self, path=None):
        """Draws loss against learning rate (log scale).

        Args:
            path: optional output `.png` path.

        Returns:
            A `matplotlib.figure.Figure` (pyplot's backend is left as it is).
        """
        from keras_tl.plots import new_figure
        from keras_tl.plots import save_figure

        fig = new_figure((6, 4))
        ax = fig.subplots()
        ax.plot(self.learning_rates, self.losses, alpha=0.3, label="loss")
        ax.plot(self.learning_rates, self.smoothed_losses, label="smoothed loss")
        ax.axvline(self.suggestion, color="red", linestyle="--",
                   label=f"suggestion {self.suggestion:.2g}")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("training loss")
        finite = [v for v in self.smoothed_losses if math.isfinite(v)]
        if finite:
            low, start = min(finite), finite[0]
            ax.set_ylim(low - 0.1 * abs(start - low) - 1e-3, start + 0.5 * abs(start - low) + 1e-3)
        ax.legend()
        fig.tight_layout()
        return save_figure(fig, path)


class LRFinder(keras.callbacks.Callback):
    """Sweeps the learning rate exponentially during `fit`; restores the model.

    At the start of training the optimizer is swapped for a copy whose rate
    grows from `min_learning_rate` to `max_learning_rate` over `num_steps`
    steps (for a `MultiOptimizer`, every sub-optimizer keeps its ratio to
    the head's rate). Each step's loss is recorded; training stops after
    `num_steps` steps or when the smoothed loss exceeds `divergence` times
    its best. At the end the weights (BatchNorm statistics included) and
    the original optimizer, untouched, are put back.

    The loss of each batch is recovered from Keras's running epoch mean,
    which assumes equal batch sizes (true for every batch but an epoch's
    last); `keras_tl.find_learning_rate` runs one batch per epoch.

    Args:
        min_learning_rate: the first rate.
        max_learning_rate: the rate after `num_steps` steps.
        num_steps: length of the sweep.
        smoothing: exponential smoothing of the loss (fastai: 0.98).
        divergence: stop once the smoothed loss is this many times its
            minimum.
        restore: put the weights and optimizer back at the end.
        plot_path: if given, where the loss-vs-rate PNG is saved.
        verbose: 1 prints the suggestion.

    Example:

    ```python
    finder = LRFinder(num_steps=100)
    model.fit(train.repeat(), steps_per_epoch=1, epochs=100,
              callbacks=[finder], verbose=0)
    finder.result.suggestion
    ```
    """

    def __init__(
        self,
        min_learning_rate=1e-7,
        max_learning_rate=10.0,
        num_steps=200,
        smoothing=0.98,
        divergence=4.0,
        restore=True,
        plot_path=None,
        verbose=0,
    ):
        super().__init__()
        self.sweep = ExponentialSweep(min_learning_rate, max_learning_rate, num_steps)
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1); got {smoothing!r}.")
        self.num_steps = int(num_steps)
        self.smoothing = float(smoothing)
        self.divergence = float(divergence)
        self.restore = restore
        self.plot_path = plot_path
        self.verbose = verbose
        self.result = None

    def on_train_begin(self, logs=None):
        model = self.model
        if not model.compiled or model.optimizer is None:
            raise ValueError("Compile the model (optimizer and loss) before the sweep.")
        with model_scope(model):
            if not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
            self._original = model.optimizer
            self._weights = model.get_weights()
            sweep_optimizer = _sweep_copy(model.optimizer, self.sweep)
            sweep_optimizer.build(model.trainable_variables)
        model.optimizer = sweep_optimizer
        model.make_train_function(force=True)
        self._rates, self._losses, self._smoothed = [], [], []
        self._average, self._best = 0.0, math.inf
        self._previous_mean = 0.0

    def on_train_batch_end(self, batch, logs=None):
        mean = float(keras.ops.convert_to_numpy(logs["loss"]))
        # `logs["loss"]` is the mean since the epoch began.
        loss = mean if batch == 0 else (batch + 1) * mean - batch * self._previous_mean
        self._previous_mean = mean
        step = len(self._losses)
        self._rates.append(float(keras.ops.convert_to_numpy(self.sweep(step))))
        self._losses.append(loss)
        self._average = self.smoothing * self._average + (1 - self.smoothing) * loss
        smoothed = self._average / (1 - self.smoothing ** (step + 1))
        self._smoothed.append(smoothed)
        if math.isfinite(smoothed):
            self._best = min(self._best, smoothed)
        diverged = not math.isfinite(smoothed) or (
            step > 10 and smoothed > self.divergence * self._best
        )
        if diverged or step + 1 >= self.num_steps:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        model = self.model
        if self.restore:
            model.set_weights(self._weights)
            model.optimizer = self._original
            model.make_train_function(force=True)
        if len(self._losses) < 3:
            raise ValueError(
                f"The sweep ran {len(self._losses)} step(s); it needs at least 3. "
                "Give it more data or steps (num_steps)."
            )
        self.result = _analyse(self._rates, self._losses, self._smoothed)
        if self.plot_path:
            self.result.plot(self.plot_path)
        if self.verbose:
            print(
                f"LR finder: suggestion {self.result.suggestion:.3g} (steepest "
                f"{self.result.steepest:.3g}, minimum {self.result.minimum:.3g}) "
                f"after {len(self._losses)} steps."
            )


def _current_rate(optimizer):
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


def _copy_with_rate(optimizer, rate, name=None):
    config = optimizer.get_config()
    config["learning_rate"] = rate
    if name:
        config["name"] = name
    return optimizer.__class__.from_config(config)


def _sweep_copy(optimizer, sweep):
    if not isinstance(optimizer, MultiOptimizer):
        return _copy_with_rate(optimizer, sweep)
    rule = optimizer._optimizer_map
    if not isinstance(rule, OptimizerMap):
        raise ValueError(
            "The LR finder copies each sub-optimizer of a MultiOptimizer, which "
            "needs a keras.optimizers.OptimizerMap, not a function."
        )
    head_rate = _current_rate(rule.default_optimizer)
    copies = {}

    def copy(opt):
        if id(opt) not in copies:
            ratio = _current_rate(opt) / head_rate if head_rate else 1.0
            copies[id(opt)] = _copy_with_rate(opt, StageLearningRate(sweep, ratio))
        return copies[id(opt)]

    return MultiOptimizer(
        OptimizerMap(copy(rule.default_optimizer), {k: copy(v) for k, v in rule.items()}),
        name=optimizer.name,
    )


def _valley(losses):
    """fastai's valley: the longest decreasing run of the smoothed loss."""
    n = len(losses)
    longest = [1] * n
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and longest[i] < longest[j] + 1:
                longest[i] = longest[j] + 1
    end = int(np.argmax(longest))
    start = end - longest[end] + 1
    section = (end - start) / 3
    return min(n - 1, start + int(section) + int(section / 2))


def _analyse(rates, losses, smoothed):
    values = np.asarray(smoothed, np.float64)
    finite = np.isfinite(values)
    last = int(np.nonzero(finite)[0][-1]) + 1 if finite.any() else len(values)
    values, rates_array = values[:last], np.asarray(rates[:last])
    lowest = int(np.nanargmin(values))
    slopes = np.gradient(values, np.log10(rates_array))
    steepest = int(np.argmin(slopes[: max(lowest, 1) + 1]))
    return LRFinderResult(
        learning_rates=list(rates),
        losses=list(losses),
        smoothed_losses=list(smoothed),
        suggestion=float(rates_array[_valley(list(values))]),
        steepest=float(rates_array[steepest]),
        minimum=float(rates_array[lowest]),
    )


def find_learning_rate(
    model,
    data,
    *,
    min_learning_rate=1e-7,
    max_learning_rate=10.0,
    num_steps=200,
    batch_size=32,
    plot_path=None,
    seed=0,
    verbose=0,
):
    """Runs the learning-rate range test on a compiled model.

    The model trains for up to `num_steps` batches at exponentially growing
    rates (stopping early when the loss explodes); its weights, optimizer
    and `history` are restored afterwards. With a `MultiOptimizer`
    (discriminative rates), the rate swept is the head's and every stage
    keeps its ratio to it.

    Args:
        model: a compiled `keras.Model`, with the layers to be trained
            trainable.
        data: `(x, y)` arrays, a folder or a `tf.data.Dataset` (see
            `keras_tl.as_dataset`); repeated as needed.
        min_learning_rate: the first rate (fastai: 1e-7).
        max_learning_rate: the last rate (fastai: 10).
        num_steps: steps of the sweep.
        batch_size: batch size for arrays or folders.
        plot_path: where to save the loss-vs-rate PNG, if anywhere.
        seed: seed of the shuffling.
        verbose: 1 prints the suggestion.

    Returns:
        An `LRFinderResult`; `.suggestion` is the rate to use.

    Example:

    ```python
    result = keras_tl.find_learning_rate(model, (x, y), plot_path="lr.png")
    model.compile(keras.optimizers.Adam(result.suggestion), loss=...)
    ```
    """
    import tensorflow as tf

    from keras_tl.data import as_dataset

    if isinstance(data, tf.data.Dataset) and is_batched(data.element_spec):
        dataset = data
    else:
        dataset = as_dataset(data, batch_size=batch_size, seed=seed).train
    finder = LRFinder(
        min_learning_rate, max_learning_rate, num_steps,
        plot_path=plot_path, verbose=verbose,
    )
    history = getattr(model, "history", None)
    # One batch per epoch: each batch's loss is then reported exactly.
    model.fit(dataset.repeat(), steps_per_epoch=1, epochs=num_steps,
              callbacks=[finder], shuffle=False, verbose=0)
    model.history = history
    return finder.result
