"""Recipe: a frozen pretrained backbone and a new classification head."""

import numpy as np
import tensorflow as tf

from keras_tl._utils.compiled import compile_for_evaluation
from keras_tl._utils.distribute import distribution_scope
from keras_tl._utils.logistic import logits_in_chunks
from keras_tl._utils.precision import apply_policy
from keras_tl._utils.precision import precision_scope
from keras_tl._utils.precision import resolve_policy
from keras_tl._utils.precision import uses_policy
from keras_tl._utils.knobs import check_knobs
from keras_tl._utils.knobs import class_weight_dict
from keras_tl._utils.knobs import make_optimizer
from keras_tl._utils.validation import count_steps
from keras_tl.augment import augment_training
from keras_tl.augment import augmented_copies as make_augmented_copies
from keras_tl.augment import get as get_augmentation
from keras_tl.augment import mixes_labels
from keras_tl.backbones import build_backbone
from keras_tl.checkpoints import recipe_fingerprint
from keras_tl.data import as_dataset
from keras_tl.engine import best_epoch_monitor
from keras_tl.engine import callback_stack
from keras_tl.engine import classification_metrics
from keras_tl.engine import epoch_history
from keras_tl.engine import make_schedule
from keras_tl.features import extract
from keras_tl.finite import backup_and_restore
from keras_tl.heads import attach_head
from keras_tl.heads import build_head
from keras_tl.heads import fit_linear_head
from keras_tl.heads import fit_multi_label_head
from keras_tl.heads import fit_thresholds
from keras_tl.heads import set_thresholds
from keras_tl.multi_label import multi_label_scores
from keras_tl.multi_label import multi_label_weights

__all__ = ["feature_extraction"]

# The in-loop path trains the head alone, from its closed-form fit.
DEFAULT_LEARNING_RATE = 1e-3


def feature_extraction(
    backbone,
    train_data,
    validation_data=None,
    *,
    num_classes=None,
    class_names=None,
    epochs=20,
    batch_size=32,
    validation_split=None,
    weights="imagenet",
    input_shape=None,
    augmentation=None,
    augmented_copies=0,
    learning_rate=None,
    schedule="cosine",
    optimizer=None,
    class_weight=None,
    C=None,
    cache_dir=None,
    strategy=None,
    callbacks=None,
    checkpoint_dir=None,
    seed=0,
    verbose=1,
    mixed_precision=False,
    jit_compile="auto",
    label_smoothing=0.0,
    ema=False,
    restore_best_weights=True,
):
    """Trains a new head on a frozen pretrained backbone.

    Fast path (no `augmentation`): the frozen backbone runs once over the
    data, its embeddings are cached (in memory, or as `.npy` memory maps in
    `cache_dir`), and the head's dense layer is fitted in closed form on them
    (multinomial logistic regression on L2-normalized embeddings, the
    regularization chosen on validation data; see
    `keras_tl.heads.fit_linear_head`). With few labels this beats a dense
    layer trained by SGD by a wide margin, at the cost of one forward pass.

    With `augmentation` the images change every epoch, so the backbone runs
    inside the training loop (frozen: BatchNorm in inference mode); the head
    starts from the closed-form fit on unaugmented images and `epochs` of
    Adam follow.

    Args:
        backbone: a zoo name (`keras_tl.list_backbones()`), a KerasHub image
            preset (built-in name, `hf://` handle or local preset folder:
            its weights, its image converter's scaling, features pooled per
            family; see `keras_tl.hub_backbones`) or a `keras.Model` mapping
            images to features or feature maps.
        train_data: a folder (one subfolder per class), `(x, y)` arrays or a
            `tf.data.Dataset` of `(image, label)`; images in [0, 255].
        validation_data: optional validation set in the same forms.
        num_classes: number of classes (inferred from the labels otherwise).
        class_names: class names stored in the model (the labels on
            export); folder names by default.
        epochs: training epochs of the augmented (in-loop) path.
        batch_size: batch size of the forward passes and training.
        validation_split: fraction of `train_data` held out for validation
            when `validation_data` is not given.
        weights: for a zoo name: `"imagenet"`, `None` or a weights file; for
            a KerasHub preset: `"imagenet"` (its own weights) or `None`.
        input_shape: for a zoo name or preset: the model input `(h, w, 3)`;
            images are resized to it. Defaults to the images' size (a vision
            transformer resizes them to its own size inside the model).
        augmentation: a `keras_tl.augment` preset name (`"light"`,
            `"medium"`, `"heavy"`) or `Augmentation`, any layer or callable
            applied to image batches during training, or `None`. Presets
            that mix labels (MixUp/CutMix) train on soft labels with
            `categorical_crossentropy`.
        augmented_copies: with `augmentation`, keep the cached fast path:
            embed this many augmented copies of the training images once
            and fit the head in closed form on all of them (no label
            mixing). 0 trains in the loop instead.
        learning_rate: peak learning rate of the in-loop path; `None`:
            1e-3.
        schedule: learning-rate schedule of the in-loop path: a name from
            `keras_tl.SCHEDULES` or a `LearningRateSchedule`.
        optimizer: optimizer of the in-loop path, a Keras name or a template
            instance; `None`: Adam.
        class_weight: `None`, `"balanced"` (each class present weighs the
            same in the loss) or `{class_index: weight}`; used by the
            closed-form head and by the in-loop `fit`.
        C: fix the logistic-regression inverse regularization instead of
            choosing it.
        cache_dir: folder to keep embeddings in on disk (for large data).
        ema: `False`, `True` (momentum 0.99) or a momentum in (0, 1): for the
            in-loop path, the optimizer keeps an exponential moving average of the trained
            weights (Keras' `use_ema`; timm's model EMA), validation reads
            the averaged weights, and they are what the model ends with.
        strategy: a `tf.distribute.Strategy` (TensorFlow); defaults to the
            active one. On JAX, set `keras.distribution.DataParallel` instead.
        callbacks: more Keras callbacks for the in-loop `fit`.
        checkpoint_dir: a folder for a checkpoint after every epoch of the
            in-loop path (`keras_tl.TrainingCheckpoint`, in its own
            `keras_tl_checkpoint` subfolder); calling the recipe again with
            it after an interruption resumes after the last finished epoch.
        seed: seed of the validation split, shuffling and fit.
        verbose: 0 silent, 1 progress.
        mixed_precision: `True` computes the backbone in `"mixed_float16"`
            when the backend sees a GPU, else in `"mixed_bfloat16"` (or pass
            either name); variables stay float32 and the head (logits,
            softmax) computes in float32, so the model predicts float32
            probabilities. A backbone given as a model is switched to the
            policy in place. `False`: float32 throughout.
        jit_compile: `model.compile`'s `jit_compile` (`True` for XLA; `"auto"`
            uses it where Keras supports it, e.g. on GPUs).

        label_smoothing: for the in-loop path (with `augmentation`): mixes
            each one-hot label with the uniform distribution by this much
            (0.1 is usual); the closed-form head ignores it.
        restore_best_weights: for the in-loop path with validation data:
            end with the head of the epoch with the best validation
            accuracy (the closed-form head's C is chosen on it already).

    Returns:
        A `keras.Model` from raw images to class probabilities
        (preprocessing + frozen backbone + head), with `model.history`.

    Example:

    ```python
    model = keras_tl.recipes.feature_extraction(
        "resnet50", "leaves/train", "leaves/val", input_shape=(224, 224, 3))
    model.predict(images).argmax(-1)
    ```
    """
    check_knobs(
        "feature_extraction", epochs=epochs, learning_rate=learning_rate,
        batch_size=batch_size, callbacks=callbacks, checkpoint_dir=checkpoint_dir, seed=seed,
        verbose=verbose, class_weight=class_weight, augmentation=augmentation,
        schedule=schedule, optimizer=optimizer, strategy=strategy,
        mixed_precision=mixed_precision, jit_compile=jit_compile,
        label_smoothing=label_smoothing, ema=ema,
    )
    learning_rate = DEFAULT_LEARNING_RATE if learning_rate is None else learning_rate
    policy = resolve_policy(mixed_precision)
    image_size = tuple(input_shape[:2]) if input_shape is not None else None
    data = as_dataset(
        train_data,
        batch_size=batch_size,
        validation_data=validation_data,
        validation_split=validation_split,
        image_size=image_size,
        num_classes=num_classes,
        class_names=class_names,
        shuffle=False,
        seed=seed,
        # The fast path reads the images once: keeping them would only
        # hold memory. The in-loop path reads them every epoch.
        cache=augmentation is not None and not augmented_copies,
    )
    num_classes = data.num_classes
    with distribution_scope(strategy):
        if isinstance(backbone, str) and input_shape is None:
            input_shape = data.image_shape
        with precision_scope(policy):
            extractor = build_backbone(backbone, weights=weights, input_shape=input_shape)
        if not uses_policy(extractor, policy):
            # A backbone given as a model was built before the scope, and a
            # preset may name its own dtype: switch them in place.
            apply_policy(extractor, policy)
        extractor.trainable = False
        feature_dim = int(extractor.output.shape[-1])
        # Built outside the scope: the head computes in float32.
        head = build_head(feature_dim, num_classes, data.class_names,
                          multi_label=data.multi_label)

    cache = (lambda name: f"{cache_dir}/{name}.npy") if cache_dir else (lambda name: None)
    augmentation = get_augmentation(augmentation)
    # Arrays in memory take one `predict` call; other inputs stream batches.
    train_images = data.train_arrays if data.train_arrays is not None else data.train
    if augmentation is not None and augmented_copies:
        train_images = make_augmented_copies(data.train, augmentation, augmented_copies)
    train_features, train_labels = extract(
        extractor, train_images, batch_size=batch_size, cache_path=cache("train"),
        verbose=verbose,
    )
    validation = None
    if data.validation is not None:
        validation = extract(
            extractor, data.validation, batch_size=batch_size,
            cache_path=cache("validation"), verbose=verbose,
        )
    if data.multi_label:
        kernel, bias, chosen_c, thresholds = fit_multi_label_head(
            train_features, train_labels, validation=validation, C=C, seed=seed,
            class_weight=class_weight,
        )
        set_thresholds(head, thresholds)
    else:
        kernel, bias, chosen_c = fit_linear_head(
            train_features, train_labels, num_classes, validation=validation, C=C, seed=seed,
            class_weight=class_weight,
        )
    head.get_layer("logits").set_weights([kernel, bias])
    # Under the policy, the model's own policy is mixed, so `compile` adds
    # loss scaling for float16.
    with distribution_scope(strategy), precision_scope(policy):
        model = attach_head(extractor, head)

    if augmentation is None or augmented_copies:
        logs = _head_logs(kernel, bias, train_features, train_labels, validation,
                          data.multi_label)
        logs["C"] = chosen_c
        history = epoch_history(model, [logs])
        if verbose:
            print(
                f"Head fitted on cached embeddings ({len(train_labels)} images, "
                f"C={chosen_c:g}): "
                + ", ".join(f"{k}={v:.4f}" for k, v in logs.items() if k != "C")
            )
    else:
        steps_per_epoch = count_steps(data.train)
        train, validation_ds, loss = augment_training(
            data.train.unbatch().shuffle(4096, seed=seed).batch(batch_size)
            # unbatch() loses the length; without it Keras warns at the end
            # of the first epoch that the input "ran out of data".
            .apply(tf.data.experimental.assert_cardinality(steps_per_epoch)),
            data.validation, augmentation, num_classes, recipe="feature_extraction",
            label_smoothing=label_smoothing, multi_label=data.multi_label,
            label_weights=multi_label_weights(class_weight, train_labels)
            if data.multi_label else None,
        )
        rate = make_schedule(schedule, learning_rate, epochs * steps_per_epoch, 0.0)
        with distribution_scope(strategy):
            model.compile(
                optimizer=make_optimizer(optimizer or "adam", rate, ema=ema),
                loss=loss,
                metrics=classification_metrics(data.multi_label),
                jit_compile=jit_compile,
            )
        history = model.fit(
            train, validation_data=validation_ds, epochs=epochs, shuffle=False,
            # Mixed (soft) labels carry no class index to weigh; multi-label
            # weights are in the loss.
            class_weight=None if mixes_labels(augmentation) or data.multi_label else
            class_weight_dict(class_weight, train_labels, num_classes),
            callbacks=callback_stack(callbacks, ema=ema, restore_best=best_epoch_monitor(
                restore_best_weights, data.multi_label) if validation_ds is not None else False,
                checkpoint=backup_and_restore(
                checkpoint_dir, recipe_fingerprint(
                    "feature_extraction", train_data, class_names=data.class_names,
                    batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                    augmentation=augmentation, label_smoothing=label_smoothing, ema=ema))),
            verbose=verbose,
        )
        if data.multi_label and data.validation is not None:
            # The head changed since the closed-form fit chose them.
            fit_thresholds(model, data.validation, batch_size=batch_size)
    # The fast path never compiles, and MixUp compiles for one-hot labels.
    compile_for_evaluation(model, strategy, jit_compile)
    model.history = history
    return model


def _head_logs(kernel, bias, features, labels, validation, multi_label=False):
    # The head's own math (unit norm, dense, softmax) on the cached
    # embeddings, eagerly: no second traced predict function for numbers
    # the fit already has.
    def scores(features, y):
        y = np.asarray(y)
        losses, hits, probabilities = [], 0, []
        # In chunks: the embeddings may be a memory map larger than memory.
        for start, logits in logits_in_chunks(features, kernel[None], bias[None]):
            targets = y[start : start + logits.shape[1]]
            if multi_label:
                losses.append(tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
                    targets.astype(np.float32), logits[0]), -1).numpy())
                probabilities.append(tf.sigmoid(logits[0]).numpy())
                continue
            losses.append(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits[0]).numpy())
            hits += int((logits[0].argmax(-1) == targets).sum())
        if multi_label:
            quality = multi_label_scores(y, np.concatenate(probabilities))
            return float(np.concatenate(losses).mean()), quality["mean_average_precision"]
        return float(np.concatenate(losses).mean()), hits / len(y)

    name = "average_precision" if multi_label else "accuracy"
    logs = {}
    logs["loss"], logs[name] = scores(features, labels)
    if validation is not None:
        logs["val_loss"], logs[f"val_{name}"] = scores(*validation)
    return logs
