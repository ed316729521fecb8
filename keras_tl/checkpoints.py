"""Checkpoints that resume a run, belong to it, and delete only their own files.

Keras' `BackupAndRestore` writes its checkpoint into the folder it is given
and removes that whole folder when training ends, whatever else it holds.
`TrainingCheckpoint` keeps the same resume behaviour inside a subfolder of
its own, `CHECKPOINT_SUBFOLDER`, in the user's `checkpoint_dir`, and removes
only that subfolder. It also knows what run it belongs to:

- a fingerprint (`fingerprint.json`): the model's variables (shapes and
  dtypes, in order), the optimizer's class, and what the caller adds (class
  names, data size and content hash, the settings that shape the run). A
  checkpoint written by another run is refused with an error that names
  the folder and says how to start over;
- a lock (`lock`, held with `fcntl.flock` for the whole `fit`): a second
  process training into the same folder is refused;
- the history of the epochs it holds (`history.json`): a resumed model's
  `model.history` holds the whole run;
- the previous epoch's weights (`double_checkpoint=True`): a checkpoint
  half-written when the process died falls back to the one before it, and
  one that cannot be read at all is refused by name.

With several JAX processes (`keras.distribution.initialize`), every process
saves, as Keras requires, into a subfolder of its own
(`keras_tl_checkpoint_process<index>`): the variables are replicated, so
each copy is the whole checkpoint, and each process resumes from its own,
whether the processes share a disk or not.
"""

import contextlib
import hashlib
import json
import os

import keras
import numpy as np

from keras_tl._utils.io import write_atomic

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; the lock file still marks the run.
    fcntl = None

__all__ = [
    "CHECKPOINT_SUBFOLDER",
    "CheckpointMismatchError",
    "TrainingCheckpoint",
    "checkpoint_folder",
    "data_fingerprint",
    "recipe_fingerprint",
]

CHECKPOINT_SUBFOLDER = "keras_tl_checkpoint"
_FINGERPRINT = "fingerprint.json"
_HISTORY = "history.json"
_LOCK = "lock"
# Rows hashed from each end of an array: enough to tell two data sets apart
# cheaply, without reading a large one whole.
_HASHED_ROWS = 64


class CheckpointMismatchError(ValueError):
    """A checkpoint folder holds another run's checkpoint, or one that
    cannot be read, or another process is training into it.

    Args:
        *args: the message, which names the folder and how to start over.

    Example:

    ```python
    try:
        keras_tl.fine_tune("resnet50", "leaves/", checkpoint_dir="ckpt")
    except keras_tl.CheckpointMismatchError as error:
        print(error)  # names the folder and how to start over
    ```
    """


def checkpoint_folder(checkpoint_dir):
    """The subfolder of `checkpoint_dir` that keras-tl's checkpoint lives in.

    Args:
        checkpoint_dir: the user's folder (`str` or path-like).

    Returns:
        `checkpoint_dir/keras_tl_checkpoint`; with several JAX processes,
        `checkpoint_dir/keras_tl_checkpoint_process<index>` (one per
        process).

    Example:

    >>> checkpoint_folder("runs/leaves").endswith("keras_tl_checkpoint")
    True
    """
    if checkpoint_dir is None or not isinstance(checkpoint_dir, (str, os.PathLike)):
        raise TypeError(f"checkpoint_dir must be a folder path; got {checkpoint_dir!r}.")
    checkpoint_dir = os.fspath(checkpoint_dir)
    if not checkpoint_dir:
        raise ValueError("checkpoint_dir is empty; pass a folder, or None for no checkpoint.")
    if os.path.exists(checkpoint_dir) and not os.path.isdir(checkpoint_dir):
        raise ValueError(
            f"checkpoint_dir={checkpoint_dir!r} is a file; pass a folder (keras-tl "
            f"keeps its checkpoint in a {CHECKPOINT_SUBFOLDER!r} subfolder there)."
        )
    parent = os.path.dirname(os.path.abspath(checkpoint_dir))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ValueError(
            f"checkpoint_dir={checkpoint_dir!r} lies inside {parent!r}, which is a file; "
            "pass a folder."
        )
    folder = os.path.join(checkpoint_dir, CHECKPOINT_SUBFOLDER + _process_suffix())
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ValueError(
            f"{folder!r} is a file, and keras-tl keeps its checkpoint in a folder of that "
            "name. Move the file, or pass another checkpoint_dir."
        )
    return folder


def _process_suffix():
    """`"_process<index>"` in one of several JAX processes, else `""`."""
    from keras_tl._utils.distribute import is_multi_process

    if not is_multi_process():
        return ""
    import jax

    return f"_process{jax.process_index()}"


def data_fingerprint(data):
    """A cheap description of a data set, for a checkpoint's fingerprint.

    A folder gives its image files' relative paths and sizes; arrays give
    their shapes, dtypes and a hash of their first and last rows; a
    `tf.data.Dataset` its element spec and length (reading it could consume
    its randomness); a text list its length and a hash of its ends.

    Args:
        data: what a recipe was given as training data.

    Returns:
        A JSON-serializable dict.

    Example:

    >>> data_fingerprint((np.zeros((4, 2)), np.arange(4)))["shapes"] == [[4, 2], [4]]
    True
    """
    if isinstance(data, (str, os.PathLike)) and os.path.isdir(data):
        digest = hashlib.sha256()
        count = 0
        for root, folders, files in os.walk(data):
            folders[:] = sorted(f for f in folders if not f.startswith("."))
            for name in sorted(files):
                if name.startswith("."):
                    continue
                path = os.path.join(root, name)
                digest.update(f"{os.path.relpath(path, data)}:{os.path.getsize(path)}\n".encode())
                count += 1
        return {"kind": "folder", "files": count, "hash": digest.hexdigest()[:16]}
    if hasattr(data, "element_spec"):
        return {"kind": "dataset", "spec": str(data.element_spec),
                "length": int(data.cardinality())}
    if isinstance(data, tuple) and data and all(
            hasattr(p, "shape") or isinstance(p, (list, tuple)) for p in data):
        parts = data
    elif hasattr(data, "shape") or isinstance(data, list):
        parts = (data,)
    else:
        return {"kind": type(data).__name__}
    digest = hashlib.sha256()
    try:
        arrays = [np.asarray(part) for part in parts]
    except ValueError:  # ragged lists
        return {"kind": type(data).__name__, "length": len(parts[0])}
    for array in arrays:
        ends = array if len(array) <= 2 * _HASHED_ROWS else np.concatenate(
            [array[:_HASHED_ROWS], array[-_HASHED_ROWS:]])
        digest.update(str(ends.dtype).encode())
        digest.update(np.ascontiguousarray(ends).tobytes())
    return {"kind": "arrays", "shapes": [list(a.shape) for a in arrays],
            "hash": digest.hexdigest()[:16]}


def recipe_fingerprint(recipe, data, **settings):
    """The fingerprint a recipe gives its checkpoint: its name, its data and
    the settings that shape the run (not `epochs`: a rerun with more epochs
    continues the run).

    Args:
        recipe: the recipe's name.
        data: its training data, as given (see `data_fingerprint`).
        **settings: JSON-friendly settings; other values are written with
            `repr`.

    Returns:
        A dict.

    Example:

    >>> recipe_fingerprint("fine_tune", np.zeros((2, 3)), seed=0)["seed"]
    0
    """
    def plain(value):
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, (list, tuple)):
            return [plain(item) for item in value]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        return repr(value) if not isinstance(value, (keras.layers.Layer, keras.Model)) else (
            type(value).__name__)

    return {"recipe": recipe, "data": data_fingerprint(data),
            **{key: plain(value) for key, value in settings.items()}}


class TrainingCheckpoint(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` in a subfolder of its own, with a
    fingerprint, a lock and the run's history.

    The checkpoint (weights, optimizer, epoch, the previous epoch's copy,
    the history) lives in `checkpoint_dir/keras_tl_checkpoint`. When `fit`
    ends, that subfolder alone is removed: nothing else in `checkpoint_dir`
    is read, written or deleted. Called again after an interruption, `fit`
    resumes after the last finished epoch, and `model.history` holds the
    epochs of both runs.

    Args:
        checkpoint_dir: the user's folder (created if missing).
        fingerprint: a JSON-serializable dict describing the run (data,
            class names, settings); it joins the model's variables and the
            optimizer's class in the fingerprint.
        delete_checkpoint: remove the subfolder when `fit` ends.

    Example:

    ```python
    checkpoint = keras_tl.TrainingCheckpoint(
        "runs/leaves", fingerprint={"data": keras_tl.data_fingerprint(x)})
    model.fit(x, y, epochs=10, callbacks=[checkpoint])
    ```
    """

    def __init__(self, checkpoint_dir, fingerprint=None, delete_checkpoint=True):
        folder = checkpoint_folder(checkpoint_dir)
        self.checkpoint_dir = os.fspath(checkpoint_dir)
        super().__init__(folder, double_checkpoint=True, delete_checkpoint=delete_checkpoint)
        self.fingerprint = dict(fingerprint or {})
        self._lock = None
        self._current = None
        self._saved_history = {}

    def get_config(self):
        return {"checkpoint_dir": self.checkpoint_dir, "fingerprint": self.fingerprint,
                "delete_checkpoint": self.delete_checkpoint}

    # -- fingerprint --------------------------------------------------------

    def _run_fingerprint(self):
        # Shapes and dtypes in order, not paths: Keras numbers the layer
        # names of a process's second model ("dense_1"), so a rerun in a
        # notebook would not match its own checkpoint by name.
        variables = [(list(v.shape), str(v.dtype)) for v in self.model.weights]
        optimizer = self.model.optimizer
        return {
            "model": hashlib.sha256(json.dumps(variables).encode()).hexdigest()[:16],
            "num_variables": len(variables),
            "optimizer": None if optimizer is None else type(optimizer).__name__,
            **json.loads(json.dumps(self.fingerprint, default=str)),
        }

    def _refuse(self, why):
        raise CheckpointMismatchError(
            f"The checkpoint in {self.backup_dir!r} {why} Delete that folder to start "
            "over, or pass another checkpoint_dir."
        )

    def _check_fingerprint(self, current):
        path = os.path.join(self.backup_dir, _FINGERPRINT)
        saved_files = [name for name in ("latest.weights.h5", "training_metadata.json")
                       if os.path.exists(os.path.join(self.backup_dir, name))]
        if not os.path.exists(path):
            if saved_files:
                self._refuse("has no fingerprint, so it cannot be matched to this run.")
            return
        try:
            with open(path, encoding="utf-8") as f:
                saved = json.load(f)
        except (OSError, ValueError) as error:
            self._refuse(f"has an unreadable fingerprint ({error}).")
        differ = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
        if differ:
            details = "; ".join(
                f"{key}: saved {saved.get(key)!r}, now {current.get(key)!r}" for key in differ)
            self._refuse(f"belongs to another run ({details}).")

    # -- lock ---------------------------------------------------------------

    def _acquire_lock(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        handle = open(os.path.join(self.backup_dir, _LOCK), "a+")
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                raise CheckpointMismatchError(
                    f"Another process is training into {self.backup_dir!r}; wait for it "
                    "to finish, or give this run another checkpoint_dir."
                ) from None
        self._lock = handle

    def _release_lock(self):
        if self._lock is not None:
            with contextlib.suppress(OSError):
                if fcntl is not None:
                    fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
                self._lock.close()
            self._lock = None

    # -- callback -----------------------------------------------------------

    @property
    def guard(self):
        """A callback that claims the checkpoint (lock, fingerprint) when
        `fit` begins; place it before callbacks that read the subfolder
        (`ProgressiveUnfreezing(backup_dir=...)`). Without it, this
        callback claims the checkpoint itself."""
        return _Claim(self)

    def _claim(self):
        if self._lock is not None:
            return
        current = self._run_fingerprint()
        self._acquire_lock()
        try:
            self._check_fingerprint(current)
        except BaseException:
            self._release_lock()
            raise
        self._current = current

    def on_train_begin(self, logs=None):
        self._claim()
        try:
            if not self.model.built and all(layer.built for layer in self.model.layers):
                # A wrapper model (`Distiller`, `DomainAdaptation`) has no
                # variables of its own and is never built by a call before
                # `fit`; its layers are, and they hold every variable the
                # checkpoint restores.
                self.model.built = True
            try:
                super().on_train_begin(logs)
            except (OSError, ValueError, KeyError, TypeError) as error:
                self._refuse(f"cannot be read ({type(error).__name__}: {error}).")
            self._saved_history = self._read_history()
            done = getattr(self.model, "_initial_epoch", 0) or 0
            epochs = (self.params or {}).get("epochs")
            if epochs is not None and done >= epochs:
                raise CheckpointMismatchError(
                    f"The checkpoint in {self.backup_dir!r} already holds {done} epochs and "
                    f"this run asks for {epochs}: there is nothing left to train. Ask for "
                    "more epochs to continue it, or delete that folder to start over."
                )
            write_atomic(os.path.join(self.backup_dir, _FINGERPRINT),
                         json.dumps(self._current, indent=2))
        except BaseException:
            self._release_lock()
            raise

    def completed_epochs(self):
        """Epochs the checkpoint in the folder holds (0 for none), read
        before `fit`: a recipe whose batches are one repeated stream skips
        what those epochs drew, so a resumed run draws what an
        uninterrupted one would.

        Example:

        ```python
        TrainingCheckpoint("ckpt").completed_epochs()  # -> 2
        ```
        """
        try:
            with open(os.path.join(self.backup_dir, _HISTORY), encoding="utf-8") as f:
                return len(json.load(f).get("epoch", []))
        except (OSError, ValueError, AttributeError):
            return 0

    def _read_history(self):
        path = os.path.join(self.backup_dir, _HISTORY)
        if not os.path.exists(path):
            return {}
        try:
            with open(path, encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError) as error:
            self._refuse(f"has an unreadable history ({error}).")

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        history = {key: list(values) for key, values in self._saved_history.items()}
        for key, value in (logs or {}).items():
            history.setdefault(key, []).append(_plain(value))
        history.setdefault("epoch", []).append(epoch)
        self._saved_history = history
        write_atomic(os.path.join(self.backup_dir, _HISTORY), json.dumps(history))

    def on_train_end(self, logs=None):
        try:
            record = getattr(self.model, "history", None)
            if isinstance(record, keras.callbacks.History) and self._saved_history:
                # `History` holds this run's epochs; the checkpoint's history
                # holds every epoch so far, earlier runs included.
                epochs = self._saved_history.get("epoch", [])
                record.epoch = list(epochs) or record.epoch
                for key, values in self._saved_history.items():
                    if key != "epoch":
                        record.history[key] = list(values)
            super().on_train_end(logs)
        finally:
            self._release_lock()


class _Claim(keras.callbacks.Callback):
    """Claims a `TrainingCheckpoint` at the start of `fit` (see its `guard`)."""

    def __init__(self, checkpoint):
        super().__init__()
        self.checkpoint = checkpoint

    def on_train_begin(self, logs=None):
        self.checkpoint.set_model(self.model)
        self.checkpoint._claim()


def _plain(value):
    """A log value as JSON keeps it: integers stay integers (stage counts,
    parameter counts), numbers become floats."""
    if isinstance(value, (bool, str)):
        return value
    try:
        array = np.asarray(keras.ops.convert_to_numpy(value))
    except (TypeError, ValueError):
        return str(value)
    if array.ndim:
        return str(value)
    return int(array) if array.dtype.kind in "iu" else float(array)
