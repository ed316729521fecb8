"""Discriminative learning rates, and optimizers that follow a changing
trainable set.

`discriminative_optimizer` gives every stage of a backbone its own rate,
smaller by a constant factor per stage away from the head (ULMFiT's
discriminative fine-tuning), as a `keras.optimizers.MultiOptimizer` with one
Adam (or any Keras optimizer) per stage. The rates are real per-variable
rates, not scaled gradients: for Adam, scaling a gradient leaves the update
unchanged, so gradient scaling equals a per-layer rate only for plain SGD.

`rebuild_optimizer` is what lets stages be unfrozen in the middle of `fit`:
Keras optimizers can only update the variables they were built with, so when
the trainable set changes the optimizer is rebuilt on the new set, carrying
over every slot (momenta, second moments, step counts) of the variables that
were already training.
"""

import re

import keras

__all__ = [
    "discriminative_optimizer",
    "learning_rates",
    "rebuild_optimizer",
    "stage_pattern",
]

LossScaleOptimizer = keras.optimizers.LossScaleOptimizer
MultiOptimizer = keras.optimizers.MultiOptimizer
OptimizerMap = keras.optimizers.OptimizerMap


def stage_pattern(stage):
    """A regular expression matching the variable paths of one stage.

    `keras.optimizers.OptimizerMap` assigns variables to optimizers by
    `re.fullmatch` on `variable.path`; this pattern lists the stage's
    variable paths exactly, so it survives saving (paths are rebuilt from
    layer names on load) and cannot catch a layer of another stage.

    Args:
        stage: a `keras_tl.Stage` whose layers are built.

    Example:

    ```python
    re.fullmatch(stage_pattern(stages[-1]), stages[-1].weights[0].path)
    # -> <re.Match ...>
    ```
    """
    paths = [variable.path for variable in stage.weights]
    if not paths:
        raise ValueError(
            f"Stage {stage.name!r} has no built weights; build the model (call "
            "it on data or give it an Input) before making its optimizer."
        )
    return "(?:" + "|".join(re.escape(path) for path in paths) + ")"


def discriminative_optimizer(
    stages,
    learning_rate=1e-3,
    factor=2.6,
    optimizer="adam",
    **optimizer_kwargs,
):
    """One optimizer per stage, each with its own learning rate.

    The head (every variable outside `stages`) trains at `learning_rate`;
    the stage next to the head at `learning_rate / factor`, the one below it
    at `learning_rate / factor**2`, and so on (ULMFiT, Howard & Ruder 2018:
    `factor=2.6`). A schedule passed as `learning_rate` is shared: every
    stage follows it at its own multiplier (`keras_tl.schedules.
    StageLearningRate`). The sub-optimizers are named after their stages
    (`model.optimizer.optimizers`, `keras_tl.optimizers.learning_rates`).

    Stage optimizers are built only when their stage first becomes
    trainable, so frozen stages cost no optimizer memory; together with
    `keras_tl.callbacks.ProgressiveUnfreezing` each newly unfrozen stage
    joins at the current global step of the schedule.

    Args:
        stages: list of `keras_tl.Stage` from input to output (see
            `keras_tl.get_stages`), of a built model.
        learning_rate: the head's rate: a float or a `LearningRateSchedule`.
        factor: ratio between the rates of neighbouring stages (>= 1);
            `1.0` gives every stage the head's rate.
        optimizer: name of a Keras optimizer (`"adam"`, `"adamw"`, `"sgd"`,
            ...) or an optimizer instance used as a template (its config is
            copied; its learning rate is replaced).
        **optimizer_kwargs: extra arguments of the optimizer, e.g.
            `weight_decay=1e-4`.

    Returns:
        A `keras.optimizers.MultiOptimizer` (serializable: it saves and
        loads with the model, `safe_mode=True`).

    Example:

    ```python
    stages = keras_tl.get_stages(backbone)
    model.compile(optimizer=discriminative_optimizer(stages, 1e-3),
                  loss="sparse_categorical_crossentropy")
    learning_rates(model.optimizer)
    # -> {'head_adam': 0.001, 'conv5_adam': 0.000385, ...}
    ```
    """
    from keras_tl.schedules import StageLearningRate

    if factor < 1.0:
        raise ValueError(
            f"factor must be >= 1 (lower stages train slower); got {factor!r}."
        )
    if not stages:
        raise ValueError("`stages` is empty; pass keras_tl.get_stages(backbone).")
    template = _template_config(optimizer, optimizer_kwargs)
    head = _from_template(template, learning_rate, "head")
    mapping = {}
    for distance, stage in enumerate(reversed(stages), start=1):
        rate = StageLearningRate(learning_rate, multiplier=factor ** -distance)
        mapping[stage_pattern(stage)] = _from_template(template, rate, stage.name)
    return MultiOptimizer(OptimizerMap(head, mapping), name="discriminative")


def _template_config(optimizer, kwargs):
    if isinstance(optimizer, str):
        optimizer = keras.optimizers.get({"class_name": optimizer, "config": kwargs})
    elif kwargs:
        raise ValueError(
            "Pass optimizer arguments either in the optimizer instance or as "
            "keyword arguments, not both."
        )
    if not isinstance(optimizer, keras.optimizers.Optimizer) or isinstance(
        optimizer, (MultiOptimizer, keras.optimizers.LossScaleOptimizer)
    ):
        raise TypeError(
            "`optimizer` must be the name of a Keras optimizer or a plain "
            f"keras.optimizers.Optimizer; got {type(optimizer).__name__}."
        )
    return optimizer.__class__, optimizer.get_config()


def _from_template(template, learning_rate, name):
    cls, config = template
    config = dict(config)
    config["learning_rate"] = learning_rate
    # Named after the stage and the optimizer class (not the template's
    # auto-numbered name), so names and slot paths are the same every run.
    config["name"] = f"{name}_{cls.__name__.lower()}"
    return cls(**config)


def learning_rates(optimizer):
    """The current learning rate of an optimizer or of each sub-optimizer.

    For a `MultiOptimizer`, every sub-optimizer is reported by name, its
    schedule read at the global step (so a stage that has not started yet
    shows the rate it would start at).

    Args:
        optimizer: a Keras optimizer.

    Returns:
        `{name: float}`.

    Example:

    ```python
    learning_rates(model.optimizer)
    # -> {'group3_adam': 0.000385, 'group2_adam': 0.000148, 'head_adam': 0.001}
    ```
    """
    if isinstance(optimizer, LossScaleOptimizer):
        # Mixed float16: Keras wraps the optimizer to scale the loss.
        optimizer = optimizer.inner_optimizer
    if not isinstance(optimizer, MultiOptimizer):
        return {optimizer.name: _to_float(optimizer.learning_rate)}
    step = optimizer.iterations
    rates = {}
    for inner in optimizer.optimizers:
        # The schedule itself; `inner.learning_rate` would read it at the
        # sub-optimizer's own step, which stays 0 until its stage trains.
        rate = inner._learning_rate
        if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
            rates[inner.name] = _to_float(rate(step))
        else:
            rates[inner.name] = _to_float(inner.learning_rate)
    return rates


def _to_float(value):
    return float(keras.ops.convert_to_numpy(value))


def rebuild_optimizer(optimizer, variables, rewarm_steps=0):
    """Returns an optimizer built on `variables`, keeping the state it has.

    Keras optimizers refuse variables they were not built with, and
    `MultiOptimizer` wants gradients for exactly its build set, so a model
    whose trainable set changed needs a rebuilt optimizer. This one keeps
    the optimizer's type and configuration and carries over the slots
    (momentum, second moment, ...) and step count of every variable that
    was already trained, so training continues as if the new variables had
    been there all along with fresh slots. For a `MultiOptimizer`, the
    sub-optimizers whose variables did not change are reused as they are,
    and a sub-optimizer that starts now starts at the global step (its
    schedule stays in phase with the others). Call it inside the model's
    distribution strategy scope.

    A `keras.optimizers.LossScaleOptimizer` (what `compile` makes of the
    optimizer of a `"mixed_float16"` model) is rebuilt around its rebuilt
    inner optimizer, keeping its current loss scale.

    Args:
        optimizer: the model's current optimizer (built or not).
        variables: the model's new `trainable_variables`.
        rewarm_steps: for a `MultiOptimizer`, sub-optimizers that start now
            ramp their rate up linearly over this many steps
            (`keras_tl.schedules.StageLearningRate`); 0 for none.

    Returns:
        The optimizer to assign to `model.optimizer`: the same object when
        nothing changed, else a new, built one.

    Raises:
        ValueError: when variables have duplicate paths (their slots could
            not be told apart), or when a `MultiOptimizer` chooses its
            sub-optimizers with a plain function and a built sub-optimizer
            gets new variables.

    Example:

    ```python
    stages[-1].set_trainable(True)
    model.optimizer = rebuild_optimizer(model.optimizer, model.trainable_variables)
    model.make_train_function(force=True)
    ```
    """
    variables = list(variables)
    if isinstance(optimizer, LossScaleOptimizer):
        return _rebuild_loss_scaled(optimizer, variables, rewarm_steps)
    if rewarm_steps and not isinstance(optimizer, MultiOptimizer):
        raise ValueError(
            "rewarm_steps re-warms the sub-optimizer of a newly unfrozen stage, "
            f"so it needs a MultiOptimizer; the model has {type(optimizer).__name__}. "
            "Compile with keras_tl.discriminative_optimizer(stages, ...)."
        )
    if not optimizer.built:
        optimizer.build(variables)
        return optimizer
    if _key_set(optimizer._trainable_variables) == _key_set(variables):
        return optimizer
    if isinstance(optimizer, MultiOptimizer):
        return _rebuild_multi(optimizer, variables, rewarm_steps)
    return _rebuild_single(optimizer, variables)


def _rebuild_loss_scaled(optimizer, variables, rewarm_steps):
    if not optimizer.built:
        optimizer.build(variables)
        return optimizer
    inner = rebuild_optimizer(optimizer.inner_optimizer, variables, rewarm_steps)
    if inner is optimizer.inner_optimizer:
        return optimizer
    new = LossScaleOptimizer(
        inner,
        initial_scale=optimizer.initial_scale,
        dynamic_growth_steps=optimizer.dynamic_growth_steps,
        name=optimizer.name,
    )
    # `inner` is built already (its build returns at once); this builds the
    # wrapper's own scale and counter, which carry on from the old ones.
    new.build(variables)
    new.dynamic_scale.assign(optimizer.dynamic_scale)
    new.step_counter.assign(optimizer.step_counter)
    return new


def _key_set(variables):
    return {id(v) for v in variables}


def _rebuild_single(optimizer, variables):
    _check_unique_paths(variables)
    new = optimizer.__class__.from_config(optimizer.get_config())
    new.build(variables)
    old_values = {}
    for variable in optimizer.variables:
        old_values.setdefault(variable.path, variable)
    for variable in new.variables:
        old = old_values.get(variable.path)
        if old is not None and tuple(old.shape) == tuple(variable.shape):
            variable.assign(old)
    _start_averages(new, skip=old_values)
    return new


def _start_averages(optimizer, skip=()):
    """Starts the weight averages (`use_ema`) of variables that join an
    optimizer mid-run at their current values. Keras starts an average at
    the weights only on the optimizer's step 0; an optimizer that starts
    at the global step would otherwise average from zeros and pull the
    newly unfrozen weights towards 0."""
    if not getattr(optimizer, "use_ema", False):
        return
    for variable, average in zip(optimizer._trainable_variables,
                                 optimizer._model_variables_moving_average):
        if average.path not in skip:
            # A copy: on JAX the training step donates its state's buffers,
            # and one buffer cannot be donated twice.
            average.assign(keras.ops.copy(variable.value))


def _check_unique_paths(variables):
    seen = {}
    for variable in variables:
        if variable.path in seen:
            raise ValueError(
                f"Two trainable variables share the path {variable.path!r}; "
                "their optimizer slots cannot be told apart. Give the layers "
                "unique names."
            )
        seen[variable.path] = variable


def _rebuild_multi(optimizer, variables, rewarm_steps):
    # The variable -> sub-optimizer rule of the installed MultiOptimizer
    # (an OptimizerMap or a function); only read here.
    rule = optimizer._optimizer_map
    groups = {}
    for variable in variables:
        groups.setdefault(id(rule(variable)), []).append(variable)
    by_id = {id(opt): opt for opt in optimizer.optimizers}
    for variable in variables:
        by_id.setdefault(id(rule(variable)), rule(variable))
    replaced, starting = {}, []
    for key, members in groups.items():
        inner = by_id[key]
        if not inner.built:
            starting.append(inner)
        elif _key_set(inner._trainable_variables) != _key_set(members):
            replaced[key] = _rebuild_single(inner, members)
    if replaced:
        if not isinstance(rule, OptimizerMap):
            raise ValueError(
                "The MultiOptimizer chooses sub-optimizers with a function, and "
                "a built sub-optimizer gets new variables, which needs a "
                "rebuilt sub-optimizer. Use a keras.optimizers.OptimizerMap "
                "(or keras_tl.discriminative_optimizer) so it can be replaced."
            )
        swap = lambda opt: replaced.get(id(opt), opt)  # noqa: E731
        rule = OptimizerMap(
            swap(rule.default_optimizer), {k: swap(v) for k, v in rule.items()}
        )
    step = int(keras.ops.convert_to_numpy(optimizer.iterations))
    if rewarm_steps:
        for inner in starting:
            _start_rewarm(inner, step, rewarm_steps)
    new = MultiOptimizer(rule, loss_scale_factor=optimizer.loss_scale_factor,
                         name=optimizer.name)
    new.build(variables)
    new.iterations.assign(step)
    for inner in starting:
        inner.iterations.assign(step)
        _start_averages(inner)
    return new


def _start_rewarm(optimizer, step, rewarm_steps):
    from keras_tl.schedules import StageLearningRate

    rate = optimizer._learning_rate
    if isinstance(rate, StageLearningRate):
        rate.rewarm_begin, rate.rewarm_steps = int(step), int(rewarm_steps)
        return
    if isinstance(rate, keras.Variable):
        rate = float(keras.ops.convert_to_numpy(rate))
    elif not isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
        raise ValueError(
            f"Cannot re-warm optimizer {optimizer.name!r}: its learning rate is a "
            "plain callable. Use a float or a LearningRateSchedule."
        )
    optimizer.learning_rate = StageLearningRate(
        rate, rewarm_begin=int(step), rewarm_steps=int(rewarm_steps)
    )
