"""Where model variables are created: the same call on every Keras backend.

On TensorFlow, variables created inside a `tf.distribute.Strategy` scope are
mirrored across its replicas. JAX and PyTorch have no scope: several devices
come from `keras.distribution.set_distribution(...)`, set once by the user,
and variables follow it wherever they are created.
"""

import contextlib

import keras

__all__ = ["distribution_scope", "model_scope", "num_replicas"]


def distribution_scope(strategy=None):
    """The scope to build and compile models in.

    Args:
        strategy: a `tf.distribute.Strategy`, or `None` for the active one
            (TensorFlow) or no scope (other backends, where
            `keras.distribution` decides placement).
    """
    if strategy is not None:
        return strategy.scope()
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.distribute.get_strategy().scope()
    return contextlib.nullcontext()


def model_scope(model):
    """The scope `model` was built in (its strategy's on TensorFlow)."""
    strategy = getattr(model, "distribute_strategy", None)
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def num_replicas():
    """Replicas a loss is summed over within one step (TensorFlow only).

    Under `tf.distribute`, each replica's loss is divided by the number of
    replicas before gradients are summed. `keras.distribution` on JAX shards
    the global batch inside one program, so no scaling is needed there.
    """
    if keras.backend.backend() != "tensorflow":
        return 1
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync
