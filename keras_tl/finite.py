"""Training that never hands back a model with NaN weights.

One NaN pixel, a learning rate that is too high, or a loss that overflows
turns every weight it reaches into NaN within one step, and the model then
predicts NaN for every input. Keras' `TerminateOnNaN` stops the run but
keeps the broken weights; `StopOnNonFiniteLoss` also puts back the last
weights whose epoch ended with a finite loss and raises an error that says
what to change.
"""

import math

import keras
import numpy as np

__all__ = ["NonFiniteLossError", "StopOnNonFiniteLoss", "backup_and_restore"]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the weights were restored.

    Args:
        epoch: the epoch (0-based) in which the loss stopped being finite.
        batch: the batch of that epoch.
        restored_epoch: the last epoch whose weights were put back (-1: the
            weights from before training).

    Example:

    ```python
    try:
        model.fit(x, y, callbacks=[keras_tl.StopOnNonFiniteLoss()])
    except keras_tl.NonFiniteLossError as error:
        print(error.epoch, error.restored_epoch)
    ```
    """

    def __init__(self, epoch, batch, restored_epoch):
        self.epoch = epoch
        self.batch = batch
        self.restored_epoch = restored_epoch
        restored = (
            "the weights from before training"
            if restored_epoch < 0
            else f"the weights at the end of epoch {restored_epoch + 1}"
        )
        super().__init__(
            f"The training loss became NaN or infinite at epoch {epoch + 1}, batch "
            f"{batch + 1}; training stopped and {restored} were restored. Check the "
            "inputs for NaN or infinite values, and try a lower learning rate."
        )


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops at the first non-finite loss, restores weights, and raises.

    The weights are copied when training begins and at the end of every
    epoch whose loss is finite (one host copy per epoch, not per batch).
    The validation loss is checked too.

    Args:
        raise_error: raise `NonFiniteLossError` after restoring (default);
            `False` only stops training (`model.stop_training`) and keeps
            the error in `self.error`.

    Example:

    ```python
    model.fit(x, y, epochs=10, callbacks=[keras_tl.StopOnNonFiniteLoss()])
    ```
    """

    def __init__(self, raise_error=True):
        super().__init__()
        self.raise_error = raise_error
        self.error = None
        self._weights = None
        self._saved_epoch = -1
        self._epoch = 0

    def on_train_begin(self, logs=None):
        self.error = None
        self._weights = self.model.get_weights()
        self._saved_epoch = -1

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._check(logs, batch)

    def on_epoch_end(self, epoch, logs=None):
        self._check(logs, batch=-1)
        if self.error is None:
            self._weights = self.model.get_weights()
            self._saved_epoch = epoch

    def _check(self, logs, batch):
        if self.error is not None or not logs:
            return
        for key in ("loss", "val_loss"):
            if key in logs and not _finite(logs[key]):
                self.model.set_weights(self._weights)
                self.model.stop_training = True
                self.error = NonFiniteLossError(self._epoch, max(batch, 0), self._saved_epoch)
                if self.raise_error:
                    raise self.error
                return


def backup_and_restore(checkpoint_dir, fingerprint=None):
    """The checkpoint callbacks of a recipe's `fit`: none, or a
    `keras_tl.TrainingCheckpoint` in `checkpoint_dir` (weights, optimizer,
    epoch and history after every epoch, in keras-tl's own subfolder,
    which alone is removed when training ends).

    Args:
        checkpoint_dir: a folder, or `None` for no checkpoint.
        fingerprint: what the run depends on beyond the model (data, class
            names, settings), as a JSON-serializable dict.

    Returns:
        A list of callbacks.

    Example:

    ```python
    model.fit(train, epochs=10, callbacks=backup_and_restore("ckpt"))
    ```
    """
    if checkpoint_dir is None:
        return []
    from keras_tl.checkpoints import TrainingCheckpoint

    return [TrainingCheckpoint(checkpoint_dir, fingerprint=fingerprint)]


def _finite(value):
    value = np.asarray(keras.ops.convert_to_numpy(value), dtype=np.float64)
    return bool(np.all(np.isfinite(value))) and not math.isnan(float(value.mean()))
