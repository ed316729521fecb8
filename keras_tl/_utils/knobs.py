"""The knobs every training recipe shares: one name, one meaning, one check.

Every recipe (`feature_extraction`, `fine_tune`, `text_classifier`,
`distill`, `adapt_domain`) takes `SHARED_KNOBS` and calls `check_knobs`
before it reads the data or builds a backbone, so a bad value is refused
before any work. The names follow Keras (`epochs`, `batch_size`,
`validation_data`, `callbacks`, `class_weight`, `optimizer`, `jit_compile`),
KerasHub and fastai (`schedule`, `augmentation`, `checkpoint_dir`).
"""

import math
import os
import warnings

import numpy as np

__all__ = [
    "DEFAULT_EMA_MOMENTUM",
    "SHARED_KNOBS",
    "check_knobs",
    "class_weight_dict",
    "ema_kwargs",
    "make_optimizer",
    "renamed_argument",
]

SHARED_KNOBS = (
    "epochs",
    "learning_rate",
    "batch_size",
    "validation_data",
    "callbacks",
    "checkpoint_dir",
    "seed",
    "verbose",
    "class_weight",
    "augmentation",
    "schedule",
    "optimizer",
    "strategy",
    "mixed_precision",
    "jit_compile",
)


def renamed_argument(old_name, old_value, new_name, new_value, new_default, recipe):
    """The value of a renamed argument: the new one, or the old spelling's
    with a `DeprecationWarning` (old spellings work for one minor version).

    Example:

    >>> renamed_argument("alpha", None, "student_loss_weight", 0.3, 0.5, "distill")
    0.3
    """
    if old_value is None:
        return new_value
    if new_value is not new_default and new_value != new_default:
        raise ValueError(f"{recipe}: pass {new_name}, not both {new_name} and {old_name}.")
    warnings.warn(
        f"{recipe}({old_name}=...) is deprecated: it is {new_name} now, as in every "
        f"keras-tl recipe. {old_name} will be removed in keras-tl 0.5.",
        DeprecationWarning, stacklevel=3,
    )
    return old_value


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}.")


def check_knobs(
    recipe,
    *,
    epochs=None,
    learning_rate=None,
    batch_size=None,
    callbacks=None,
    checkpoint_dir=None,
    seed=None,
    verbose=None,
    class_weight=None,
    augmentation=None,
    schedule=None,
    optimizer=None,
    strategy=None,
    mixed_precision=None,
    jit_compile=None,
    zero_epochs=False,
    label_mixing=True,
    label_smoothing=None,
    ema=None,
):
    """Checks the shared knobs of `recipe` before any work; raises a
    `ValueError` (or `TypeError`) that names the knob and what it takes.

    Args:
        recipe: the recipe's name, for messages.
        zero_epochs: whether `epochs` may be 0 or a fraction (the text
            recipe, where 0 fits the head alone).
        label_smoothing: the label smoothing, a number in [0, 1).
        ema: the weight-averaging knob (see `ema_kwargs`).
        label_mixing: whether the recipe trains on mixed labels (MixUp,
            CutMix); a recipe whose targets are more than the labels
            refuses such an augmentation.
        **knobs: the values to check; `None` is skipped.

    Example:

    >>> check_knobs("fine_tune", epochs=3, learning_rate=-1.0)
    Traceback (most recent call last):
    ValueError: fine_tune: learning_rate must be a positive finite number or a LearningRateSchedule; got -1.0.
    """
    import keras

    def fail(message, kind=ValueError):
        raise kind(f"{recipe}: {message}")

    if epochs is not None:
        if zero_epochs:
            if (isinstance(epochs, bool) or not isinstance(epochs, (int, float, np.number))
                    or not math.isfinite(epochs) or epochs < 0):
                fail(f"epochs must be a number >= 0 (0 fits the head only); got {epochs!r}.")
        elif isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
            fail(f"epochs must be an integer >= 1; got {epochs!r}.")
    if learning_rate is not None and not isinstance(
            learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        if (isinstance(learning_rate, bool)
                or not isinstance(learning_rate, (int, float, np.floating, np.integer))
                or not math.isfinite(learning_rate) or learning_rate <= 0):
            fail("learning_rate must be a positive finite number or a "
                 f"LearningRateSchedule; got {learning_rate!r}.")
    if batch_size is not None:
        try:
            _positive_int(batch_size, "batch_size")
        except ValueError as error:
            fail(str(error))
    if callbacks is not None:
        if isinstance(callbacks, keras.callbacks.Callback) or not isinstance(
                callbacks, (list, tuple)):
            fail(f"callbacks must be a list of keras.callbacks.Callback; got "
                 f"{type(callbacks).__name__}.", TypeError)
        for callback in callbacks:
            if not isinstance(callback, keras.callbacks.Callback):
                fail(f"callbacks must hold keras.callbacks.Callback objects; got "
                     f"{type(callback).__name__}.", TypeError)
    if checkpoint_dir is not None:
        from keras_tl.checkpoints import checkpoint_folder

        if not isinstance(checkpoint_dir, (str, os.PathLike)):
            fail(f"checkpoint_dir must be a folder path; got {type(checkpoint_dir).__name__}.",
                 TypeError)
        checkpoint_folder(checkpoint_dir)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        fail(f"seed must be an integer or None; got {seed!r}.")
    if verbose is not None and verbose not in (0, 1, 2):
        fail(f"verbose must be 0 (silent), 1 or 2; got {verbose!r}.")
    if class_weight is not None:
        _check_class_weight(class_weight, fail)
    if augmentation is not None:
        from keras_tl.augment import PRESETS

        if isinstance(augmentation, str) and augmentation not in PRESETS:
            fail(f"augmentation must be one of {PRESETS}, a Keras layer or a callable; "
                 f"got {augmentation!r}.")
        if not isinstance(augmentation, str) and not callable(augmentation):
            fail(f"augmentation must be one of {PRESETS}, a Keras layer or a callable; "
                 f"got {type(augmentation).__name__}.", TypeError)
        if not label_mixing:
            from keras_tl.augment import mixes_labels

            if mixes_labels(augmentation):
                name = augmentation if isinstance(augmentation, str) else getattr(
                    augmentation, "name", type(augmentation).__name__)
                fail(f"augmentation {name!r} mixes labels "
                     "(MixUp/CutMix), but this recipe's targets are more than the labels "
                     "(a teacher's soft targets, a second domain). Use 'light' or 'medium'.")
    if label_smoothing is not None and (
            isinstance(label_smoothing, bool)
            or not isinstance(label_smoothing, (int, float, np.floating))
            or not 0 <= label_smoothing < 1):
        fail(f"label_smoothing must be a number in [0, 1) (0.1 is usual); got "
             f"{label_smoothing!r}.")
    if schedule is not None:
        from keras_tl.engine import SCHEDULES

        if not (isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule)
                or schedule in SCHEDULES):
            fail(f"schedule must be one of {SCHEDULES} or a LearningRateSchedule; "
                 f"got {schedule!r}.")
    if optimizer is not None:
        if isinstance(optimizer, str):
            try:
                keras.optimizers.get(optimizer)
            except ValueError:
                fail(f"optimizer {optimizer!r} is not a Keras optimizer name (e.g. 'adam', "
                     "'adamw', 'sgd'); pass a name or a keras.optimizers.Optimizer.")
        elif not isinstance(optimizer, keras.optimizers.Optimizer):
            fail(f"optimizer must be a Keras optimizer name or a keras.optimizers.Optimizer; "
                 f"got {type(optimizer).__name__}.", TypeError)
    if strategy is not None and not hasattr(strategy, "scope"):
        fail(f"strategy must be a tf.distribute.Strategy; got {type(strategy).__name__}.",
             TypeError)
    if ema is not None:
        try:
            ema_kwargs(ema)
        except ValueError as error:
            fail(str(error))
    # The strategy passed, or the one active around the call.
    from keras_tl._utils.distribute import check_strategy

    check_strategy(strategy, recipe)
    if mixed_precision is not None:
        from keras_tl._utils.precision import resolve_policy

        resolve_policy(mixed_precision)
    if jit_compile is not None:
        from keras_tl._utils.precision import check_jit_compile

        check_jit_compile(jit_compile)


def _check_class_weight(class_weight, fail):
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            fail(f"class_weight must be None, 'balanced' or a dict {{class: weight}}; "
                 f"got {class_weight!r}.")
        return
    if not isinstance(class_weight, dict):
        fail(f"class_weight must be None, 'balanced' or a dict {{class: weight}}; got "
             f"{type(class_weight).__name__}.", TypeError)
    for label, weight in class_weight.items():
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or label < 0:
            fail(f"class_weight keys must be class indices >= 0; got {label!r}.")
        if (isinstance(weight, bool) or not isinstance(weight, (int, float, np.number))
                or not math.isfinite(weight) or weight < 0):
            fail(f"class_weight values must be finite numbers >= 0; got {weight!r} for "
                 f"class {label}.")


def class_weight_dict(class_weight, labels, num_classes):
    """`{class: weight}` for Keras' `fit`, from `None`, `"balanced"` or a dict.

    `"balanced"` weighs each class by `n / (classes present * its count)`
    (scikit-learn's rule): every class present contributes equally to the
    loss. A dict may leave classes out (weight 1); a class index beyond
    `num_classes` is refused.

    Args:
        class_weight: `None`, `"balanced"` or `{class_index: weight}`.
        labels: the training labels (integer class indices).
        num_classes: number of classes.

    Returns:
        A dict, or `None` for `None`.

    Example:

    >>> class_weight_dict("balanced", np.array([0, 0, 0, 1]), 2)
    {0: 0.6666666666666666, 1: 2.0}
    """
    if class_weight is None:
        return None
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(f"class_weight must be None, 'balanced' or a dict; got "
                             f"{class_weight!r}.")
        counts = np.bincount(np.asarray(labels, np.int64), minlength=num_classes)
        present = max(int(np.count_nonzero(counts)), 1)
        return {i: float(len(labels) / (present * max(int(c), 1)))
                for i, c in enumerate(counts)}
    weights = {i: 1.0 for i in range(num_classes)}
    for label, weight in class_weight.items():
        if not 0 <= int(label) < num_classes:
            raise ValueError(f"class_weight names class {label}, and the data has "
                             f"{num_classes} classes (0 to {num_classes - 1}).")
        weights[int(label)] = float(weight)
    return weights


# Keras' own default `ema_momentum`; `ema=True` takes it.
DEFAULT_EMA_MOMENTUM = 0.99


def ema_kwargs(ema):
    """The optimizer arguments of a recipe's `ema` knob.

    Args:
        ema: `False`/`None` (no averaging), `True` (momentum 0.99, Keras'
            default) or a momentum in (0, 1).

    Returns:
        `{}` or `{"use_ema": True, "ema_momentum": momentum}`.

    Example:

    >>> ema_kwargs(0.995)
    {'use_ema': True, 'ema_momentum': 0.995}
    """
    if ema is None or ema is False:
        return {}
    if ema is True:
        return {"use_ema": True, "ema_momentum": DEFAULT_EMA_MOMENTUM}
    if (isinstance(ema, bool) or not isinstance(ema, (int, float, np.floating))
            or not 0.0 < float(ema) < 1.0):
        raise ValueError(f"ema must be False, True or a momentum in (0, 1); got {ema!r}.")
    return {"use_ema": True, "ema_momentum": float(ema)}


def make_optimizer(optimizer, learning_rate, ema=False, **kwargs):
    """A fresh optimizer from a name or a template instance, at
    `learning_rate` (a number or a schedule), averaging the weights as the
    `ema` knob says (see `ema_kwargs`).

    Example:

    >>> make_optimizer("adam", 1e-3).__class__.__name__
    'Adam'
    """
    import keras

    kwargs = {**kwargs, **ema_kwargs(ema)}
    if isinstance(optimizer, str):
        return keras.optimizers.get(
            {"class_name": optimizer, "config": {"learning_rate": learning_rate, **kwargs}})
    config = dict(optimizer.get_config(), learning_rate=learning_rate, **kwargs)
    return optimizer.__class__.from_config(config)
