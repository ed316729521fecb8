"""Knowledge distillation: a small student learns to imitate a large teacher.

`Distiller` is built on `keras.distillation.Distiller` (Keras 3.12+). What
that class does, read in the installed Keras 3.15.1 source and measured:

- T^2 factor: `LogitsDistillation` multiplies by T^2 only when its `loss`
  is a `keras.losses.KLDivergence` *instance*. Its default,
  `loss="kl_divergence"`, resolves through `keras.losses.get` to the plain
  function `kl_divergence`, so the `isinstance` test fails and the default
  path applies neither the softmax nor T^2: it computes a KL divergence
  directly on the tempered logits, clipped to [1e-7, 1]. For teacher logits
  [2, 0.5, -1], student logits [0.1, 0.3, -0.2] and T = 4 it returns 1.562
  where T^2 * KL(softmax(t/T) || softmax(s/T)) = 0.620. Every negative
  logit is clipped to the same constant and gets no gradient, which is how
  a student trained on it can collapse to one class.
- Softmax outputs: the final outputs of both models are taken as logits.
  A model that ends in softmax has its probabilities divided by T and put
  through a second softmax (0.052 instead of 0.620 on the pair above);
  nothing detects it.
- Saving: the class is registered (`keras.distillation.Distiller`) and
  `get_config` serializes teacher, student and losses, so a `.keras` file
  saves and reloads with `safe_mode=True`. `compile` is overridden without
  `get_compile_config`, so the reloaded distiller is not compiled (Keras
  warns) and its optimizer state is lost.
- The teacher is set untrainable and called with `training=False`.
  `FeatureDistillation` with layer names runs the student a second time in
  `compute_loss` (a second forward pass, with other dropout masks) and has
  no projection, so the two layers must have the same shape. Teacher
  outputs are never cached.

`Distiller` keeps the parent's model validation, teacher freezing, loss
trackers and config, and replaces the loss: the exact soft-target loss on
logits found before any softmax, an optional logit standardization, hints
through a learned projection, one student forward pass per step, teacher
logits cached as targets, and a compile config that survives reloading.
`shrink_bert` makes a shallower BERT-family student from a teacher, the
way DistilBERT was initialized.
"""

import threading

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_tl.heads import ClassNames

# The training and test steps ask `Distiller.call` for every student tensor
# the loss needs (logits, hint features) besides the output, so one forward
# pass serves loss and metrics. Per thread, because `MirroredStrategy` runs
# each replica's step in its own thread.
_STEP_STATE = threading.local()

CACHED_LOGITS_KEY = "teacher_logits"
CACHED_HINT_KEY = "teacher_hint"
LABELS_KEY = "labels"


def _check_alpha(alpha):
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise ValueError(f"alpha must be a number in [0, 1]; got {alpha!r}.")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(
            f"alpha must be in [0, 1] (the weight of the loss on the labels; "
            f"1 - alpha weighs the teacher's soft targets); got {alpha}."
        )
    return float(alpha)


def _check_temperature(temperature):
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise ValueError(f"temperature must be a positive number; got {temperature!r}.")
    if not temperature > 0:
        raise ValueError(
            f"temperature must be > 0 (it divides the logits; 1 keeps them, "
            f"2-8 soften them); got {temperature}."
        )
    return float(temperature)


def _standardize(logits, epsilon=1e-6):
    mean = ops.mean(logits, axis=-1, keepdims=True)
    std = ops.std(logits, axis=-1, keepdims=True)
    return (logits - mean) / (std + epsilon)


def soft_target_loss(teacher_logits, student_logits, temperature, standardize=False):
    """Per-example soft-target loss: T^2 * KL(softmax(t/T) || softmax(s/T)).

    Computed with log-softmax, so it is exact for any logit scale. With
    `standardize=True` both logit vectors are first shifted and scaled to
    zero mean and unit standard deviation per example (logit
    standardization, Sun et al., CVPR 2024): the student then matches the
    teacher's ranking and relative gaps, not its logit scale, which keeps
    a teacher with large, badly scaled logits from forcing its
    overconfidence on the student.

    Args:
        teacher_logits: `(batch, classes)` teacher logits (or
            log-probabilities: they differ by a per-example shift, which the
            softmax ignores).
        student_logits: `(batch, classes)` student logits.
        temperature: T > 0.
        standardize: standardize the logits before dividing by T.

    Returns:
        A `(batch,)` tensor.

    Example:

    >>> soft_target_loss([[2.0, 0.5, -1.0]], [[0.1, 0.3, -0.2]], 4.0)
    <tf.Tensor: shape=(1,), dtype=float32, numpy=array([0.620057], dtype=float32)>
    """
    teacher_logits = ops.stop_gradient(ops.cast(teacher_logits, "float32"))
    student_logits = ops.cast(student_logits, "float32")
    if standardize:
        teacher_logits = _standardize(teacher_logits)
        student_logits = _standardize(student_logits)
    log_p = ops.log_softmax(teacher_logits / temperature, axis=-1)
    log_q = ops.log_softmax(student_logits / temperature, axis=-1)
    kl = ops.sum(ops.exp(log_p) * (log_p - log_q), axis=-1)
    return kl * (temperature**2)


@keras.saving.register_keras_serializable(package="keras_tl")
class SoftTargetDistillation(keras.distillation.LogitsDistillation):
    """The soft-target loss of Hinton et al., with the T^2 factor, on logits.

    A `keras.distillation.LogitsDistillation` whose `compute_loss` is the
    exact `T^2 * KL(softmax(t/T) || softmax(s/T))` (see
    `soft_target_loss`), with optional logit standardization. Usable with
    `keras.distillation.Distiller` as well as with `keras_tl.Distiller`.

    Args:
        temperature: T > 0; higher values soften the targets.
        standardize: z-score the logits of each example first.

    Example:

    >>> loss = SoftTargetDistillation(temperature=4.0, standardize=True)
    >>> keras.distillation.Distiller(teacher, student, loss)
    """

    def __init__(self, temperature=4.0, standardize=False):
        super().__init__(temperature=_check_temperature(temperature))
        self.standardize = bool(standardize)

    def per_example_loss(self, teacher_logits, student_logits):
        """Returns the `(batch,)` losses."""
        return soft_target_loss(
            teacher_logits, student_logits, self.temperature, self.standardize
        )

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        return ops.mean(self.per_example_loss(teacher_outputs, student_outputs))

    def get_config(self):
        return {"temperature": self.temperature, "standardize": self.standardize}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _as_vectors(features):
    # Feature maps (batch, h, w, c) and sequences (batch, steps, d) are
    # averaged over their positions: the hint matches what each example
    # contains, not where.
    if len(features.shape) > 2:
        features = ops.mean(features, axis=tuple(range(1, len(features.shape) - 1)))
    return ops.cast(features, "float32")


@keras.saving.register_keras_serializable(package="keras_tl")
class HintDistillation(keras.distillation.FeatureDistillation):
    """Hint loss between a teacher layer and a projected student layer.

    A `keras.distillation.FeatureDistillation` (FitNets-style hints): both
    features are averaged over spatial or sequence positions, the
    student's goes through a learned linear projection to the teacher's
    width (held by the `Distiller`), and the loss is `2 - 2 cos(angle)`,
    the squared distance of the two unit vectors, so the teacher's feature
    scale does not matter.

    Args:
        student_layer_name: name of the student layer.
        teacher_layer_name: name of the teacher layer.

    Example:

    >>> HintDistillation(student_layer_name="features",
    ...                  teacher_layer_name="features")
    """

    def __init__(self, student_layer_name, teacher_layer_name):
        super().__init__(
            loss="mse",
            teacher_layer_name=teacher_layer_name,
            student_layer_name=student_layer_name,
        )

    def per_example_loss(self, teacher_features, projected_student_features):
        """Returns the `(batch,)` losses."""
        t = ops.stop_gradient(_as_vectors(teacher_features))
        s = ops.cast(projected_student_features, "float32")
        t = t / (ops.norm(t, axis=-1, keepdims=True) + 1e-6)
        s = s / (ops.norm(s, axis=-1, keepdims=True) + 1e-6)
        return ops.sum(ops.square(t - s), axis=-1)

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        return ops.mean(self.per_example_loss(teacher_outputs, student_outputs))

    def get_config(self):
        return {
            "student_layer_name": self.student_layer_name,
            "teacher_layer_name": self.teacher_layer_name,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _is_softmax(activation):
    return getattr(activation, "__name__", None) == "softmax"


# Layers that pass their input through unchanged at inference: a softmax
# before them is still the model's last real operation.
_PASS_THROUGH = (ClassNames, keras.layers.Identity, keras.layers.Dropout)


def _last_operation(model):
    """The layer making `model`'s output, pass-through layers skipped.

    Returns `(layer, node_index)`, or `(None, None)` for a model without a
    graph (subclassed).
    """
    outputs = getattr(model, "outputs", None)
    if not outputs:
        return None, None
    tensor = outputs[0]
    while True:
        history = getattr(tensor, "_keras_history", None)
        if history is None:
            return None, None
        layer, node_index = history.operation, history.node_index
        if not isinstance(layer, _PASS_THROUGH):
            return layer, node_index
        tensor = layer._inbound_nodes[node_index].input_tensors[0]


def _ends_in_softmax(model):
    layer, _ = _last_operation(model)
    if layer is None and getattr(model, "layers", None):
        layer = model.layers[-1]  # a subclassed model: its last layer
    while layer is not None:
        if isinstance(layer, keras.layers.Softmax) or _is_softmax(
            getattr(layer, "activation", None)
        ):
            return True
        if not isinstance(layer, keras.Model):
            return False
        layer, _ = _last_operation(layer)
    return False


def _model_inputs(model):
    try:
        return model.input
    except (AttributeError, ValueError):
        inputs = model.inputs
        return inputs[0] if len(inputs) == 1 else inputs


def _layer_tensor(model, layer, which):
    """The input or output tensor of `layer` in `model`'s own graph.

    A layer shared between models (e.g. a head's layers reused by
    `attach_head`) has one node per call; `layer.output` is the first.
    """
    inputs = _model_inputs(model)
    for node in layer._inbound_nodes:
        tensors = node.output_tensors if which == "output" else node.input_tensors
        tensor = tensors[0] if len(tensors) == 1 else tensors
        try:
            keras.Model(inputs, tensor)
        except ValueError:
            continue
        return tensor
    return getattr(layer, which)


def _logits_source(model, layer_name, role):
    """Where a model's logits are: `(symbolic tensor, kind, layer)`.

    kind "logits": the tensor is the logits; "dense_softmax": the tensor is
    the input of a softmax Dense layer, whose pre-activation gives them;
    "probabilities": the model ends in an unreachable softmax, so the loss
    uses log-probabilities.
    """
    if layer_name is None:
        names = {layer.name for layer in model.layers}
        if "logits" in names:
            layer_name = "logits"
    if layer_name is not None:
        try:
            layer = model.get_layer(layer_name)
        except ValueError:
            raise ValueError(
                f"{role}_logits_layer={layer_name!r}: the {role} model "
                f"{model.name!r} has no layer of that name. Pass the name of "
                "the layer whose output is the logits (before any softmax)."
            ) from None
        if _is_softmax(getattr(layer, "activation", None)):
            if isinstance(layer, keras.layers.Dense):
                return _layer_tensor(model, layer, "input"), "dense_softmax", layer
            return _layer_tensor(model, layer, "output"), "probabilities", layer
        return _layer_tensor(model, layer, "output"), "logits", layer
    last, _ = _last_operation(model)
    if last is None:
        last = model.layers[-1]
    if isinstance(last, keras.layers.Softmax) or (
        isinstance(last, keras.layers.Activation) and _is_softmax(last.activation)
    ):
        return _layer_tensor(model, last, "input"), "logits", last
    if isinstance(last, keras.layers.Dense) and _is_softmax(last.activation):
        return _layer_tensor(model, last, "input"), "dense_softmax", last
    if _ends_in_softmax(model):
        return model.outputs[0], "probabilities", last
    return model.outputs[0], "logits", last


def _to_logits(value, kind, layer):
    if kind == "dense_softmax":
        logits = ops.matmul(value, layer.kernel)
        if layer.use_bias:
            logits = logits + layer.bias
        return logits
    if kind == "probabilities":
        return ops.log(ops.clip(ops.cast(value, "float32"), 1e-12, 1.0))
    return value


class _ViewsRequested:
    def __enter__(self):
        _STEP_STATE.depth = getattr(_STEP_STATE, "depth", 0) + 1

    def __exit__(self, *exc):
        _STEP_STATE.depth -= 1


def _views_requested():
    return getattr(_STEP_STATE, "depth", 0) > 0


def _unpack_targets(y):
    if isinstance(y, dict) and (LABELS_KEY in y or CACHED_LOGITS_KEY in y):
        return y.get(LABELS_KEY), y.get(CACHED_LOGITS_KEY), y.get(CACHED_HINT_KEY)
    return y, None, None


def _reduce(values, sample_weight):
    values = ops.cast(values, "float32")
    if sample_weight is None:
        return ops.mean(values)
    weights = ops.reshape(ops.cast(sample_weight, "float32"), ops.shape(values))
    # Like Keras' "sum_over_batch_size": weighted sum over the batch size.
    return ops.sum(values * weights) / ops.cast(ops.shape(values)[0], "float32")


def _scale_for_replicas(loss):
    # Gradients are summed over replicas, so each replica's loss is divided
    # by their number (what Keras' Loss objects do in `__call__`).
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss / replicas if replicas > 1 else loss


def _per_example(loss_fn, y_true, y_pred):
    # Keras Loss objects reduce and scale for distribution in __call__;
    # `.call` gives the per-example values, reduced here like the other terms.
    if isinstance(loss_fn, keras.losses.Loss):
        return loss_fn.call(y_true, y_pred)
    return loss_fn(y_true, y_pred)


@keras.saving.register_keras_serializable(package="keras_tl")
class Distiller(keras.distillation.Distiller):
    """Trains a student to imitate a frozen teacher (knowledge distillation).

    A `keras.distillation.Distiller` whose loss is

        alpha * student_loss(y, s) + (1 - alpha) * T^2 * KL(softmax(t/T) || softmax(s/T))
        (+ hint_weight * hint loss, when `hint_layers` is given)

    with `t`, `s` the teacher's and student's logits. The teacher is frozen
    (`trainable = False`, run in inference mode, so BatchNorm statistics
    do not move); its weights are unchanged by `fit`. `call`, `predict`
    and the compiled metrics are the student's. A `.keras` file saves
    teacher, student, settings and compile state, and reloads with
    `safe_mode=True`.

    Models that end in softmax: the loss needs logits, never probabilities
    (softmax of probabilities / T is not a softened teacher). They are
    found in this order: the layer named by `teacher_logits_layer` /
    `student_logits_layer`; a layer named `"logits"` (every classifier
    keras-tl builds has one); the input of a final `Softmax` layer or
    softmax `Activation`; for a final `Dense(..., activation="softmax")`,
    its pre-activation recomputed from its input and weights. When the
    softmax is out of reach (inside a nested model, such as the head of
    keras-tl's text classifier), the log of the probabilities is used: it
    differs from the logits by a per-example constant, which the softmax
    and the standardization ignore, so the loss is unchanged except where
    probabilities underflow to 0. Layers after the softmax that pass its
    output through (keras-tl's `ClassNames`, `Identity`, `Dropout`) are
    looked past. Otherwise the output is taken as logits.

    Teacher logits can be computed once: `cache_teacher_logits(data)`
    returns a dataset whose targets carry them, and `fit` on it runs only
    the student. Without it (e.g. with random augmentation, where every
    epoch sees new images) the teacher runs inside each step.

    Args:
        student: the `keras.Model` to train.
        teacher: the trained `keras.Model` to imitate; same inputs and
            number of classes as the student.
        temperature: T > 0, softens both distributions.
        alpha: weight in [0, 1] of the student's loss on the labels.
        standardize: z-score each example's logits before dividing by T
            (logit standardization, Sun et al., CVPR 2024), so the student
            matches the teacher's ranking rather than its logit scale.
        hint_layers: optional `(student_layer_name, teacher_layer_name)`:
            also match that student layer, through a learned linear
            projection, to that teacher layer (see `HintDistillation`).
        hint_weight: weight of the hint loss.
        teacher_logits_layer: name of the teacher layer giving logits.
        student_logits_layer: name of the student layer giving logits.
        name: model name.
        **kwargs: standard `keras.Model` arguments.

    Example:

    >>> distiller = Distiller(student=student, teacher=teacher)
    >>> distiller.compile(optimizer="adam", metrics=["accuracy"],
    ...                   alpha=0.5, temperature=4.0)
    >>> distiller.fit(distiller.cache_teacher_logits((x, y)), epochs=10)
    >>> distiller.student.predict(x_test)
    """

    def __init__(
        self,
        student,
        teacher,
        temperature=4.0,
        alpha=0.5,
        standardize=True,
        hint_layers=None,
        hint_weight=1.0,
        teacher_logits_layer=None,
        student_logits_layer=None,
        name="distiller",
        **kwargs,
    ):
        alpha = _check_alpha(alpha)
        temperature = _check_temperature(temperature)
        for role, model in (("student", student), ("teacher", teacher)):
            if not isinstance(model, keras.Model):
                raise ValueError(
                    f"{role} must be a keras.Model; got {type(model).__name__}."
                )
        if hint_layers is not None:
            if isinstance(hint_layers, str) or len(hint_layers) != 2:
                raise ValueError(
                    "hint_layers must be a pair (student_layer_name, "
                    f"teacher_layer_name); got {hint_layers!r}."
                )
            hint_layers = tuple(hint_layers)
        self._teacher_logits_layer = teacher_logits_layer
        self._student_logits_layer = student_logits_layer
        self._hint_layers = hint_layers
        losses = [SoftTargetDistillation(temperature, standardize)]
        weights = [1.0]
        if hint_layers is not None:
            losses.append(HintDistillation(*hint_layers))
            weights.append(float(hint_weight))
        super().__init__(
            teacher=teacher,
            student=student,
            distillation_losses=losses,
            distillation_loss_weights=weights,
            student_loss_weight=alpha,
            name=name,
            **kwargs,
        )
        self._student_loss_fn = keras.losses.SparseCategoricalCrossentropy(
            from_logits=True
        )
        self._distillation_loss_fn = None
        self.hint_loss_tracker = (
            keras.metrics.Mean(name="hint_loss") if hint_layers else None
        )

    # Called by the parent's __init__ after it validated the models: builds
    # one model per network that returns every tensor the loss needs.
    def _create_multi_feature_extractors(self):
        teacher, student = self.teacher, self.student
        for role, model in (("teacher", teacher), ("student", student)):
            if getattr(model, "inputs", None) is None and (
                self._hint_layers or getattr(self, f"_{role}_logits_layer")
            ):
                raise ValueError(
                    f"The {role} is a subclassed model without symbolic inputs; "
                    "hint_layers and *_logits_layer need a functional or "
                    "Sequential model."
                )
        self._sources = {}
        teacher_outputs, student_outputs = {}, {"output": None}
        for role, model, outputs in (
            ("teacher", teacher, teacher_outputs),
            ("student", student, student_outputs),
        ):
            if getattr(model, "inputs", None) is None:
                self._sources[role] = (None, "logits", None)
                continue
            tensor, kind, layer = _logits_source(
                model, getattr(self, f"_{role}_logits_layer"), role
            )
            self._sources[role] = (tensor, kind, layer)
            outputs["logits"] = tensor
        if self._hint_layers:
            student_name, teacher_name = self._hint_layers
            teacher_outputs["hint"] = _layer_tensor(
                teacher, teacher.get_layer(teacher_name), "output"
            )
            student_outputs["hint"] = _layer_tensor(
                student, student.get_layer(student_name), "output"
            )
        self._check_logits_shapes()
        if getattr(teacher, "inputs", None) is not None:
            self._teacher_feature_extractor = keras.Model(
                _model_inputs(teacher), teacher_outputs, name=f"{teacher.name}_distill_view"
            )
        else:
            self._teacher_feature_extractor = None
        if getattr(student, "inputs", None) is not None:
            student_outputs["output"] = student.outputs[0] if len(
                student.outputs
            ) == 1 else student.outputs
            self._student_feature_extractor = keras.Model(
                _model_inputs(student), student_outputs, name=f"{student.name}_distill_view"
            )
        else:
            self._student_feature_extractor = None
        self.hint_projection = None
        if self._hint_layers:
            teacher_dim = int(teacher_outputs["hint"].shape[-1])
            student_dim = int(student_outputs["hint"].shape[-1])
            self.hint_projection = keras.layers.Dense(
                teacher_dim, use_bias=False, name="hint_projection"
            )
            self.hint_projection.build((None, student_dim))

    def _check_logits_shapes(self):
        shapes = {}
        for role in ("teacher", "student"):
            tensor, kind, layer = self._sources[role]
            if tensor is None:
                continue
            if kind == "dense_softmax":
                shapes[role] = layer.units
            else:
                shapes[role] = tensor.shape[-1]
        if len(shapes) == 2 and None not in shapes.values():
            if shapes["teacher"] != shapes["student"]:
                raise ValueError(
                    f"The teacher has {shapes['teacher']} output classes but the "
                    f"student has {shapes['student']}. Build the student's head "
                    f"for the teacher's {shapes['teacher']} classes."
                )

    # -- settings --------------------------------------------------------

    @property
    def soft_target_loss(self):
        return self.distillation_losses[0]

    @property
    def temperature(self):
        return self.soft_target_loss.temperature

    @property
    def alpha(self):
        return self.student_loss_weight

    @property
    def standardize(self):
        return self.soft_target_loss.standardize

    def compile(
        self,
        optimizer="adam",
        metrics=None,
        student_loss_fn=None,
        distillation_loss_fn=None,
        alpha=None,
        temperature=None,
        loss=None,
        **kwargs,
    ):
        """Configures training, like the Keras distillation example.

        Args:
            optimizer: optimizer of the student.
            metrics: list of metrics of the student's output and labels.
            student_loss_fn: loss on `(labels, student logits)`; defaults to
                `SparseCategoricalCrossentropy(from_logits=True)`.
            distillation_loss_fn: optional loss on `(softmax(t/T),
                softmax(s/T))` (e.g. `keras.losses.KLDivergence()`), then
                multiplied by T^2; by default the exact log-softmax KL.
            alpha: overrides the constructor's `alpha`.
            temperature: overrides the constructor's `temperature`.
            loss: another name for `student_loss_fn` (`keras.Model.compile`'s).
            **kwargs: other `keras.Model.compile` arguments.

        Example:

        >>> distiller.compile(keras.optimizers.Adam(1e-3), ["accuracy"],
        ...                   alpha=0.1, temperature=10)
        """
        if loss is not None and student_loss_fn is not None:
            raise ValueError("Pass the student's loss as student_loss_fn or loss, not both.")
        student_loss_fn = student_loss_fn if student_loss_fn is not None else loss
        if student_loss_fn is None:
            student_loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        elif isinstance(student_loss_fn, (str, dict)):
            student_loss_fn = keras.losses.get(student_loss_fn)
        if isinstance(distillation_loss_fn, (str, dict)):
            distillation_loss_fn = keras.losses.get(distillation_loss_fn)
        if alpha is not None:
            self.student_loss_weight = _check_alpha(alpha)
        if temperature is not None:
            self.soft_target_loss.temperature = _check_temperature(temperature)
        self._student_loss_fn = student_loss_fn
        self._distillation_loss_fn = distillation_loss_fn
        super().compile(optimizer=optimizer, loss=student_loss_fn, metrics=metrics, **kwargs)

    def get_compile_config(self):
        config = super().get_compile_config()
        if config:
            ser = keras.saving.serialize_keras_object
            config.pop("loss", None)
            config["student_loss_fn"] = ser(self._student_loss_fn)
            config["distillation_loss_fn"] = ser(self._distillation_loss_fn)
            config["alpha"] = self.alpha
            config["temperature"] = self.temperature
        return config

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def get_config(self):
        ser = keras.saving.serialize_keras_object
        return {
            "name": self.name,
            "trainable": self.trainable,
            "student": ser(self.student),
            "teacher": ser(self.teacher),
            "temperature": self.temperature,
            "alpha": self.alpha,
            "standardize": self.standardize,
            "hint_layers": list(self._hint_layers) if self._hint_layers else None,
            "hint_weight": float(self.distillation_loss_weights[1])
            if self._hint_layers
            else 1.0,
            "teacher_logits_layer": self._teacher_logits_layer,
            "student_logits_layer": self._student_logits_layer,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("student", "teacher"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)

    # -- forward and loss -----------------------------------------------

    def call(self, inputs, training=None):
        if _views_requested() and self._student_feature_extractor is not None:
            return self._student_feature_extractor(inputs, training=training)
        return self.student(inputs, training=training)

    def train_step(self, data):
        with _ViewsRequested():
            return super().train_step(data)

    def test_step(self, data):
        with _ViewsRequested():
            return super().test_step(data)

    def _student_views(self, x, y_pred, training):
        if isinstance(y_pred, dict) and "output" in y_pred:
            return y_pred
        if self._student_feature_extractor is not None:
            return self._student_feature_extractor(x, training=training)
        output = y_pred if y_pred is not None else self.student(x, training=training)
        return {"output": output, "logits": output}

    def _teacher_views(self, x):
        if self._teacher_feature_extractor is not None:
            return self._teacher_feature_extractor(x, training=False)
        return {"logits": self.teacher(x, training=False)}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        labels, teacher_logits, teacher_hint = _unpack_targets(y)
        student = self._student_views(x, y_pred, training)
        needs_hint = self._hint_layers is not None
        if teacher_logits is None or (needs_hint and teacher_hint is None):
            teacher = self._teacher_views(x)
            teacher_logits = _to_logits(teacher["logits"], *self._sources["teacher"][1:])
            teacher_hint = teacher.get("hint")
        student_logits = _to_logits(student["logits"], *self._sources["student"][1:])

        student_loss = ops.zeros(())
        if labels is not None and self.alpha > 0:
            student_loss = _reduce(
                _per_example(self._student_loss_fn, labels, student_logits),
                sample_weight,
            )
        if self._distillation_loss_fn is None:
            kd_values = self.soft_target_loss.per_example_loss(
                teacher_logits, student_logits
            )
        else:
            kd_values = self._custom_soft_target(teacher_logits, student_logits)
        distillation_loss = _reduce(kd_values, sample_weight)
        total = self.alpha * student_loss + (1.0 - self.alpha) * distillation_loss
        if needs_hint:
            projected = self.hint_projection(_as_vectors(student["hint"]))
            hint_loss = _reduce(
                self.distillation_losses[1].per_example_loss(teacher_hint, projected),
                sample_weight,
            )
            total = total + self.distillation_loss_weights[1] * hint_loss
            self.hint_loss_tracker.update_state(hint_loss)
        # Regularization losses of the student's layers.
        if self.student.losses:
            total = total + ops.sum(ops.stack(self.student.losses))
        self.student_loss_tracker.update_state(student_loss)
        self.distillation_loss_tracker.update_state(distillation_loss)
        self.total_loss_tracker.update_state(total)
        return _scale_for_replicas(total)

    def _custom_soft_target(self, teacher_logits, student_logits):
        loss = self.soft_target_loss
        t = ops.stop_gradient(ops.cast(teacher_logits, "float32"))
        s = ops.cast(student_logits, "float32")
        if loss.standardize:
            t, s = _standardize(t), _standardize(s)
        T = loss.temperature
        values = _per_example(
            self._distillation_loss_fn,
            ops.softmax(t / T, axis=-1),
            ops.softmax(s / T, axis=-1),
        )
        return values * (T**2)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        labels, _, _ = _unpack_targets(y)
        if isinstance(y_pred, dict) and "output" in y_pred:
            y_pred = y_pred["output"]
        return super().compute_metrics(x, labels, y_pred, sample_weight=sample_weight)

    def reset_metrics(self):
        super().reset_metrics()
        if self.hint_loss_tracker is not None:
            self.hint_loss_tracker.reset_state()

    # -- cached teacher outputs -----------------------------------------

    def teacher_logits(self, x, batch_size=64):
        """Returns the teacher's logits on `x` (and hint features).

        Args:
            x: inputs (array, dict of arrays) or a batched `tf.data.Dataset`
                of inputs.
            batch_size: batch size for arrays.

        Returns:
            A dict with `"logits"` (float32 numpy) and, with hints,
            `"hint"`.

        Example:

        >>> distiller.teacher_logits(x_train)["logits"].shape
        (5000, 10)
        """
        if self._teacher_feature_extractor is not None:
            views = self._teacher_feature_extractor.predict(x, batch_size=batch_size, verbose=0)
        else:
            views = {"logits": self.teacher.predict(x, batch_size=batch_size, verbose=0)}
        logits = _to_logits(views["logits"], *self._sources["teacher"][1:])
        result = {"logits": np.asarray(ops.convert_to_numpy(logits), np.float32)}
        if "hint" in views:
            result["hint"] = np.asarray(
                ops.convert_to_numpy(_as_vectors(views["hint"])), np.float32
            )
        return result

    def cache_teacher_logits(self, data, batch_size=32, shuffle=True, seed=None):
        """Runs the teacher once over `data` and returns it with the logits.

        The result is a batched `tf.data.Dataset` of `(x, {"labels": y,
        "teacher_logits": t})` (plus `"teacher_hint"` with hints); `fit` and
        `evaluate` on it run only the student, so an epoch costs the
        student's forward and backward passes alone. The inputs are held
        in memory next to the logits. Only for data without random
        augmentation: cached logits belong to the unaugmented images.

        Args:
            data: `(x, y)` arrays (x may be a dict of arrays) or a batched
                `tf.data.Dataset` of `(x, y)`.
            batch_size: batch size of the returned dataset.
            shuffle: reshuffle the examples every epoch.
            seed: shuffling seed.

        Returns:
            A `tf.data.Dataset`.

        Example:

        >>> train = distiller.cache_teacher_logits((x, y))
        >>> distiller.fit(train, epochs=10)
        """
        x, y = _materialize(data)
        teacher = self.teacher_logits(x, batch_size=max(batch_size, 64))
        targets = {LABELS_KEY: y, CACHED_LOGITS_KEY: teacher["logits"]}
        if "hint" in teacher:
            targets[CACHED_HINT_KEY] = teacher["hint"]
        dataset = tf.data.Dataset.from_tensor_slices((x, targets))
        if shuffle:
            n = len(y)
            dataset = dataset.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _materialize(data):
    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        if not (isinstance(spec, tuple) and len(spec) == 2):
            raise ValueError(
                "cache_teacher_logits needs a dataset of (x, y) batches; got "
                f"element spec {spec}."
            )
        xs, ys = [], []
        for xb, yb in data.as_numpy_iterator():
            xs.append(xb)
            ys.append(yb)
        if not xs:
            raise ValueError("cache_teacher_logits got an empty dataset.")
        x = keras.tree.map_structure(lambda *parts: np.concatenate(parts), *xs)
        return x, np.concatenate(ys)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = data
        x = keras.tree.map_structure(np.asarray, x)
        y = np.asarray(y)
        n = len(keras.tree.flatten(x)[0])
        if n != len(y):
            raise ValueError(
                f"x has {n} examples but y has {len(y)} labels; pass one label "
                "per example."
            )
        return x, y
    raise TypeError(
        "data must be (x, y) arrays or a batched tf.data.Dataset of (x, y); "
        f"got {type(data).__name__}."
    )


def shrink_bert(teacher, num_layers=None, layer_indices=None):
    """A shallower copy of a BERT-family model, initialized from its layers.

    DistilBERT's initialization: the student keeps the teacher's
    embeddings, pooler and classifier and takes one transformer layer out
    of two (`layer_indices`, by default `0, 2, 4, ...`), so it starts close
    to the teacher and distillation only has to close the gap. Works for
    keras-hub backbones built from a `num_layers` config with layers
    named `transformer_layer_{i}` (BERT, RoBERTa, DistilBERT, ...), and
    for text classifiers around them.

    Args:
        teacher: a keras-hub backbone (e.g. `keras_hub.models.BertBackbone`)
            or a text classifier with a `.backbone` (e.g.
            `BertTextClassifier`).
        num_layers: number of student layers; defaults to half the
            teacher's (rounded up).
        layer_indices: which teacher layers initialize the student's, in
            order; defaults to every other layer.

    Returns:
        A model of the teacher's type (classifier or backbone) with fewer
        transformer layers and the same inputs and outputs, trainable
        whether or not the teacher is frozen.

    Example:

    >>> teacher = keras_hub.models.BertTextClassifier.from_preset(
    ...     "bert_base_en_uncased", num_classes=2)
    >>> student = shrink_bert(teacher)  # 6 layers, from layers 0, 2, ..., 10
    """
    is_classifier = hasattr(teacher, "backbone") and isinstance(
        teacher.backbone, keras.Model
    )
    backbone = teacher.backbone if is_classifier else teacher
    config = backbone.get_config()
    if "num_layers" not in config:
        raise ValueError(
            f"{type(backbone).__name__} has no `num_layers` in its config; "
            "shrink_bert works on keras-hub BERT-family backbones."
        )
    depth = int(config["num_layers"])
    if layer_indices is None:
        num_layers = num_layers or (depth + 1) // 2
        if not 1 <= num_layers <= depth:
            raise ValueError(
                f"num_layers must be in [1, {depth}] for a {depth}-layer teacher; "
                f"got {num_layers}."
            )
        step = depth / num_layers
        layer_indices = [int(i * step) for i in range(num_layers)]
    layer_indices = [int(i) for i in layer_indices]
    if num_layers is not None and len(layer_indices) != num_layers:
        raise ValueError(
            f"{len(layer_indices)} layer_indices given for num_layers={num_layers}."
        )
    bad = [i for i in layer_indices if not 0 <= i < depth]
    if bad or not layer_indices:
        raise ValueError(
            f"layer_indices must be teacher layers in [0, {depth - 1}]; got "
            f"{layer_indices}."
        )
    config["num_layers"] = len(layer_indices)
    config["name"] = f"{backbone.name}_{len(layer_indices)}_layers"
    # A student is made to be trained: a frozen teacher (a distiller freezes
    # its teacher) must not hand its `trainable=False` on through the config.
    config["trainable"] = True
    student_backbone = type(backbone).from_config(config)
    _copy_layers(backbone, student_backbone, layer_indices)
    if not is_classifier:
        return student_backbone
    classifier_config = teacher.get_config()
    classifier_config["backbone"] = student_backbone
    classifier_config["preprocessor"] = teacher.preprocessor
    classifier_config.pop("name", None)
    student = type(teacher)(**{
        k: v for k, v in classifier_config.items()
        if k not in ("trainable", "dtype")
    })
    for layer in student.layers:
        if layer is student_backbone or layer is getattr(student, "preprocessor", None):
            continue
        if layer.weights:
            layer.set_weights(teacher.get_layer(layer.name).get_weights())
    return student


def _copy_layers(source, target, layer_indices):
    mapping = {f"transformer_layer_{i}": f"transformer_layer_{j}"
               for i, j in enumerate(layer_indices)}
    for layer in target.layers:
        if not layer.weights:
            continue
        source_name = mapping.get(layer.name, layer.name)
        layer.set_weights(source.get_layer(source_name).get_weights())
