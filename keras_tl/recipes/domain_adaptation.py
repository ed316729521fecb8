"""Recipe: adapt a trained classifier to a shifted domain without its labels."""

import keras
import numpy as np
import tensorflow as tf

from keras_tl._utils.compiled import compile_for_evaluation
from keras_tl._utils.distribute import model_outputs
from keras_tl._utils.precision import apply_policy
from keras_tl._utils.precision import loss_scaled
from keras_tl._utils.precision import output_layers
from keras_tl._utils.precision import resolve_policy
from keras_tl._utils.validation import check_finite
from keras_tl._utils.distribute import distribution_scope
from keras_tl._utils.distribute import model_scope
from keras_tl._utils.knobs import check_knobs
from keras_tl._utils.knobs import class_weight_dict
from keras_tl._utils.knobs import make_optimizer
from keras_tl.augment import augment_training
from keras_tl._utils.validation import count_steps
from keras_tl.domain_adaptation import DannSchedule
from keras_tl.domain_adaptation import DomainAdaptation
from keras_tl.domain_adaptation import adabn
from keras_tl.domain_adaptation import batchnorm_layers
from keras_tl.checkpoints import data_fingerprint
from keras_tl.checkpoints import recipe_fingerprint
from keras_tl.data import as_dataset
from keras_tl.multi_label import refuse_multi_label
from keras_tl.engine import callback_stack
from keras_tl.engine import epoch_history
from keras_tl.engine import make_schedule
from keras_tl.engine import training_labels
from keras_tl.engine import with_class_weights
from keras_tl.finite import backup_and_restore

__all__ = ["METHODS", "adapt_domain"]

DEFAULT_LEARNING_RATE = 1e-3

METHODS = ("adabn", "coral", "dann")
_DEFAULT_ALIGNMENT_WEIGHT = {"coral": 1.0, "dann": 0.1}


def adapt_domain(
    model,
    source_data,
    target_unlabeled,
    *,
    method="coral",
    epochs=5,
    batch_size=32,
    learning_rate=None,
    schedule="cosine",
    optimizer=None,
    class_weight=None,
    augmentation=None,
    alignment_weight=None,
    feature_layer=None,
    recalibrate_batchnorm=True,
    validation_data=None,
    callbacks=None,
    checkpoint_dir=None,
    ema=False,
    strategy=None,
    seed=0,
    verbose=1,
    mixed_precision=False,
    jit_compile="auto",
):
    """Adapts a classifier to target-domain images that have no labels.

    - `"adabn"`: re-estimates the BatchNorm statistics on the target images
      (`keras_tl.domain_adaptation.adabn`); no training, seconds.
    - `"coral"` / `"dann"`: trains on labelled source batches paired with
      unlabelled target batches, adding the CORAL loss or a domain
      classifier behind gradient reversal on the features
      (`keras_tl.domain_adaptation.DomainAdaptation`); then, for models with BatchNorm
      and `recalibrate_batchnorm`, AdaBN, since training on mixed batches
      leaves statistics of neither domain.

    Args:
        model: a `keras.Model` classifier from images to class
            probabilities, usually trained on the source domain. It is
            adapted in place and returned (clone it first to keep the
            original).
        source_data: labelled source images: `(x, y)` arrays, a folder or a
            `tf.data.Dataset` of `(image, label)` (not used by `"adabn"`).
        target_unlabeled: target images: an array, an `(x, y)` tuple
            (labels ignored) or a `tf.data.Dataset` of images or
            `(images, labels)`. Arrays holding NaN or infinity raise a
            `ValueError` before any work. From a dataset holding them,
            AdaBN raises one and leaves the BatchNorm statistics as they
            were (`"coral"`/`"dann"` training stops earlier, with a
            `keras_tl.NonFiniteLossError`).
        method: `"adabn"`, `"coral"` or `"dann"`.
        epochs: passes over the source data (`"coral"`, `"dann"`).
        batch_size: images per domain in each training batch.
        learning_rate: peak learning rate; `None`: 1e-3.
        schedule: its decay to 0: a name from `keras_tl.SCHEDULES` or a
            `LearningRateSchedule`.
        optimizer: Keras optimizer name or template instance; `None`: Adam.
        class_weight: `None`, `"balanced"` or `{class_index: weight}`: weighs
            the source examples' classification loss by class.
        augmentation: a `keras_tl.augment` preset name (`"light"`,
            `"medium"`), a layer or a callable applied to the source batches
            in the input pipeline; presets that mix labels are refused.
        alignment_weight: weight of the CORAL loss (default 1.0), or the
            final gradient-reversal factor of DANN (default 0.1; at 0.3 and
            above the features of a small CNN collapsed on MNIST -> digits).
        feature_layer: name of the layer whose features are aligned (see
            `DomainAdaptation`).
        recalibrate_batchnorm: run AdaBN after `"coral"`/`"dann"` training
            when the model has BatchNorm layers.
        validation_data: optional labelled target `(x, y)` to report target
            accuracy after each epoch (never used for training).
        callbacks: more Keras callbacks for the training `fit`.
        checkpoint_dir: a folder for a checkpoint after every epoch
            (`keras_tl.TrainingCheckpoint`, in its own `keras_tl_checkpoint`
            subfolder); calling the recipe again with it after an
            interruption resumes after the last finished epoch.
        ema: `False`, `True` (momentum 0.99) or a momentum in (0, 1): the
            optimizer keeps an exponential moving average of the trained
            weights (Keras' `use_ema`; timm's model EMA), validation reads
            the averaged weights, and they are what the model ends with.
        strategy: a `tf.distribute.Strategy` (TensorFlow) to train in;
            defaults to the strategy `model` was built in.
        seed: seed of shuffling and the target pairing.
        verbose: 0 silent, 1 progress.
        mixed_precision: `True` switches `model` in place to
            `"mixed_float16"` when the backend sees a GPU, else to
            `"mixed_bfloat16"` (or pass either name): variables stay
            float32, its output layers (logits, softmax), the CORAL
            covariances and the losses compute in float32. `False` leaves
            the model's precision as it is.
        jit_compile: `compile`'s `jit_compile` (`True` for XLA; `"auto"`
            uses it where Keras supports it, e.g. on GPUs).

    Returns:
        The adapted `model`, with `model.history` (a `keras.callbacks.History`,
        empty for `"adabn"`).

    Example:

    ```python
    source_model = keras_tl.examples.pretrained.mnist_cnn()
    x_target, _ = keras_tl.examples.datasets.load_digits_target()
    adapted = adapt_domain(source_model, load_mnist_5k(), x_target,
                           method="coral", epochs=5)
    ```
    """
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; expected one of {METHODS}.")
    check_knobs(
        "adapt_domain", epochs=epochs, learning_rate=learning_rate, batch_size=batch_size,
        callbacks=callbacks, checkpoint_dir=checkpoint_dir, seed=seed, verbose=verbose,
        class_weight=class_weight, augmentation=augmentation, schedule=schedule,
        optimizer=optimizer, strategy=strategy, mixed_precision=mixed_precision,
        jit_compile=jit_compile, label_mixing=False, ema=ema,
    )
    learning_rate = DEFAULT_LEARNING_RATE if learning_rate is None else learning_rate
    target_arrays = target_unlabeled
    if isinstance(target_arrays, tuple) and len(target_arrays) == 2:
        target_arrays = target_arrays[0]
    if not hasattr(target_arrays, "element_spec"):
        # Before the model is touched: a NaN target image would end as NaN
        # BatchNorm statistics (AdaBN) or a NaN alignment loss (CORAL, DANN).
        # Datasets are checked by `adabn` on the statistics it computes.
        check_finite(np.asarray(target_arrays), "target_unlabeled")
    policy = resolve_policy(mixed_precision)
    apply_policy(model, policy, output_layers(model))
    has_batchnorm = bool(batchnorm_layers(model))
    if method == "adabn":
        adabn(model, target_unlabeled, batch_size=batch_size)
        if not model.compiled:
            compile_for_evaluation(model, jit_compile=jit_compile)
        model.history = epoch_history(model)
        if verbose:
            print(f"AdaBN: re-estimated {len(batchnorm_layers(model))} BatchNorm layers.")
        return model

    if alignment_weight is None:
        alignment_weight = _DEFAULT_ALIGNMENT_WEIGHT[method]
    image_size = tuple(model.input_shape[1:3])
    # Shuffled below, in the endless streams that are paired.
    source_set = as_dataset(
        source_data, batch_size=batch_size, image_size=image_size, shuffle=False, seed=seed)
    refuse_multi_label(source_set, "adapt_domain")
    source, _, _ = augment_training(source_set.train, None, augmentation,
                                    recipe="adapt_domain", label_mixing=False)
    target, target_buffer = _target_dataset(target_unlabeled, batch_size)
    steps = count_steps(source)

    def pair(example, target_images):
        return ({"source": tf.cast(example[0], tf.float32),
                 "target": tf.cast(target_images, tf.float32)}, example[1])

    def endless_shuffled(batches, size):
        # Shuffled after `repeat` with `reshuffle_each_iteration=False`, every
        # iterator of the stream yields the same endless sequence (a fresh
        # order each pass), however many iterators Keras opens first: with a
        # reshuffle per iterator, their number (one more to build the model,
        # another per process with several JAX processes) chose the order.
        return batches.unbatch().repeat().shuffle(
            min(size, 10_000), seed=seed, reshuffle_each_iteration=False)

    paired = (
        tf.data.Dataset.zip((endless_shuffled(source, steps * batch_size),
                             endless_shuffled(target, target_buffer)))
        .batch(batch_size, drop_remainder=True)
        .map(pair)
    )
    if class_weight is not None:
        paired = with_class_weights(paired, class_weight_dict(
            class_weight, training_labels(source_set), int(model.output_shape[-1])))
    paired = paired.prefetch(tf.data.AUTOTUNE)
    scope = distribution_scope(strategy) if strategy is not None else model_scope(model)
    with scope:
        trainer = DomainAdaptation(
            model,
            method=method,
            feature_layer=feature_layer,
            alignment_weight=alignment_weight if method == "coral" else 1.0,
        )
        rate = make_schedule(schedule, learning_rate, epochs * steps, warmup_fraction=0.0)
        trainer.compile(
            # The trainer is a subclassed model with a float32 policy (it would
            # cast its inputs otherwise): loss scaling for float16 is explicit.
            optimizer=loss_scaled(make_optimizer(optimizer or "adam", rate, ema=ema), policy),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            jit_compile=jit_compile,
        )
    callbacks = callback_stack(callbacks, ema=ema, checkpoint=backup_and_restore(
        checkpoint_dir, recipe_fingerprint(
            "adapt_domain", source_data, target=data_fingerprint(target_unlabeled),
            method=method, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
            alignment_weight=alignment_weight, class_weight=class_weight,
            augmentation=augmentation, ema=ema)))
    if method == "dann":
        callbacks.append(DannSchedule(epochs * steps, max_factor=alignment_weight))
    if validation_data is not None:
        callbacks.append(_TargetAccuracy(model, validation_data, batch_size, verbose))
    history = trainer.fit(
        paired, epochs=epochs, steps_per_epoch=steps, callbacks=callbacks, shuffle=False,
        verbose=verbose,
    )
    if recalibrate_batchnorm and has_batchnorm:
        adabn(model, target_unlabeled, batch_size=batch_size)
    # The domain-adaptation trainer was compiled, not the model it wraps.
    compile_for_evaluation(model, jit_compile=jit_compile)
    model.history = history
    return model


def _target_dataset(target, batch_size):
    """The target images in batches, unshuffled (the paired stream
    shuffles), and its shuffle buffer: the number of images, or 4,096 for
    a dataset (counting it would read it once more)."""
    if isinstance(target, tuple) and len(target) == 2:
        target = target[0]
    if hasattr(target, "element_spec"):
        if isinstance(target.element_spec, tuple):
            target = target.map(lambda images, *labels: images)
        if len(target.element_spec.shape) == 4:
            target = target.unbatch()
        return target.batch(batch_size), 4096
    target = np.asarray(target)
    if len(target) == 0:
        raise ValueError("target_unlabeled is empty: pass target-domain images.")
    return tf.data.Dataset.from_tensor_slices(target).batch(batch_size), len(target)


class _TargetAccuracy(keras.callbacks.Callback):
    """Logs accuracy on labelled target data after each epoch (monitoring only)."""

    def __init__(self, classifier, data, batch_size, verbose):
        super().__init__()
        self.classifier = classifier
        self.x = np.asarray(data[0], np.float32)
        self.y = np.asarray(data[1])
        self.batch_size = batch_size
        self.verbose = verbose

    def on_epoch_end(self, epoch, logs=None):
        probs = model_outputs(self.classifier, self.x, batch_size=256)
        accuracy = float((probs.argmax(-1) == self.y).mean())
        if logs is not None:
            logs["target_accuracy"] = accuracy
        if self.verbose:
            print(f" - target_accuracy: {accuracy:.4f}")
