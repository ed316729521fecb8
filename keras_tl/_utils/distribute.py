"""Where model variables are created: the same call on every Keras backend.

On TensorFlow, variables created inside a `tf.distribute.Strategy` scope are
mirrored across its replicas. JAX and PyTorch have no scope: several devices
come from `keras.distribution.set_distribution(...)`, set once by the user,
and variables follow it wherever they are created.
"""

import contextlib

import keras
import numpy as np

__all__ = [
    "MULTI_WORKER_ISSUE",
    "is_multi_process",
    "model_outputs",
    "check_created_in_scope",
    "check_strategy",
    "distribution_scope",
    "model_scope",
    "num_replicas",
]

# Keras 3's own `fit` fails under tf.distribute.MultiWorkerMirroredStrategy
# (open as of Keras 3.15.1); keras-tl refuses it before any work instead of
# failing inside the first `fit`.
MULTI_WORKER_ISSUE = "https://github.com/keras-team/keras/issues/20585"


def check_strategy(strategy, recipe):
    """Refuses a `tf.distribute` strategy Keras 3 cannot train under.

    Args:
        strategy: the strategy passed to the recipe, or `None` for the one
            active around the call.
        recipe: the recipe's name, for the message.

    Raises:
        ValueError: under `MultiWorkerMirroredStrategy`, naming the Keras
            issue and the JAX route to several machines.
    """
    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    active = strategy if strategy is not None else tf.distribute.get_strategy()
    if isinstance(active, tf.distribute.MultiWorkerMirroredStrategy):
        raise ValueError(
            f"{recipe}: Keras {keras.__version__}'s fit does not train under "
            f"tf.distribute.MultiWorkerMirroredStrategy ({MULTI_WORKER_ISSUE}), so keras-tl "
            "refuses it before any work. For several machines use the JAX backend: in "
            "every process, KERAS_BACKEND=jax, keras.distribution.initialize("
            "job_addresses, num_processes, process_id) and keras.distribution."
            "set_distribution(keras.distribution.DataParallel()); see the Backends guide. "
            "Several GPUs of one machine train under tf.distribute.MirroredStrategy."
        )


def check_created_in_scope(model):
    """Refuses a model whose variables live outside the active strategy.

    A network built before `strategy.scope()` holds plain variables; Keras
    fails at the first unfreeze with an error about `colocate_vars_with`.

    Raises:
        ValueError: naming the fix (build it inside the scope, or pass its
            name or file so that the recipe builds it there).
    """
    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    if not tf.distribute.has_strategy():
        return
    strategy = tf.distribute.get_strategy()
    outside = [v for v in model.weights
               if not strategy.extended.variable_created_in_scope(getattr(v, "value", v))]
    if outside:
        raise ValueError(
            f"The backbone {model.name!r} was built outside the scope of the "
            f"{type(strategy).__name__} the recipe runs under ({len(outside)} of its "
            f"{len(model.weights)} variables, e.g. {outside[0].path!r}, are not "
            "distributed). Build it inside `with strategy.scope():`, or pass its name or "
            ".keras file as the backbone and keras-tl builds it in the scope."
        )


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


def is_multi_process():
    """Whether this is one of several JAX processes of one computation
    (`keras.distribution.initialize` with `num_processes > 1`)."""
    if keras.backend.backend() != "jax":
        return False
    import jax

    return jax.process_count() > 1


def model_outputs(model, x, batch_size=32, verbose=0):
    """`model`'s inference outputs on in-memory inputs, as NumPy.

    `model.predict` in one process; with several JAX processes, where Keras
    does not run `predict` across processes, each process runs the frozen
    model on every row itself (its own copy of the replicated variables,
    no collective), so all processes get the same outputs: what embedding
    caches, teacher logits and scores need.

    Args:
        model: a `keras.Model`.
        x: an array, or a dict / tuple of arrays with one row per example.
        batch_size: rows per forward pass.
        verbose: `predict`'s progress bar (one process).

    Returns:
        The outputs (an array, or the model's structure of arrays).
    """
    if not is_multi_process():
        return model.predict(x, batch_size=batch_size, verbose=verbose)
    import jax

    def own_copy(variable):
        value = variable.value
        return value if value.is_fully_addressable else value.addressable_data(0)

    trainable = [own_copy(v) for v in model.trainable_variables]
    non_trainable = [own_copy(v) for v in model.non_trainable_variables]
    rows = len(keras.tree.flatten(x)[0])
    distribution = keras.distribution.distribution()
    # Local arrays in a local program: no layout from the distribution.
    keras.distribution.set_distribution(None)
    try:
        # Compiled once per model and kept on it (the variables are
        # arguments, so later calls reuse it); set past Keras' attribute
        # tracking, which has no business with a function.
        forward = getattr(model, "_keras_tl_local_forward", None)
        if forward is None:
            forward = jax.jit(lambda t, n, inputs: model.stateless_call(t, n, inputs)[0])
            object.__setattr__(model, "_keras_tl_local_forward", forward)
        chunks = []
        for start in range(0, rows, batch_size):
            inputs = keras.tree.map_structure(
                lambda a: np.asarray(a[start:start + batch_size]), x)
            chunks.append(keras.tree.map_structure(
                np.asarray, forward(trainable, non_trainable, inputs)))
    finally:
        keras.distribution.set_distribution(distribution)
    return keras.tree.map_structure(lambda *parts: np.concatenate(parts), *chunks)
