"""Recipe: distill a trained teacher into a small student."""

import keras

from keras_tl._utils.compiled import compile_for_evaluation
from keras_tl._utils.distribute import distribution_scope
from keras_tl._utils.precision import apply_policy
from keras_tl._utils.precision import loss_scaled
from keras_tl._utils.precision import output_layers
from keras_tl._utils.precision import precision_scope
from keras_tl._utils.precision import resolve_policy
from keras_tl._utils.knobs import check_knobs
from keras_tl._utils.knobs import class_weight_dict
from keras_tl._utils.knobs import make_optimizer
from keras_tl._utils.knobs import renamed_argument
from keras_tl.augment import augment_training
from keras_tl.losses import SparseLabelSmoothingCrossentropy
from keras_tl.backbones import build_backbone
from keras_tl.data import as_dataset
from keras_tl.multi_label import refuse_multi_label
from keras_tl.checkpoints import recipe_fingerprint
from keras_tl.distillation import LABELS_KEY
from keras_tl.distillation import Distiller
from keras_tl.engine import callback_stack
from keras_tl.engine import make_schedule
from keras_tl.engine import training_labels
from keras_tl.engine import with_class_weights
from keras_tl.finite import backup_and_restore
from keras_tl.heads import attach_head
from keras_tl.heads import build_head
from keras_tl.heads import get_class_names

__all__ = ["distill"]


def distill(
    teacher,
    student,
    train_data,
    validation_data=None,
    *,
    temperature=4.0,
    student_loss_weight=0.5,
    standardize=True,
    epochs=20,
    batch_size=32,
    learning_rate=None,
    schedule="cosine",
    optimizer=None,
    class_weight=None,
    warmup_fraction=0.05,
    validation_split=None,
    augmentation=None,
    hint_layers=None,
    teacher_outputs="auto",
    student_weights="imagenet",
    restore_best_weights=True,
    label_smoothing=0.0,
    ema=False,
    strategy=None,
    callbacks=None,
    checkpoint_dir=None,
    seed=0,
    verbose=1,
    mixed_precision=False,
    jit_compile="auto",
    alpha=None,
):
    """Trains `student` to imitate `teacher` on `train_data`; returns it.

    The teacher's logits are computed once over the training (and
    validation) images and cached, so each epoch runs only the student;
    with `augmentation` the images change every epoch and the teacher runs
    inside each step instead. The loss is `student_loss_weight *
    cross-entropy + (1 - student_loss_weight) * T^2 * KL` on standardized
    logits (see `keras_tl.Distiller`).

    The defaults are chosen to be safe with a poorly calibrated teacher
    (one ending in softmax after a short training, whose logits are large
    and badly scaled): the labels keep half the weight, and logit
    standardization makes the student match the teacher's ranking of the
    classes instead of its overconfident scale. The learning rate warms up
    linearly, then decays to zero along a cosine: a small student imitates
    the teacher markedly closer when its last epochs run at a low rate
    than at a constant one. With validation data the student's weights
    from its best validation epoch are returned.

    Args:
        teacher: a trained `keras.Model` from images to class scores
            (logits or softmax: see `keras_tl.Distiller` for how logits are
            found). A subclassed model works too: its input shape and number
            of classes are read from the student model, or from the
            teacher's outputs on the first training batch.
        student: a zoo name (e.g. `"mobilenet_v3_small"`, built at the
            teacher's input size with a head for the teacher's classes) or
            a `keras.Model` with the teacher's inputs and classes.
        train_data: a folder, `(x, y)` arrays or a `tf.data.Dataset` of
            `(image, label)`; images as the teacher takes them.
        validation_data: optional validation set in the same forms.
        temperature: T > 0 of the soft targets.
        student_loss_weight: weight in [0, 1] of the loss on the labels
            (`keras.distillation.Distiller`'s name).
        standardize: z-score each example's logits before softening.
        epochs: training epochs.
        batch_size: batch size.
        learning_rate: peak learning rate of the warm-up and decay, or a
            `keras.optimizers.schedules.LearningRateSchedule` used as is.
            `None`: 3e-3 for a student given as a model (usually trained
            from scratch) and 1e-3 for a zoo student with pretrained
            weights, gentler on its features.
        schedule: the decay after the warm-up: a name from
            `keras_tl.SCHEDULES` or a `LearningRateSchedule`.
        optimizer: Keras optimizer name or template instance; `None`: Adam.
        class_weight: `None`, `"balanced"` (each class present weighs the
            same in the loss) or `{class_index: weight}`: weighs each
            example's whole loss by its label's class.
        warmup_fraction: fraction of the training steps spent warming up,
            in [0, 1).
        validation_split: fraction of `train_data` held out when
            `validation_data` is not given.
        augmentation: a `keras_tl.augment` preset name (`"light"`,
            `"medium"`), a layer or a callable applied to training batches
            in the input pipeline (every backend); makes the teacher run
            online. Presets that mix labels are refused: the teacher's
            targets are for the images it sees.
        hint_layers: optional `(student_layer, teacher_layer)` names for a
            hint loss through a learned projection.
        teacher_outputs: what the teacher's output is: `"auto"` (found from
            its layers; for a subclassed teacher, from its outputs on a
            batch, with a warning saying what was decided), `"logits"` or
            `"probabilities"` (the logits before the softmax where they can
            be reached, else the log of the probabilities).
        student_weights: weights of a zoo-name student: `"imagenet"`,
            `None` or a weights file.
        restore_best_weights: with validation data, return the student of
            the epoch with the best validation accuracy.
        label_smoothing: smooths the labels of the hard-label term (the
            `student_loss_weight` part) towards the uniform by this much
            (`keras_tl.SparseLabelSmoothingCrossentropy`); the teacher's
            soft targets are left as they are. `0` leaves the labels.
        ema: `False`, `True` (momentum 0.99) or a momentum in (0, 1): the
            optimizer keeps an exponential moving average of the student's
            weights (Keras' `use_ema`; timm's model EMA), validation reads
            the averaged weights, and they are what the model ends with.
        strategy: a `tf.distribute.Strategy` (TensorFlow); defaults to the
            active one. On JAX, set `keras.distribution.DataParallel` instead.
        callbacks: more Keras callbacks for the training `fit`.
        checkpoint_dir: a folder for a checkpoint after every epoch
            (`keras_tl.TrainingCheckpoint`, in its own `keras_tl_checkpoint`
            subfolder); calling the recipe again with it after an
            interruption resumes after the last finished epoch.
        seed: seed of shuffling and the validation split.
        verbose: 0 silent, 1 progress.
        mixed_precision: `True` trains the student in `"mixed_float16"` when
            the backend sees a GPU, else in `"mixed_bfloat16"` (or pass
            either name): variables stay float32, and its output layers
            (logits, softmax) and the losses compute in float32. A student
            given as a model is switched to the policy in place; the
            teacher keeps its own. `False`: float32.
        jit_compile: `compile`'s `jit_compile` (`True` for XLA; `"auto"`
            uses it where Keras supports it, e.g. on GPUs).
        alpha: deprecated name of `student_loss_weight`.

    Returns:
        The trained student, a `keras.Model` (not a `Distiller`: it saves,
        exports and predicts as any model), with `student.history`. A zoo
        student holds keras-tl's preprocessing and class-name layers:
        `import keras_tl` before `keras.saving.load_model` reads its file.

    Example:

    ```python
    student = keras_tl.recipes.distill(
        teacher, "mobilenet_v3_small", "leaves/train", "leaves/val",
        epochs=10)
    student.count_params() < teacher.count_params() / 10  # -> True
    ```
    """
    check_knobs(
        "distill", epochs=epochs, learning_rate=learning_rate, batch_size=batch_size,
        callbacks=callbacks, checkpoint_dir=checkpoint_dir, seed=seed, verbose=verbose,
        class_weight=class_weight, augmentation=augmentation, schedule=schedule,
        optimizer=optimizer, strategy=strategy, mixed_precision=mixed_precision,
        jit_compile=jit_compile, label_mixing=False, label_smoothing=label_smoothing,
        ema=ema,
    )
    student_loss_weight = renamed_argument("alpha", alpha, "student_loss_weight",
                                           student_loss_weight, 0.5, "distill")
    policy = resolve_policy(mixed_precision)
    if not isinstance(teacher, keras.Model):
        raise TypeError(
            f"teacher must be a trained keras.Model; got {type(teacher).__name__}."
        )
    input_shape, num_classes = _teacher_geometry(teacher, student)
    image_size = None
    if input_shape is not None and None not in input_shape[:2]:
        image_size = input_shape[:2]
    data = as_dataset(
        train_data,
        batch_size=batch_size,
        validation_data=validation_data,
        validation_split=validation_split,
        image_size=image_size,
        num_classes=num_classes,
        class_names=get_class_names(teacher),
        shuffle=True,
        seed=seed,
    )
    refuse_multi_label(data, "distill")
    if num_classes is None:
        input_shape, num_classes = _geometry_from_batch(teacher, data)
    if learning_rate is None:
        pretrained = isinstance(student, str) and student_weights is not None
        learning_rate = 1e-3 if pretrained else 3e-3
    rate = _learning_rate(learning_rate, warmup_fraction, data.train, epochs, schedule)
    with distribution_scope(strategy):
        if isinstance(student, str):
            student = _zoo_student(
                student, student_weights, input_shape, num_classes, data.class_names,
                policy,
            )
        elif not isinstance(student, keras.Model):
            raise TypeError(
                "student must be a zoo name (keras_tl.list_backbones()) or a "
                f"keras.Model; got {type(student).__name__}."
            )
        else:
            apply_policy(student, policy, output_layers(student))
        # Built outside the policy's scope: a subclassed model under a mixed
        # policy would cast its inputs (the cached teacher logits among them)
        # to float16/bfloat16. Its loss scaling is therefore explicit.
        distiller = Distiller(
            teacher,
            student,
            student_loss_weight=student_loss_weight,
            temperature=temperature,
            standardize=standardize,
            hint_layers=hint_layers,
            teacher_outputs=teacher_outputs,
        )
        distiller.compile(
            optimizer=loss_scaled(make_optimizer(optimizer or "adam", rate, ema=ema), policy),
            student_loss_fn=SparseLabelSmoothingCrossentropy(label_smoothing, from_logits=True)
            if label_smoothing else None,
            metrics=["accuracy"],
            jit_compile=jit_compile,
        )

    if augmentation is None:
        train = distiller.cache_teacher_logits(data.train, batch_size, seed=seed)
    else:
        # The teacher runs on each augmented batch as it comes.
        train, _, _ = augment_training(data.train, None, augmentation, recipe="distill",
                                       label_mixing=False)
    if class_weight is not None:
        weights = class_weight_dict(class_weight, training_labels(data), num_classes)
        train = with_class_weights(
            train, weights, lambda y: y[LABELS_KEY] if isinstance(y, dict) else y)
    validation = None
    if data.validation is not None:
        validation = distiller.cache_teacher_logits(
            data.validation, batch_size, shuffle=False
        )
    callbacks = callback_stack(callbacks, ema=ema, checkpoint=backup_and_restore(
        checkpoint_dir, recipe_fingerprint(
            "distill", train_data, class_names=data.class_names, batch_size=batch_size,
            learning_rate=learning_rate, seed=seed, temperature=temperature,
            student_loss_weight=student_loss_weight, augmentation=augmentation,
            class_weight=class_weight, label_smoothing=label_smoothing, ema=ema)))
    if validation is not None and restore_best_weights:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy",
                mode="max",
                patience=epochs,
                restore_best_weights=True,
            )
        )
    history = distiller.fit(
        train,
        validation_data=validation,
        epochs=epochs,
        callbacks=callbacks,
        # The dataset reshuffles itself every epoch.
        shuffle=False,
        verbose=verbose,
    )
    student = distiller.student
    # The distiller was compiled, not the student it returns.
    compile_for_evaluation(student, strategy, jit_compile)
    student.history = history
    return student


def _learning_rate(learning_rate, warmup_fraction, train, epochs, schedule="cosine"):
    """Linear warm-up, then `schedule`'s decay over the whole training."""
    if isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        return learning_rate
    steps_per_epoch = int(train.cardinality())
    if steps_per_epoch <= 0:
        # An infinite or unknown-length dataset: no schedule length to plan.
        return learning_rate
    return make_schedule(schedule, learning_rate, steps_per_epoch * epochs, warmup_fraction)


def _teacher_geometry(teacher, student):
    """The teacher's `(input_shape, num_classes)`, `None` where unknown.

    A subclassed teacher has neither: a student model gives the input shape,
    and `_geometry_from_batch` the rest once the data is read.
    """
    if getattr(teacher, "inputs", None):
        return tuple(teacher.input_shape[1:]), int(teacher.output_shape[-1])
    if isinstance(student, keras.Model) and getattr(student, "inputs", None):
        return tuple(student.input_shape[1:]), None
    return None, None


def _geometry_from_batch(teacher, data):
    """Input shape and class count of a subclassed teacher, on one batch."""
    for batch in data.train.take(1):
        images = batch[0]
        scores = teacher(images, training=False)
        if len(scores.shape) != 2:
            raise ValueError(
                f"The teacher {teacher.name!r} gives outputs of shape "
                f"{tuple(scores.shape)} on a batch of shape "
                f"{tuple(images.shape)}; distillation needs one row of class "
                "scores per image."
            )
        num_classes = int(scores.shape[-1])
        if data.num_classes is not None and data.num_classes > num_classes:
            raise ValueError(
                f"The labels have {data.num_classes} classes but the teacher "
                f"{teacher.name!r} gives {num_classes} class scores."
            )
        return tuple(images.shape[1:]), num_classes
    raise ValueError("train_data is empty: no batch to run the teacher on.")


def _zoo_student(name, weights, input_shape, num_classes, class_names, policy=None):
    with precision_scope(policy):
        backbone = build_backbone(
            name, weights=weights, input_shape=input_shape, trainable=True
        )
    # Built outside the scope: the head computes in float32.
    head = build_head(int(backbone.output.shape[-1]), num_classes, class_names)
    with precision_scope(policy):
        return attach_head(
            backbone, head, name=f"{backbone.name.replace('_backbone', '')}_student"
        )
