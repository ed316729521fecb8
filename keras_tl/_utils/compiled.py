"""Compiling a recipe's returned classifier so a saved copy evaluates as-is."""

import keras

from keras_tl._utils.distribute import distribution_scope

__all__ = ["compile_for_evaluation"]


def compile_for_evaluation(model, strategy=None):
    """Compiles `model` with integer-label cross-entropy, accuracy and Adam.

    A model saved uncompiled (or compiled for one-hot MixUp labels) cannot
    `evaluate(x, y)` after `keras.models.load_model`; a plain optimizer keeps
    the saved file loadable with `safe_mode=True`. `model.history` is kept.

    Args:
        model: a classifier ending in a softmax.
        strategy: optional `tf.distribute` strategy the model was built under.

    Returns:
        `model`.
    """
    history = getattr(model, "history", None)
    with distribution_scope(strategy):
        model.compile(
            optimizer="adam",
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        # An unbuilt optimizer saves 2 variables and loading warns that they
        # do not match the built one's.
        model.optimizer.build(model.trainable_variables)
    if history is not None:
        model.history = history
    return model
