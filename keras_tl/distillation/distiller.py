"""`Distiller`: trains a student to imitate a frozen teacher.

Built on `keras.distillation.Distiller`, with the soft-target loss on
logits (`keras_tl.distillation.losses`), logits found behind a softmax
(`keras_tl.distillation.logits`), one student forward pass per step and
teacher logits that can be computed once and cached.
"""

import threading
import warnings

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_tl._utils.distribute import model_outputs
from keras_tl._utils.distribute import num_replicas
from keras_tl._utils.validation import pair_spec
from keras_tl.distillation.logits import check_teacher_outputs
from keras_tl.distillation.logits import layer_tensor
from keras_tl.distillation.logits import logits_source
from keras_tl.distillation.logits import model_inputs
from keras_tl.distillation.logits import outputs_kind
from keras_tl.distillation.logits import to_logits
from keras_tl.distillation.losses import HintDistillation
from keras_tl.distillation.losses import SoftTargetDistillation
from keras_tl.distillation.losses import as_vectors
from keras_tl.distillation.losses import check_loss_weight
from keras_tl.distillation.losses import check_temperature
from keras_tl.distillation.losses import standardize_logits

__all__ = ["CACHED_HINT_KEY", "CACHED_LOGITS_KEY", "LABELS_KEY", "Distiller"]


# The training and test steps ask `Distiller.call` for every student tensor
# the loss needs (logits, hint features) besides the output, so one forward
# pass serves loss and metrics. Per thread, because `MirroredStrategy` runs
# each replica's step in its own thread.
_STEP_STATE = threading.local()

CACHED_LOGITS_KEY = "teacher_logits"
CACHED_HINT_KEY = "teacher_hint"
LABELS_KEY = "labels"


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
    replicas = num_replicas()
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
    looked past. Otherwise the output is taken as logits. The same search
    runs inside a nested model the teacher ends with (a classifier head, a
    model wrapped in a `Sequential`).

    A subclassed teacher (a `keras.Model` subclass with its own `call`)
    has no graph to search: with `teacher_outputs="auto"` its outputs on
    the first data the distiller sees (the first batch of `fit` or
    `evaluate`, all of `teacher_logits` or `cache_teacher_logits`) decide. Rows in [0, 1] that
    sum to 1 are probabilities, whose log is used; anything else is logits.
    A warning says what was decided; `teacher_outputs="logits"` or
    `"probabilities"` says it instead.

    Teacher logits can be computed once: `cache_teacher_logits(data)`
    returns a dataset whose targets carry them, and `fit` on it runs only
    the student. Without it (e.g. with random augmentation, where every
    epoch sees new images) the teacher runs inside each step.

    The constructor is `keras.distillation.Distiller`'s: `(teacher, student,
    distillation_losses, distillation_loss_weights, student_loss_weight)`,
    and any `keras.distillation` loss objects run exactly as there. Without
    `distillation_losses`, the loss is keras-tl's `SoftTargetDistillation`
    (and `HintDistillation` with `hint_layers`), configured by the keyword
    settings below; with only those two loss objects, the teacher's logits
    are found behind a softmax and can be cached, as described above. A
    teacher with fewer parameters than its student gets a warning: the two
    are most often swapped.

    Args:
        teacher: the trained `keras.Model` to imitate; same inputs and
            number of classes as the student. Frozen.
        student: the `keras.Model` to train.
        distillation_losses: a `keras.distillation.DistillationLoss` or a
            list of them; default: `SoftTargetDistillation(temperature,
            standardize)`, plus `HintDistillation(*hint_layers)`.
        distillation_loss_weights: one weight per distillation loss
            (default 1 each).
        student_loss_weight: weight in [0, 1] of the student's loss on the
            labels; the distillation losses get `1 - student_loss_weight`.
        temperature: T > 0 of the default soft-target loss (default 4).
        standardize: z-score each example's logits before dividing by T
            in the default loss (default True; logit standardization, Sun
            et al., CVPR 2024), so the student matches the teacher's
            ranking rather than its logit scale.
        hint_layers: optional `(student_layer_name, teacher_layer_name)`:
            also match that student layer, through a learned linear
            projection, to that teacher layer (see `HintDistillation`).
        hint_weight: weight of the hint loss (default 1).
        teacher_logits_layer: name of the teacher layer giving logits;
            takes precedence over `teacher_outputs`.
        student_logits_layer: name of the student layer giving logits.
        teacher_outputs: what the teacher's output is. `"auto"` (default):
            found from its layers, or for a subclassed teacher from its
            outputs on a batch. `"logits"`: used as they are.
            `"probabilities"` (softmax outputs): the logits before the
            softmax where the graph reaches them, else the log of the
            probabilities (clipped at 1e-12), which tempers the same way:
            softmax(log(p) / T) is p softened by T.
        alpha: deprecated name of `student_loss_weight`.
        name: model name.
        **kwargs: standard `keras.Model` arguments.

    Example:

    ```python
    distiller = Distiller(teacher, student, student_loss_weight=0.5,
                          temperature=4.0)
    distiller.compile(optimizer="adam", metrics=["accuracy"])
    distiller.fit(distiller.cache_teacher_logits((x, y)), epochs=10)
    distiller.student.predict(x_test)

    # Keras' own loss objects, as with keras.distillation.Distiller:
    distiller = Distiller(teacher, student,
                          keras.distillation.LogitsDistillation(temperature=3))
    ```
    """

    def __init__(
        self,
        teacher,
        student,
        distillation_losses=None,
        distillation_loss_weights=None,
        student_loss_weight=0.5,
        *,
        temperature=None,
        standardize=None,
        hint_layers=None,
        hint_weight=None,
        teacher_logits_layer=None,
        student_logits_layer=None,
        teacher_outputs="auto",
        alpha=None,
        name="distiller",
        **kwargs,
    ):
        if alpha is not None:
            warnings.warn(
                "Distiller(alpha=...) is deprecated: it is student_loss_weight, as in "
                "keras.distillation.Distiller. alpha will be removed in keras-tl 0.5.",
                DeprecationWarning, stacklevel=2,
            )
            student_loss_weight = alpha
        teacher_outputs = check_teacher_outputs(teacher_outputs)
        student_loss_weight = check_loss_weight(
            student_loss_weight, "alpha" if alpha is not None else "student_loss_weight")
        for role, model in (("teacher", teacher), ("student", student)):
            if not isinstance(model, keras.Model):
                raise ValueError(
                    f"{role} must be a keras.Model; got {type(model).__name__}."
                )
        _warn_if_teacher_smaller(teacher, student)
        losses, weights = _distillation_losses(
            distillation_losses, distillation_loss_weights, temperature, standardize,
            hint_layers, hint_weight,
        )
        # keras-tl's own losses (soft targets on logits found behind a
        # softmax, hints through a learned projection, cached teacher
        # logits) run in this class's loss; any other combination runs in
        # `keras.distillation.Distiller`'s, exactly as there.
        self._native = _is_native(losses)
        self._hint_layers = None
        if self._native:
            hints = [loss for loss in losses if isinstance(loss, HintDistillation)]
            if hints:
                self._hint_layers = (hints[0].student_layer_name, hints[0].teacher_layer_name)
        self._teacher_logits_layer = teacher_logits_layer
        self._student_logits_layer = student_logits_layer
        self._teacher_outputs = teacher_outputs
        super().__init__(
            teacher=teacher,
            student=student,
            distillation_losses=losses,
            distillation_loss_weights=weights,
            student_loss_weight=student_loss_weight,
            name=name,
            **kwargs,
        )
        self._student_loss_fn = keras.losses.SparseCategoricalCrossentropy(
            from_logits=True
        )
        self._distillation_loss_fn = None
        self.hint_loss_tracker = (
            keras.metrics.Mean(name="hint_loss") if self._hint_layers else None
        )

    # Called by the parent's __init__ after it validated the models: builds
    # one model per network that returns every tensor the loss needs.
    def _create_multi_feature_extractors(self):
        self.hint_projection = None
        if not self._native:
            self._sources = None
            return super()._create_multi_feature_extractors()
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
            said = self._teacher_outputs if role == "teacher" else "auto"
            if getattr(model, "inputs", None) is None:
                # No graph: the kind is what the user said, or (None) decided
                # on the first batch of the teacher's outputs.
                kind = {"auto": None}.get(said, said) if role == "teacher" else "logits"
                self._sources[role] = (None, kind, None)
                continue
            tensor, kind, layer = logits_source(
                model, getattr(self, f"_{role}_logits_layer"), role, said
            )
            self._sources[role] = (tensor, kind, layer)
            outputs["logits"] = tensor
        if self._hint_layers:
            student_name, teacher_name = self._hint_layers
            teacher_outputs["hint"] = layer_tensor(
                teacher, teacher.get_layer(teacher_name), "output"
            )
            student_outputs["hint"] = layer_tensor(
                student, student.get_layer(student_name), "output"
            )
        self._check_logits_shapes()
        if getattr(teacher, "inputs", None) is not None:
            self._teacher_feature_extractor = keras.Model(
                model_inputs(teacher), teacher_outputs, name=f"{teacher.name}_distill_view"
            )
        else:
            self._teacher_feature_extractor = None
        if getattr(student, "inputs", None) is not None:
            student_outputs["output"] = student.outputs[0] if len(
                student.outputs
            ) == 1 else student.outputs
            self._student_feature_extractor = keras.Model(
                model_inputs(student), student_outputs, name=f"{student.name}_distill_view"
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
        """The `SoftTargetDistillation` among the losses (`None` if none)."""
        for loss in self.distillation_losses:
            if isinstance(loss, SoftTargetDistillation):
                return loss
        return None

    @property
    def hint_loss(self):
        """The `HintDistillation` among the losses (`None` if none)."""
        for loss in self.distillation_losses:
            if isinstance(loss, HintDistillation):
                return loss
        return None

    def _loss_weight(self, loss):
        return self.distillation_loss_weights[self.distillation_losses.index(loss)]

    @property
    def temperature(self):
        loss = self.soft_target_loss
        return None if loss is None else loss.temperature

    @property
    def alpha(self):
        """Deprecated name of `student_loss_weight`."""
        return self.student_loss_weight

    @property
    def standardize(self):
        loss = self.soft_target_loss
        return None if loss is None else loss.standardize

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

        ```python
        distiller.compile(keras.optimizers.Adam(1e-3), ["accuracy"],
                          alpha=0.1, temperature=10)
        ```
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
            warnings.warn(
                "compile(alpha=...) is deprecated: set student_loss_weight in the "
                "constructor, as in keras.distillation.Distiller.",
                DeprecationWarning, stacklevel=2,
            )
            self.student_loss_weight = check_loss_weight(alpha, "alpha")
        if temperature is not None:
            if self.soft_target_loss is None:
                raise ValueError(
                    "compile(temperature=...) sets the SoftTargetDistillation's "
                    "temperature, and this distiller has none; set it on its losses."
                )
            self.soft_target_loss.temperature = check_temperature(temperature)
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
            if self.soft_target_loss is not None:
                config["temperature"] = self.temperature
        return config

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def get_config(self):
        # keras.distillation.Distiller's keys, and keras-tl's logits options.
        ser = keras.saving.serialize_keras_object
        return {
            "name": self.name,
            "trainable": self.trainable,
            "teacher": ser(self.teacher),
            "student": ser(self.student),
            "distillation_losses": [ser(loss) for loss in self.distillation_losses],
            "distillation_loss_weights": [float(w) for w in self.distillation_loss_weights],
            "student_loss_weight": float(self.student_loss_weight),
            "teacher_logits_layer": self._teacher_logits_layer,
            "student_logits_layer": self._student_logits_layer,
            "teacher_outputs": self._teacher_outputs,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("student", "teacher"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        if config.get("distillation_losses") is not None:
            config["distillation_losses"] = [
                keras.saving.deserialize_keras_object(loss)
                for loss in config["distillation_losses"]
            ]
        # Files saved by keras-tl 0.3: `alpha` and the soft-target settings.
        if "alpha" in config:
            config["student_loss_weight"] = config.pop("alpha")
        return cls(**config)

    # -- forward and loss -----------------------------------------------

    def call(self, inputs, training=None):
        if (self._native and _views_requested()
                and self._student_feature_extractor is not None):
            return self._student_feature_extractor(inputs, training=training)
        return self.student(inputs, training=training)

    # TensorFlow and PyTorch call `train_step(data)`, JAX calls the stateless
    # `train_step(state, data)`: the arguments pass through as they come.
    def train_step(self, *args):
        with _ViewsRequested():
            return super().train_step(*args)

    def test_step(self, *args):
        with _ViewsRequested():
            return super().test_step(*args)

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
        if not self._native:
            return super().compute_loss(x, y, y_pred, sample_weight, training)
        labels, teacher_logits, teacher_hint = _unpack_targets(y)
        student = self._student_views(x, y_pred, training)
        needs_hint = self._hint_layers is not None
        if teacher_logits is None or (needs_hint and teacher_hint is None):
            teacher = self._teacher_views(x)
            self._decide_teacher_outputs(teacher["logits"])
            teacher_logits = to_logits(teacher["logits"], *self._sources["teacher"][1:])
            teacher_hint = teacher.get("hint")
        student_logits = to_logits(student["logits"], *self._sources["student"][1:])

        student_loss = ops.zeros(())
        if labels is not None and self.student_loss_weight > 0:
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
        distillation_loss = self._loss_weight(self.soft_target_loss) * _reduce(
            kd_values, sample_weight)
        weight = self.student_loss_weight
        total = weight * student_loss + (1.0 - weight) * distillation_loss
        if needs_hint:
            projected = self.hint_projection(as_vectors(student["hint"]))
            hint_loss = _reduce(
                self.hint_loss.per_example_loss(teacher_hint, projected),
                sample_weight,
            )
            total = total + self._loss_weight(self.hint_loss) * hint_loss
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
            t, s = standardize_logits(t), standardize_logits(s)
        T = loss.temperature
        values = _per_example(
            self._distillation_loss_fn,
            ops.softmax(t / T, axis=-1),
            ops.softmax(s / T, axis=-1),
        )
        return values * (T**2)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if not self._native:
            return super().compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        labels, _, _ = _unpack_targets(y)
        if isinstance(y_pred, dict) and "output" in y_pred:
            y_pred = y_pred["output"]
        return super().compute_metrics(x, labels, y_pred, sample_weight=sample_weight)

    def reset_metrics(self):
        super().reset_metrics()
        if self.hint_loss_tracker is not None:
            self.hint_loss_tracker.reset_state()

    # -- a subclassed teacher's outputs --------------------------------

    def _decide_teacher_outputs(self, values):
        """Decides, once, whether a graphless teacher gives probabilities."""
        if self._sources["teacher"][1] is not None:
            return
        try:
            values = np.asarray(ops.convert_to_numpy(values))
        except Exception:
            # A symbolic tensor (inside a traced `train_step`): no values.
            raise ValueError(
                "teacher_outputs='auto' with a subclassed teacher is decided "
                "on a batch of its outputs, and none was seen before this "
                "traced step. Pass teacher_outputs='logits' or "
                "'probabilities', or call fit, evaluate or "
                "cache_teacher_logits on arrays or a tf.data.Dataset first."
            ) from None
        self._sources["teacher"] = (None, outputs_kind(values), None)

    def _decide_on_first_batch(self, x, batch_size):
        if not self._native or self._sources["teacher"][1] is not None:
            return
        inputs = _first_inputs(x, batch_size)
        if inputs is not None:
            self._decide_teacher_outputs(self.teacher(inputs, training=False))

    def fit(self, x=None, y=None, batch_size=None, *args, **kwargs):
        self._decide_on_first_batch(x, batch_size)
        return super().fit(x, y, batch_size, *args, **kwargs)

    def evaluate(self, x=None, y=None, batch_size=None, *args, **kwargs):
        self._decide_on_first_batch(x, batch_size)
        return super().evaluate(x, y, batch_size, *args, **kwargs)

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

        ```python
        distiller.teacher_logits(x_train)["logits"].shape  # -> (5000, 10)
        ```
        """
        if self._teacher_feature_extractor is not None:
            views = model_outputs(self._teacher_feature_extractor, x, batch_size)
        else:
            views = {"logits": model_outputs(self.teacher, x, batch_size)}
        self._decide_teacher_outputs(views["logits"])
        logits = to_logits(views["logits"], *self._sources["teacher"][1:])
        result = {"logits": np.asarray(ops.convert_to_numpy(logits), np.float32)}
        if "hint" in views:
            result["hint"] = np.asarray(
                ops.convert_to_numpy(as_vectors(views["hint"])), np.float32
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

        ```python
        train = distiller.cache_teacher_logits((x, y))
        distiller.fit(train, epochs=10)
        ```
        """
        if not self._native:
            raise ValueError(
                "Cached teacher logits feed keras-tl's SoftTargetDistillation (and "
                "HintDistillation); this distiller's losses run the teacher in every "
                "step. Pass the data to fit as it is."
            )
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


def _distillation_losses(losses, weights, temperature, standardize, hint_layers,
                         hint_weight):
    """The loss objects and weights: as given, or keras-tl's soft targets
    (and hints) built from the keyword settings."""
    if losses is None:
        if weights is not None:
            raise ValueError("distillation_loss_weights needs distillation_losses.")
        losses = [SoftTargetDistillation(4.0 if temperature is None else temperature,
                                         True if standardize is None else standardize)]
        weights = [1.0]
        if hint_layers is not None:
            if isinstance(hint_layers, str) or len(hint_layers) != 2:
                raise ValueError(
                    "hint_layers must be a pair (student_layer_name, "
                    f"teacher_layer_name); got {hint_layers!r}."
                )
            losses.append(HintDistillation(*hint_layers))
            weights.append(1.0 if hint_weight is None else float(hint_weight))
        return losses, weights
    given = {name: value for name, value in (
        ("temperature", temperature), ("standardize", standardize),
        ("hint_layers", hint_layers), ("hint_weight", hint_weight)) if value is not None}
    if given:
        raise ValueError(
            f"{sorted(given)} configure the default losses; with distillation_losses, "
            "set them on the loss objects (SoftTargetDistillation(temperature, "
            "standardize), HintDistillation(student_layer_name, teacher_layer_name)) "
            "and weigh them with distillation_loss_weights."
        )
    return losses, weights


def _is_native(losses):
    """Whether the losses are one `SoftTargetDistillation` and at most one
    `HintDistillation`, which this class's own loss computes."""
    losses = losses if isinstance(losses, (list, tuple)) else [losses]
    kinds = [type(loss) for loss in losses]
    return kinds.count(SoftTargetDistillation) == 1 and kinds.count(HintDistillation) <= 1 \
        and len(kinds) == kinds.count(SoftTargetDistillation) + kinds.count(HintDistillation)


def _parameter_count(model):
    return sum(int(np.prod(v.shape)) for v in model.weights)


def _warn_if_teacher_smaller(teacher, student):
    """Keras' order is (teacher, student); keras-tl 0.3's was (student,
    teacher). A teacher smaller than its student is most often the two
    swapped."""
    teacher_size, student_size = _parameter_count(teacher), _parameter_count(student)
    if teacher_size and student_size and teacher_size < student_size:
        warnings.warn(
            f"The teacher {teacher.name!r} has {teacher_size:,} parameters and the "
            f"student {student.name!r} {student_size:,}: the student, not the teacher, "
            "is trained. Distiller takes (teacher, student), as "
            "keras.distillation.Distiller does; swap them if that is not what you meant.",
            UserWarning, stacklevel=3,
        )


def _first_inputs(x, batch_size):
    """The inputs of the first batch of `fit`'s `x`, or `None`."""
    if isinstance(x, tf.data.Dataset):
        for batch in x.take(1):
            return batch[0] if isinstance(batch, tuple) else batch
        return None
    if isinstance(x, keras.utils.PyDataset):
        batch = x[0]
        return batch[0] if isinstance(batch, tuple) else batch
    flat = keras.tree.flatten(x) if x is not None else []
    if flat and all(getattr(a, "ndim", 0) >= 1 for a in flat):
        n = batch_size or 32
        return keras.tree.map_structure(lambda a: a[:n], x)
    return None


def _materialize(data):
    """`(x, y)` arrays of the data whose teacher logits are cached."""
    from keras_tl.data import as_arrays

    if isinstance(data, tf.data.Dataset):
        pair_spec(data, "(x, y) batch")
        return as_arrays(data, batched=True)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = as_arrays(tuple(data))
        return x, y
    raise TypeError(
        "data must be (x, y) arrays or a batched tf.data.Dataset of (x, y); "
        f"got {type(data).__name__}."
    )
