"""Compiling a recipe's returned classifier so a saved copy evaluates as-is."""

import keras

from keras_tl._utils.distribute import distribution_scope

__all__ = ["compile_for_evaluation"]


def compile_for_evaluation(model, strategy=None, jit_compile="auto"):
    """Compiles `model` with integer-label cross-entropy, accuracy and Adam.

    A model saved uncompiled (or compiled for one-hot MixUp labels) cannot
    `evaluate(x, y)` after `keras.models.load_model`; a plain optimizer keeps
    the saved file loadable with `safe_mode=True`. `model.history` is kept.
    A `"mixed_float16"` model gets no `LossScaleOptimizer` here: a reloaded
    functional model has no model-level policy, so it would rebuild a plain
    Adam and skip the saved wrapper's variables with a warning.

    A multi-label model gets binary cross-entropy and mean average
    precision instead.

    Args:
        model: a classifier ending in a softmax (or per-class sigmoids).
        strategy: optional `tf.distribute` strategy the model was built under.
        jit_compile: `model.compile`'s `jit_compile`.

    Returns:
        `model`.
    """
    history = getattr(model, "history", None)
    # A multi-label model (its class-names layer holds thresholds) evaluates
    # 0/1 label vectors.
    multi_label = any(getattr(layer, "thresholds", None) is not None
                      for layer in model._flatten_layers())
    with distribution_scope(strategy):
        model.compile(
            optimizer="adam",
            loss="binary_crossentropy" if multi_label else "sparse_categorical_crossentropy",
            metrics=[keras.metrics.AUC(curve="PR", multi_label=True, name="average_precision")]
            if multi_label else ["accuracy"],
            jit_compile=jit_compile,
            auto_scale_loss=False,
        )
        # An unbuilt optimizer saves 2 variables and loading warns that they
        # do not match the built one's.
        model.optimizer.build(model.trainable_variables)
    if history is not None:
        model.history = history
    return model
