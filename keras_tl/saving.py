"""Reloading a recipe's `.keras` file to keep training it.

`keras.saving.load_model` rebuilds a KerasHub backbone from its constructor
arguments: the backbone's own `trainable=False` comes back, but its inner
layers and variables come back trainable. The reloaded model then trains
what was frozen, and its optimizer, built for more variables than the saved
one, starts from zero ("Skipping variable loading for optimizer ...").
`keras_tl.load_model` loads the file, freezes again every variable under a
frozen layer, and restores the optimizer's state (moments, step count,
every per-stage optimizer of `keras_tl.discriminative_optimizer`).
"""

import io
import os
import warnings
import zipfile

import keras

from keras_tl._utils.layers import set_trainable

__all__ = ["load_model", "refreeze"]

_SKIPPED_OPTIMIZER = "Skipping variable loading for optimizer"


def refreeze(model):
    """Freezes every variable under a layer whose `trainable` is `False`.

    Keras freezes a layer's variables when `layer.trainable = False` is
    assigned, not when a layer is rebuilt from a config that says so; this
    puts the variables back in line with the layers' flags (parents first,
    so a frozen container freezes all it holds).

    Args:
        model: a `keras.Model` or layer.

    Returns:
        `model`.

    Example:

    ```python
    model = keras.saving.load_model("leaves.keras")
    refreeze(model)
    ```
    """
    for layer in model._flatten_layers(include_self=True, recursive=True):
        if not layer.trainable:
            set_trainable(layer, False)
    return model


def _saved_optimizer_state(path):
    """The optimizer's variables stored in a `.keras` file, by index."""
    import h5py

    with zipfile.ZipFile(path) as archive:
        if "model.weights.h5" not in archive.namelist():
            return None
        data = archive.read("model.weights.h5")
    with h5py.File(io.BytesIO(data), "r") as weights:
        group = weights.get("optimizer/vars")
        if group is None:
            return None
        return [group[str(i)][()] for i in range(len(group))]


def load_model(path, safe_mode=True, compile=True):
    """Loads a `.keras` file ready to keep training where it stopped.

    What `keras.saving.load_model` does, and then: the variables of frozen
    layers are frozen again (`refreeze`; Keras leaves a reloaded KerasHub
    backbone's variables trainable), and the optimizer is rebuilt for the
    trainable variables and given the saved state: step count, moments and
    every per-stage optimizer. For an interrupted run, `checkpoint_dir=` in
    the recipe resumes the whole run (callbacks, unfreezing, history).

    Args:
        path: a `.keras` file.
        safe_mode: as in `keras.saving.load_model` (a file holding a
            `keras_tl.SavedModelBackbone` needs `safe_mode=False`).
        compile: restore the compiled optimizer, loss and metrics.

    Returns:
        The `keras.Model`.

    Raises:
        FileNotFoundError: the file does not exist.

    Example:

    ```python
    model = keras_tl.load_model("leaves.keras")
    model.fit(more_images, epochs=2)  # Adam's moments and step count continue
    ```
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No .keras file at {path!r}.")
    with warnings.catch_warnings():
        # The optimizer is matched below, once the trainable set is right.
        warnings.filterwarnings("ignore", message=_SKIPPED_OPTIMIZER)
        model = keras.saving.load_model(path, safe_mode=safe_mode, compile=compile)
    refreeze(model)
    optimizer = getattr(model, "optimizer", None)
    if not compile or optimizer is None:
        return model
    saved = _saved_optimizer_state(path)
    if not saved:
        return model
    if not _matches(optimizer.variables, saved):
        # Built while the frozen variables still looked trainable: build a
        # fresh optimizer from the compile config for the right set.
        model.compile_from_config(model.get_compile_config())
        optimizer = model.optimizer
    if _matches(optimizer.variables, saved):
        for variable, value in zip(optimizer.variables, saved):
            variable.assign(value)
    else:
        warnings.warn(
            f"The optimizer state in {path!r} ({len(saved)} variables) does not match the "
            f"reloaded model's trainable variables ({len(optimizer.variables)} optimizer "
            "variables): training continues with a fresh optimizer state. To resume a run "
            "exactly, pass checkpoint_dir= to the recipe.",
            stacklevel=2,
        )
    return model


def _matches(variables, values):
    return len(variables) == len(values) and all(
        tuple(v.shape) == tuple(value.shape) for v, value in zip(variables, values))
