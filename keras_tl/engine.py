"""The engine every recipe runs on.

Every recipe composes the same steps: check the knobs, read the data,
build the backbone and head, train, keep the history, compile for
evaluation. The training steps live here, once: `callback_stack` (the
checkpoint's claim, the non-finite guard, BatchNorm statistics kept in sync
across replicas, the checkpoint itself, then the user's callbacks, in that
order), `epoch_history` and `merge_histories` (a recipe's `model.history`),
`training_labels` and `with_class_weights` (class weights on a
`tf.data` pipeline), and `fit_stages`.

Phase 1 (the recipes' own: a head fitted on cached embeddings) leaves a model
whose backbone is split into `keras_tl.Stage`s. Phase 2 is `fit_stages`: one
`fit` in which the stages unfreeze from the top down
(`keras_tl.callbacks.ProgressiveUnfreezing`), each at its own learning rate
(`keras_tl.discriminative_optimizer`, a factor `layer_decay` per stage away
from the head), under one schedule from `make_schedule`. The image recipe
(`fine_tune`) and the text recipe (`text_classifier`) share it, with the same
knob names.
"""

from __future__ import annotations

import math
from typing import Sequence

import keras

from keras_tl._utils.distribute import distribution_scope
from keras_tl._utils.knobs import ema_kwargs
from keras_tl._utils.knobs import make_optimizer
from keras_tl.callbacks import ProgressiveUnfreezing
from keras_tl.callbacks import SyncBatchNormStatistics
from keras_tl.finite import StopOnNonFiniteLoss
from keras_tl.finite import backup_and_restore
from keras_tl.optimizers import discriminative_optimizer
from keras_tl.stages import UNFREEZE_RULES  # noqa: F401  (re-exported)
from keras_tl.stages import check_unfreeze  # noqa: F401  (re-exported)
from keras_tl.stages import unfreeze_rule
from keras_tl.schedules import OneCycle
from keras_tl.schedules import SlantedTriangular
from keras_tl.schedules import WarmupDecay

__all__ = [
    "SCHEDULES",
    "UNFREEZE_RULES",
    "best_epoch_monitor",
    "callback_stack",
    "check_unfreeze",
    "classification_metrics",
    "epoch_history",
    "fit_stages",
    "make_schedule",
    "merge_histories",
    "training_labels",
    "unfreeze_rule",
    "with_class_weights",
]

SCHEDULES = ("cosine", "linear", "slanted_triangular", "one_cycle", "constant")


def make_schedule(
    schedule: str | keras.optimizers.schedules.LearningRateSchedule,
    learning_rate: float,
    total_steps: int,
    warmup_fraction: float = 0.1,
) -> keras.optimizers.schedules.LearningRateSchedule | float:
    """The learning-rate schedule of a training run, from its name.

    - `"cosine"`: linear warm-up from 0 to `learning_rate` over
      `warmup_fraction` of the steps, then cosine decay to zero: Keras'
      `CosineDecay(warmup_target=..., warmup_steps=...)`.
    - `"linear"`: the same warm-up, then linear decay to zero (BERT's
      schedule; `keras_tl.schedules.WarmupDecay`).
    - `"slanted_triangular"` (ULMFiT) and `"one_cycle"` (fastai), with
      `warmup_fraction` as their rising part.
    - `"constant"`: `learning_rate` throughout.

    Args:
        schedule: one of `SCHEDULES`, or a `LearningRateSchedule` (returned
            as is).
        learning_rate: the peak rate.
        total_steps: optimizer steps of the run.
        warmup_fraction: fraction of the steps spent warming up, in [0, 1).

    Returns:
        A `LearningRateSchedule` (or the float rate for `"constant"`).

    Example:

    >>> rate = make_schedule("cosine", 1e-3, total_steps=100)
    >>> round(float(rate(10)), 6), round(float(rate(100)), 6)
    (0.001, 0.0)
    """
    if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        return schedule
    if schedule not in SCHEDULES:
        raise ValueError(
            f"schedule must be one of {SCHEDULES} or a LearningRateSchedule; "
            f"got {schedule!r}."
        )
    if not (isinstance(learning_rate, (int, float)) and math.isfinite(learning_rate)
            and learning_rate > 0):
        raise ValueError(f"learning_rate must be a positive number; got {learning_rate!r}.")
    if not 0.0 <= warmup_fraction < 1.0:
        raise ValueError(f"warmup_fraction must be in [0, 1); got {warmup_fraction!r}.")
    total_steps = int(total_steps)
    if total_steps < 1:
        raise ValueError(f"total_steps must be at least 1; got {total_steps}.")
    if schedule == "constant":
        return float(learning_rate)
    warmup = min(int(round(total_steps * warmup_fraction)), total_steps - 1)
    if schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0 if warmup else float(learning_rate),
            decay_steps=max(1, total_steps - warmup),
            warmup_target=float(learning_rate) if warmup else None,
            warmup_steps=warmup,
        )
    if schedule == "linear":
        return WarmupDecay(learning_rate, total_steps, warmup, decay="linear")
    if schedule == "slanted_triangular":
        return SlantedTriangular(learning_rate, total_steps, cut_fraction=warmup_fraction)
    return OneCycle(learning_rate, total_steps, warmup_fraction=warmup_fraction)


def callback_stack(callbacks=None, *, checkpoint=(), first=(), sync_batchnorm=True,
                   restore_best=False, ema=False):
    """The callbacks of a recipe's `fit`, in the one order every recipe uses.

    The checkpoint's claim (lock and fingerprint, before anything reads its
    folder), then `first` (e.g. `ProgressiveUnfreezing`, which must make
    the resumed epoch's stages trainable before the optimizer state loads),
    `StopOnNonFiniteLoss`, `SyncBatchNormStatistics` (a no-op on one
    replica), the checkpoint (it saves what the callbacks before it left),
    with `ema` Keras' `SwapEMAWeights` (validation, the user's callbacks
    and the best-epoch choice see the averaged weights; the checkpoint
    before it saves the raw ones and the averages), and last the user's
    own callbacks.

    Args:
        callbacks: the user's callbacks, or `None`.
        checkpoint: what `keras_tl.finite.backup_and_restore` returned (an
            empty list for no checkpoint).
        first: callbacks that run before the guards.
        sync_batchnorm: add `SyncBatchNormStatistics`.
        restore_best: end with Keras' `EarlyStopping` that never stops but
            restores the weights of the epoch with the best `val_accuracy`
            when training ends (the "keep the best epoch" habit); a string
            names the logged value to watch instead (`"val_loss"` and other
            `*loss` values are minimized, the rest maximized).
        ema: the recipe's `ema` knob (`False`, `True` or a momentum): when
            on, the optimizer keeps an exponential moving average of the
            weights (`use_ema=True`), which `fit` puts in at its end.

    Returns:
        A list of callbacks for `fit`.

    Example:

    ```python
    model.fit(train, epochs=5, callbacks=callback_stack(
        [keras.callbacks.CSVLogger("log.csv")],
        checkpoint=backup_and_restore("ckpt")))
    ```
    """
    checkpoint = list(checkpoint)
    return (
        [checkpoint[0].guard for _ in checkpoint[:1]]
        + list(first)
        + [StopOnNonFiniteLoss()]
        + [SyncBatchNormStatistics()] * bool(sync_batchnorm)
        + checkpoint
        + [_SwapBuiltEMAWeights(swap_on_epoch=True) for _ in range(bool(ema_kwargs(ema)))]
        + list(callbacks or [])
        + [keras.callbacks.EarlyStopping(monitor=monitor, mode=mode,
                                         patience=2**31 - 1, restore_best_weights=True)
           for monitor, mode in _best_epoch_watch(restore_best)]
    )


def _best_epoch_watch(restore_best):
    if not restore_best:
        return []
    monitor = restore_best if isinstance(restore_best, str) else "val_accuracy"
    return [(monitor, "min" if monitor.endswith("loss") else "max")]


def classification_metrics(multi_label=False):
    """The metrics a recipe's `fit` reports, and the best epoch is chosen on.

    `"accuracy"` for one class per example; for a multi-label task the mean
    average precision over the classes (Keras' `AUC(curve="PR",
    multi_label=True)`, logged as `average_precision`): accuracy of 0/1
    vectors rewards predicting no class at all.

    Args:
        multi_label: the task is multi-label.

    Returns:
        A list for `model.compile(metrics=...)`.

    Example:

    ```python
    model.compile("adam", loss, metrics=classification_metrics(data.multi_label))
    ```
    """
    if multi_label:
        return [keras.metrics.AUC(curve="PR", multi_label=True, name="average_precision")]
    return ["accuracy"]


def best_epoch_monitor(restore_best_weights, multi_label=False):
    """What `restore_best_weights` watches: `False`, or a logged value's name.

    Args:
        restore_best_weights: the recipes' knob: `True` (validation
            accuracy; mean average precision for a multi-label task),
            `False`, or the name of a logged value (`"val_loss"`).
        multi_label: the task is multi-label.

    Example:

    >>> best_epoch_monitor(True), best_epoch_monitor("val_loss")
    ('val_accuracy', 'val_loss')
    """
    if isinstance(restore_best_weights, str):
        return restore_best_weights
    if not restore_best_weights:
        return False
    return "val_average_precision" if multi_label else "val_accuracy"


def epoch_history(model, epochs=(), params=None):
    """A `keras.callbacks.History` of `model` holding `epochs`, one logs dict
    each: the history of a recipe whose steps are not all one `fit` (a
    closed-form head, sub-epoch unfreezing phases).

    Args:
        model: the model the history belongs to.
        epochs: the logs of each epoch, in order.
        params: `fit`'s parameters, if any.

    Returns:
        The history (`history.history`: key -> list per epoch).

    Example:

    >>> history = epoch_history(None, [{"loss": 0.5}, {"loss": 0.25}])
    >>> history.history, history.epoch
    ({'loss': [0.5, 0.25]}, [0, 1])
    """
    history = keras.callbacks.History()
    if model is not None:
        history.set_model(model)
    history.on_train_begin()
    for epoch, logs in enumerate(epochs):
        # As `History.on_epoch_end` records them, without a model to need.
        history.epoch.append(epoch)
        for key, value in logs.items():
            history.history.setdefault(key, []).append(value)
    history.params = dict(params or {})
    return history


def merge_histories(first, second, model):
    """One history of two runs, `first`'s epochs first; a key one run lacks
    reads NaN in its epochs.

    Args:
        first: a `History` (or `None`).
        second: a `History` (or `None`).
        model: the model the merged history belongs to.

    Returns:
        A `keras.callbacks.History`.

    Example:

    >>> a = epoch_history(None, [{"loss": 1.0, "C": 0.5}])
    >>> b = epoch_history(None, [{"loss": 0.5}])
    >>> merge_histories(a, b, None).history
    {'loss': [1.0, 0.5], 'C': [0.5, nan]}
    """
    runs = [h for h in (first, second) if h is not None and getattr(h, "history", None)]
    lengths = [len(next(iter(h.history.values()))) for h in runs]
    keys = []
    for h in runs:
        keys.extend(k for k in h.history if k not in keys)
    merged = epoch_history(model, params=getattr(second, "params", None))
    merged.history = {
        key: [value for h, n in zip(runs, lengths)
              for value in h.history.get(key, [float("nan")] * n)]
        for key in keys
    }
    merged.epoch = list(range(sum(lengths)))
    return merged


def training_labels(data):
    """The training labels of a `keras_tl.data.ImageData` (or of a batched
    `(x, y)` dataset), for `"balanced"` class weights: read from the arrays
    when it holds them, else in one pass over the data.

    Example:

    ```python
    class_weight_dict("balanced", training_labels(data), data.num_classes)
    ```
    """
    import numpy as np

    multi_label = getattr(data, "multi_label", False)

    def flat(labels):
        # Multi-label labels stay rows of 0/1, one per example.
        labels = np.asarray(labels)
        return labels.reshape(-1, labels.shape[-1]) if multi_label else labels.reshape(-1)

    arrays = getattr(data, "train_arrays", None)
    if arrays is not None:
        return flat(arrays[1])
    if getattr(data, "labels", None) is not None:
        return flat(data.labels)
    dataset = getattr(data, "train", data)
    return np.concatenate([flat(labels) for _, labels in dataset.as_numpy_iterator()])


def with_class_weights(dataset, weights, labels_of=None):
    """`(x, y, per-example weight)` batches from `(x, y)` batches and
    `{class: weight}`: class weights for a `fit` that does not take
    `class_weight` (subclassed trainers, dict targets).

    Args:
        dataset: a batched `tf.data.Dataset` of `(x, y)`.
        weights: `{class index: weight}` covering every class, or `None`
            (the dataset is returned as is).
        labels_of: `y -> integer labels`, when `y` holds more than the
            labels (cached teacher logits); default: `y` itself.

    Example:

    ```python
    train = with_class_weights(train, {0: 1.0, 1: 4.0})
    ```
    """
    if weights is None:
        return dataset
    import tensorflow as tf

    table = tf.constant([float(weights[i]) for i in range(len(weights))], tf.float32)

    def add(x, y):
        labels = y if labels_of is None else labels_of(y)
        return x, y, tf.gather(table, tf.cast(tf.reshape(labels, [-1]), tf.int32))

    return dataset.map(add, num_parallel_calls=tf.data.AUTOTUNE)


def fit_stages(
    model: keras.Model,
    stages: Sequence,
    train,
    *,
    validation=None,
    epochs: int,
    steps_per_epoch: int,
    learning_rate: float,
    layer_decay: float,
    schedule="cosine",
    warmup_fraction: float = 0.1,
    optimizer="adam",
    optimizer_kwargs: dict | None = None,
    initially_trainable: int = 1,
    unfreeze: dict | None = None,
    rewarm_steps: int = 0,
    train_batchnorm: bool = False,
    loss="sparse_categorical_crossentropy",
    metrics=("accuracy",),
    class_weight=None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    sync_batchnorm: bool = True,
    restore_best_weights: bool | str = False,
    checkpoint_dir=None,
    checkpoint_fingerprint=None,
    strategy=None,
    jit_compile="auto",
    verbose: int = 1,
    ema=False,
):
    """Phase 2: unfreezes `stages` top-down inside one `fit`.

    With no stages (e.g. LoRA: `keras_tl.lora.enable_lora` already chose
    what trains), the model's current trainable set trains in one `fit` at
    `learning_rate` under the same schedule, with one optimizer.

    Args:
        model: the model with its head already trained; its backbone's
            layers are in `stages`.
        stages: `keras_tl.Stage`s of the backbone, bottom to top, or an
            empty sequence to train what is trainable now.
        train: training data for `model.fit` (a `tf.data.Dataset` or what
            `fit` takes), `steps_per_epoch` batches an epoch. A repeated
            (infinite) dataset is one stream across epochs: resumed from a
            checkpoint, the run skips the batches of the finished epochs.
        validation: validation data for `fit`, or `None`.
        epochs: epochs of the run.
        steps_per_epoch: batches per epoch (also sizes the schedule).
        learning_rate: the head's peak rate.
        layer_decay: rate factor per stage away from the head, in (0, 1]
            (1: one rate for all).
        schedule: a name from `make_schedule` or a `LearningRateSchedule`.
        warmup_fraction: fraction of the steps spent warming up.
        optimizer: Keras optimizer name or template instance.
        optimizer_kwargs: extra arguments of the optimizer (e.g.
            `weight_decay`).
        initially_trainable: top stages trainable from the start.
        unfreeze: the unfreezing specification (see `unfreeze_rule`):
            `None` (ULMFiT's rule) or one of `{"every": n}`,
            `{"at_epochs": [...]}`, `{"patience": n}`, `{"phases": n}`.
        rewarm_steps: re-warm-up steps of each newly unfrozen stage.
        train_batchnorm: let BatchNorm layers of unfrozen stages train.
        loss: the loss of `compile`.
        metrics: the metrics of `compile`.
        class_weight: `fit`'s class weights.
        callbacks: more callbacks for `fit` (after keras-tl's own, see
            `callback_stack`).
        sync_batchnorm: keep BatchNorm statistics in sync across replicas
            (`keras_tl.callbacks.SyncBatchNormStatistics`).
        restore_best_weights: with `validation`, end with the weights of the
            epoch with the best validation accuracy, or of the best value
            of the logged value it names (`"val_loss"`; see
            `best_epoch_monitor`).
        checkpoint_dir: a folder for a `keras_tl.TrainingCheckpoint` after
            every epoch (weights, optimizer, epoch, history and the
            unfreezing state, in its `keras_tl_checkpoint` subfolder);
            called again after an interruption, the run resumes after the
            last finished epoch. The subfolder alone is removed when it ends.
        checkpoint_fingerprint: what the run depends on beyond the model
            (data, class names, settings), checked on resume.
        strategy: a `tf.distribute.Strategy` (TensorFlow), or `None`.
        jit_compile: `model.compile`'s: `True` (XLA), `False` or `"auto"`.
            A model whose dtype policy is `"mixed_float16"` gets its
            optimizer wrapped in a `LossScaleOptimizer` by `compile`; the
            rebuilt optimizers of later stages keep the wrapper.
        verbose: 0 silent, 1 progress.
        ema: `False`, `True` or a momentum: every stage's optimizer keeps
            an exponential moving average of its weights (Keras'
            `use_ema`; a stage unfrozen later starts its average then), the
            averaged weights are validated each epoch and put in the model
            at the end (with `restore_best_weights`, the best epoch's).

    Returns:
        `(history, unfreezing)`: `fit`'s `History` (with `trainable_params`
        per epoch) and the `ProgressiveUnfreezing` callback (its `events`;
        `None` without stages).

    Example:

    ```python
    history, unfreezing = fit_stages(
        model, stages, train, epochs=4, steps_per_epoch=10,
        learning_rate=1e-3, layer_decay=0.5)
    ```
    """
    if not 0 < layer_decay <= 1:
        raise ValueError(f"layer_decay must be in (0, 1]; got {layer_decay!r}.")
    rate = make_schedule(schedule, learning_rate, epochs * steps_per_epoch, warmup_fraction)
    optimizer_kwargs = {**(optimizer_kwargs or {}), **ema_kwargs(ema)}
    # BackupAndRestore comes after ProgressiveUnfreezing: the stages of the
    # resumed epoch must be trainable before the optimizer state is loaded.
    checkpoint = backup_and_restore(checkpoint_dir, checkpoint_fingerprint)
    if checkpoint and _is_stream(train):
        # One repeated stream of batches: a resumed run skips what the
        # finished epochs drew, and draws what an uninterrupted run would.
        train = train.skip(checkpoint[0].completed_epochs() * steps_per_epoch)
    if not stages:
        return _fit_trainable(
            model, train, validation=validation, epochs=epochs,
            steps_per_epoch=steps_per_epoch, rate=rate, optimizer=optimizer,
            optimizer_kwargs=optimizer_kwargs, loss=loss, metrics=metrics,
            class_weight=class_weight, strategy=strategy, jit_compile=jit_compile,
            verbose=verbose,
            callbacks=callback_stack(callbacks, checkpoint=checkpoint, first=[_TrainableParams()],
                                     sync_batchnorm=sync_batchnorm, ema=ema,
                                     restore_best=restore_best_weights if validation is not None else False),
        ), None
    unfreeze = unfreeze_rule(len(stages), epochs, initially_trainable, unfreeze=unfreeze)
    unfreezing = ProgressiveUnfreezing(
        stages, initially_trainable=initially_trainable, train_batchnorm=train_batchnorm,
        rewarm_steps=rewarm_steps, verbose=verbose,
        backup_dir=checkpoint[0].backup_dir if checkpoint else None, **unfreeze,
    )
    with distribution_scope(strategy):
        model.compile(
            optimizer=discriminative_optimizer(
                stages, rate, 1.0 / layer_decay, optimizer, **(optimizer_kwargs or {})
            ),
            loss=loss,
            metrics=list(metrics),
            jit_compile=jit_compile,
        )
    history = model.fit(
        train, validation_data=validation, epochs=epochs, steps_per_epoch=steps_per_epoch,
        class_weight=class_weight,
        # The checkpoint is claimed (lock, fingerprint) before the
        # unfreezing state is read from its folder.
        callbacks=callback_stack(callbacks, checkpoint=checkpoint, first=[unfreezing],
                                 sync_batchnorm=sync_batchnorm, ema=ema,
                                 restore_best=restore_best_weights if validation is not None else False),
        shuffle=False, verbose=verbose,
    )
    return history, unfreezing


class _SwapBuiltEMAWeights(keras.callbacks.SwapEMAWeights):
    """Keras' `SwapEMAWeights` over the per-stage optimizers built so far.

    `keras_tl.discriminative_optimizer` builds a stage's optimizer (and its
    averages) only when the stage is first unfrozen; Keras' callback
    refuses a `MultiOptimizer` holding one not yet built.
    """

    def _apply_to_ema_optimizers(self, tf_fn, backend_fn):
        optimizer = getattr(self.model.optimizer, "inner_optimizer", self.model.optimizer)
        for inner in getattr(optimizer, "optimizers", [optimizer]):
            if getattr(inner, "use_ema", False) and hasattr(
                    inner, "_model_variables_moving_average"):
                (tf_fn if keras.backend.backend() == "tensorflow" else backend_fn)(inner)


def _is_stream(train):
    cardinality = getattr(train, "cardinality", None)
    if cardinality is None:
        return False
    import tensorflow as tf

    return int(cardinality()) == int(tf.data.INFINITE_CARDINALITY)


class _TrainableParams(keras.callbacks.Callback):
    """Logs the number of trainable parameters each epoch, as
    `ProgressiveUnfreezing` does, so histories compare across runs."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["trainable_params"] = int(
                sum(math.prod(v.shape) for v in self.model.trainable_variables)
            )


def _fit_trainable(model, train, *, validation, epochs, steps_per_epoch, rate, optimizer,
                   optimizer_kwargs, loss, metrics, class_weight, callbacks, strategy,
                   jit_compile, verbose):
    optimizer = make_optimizer(optimizer, rate, **(optimizer_kwargs or {}))
    with distribution_scope(strategy):
        model.compile(optimizer=optimizer, loss=loss, metrics=list(metrics),
                      jit_compile=jit_compile)
    return model.fit(
        train, validation_data=validation, epochs=epochs, steps_per_epoch=steps_per_epoch,
        class_weight=class_weight,
        callbacks=callbacks,
        shuffle=False, verbose=verbose,
    )
