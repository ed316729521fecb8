"""Training callbacks: progressive unfreezing, the learning-rate finder and
BatchNorm statistics kept equal across replicas.

`ProgressiveUnfreezing` unfreezes a backbone's stages from the top (next to
the head) down while one `model.fit` runs: each unfrozen stage takes effect
at once (rebuilt train function, optimizer rebuilt with its state carried
over; see `keras_tl.optimizers.rebuild_optimizer`), with no restart and no
recompile. `LRFinder` is the learning-rate range test (see
`keras_tl.lr_finder`).
"""

import json
import os

import keras
import numpy as np

from keras_tl._utils.distribute import model_scope
from keras_tl._utils.io import write_atomic
from keras_tl.domain_adaptation import batchnorm_layers
from keras_tl.lr_finder import LRFinder  # noqa: F401  (public here too)
from keras_tl.optimizers import rebuild_optimizer
from keras_tl.stages import Stage
from keras_tl.stages import check_unfreeze
from keras_tl.stages import get_stages
from keras_tl.stages import unfreeze_rule

__all__ = [
    "LRFinder",
    "ProgressiveUnfreezing",
    "SyncBatchNormStatistics",
    "sync_batchnorm_statistics",
]


class ProgressiveUnfreezing(keras.callbacks.Callback):
    """Unfreezes backbone stages from the top down during one `fit`.

    At the start of training every stage is frozen except the top
    `initially_trainable` ones (the head, i.e. every layer outside the
    stages, keeps its own `trainable` setting). Then the next stage down is
    unfrozen:

    - every `every` epochs (`every=1`: ULMFiT's gradual unfreezing), or
    - at the start of each epoch listed in `at_epochs` (repeat an epoch to
      unfreeze several stages at once), or
    - when `monitor` has not improved by `min_delta` for `patience` epochs.

    An unfrozen stage trains from the next step on: the train function is
    rebuilt and the optimizer is rebuilt on the new trainable set, keeping
    the slots and step count of every variable already training. With a
    `MultiOptimizer` (`keras_tl.discriminative_optimizer`) each stage keeps
    its own rate, and `rewarm_steps` ramps a newly unfrozen stage's rate up
    from near zero. BatchNormalization layers stay frozen (inference mode,
    moving statistics unchanged) unless `train_batchnorm=True`.

    Each unfreeze is printed (with `verbose`) and kept in `self.events`;
    every epoch's logs (hence `History`) get `trainable_stages` and
    `trainable_params`.

    Args:
        stages: list of `keras_tl.Stage` from input to output; default:
            `keras_tl.get_stages(backbone)`.
        backbone: the backbone inside the model (a zoo backbone gives its
            named stages; another model is split into `num_groups` depth
            groups). Default: the only `keras.Model` nested in the model.
        every: unfreeze one stage every `every` epochs.
        at_epochs: epochs (0-based) at whose start the next stage unfreezes.
        patience: unfreeze when `monitor` stalls for this many epochs.
        monitor: the log key watched with `patience`.
        min_delta: smallest decrease of `monitor` that counts as progress.
        initially_trainable: how many top stages train from the first epoch
            (1, as in every keras-tl recipe; 0 trains the head alone first).
        train_batchnorm: let BatchNormalization layers of unfrozen stages
            train (batch statistics, updated moving averages).
        rewarm_steps: linear re-warm-up of a newly unfrozen stage's rate,
            in steps (needs a `MultiOptimizer`); 0 for none.
        num_groups: depth groups for a backbone that is not from the zoo.
        verbose: 1 prints each unfreeze.
        backup_dir: the `backup_dir` of a `keras.callbacks.BackupAndRestore`
            in the same `fit` (placed after this callback). The unfreezing
            state (stages trainable, events, plateau counters) is saved
            there after every epoch, and a resumed run starts with the
            stages of the epoch it resumes from, so the optimizer restored
            by `BackupAndRestore` fits the trainable variables it was saved
            with.
        unfreeze: the shared unfreezing specification of keras-tl (see
            `keras_tl.engine.unfreeze_rule`), in place of `every` /
            `at_epochs` / `patience`: `{"every": n}`, `{"at_epochs": [...]}`,
            `{"patience": n}` or `{"phases": n}`.

    Example:

    ```python
    stages = keras_tl.get_stages(backbone)
    model.compile(keras_tl.discriminative_optimizer(stages, 1e-3),
                  "sparse_categorical_crossentropy")
    model.fit(train, epochs=8,
              callbacks=[ProgressiveUnfreezing(stages, unfreeze={"every": 2})])
    model.history.history["trainable_stages"]  # -> [1, 1, 2, 2, 3, 3, 4, 4]
    ```

    Resuming an interrupted run:

    ```python
    unfreezing = ProgressiveUnfreezing(stages, every=2, backup_dir="ckpt")
    backup = keras.callbacks.BackupAndRestore("ckpt")
    model.fit(train, epochs=8, callbacks=[unfreezing, backup])
    ```
    """

    STATE_FILE = "progressive_unfreezing.json"

    def __init__(
        self,
        stages=None,
        backbone=None,
        every=None,
        at_epochs=None,
        patience=None,
        monitor="val_loss",
        min_delta=0.0,
        initially_trainable=1,
        train_batchnorm=False,
        rewarm_steps=0,
        num_groups=4,
        verbose=1,
        backup_dir=None,
        unfreeze=None,
    ):
        super().__init__()
        spec = check_unfreeze(unfreeze)
        self._phases = None
        if spec is not None:
            if every is not None or at_epochs is not None or patience is not None:
                raise ValueError(
                    "Pass the unfreezing rule once: unfreeze=, or every/at_epochs/patience.")
            if "phases" in spec:
                # Resolved against the run's epochs when training begins.
                self._phases, at_epochs = spec["phases"], []
            else:
                every, at_epochs, patience = (spec.get("every"), spec.get("at_epochs"),
                                              spec.get("patience"))
        given = [every is not None, at_epochs is not None, patience is not None]
        if sum(given) > 1:
            raise ValueError(
                "Pass only one unfreezing rule: `every`, `at_epochs` or `patience`."
            )
        if not any(given):
            every = 1
        if every is not None and (int(every) != every or every < 1):
            raise ValueError(f"`every` must be an integer >= 1; got {every!r}.")
        if patience is not None and (int(patience) != patience or patience < 1):
            raise ValueError(f"`patience` must be an integer >= 1; got {patience!r}.")
        if at_epochs is not None:
            at_epochs = sorted(int(e) for e in at_epochs)
            if at_epochs and at_epochs[0] < 0:
                raise ValueError(f"`at_epochs` must be >= 0; got {at_epochs}.")
        if stages is not None and not all(isinstance(s, Stage) for s in stages):
            raise TypeError("`stages` must be a list of keras_tl.Stage (get_stages).")
        self.stages = list(stages) if stages is not None else None
        self.backbone = backbone
        self.every = every
        self.at_epochs = at_epochs
        self.patience = patience
        self.monitor = monitor
        self.min_delta = float(min_delta)
        self.initially_trainable = int(initially_trainable)
        self.train_batchnorm = bool(train_batchnorm)
        self.rewarm_steps = int(rewarm_steps)
        self.num_groups = num_groups
        self.verbose = verbose
        self.backup_dir = None if backup_dir is None else os.fspath(backup_dir)
        self.events = []
        self.num_trainable = 0
        self._traced = None

    # -- set-up -------------------------------------------------------------

    def _resolve_stages(self):
        if self.stages is not None:
            return self.stages
        backbone = self.backbone
        if backbone is None:
            nested = [l for l in self.model.layers if isinstance(l, keras.Model)]
            if len(nested) != 1:
                raise ValueError(
                    f"Model {self.model.name!r} has {len(nested)} nested models, so "
                    "the backbone is ambiguous. Pass `backbone=` (the nested "
                    "backbone) or `stages=keras_tl.get_stages(...)`."
                )
            backbone = nested[0]
        return get_stages(backbone, num_groups=self.num_groups)

    def on_train_begin(self, logs=None):
        self.stages = self._resolve_stages()
        if not 0 <= self.initially_trainable <= len(self.stages):
            raise ValueError(
                f"initially_trainable={self.initially_trainable} but the backbone "
                f"has {len(self.stages)} stages."
            )
        if self._phases is not None:
            self.at_epochs = unfreeze_rule(
                len(self.stages), (self.params or {}).get("epochs") or 1,
                self.initially_trainable, unfreeze={"phases": self._phases},
            )["at_epochs"]
        optimizer = self.model.optimizer
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            optimizer = optimizer.inner_optimizer
        if self.rewarm_steps and not isinstance(optimizer, keras.optimizers.MultiOptimizer):
            raise ValueError(
                "rewarm_steps needs a per-stage optimizer; compile with "
                "keras_tl.discriminative_optimizer(stages, ...)."
            )
        _make_trainable_path(self.model, self.stages)
        self.num_trainable = self.initially_trainable
        for index, stage in enumerate(self.stages):
            trainable = index >= len(self.stages) - self.num_trainable
            stage.set_trainable(trainable, self.train_batchnorm)
        self._best = np.inf
        self._wait = 0
        self._pending = 0
        self.events = []
        saved = self._saved_state()
        if saved is not None:
            self.set_state(saved)
        self._apply(rewarm=False)

    # -- state, for resuming ----------------------------------------------

    def get_state(self):
        """The unfreezing state after the current epoch, as a JSON-able dict.

        Example:

        ```python
        unfreezing.get_state()  # -> {'num_trainable': 2, 'events': [...], ...}
        ```
        """
        return {
            "num_trainable": self.num_trainable,
            "events": list(self.events),
            "best": None if not np.isfinite(self._best) else float(self._best),
            "wait": self._wait,
            "pending": self._pending,
        }

    def set_state(self, state):
        """Makes the top `state["num_trainable"]` stages trainable and restores
        the events and plateau counters (call within training, e.g. from
        `on_train_begin`).

        Args:
            state: a dict from `get_state`.

        Example:

        ```python
        unfreezing.set_state({"num_trainable": 2, "events": [], "best": None,
                              "wait": 0, "pending": 0})
        ```
        """
        self.num_trainable = int(state["num_trainable"])
        for index, stage in enumerate(self.stages):
            trainable = index >= len(self.stages) - self.num_trainable
            stage.set_trainable(trainable, self.train_batchnorm)
        self.events = list(state.get("events", []))
        best = state.get("best")
        self._best = np.inf if best is None else float(best)
        self._wait = int(state.get("wait", 0))
        self._pending = int(state.get("pending", 0))

    def _state_path(self):
        return os.path.join(self.backup_dir, self.STATE_FILE)

    def _saved_state(self):
        """The state of the epoch a `BackupAndRestore` run resumes after."""
        if self.backup_dir is None:
            return None
        metadata = os.path.join(self.backup_dir, "training_metadata.json")
        if not (os.path.exists(metadata) and os.path.exists(self._state_path())):
            return None
        with open(metadata) as file:
            finished = json.load(file).get("epoch")
        with open(self._state_path()) as file:
            states = json.load(file)
        if str(finished) not in states:
            raise ValueError(
                f"{self.backup_dir!r} holds a checkpoint after epoch {finished} but no "
                "unfreezing state for it; delete the folder to start over."
            )
        if self.verbose:
            print(f"Resuming after epoch {finished} with "
                  f"{states[str(finished)]['num_trainable']} stages trainable.")
        return states[str(finished)]

    def _save_state(self, epoch):
        # Keyed by finished epochs, the number BackupAndRestore resumes from;
        # every epoch's state is kept, so a checkpoint written after this one
        # fails to land and the run resumes from an earlier epoch still finds
        # its own state.
        states = {}
        if os.path.exists(self._state_path()):
            with open(self._state_path()) as file:
                states = json.load(file)
        states[str(epoch + 1)] = self.get_state()
        os.makedirs(self.backup_dir, exist_ok=True)
        write_atomic(self._state_path(), json.dumps(states))

    # -- schedule -----------------------------------------------------------

    def _due(self, epoch):
        if self.every is not None:
            return 1 if epoch > 0 and epoch % self.every == 0 else 0
        if self.at_epochs is not None:
            return self.at_epochs.count(epoch)
        due, self._pending = self._pending, 0
        return due

    def on_epoch_begin(self, epoch, logs=None):
        count = min(self._due(epoch), len(self.stages) - self.num_trainable)
        for _ in range(count):
            self.num_trainable += 1
            stage = self.stages[len(self.stages) - self.num_trainable]
            stage.set_trainable(True, self.train_batchnorm)
            params = _count(stage.trainable_weights)
            self.events.append(
                {"epoch": epoch, "stage": stage.name, "params": params}
            )
            if self.verbose:
                print(
                    f"Epoch {epoch + 1}: unfroze stage {stage.name!r} "
                    f"({params:,} parameters; {self.num_trainable}/"
                    f"{len(self.stages)} stages trainable, "
                    f"{_count(self.model.trainable_variables):,} trainable in all)"
                )
        if count:
            self._apply(rewarm=True)

    def on_epoch_end(self, epoch, logs=None):
        self._track_plateau(logs)
        if self.backup_dir is not None:
            self._save_state(epoch)

    def _track_plateau(self, logs):
        if logs is not None:
            logs["trainable_stages"] = self.num_trainable
            logs["trainable_params"] = _count(self.model.trainable_variables)
        if self.patience is None or logs is None:
            return
        if self.monitor not in logs:
            raise ValueError(
                f"ProgressiveUnfreezing(patience=...) watches {self.monitor!r}, which "
                f"is not in the epoch logs ({sorted(logs)}). Pass validation data "
                "or another `monitor`."
            )
        value = float(logs[self.monitor])
        if value < self._best - self.min_delta:
            self._best, self._wait = value, 0
            return
        self._wait += 1
        if self._wait >= self.patience:
            self._pending, self._wait = 1, 0
            # The newly unfrozen stage changes the loss landscape; judge it
            # against its own best.
            self._best = np.inf

    # -- making a change take effect ---------------------------------------

    def _apply(self, rewarm):
        model = self.model
        trainable = model.trainable_variables
        with model_scope(model):
            optimizer = rebuild_optimizer(
                model.optimizer, trainable,
                rewarm_steps=self.rewarm_steps if rewarm else 0,
            )
        key = frozenset(id(v) for v in trainable)
        if (
            optimizer is model.optimizer
            and model.train_function is not None
            and self._traced == (id(model.train_function), key)
        ):
            # A later `fit` with the same trainable set: the train function
            # this callback made still fits; tracing again would waste time.
            return
        model.optimizer = optimizer
        model.make_train_function(force=True)
        if keras.backend.backend() == "jax" and keras.distribution.distribution() is not None:
            # Under a keras.distribution on JAX, the compiled evaluation and
            # prediction functions fix the state's shardings, trainable set
            # included: Keras makes them again, for the new set, when next
            # used. Elsewhere they do not depend on the trainable set (a
            # plain JAX jit retraces for the new state's structure by
            # itself), and tracing them again would cost time each unfreeze.
            model.test_function = None
            model.predict_function = None
        self._traced = (id(model.train_function), key)


def _count(variables):
    return int(sum(np.prod(v.shape) for v in variables))


def _make_trainable_path(model, stages):
    """Makes every layer that holds stage layers trainable (nested models,
    and layers such as a transformer's encoder that hold its blocks), and
    leaves the trainable flag of the other layers inside them as it was."""
    stage_ids = {id(layer) for stage in stages for layer in stage.layers}

    def children(container):
        return list(container._flatten_layers(include_self=False, recursive=False))

    def holds_stage(container):
        for layer in children(container):
            if id(layer) in stage_ids:
                return True
            if holds_stage(layer):
                return True
        return False

    if not holds_stage(model):
        raise ValueError(
            f"None of the stages' layers is in model {model.name!r}; pass the "
            "stages of the backbone inside this model."
        )

    def visit(container):
        if not container.trainable:
            # Depth-first, parents before children: restoring each flag in
            # this order gives every layer (and its weights) its old state.
            inside = list(container._flatten_layers(include_self=False))
            before = [(layer, layer.trainable) for layer in inside]
            container.trainable = True
            for layer, trainable in before:
                layer.trainable = trainable
        for layer in children(container):
            if id(layer) not in stage_ids and holds_stage(layer):
                visit(layer)

    visit(model)


class SyncBatchNormStatistics(keras.callbacks.Callback):
    """Keeps BatchNorm moving statistics equal on every replica.

    Under a multi-replica `tf.distribute` strategy (TensorFlow backend),
    Keras 3 creates BatchNormalization's moving mean and variance as
    mirrored variables without an aggregation: each replica updates its own
    copy from its own share of every batch, and the copies drift apart. A
    model evaluated under the strategy then normalizes with other statistics
    on each replica, and a saved model keeps only the first replica's.
    This callback averages the copies (what Keras 2 did with
    `aggregation=MEAN`) at the end of every epoch, before validation and at
    the end of training. With one replica it does nothing.

    Example:

    ```python
    with strategy.scope():
        model = build_model()
        model.compile(...)
    model.fit(data, epochs=5, callbacks=[SyncBatchNormStatistics()])
    ```
    """

    def on_epoch_end(self, epoch, logs=None):
        sync_batchnorm_statistics(self.model)

    def on_test_begin(self, logs=None):
        sync_batchnorm_statistics(self.model)

    def on_train_end(self, logs=None):
        sync_batchnorm_statistics(self.model)


def sync_batchnorm_statistics(model):
    """Averages the per-replica copies of a model's BatchNorm statistics.

    Args:
        model: a `keras.Model` built under a `tf.distribute` strategy
            (nested models included).

    Returns:
        The number of variables whose copies were averaged (0 outside a
        multi-replica strategy).

    Example:

    ```python
    model.fit(data, epochs=1)
    sync_batchnorm_statistics(model)  # -> 4
    ```
    """
    if keras.backend.backend() != "tensorflow":
        # `keras.distribution` keeps one (replicated) variable per statistic:
        # there are no per-replica copies to drift apart.
        return 0
    import tensorflow as tf

    synced = 0
    for layer in batchnorm_layers(model):
        for variable in (layer.moving_mean, layer.moving_variance):
            copies = getattr(getattr(variable, "value", None), "values", None)
            if not copies or len(copies) < 2:
                continue
            mean = tf.add_n([tf.convert_to_tensor(c) for c in copies]) / len(copies)
            for copy in copies:
                copy.assign(mean)
            synced += 1
    return synced

