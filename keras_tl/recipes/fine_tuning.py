"""Recipe: fine-tune a pretrained backbone in two phases, as fastai does.

Phase 1 trains the new head on the frozen backbone (the feature-extraction
fast path: embeddings computed once, head fitted in closed form). Phase 2
unfreezes the backbone's stages from the top down inside one `fit`, each
stage at its own (discriminative) learning rate, under a warm-up and
warm-down schedule.
"""

import warnings

import keras
import numpy as np
import tensorflow as tf

from keras_tl._utils.compiled import compile_for_evaluation
from keras_tl._utils.distribute import distribution_scope
from keras_tl._utils.knobs import check_knobs
from keras_tl._utils.knobs import class_weight_dict
from keras_tl._utils.knobs import renamed_argument
from keras_tl._utils.validation import check_positive_int
from keras_tl._utils.validation import count_steps
from keras_tl.augment import augment_training
from keras_tl.augment import mixes_labels
from keras_tl.checkpoints import recipe_fingerprint
from keras_tl.data import as_dataset
from keras_tl.engine import best_epoch_monitor
from keras_tl.engine import classification_metrics
from keras_tl.engine import fit_stages
from keras_tl.engine import merge_histories
from keras_tl.engine import training_labels
from keras_tl.engine import unfreeze_rule
from keras_tl.stages import check_unfreeze
from keras_tl.heads import fit_thresholds
from keras_tl.lora import enable_lora
from keras_tl.lora import merge_lora
from keras_tl.multi_label import multi_label_weights
from keras_tl.recipes.frozen_backbone import feature_extraction
from keras_tl.stages import freeze
from keras_tl.stages import get_stages
from keras_tl.stages import is_transformer

__all__ = ["MIN_WARMUP_STEPS", "TRANSFORMER_LAYER_DECAY", "ULMFIT_LAYER_DECAY", "fine_tune"]

DEFAULT_LEARNING_RATE = 1e-3

# The fewest warm-up steps of phase 2 (or a third of a shorter run): 10% of
# the 10 steps of a small data set would be one step.
MIN_WARMUP_STEPS = 10

# ULMFiT's ratio 2.6 between the rates of neighbouring layer groups.
ULMFIT_LAYER_DECAY = 1 / 2.6
# Layer-wise rate decay per transformer block: BEiT and DINOv2 fine-tuning
# use 0.65-0.75 for ViT-B/L.
TRANSFORMER_LAYER_DECAY = 0.7


def fine_tune(
    backbone,
    train_data,
    validation_data=None,
    *,
    num_classes=None,
    class_names=None,
    head_epochs=1,
    epochs=10,
    batch_size=32,
    validation_split=None,
    weights="imagenet",
    input_shape=None,
    augmentation=None,
    learning_rate=None,
    layer_decay=None,
    schedule="cosine",
    warmup_fraction=0.1,
    unfreeze=None,
    initially_trainable=1,
    rewarm_steps=0,
    train_batchnorm=False,
    stages=None,
    num_groups=4,
    optimizer=None,
    class_weight=None,
    strategy=None,
    callbacks=None,
    checkpoint_dir=None,
    seed=0,
    verbose=1,
    lr_factor=None,
    lora_rank=None,
    unfreeze_every=None,
    unfreeze_at=None,
    unfreeze_patience=None,
    mixed_precision=False,
    jit_compile="auto",
    keep_head_if_worse=True,
    label_smoothing=0.0,
    ema=False,
    restore_best_weights=True,
):
    """Fine-tunes a pretrained backbone: head first, then gradual unfreezing.

    Phase 1 (`head_epochs`, fastai's `freeze_epochs`): the backbone is
    frozen and the head is trained by `keras_tl.recipes.feature_extraction`
    (closed-form fit on cached embeddings; `head_epochs` of Adam only when
    `augmentation` is given). Phase 2 (`epochs`): one `fit` in which the
    backbone's stages are unfrozen from the top down
    (`keras_tl.callbacks.ProgressiveUnfreezing`), each with its own rate
    (`keras_tl.discriminative_optimizer`), under a warm-up/warm-down
    schedule. BatchNormalization layers stay in inference mode with their
    pretrained statistics unless `train_batchnorm=True`.

    With `lora_rank`, phase 2 trains low-rank adapters on the backbone's
    attention and MLP kernels (`keras_tl.lora.enable_lora`) together with
    the head, everything else in the backbone frozen and no stages to
    unfreeze; the adapters are merged into the kernels before the model is
    returned (`keras_tl.lora.merge_lora`), so it saves and exports with no
    LoRA weights, its backbone frozen.

    Defaults and where they come from:

    - `layer_decay=1/2.6` for CNN stages: ULMFiT's ratio 2.6 between
      neighbouring layer groups (Howard & Ruder, 2018); `0.7` per block
      for KerasHub vision transformers (ViT, DeiT, DINOv2/v3, SigLIP,
      CLIP), the layer-wise decay of BEiT and DINOv2 fine-tuning (0.65-0.75).
    - `learning_rate=1e-3` (the head's; Adam): fastai's `fine_tune` base rate
      2e-3, halved for the unfrozen phase.
    - `initially_trainable=1` and one more stage per epoch: ULMFiT's gradual
      unfreezing (the head is already trained, so the top stage starts at
      once). In runs longer than twice the number of stages, unfreezing is
      spread over the first half of the epochs so every stage then trains
      for the second half.
    - `schedule="cosine"` with `warmup_fraction=0.1`: linear warm-up over the
      first 10% of steps (ULMFiT's slanted triangular `cut_frac=0.1`), then
      cosine warm-down to zero (fastai's one-cycle annealing).
    - `train_batchnorm=False`: the Keras transfer-learning guide's rule for
      frozen BatchNorm.

    Args:
        backbone: a zoo name (`keras_tl.list_backbones()`), a KerasHub image
            preset (built-in name, `hf://` handle or local preset folder) or
            a `keras.Model` mapping images to features or feature maps.
        train_data: a folder (one subfolder per class), `(x, y)` arrays or a
            `tf.data.Dataset` of `(image, label)`; images in [0, 255].
        validation_data: optional validation set in the same forms.
        num_classes: number of classes (inferred from the labels otherwise).
        class_names: class names stored in the model.
        head_epochs: epochs of phase 1 (used only with `augmentation`; the
            fast path fits the head in closed form).
        epochs: epochs of phase 2.
        batch_size: batch size of both phases.
        validation_split: fraction of `train_data` held out when
            `validation_data` is not given.
        weights: for a zoo name: `"imagenet"`, `None` or a weights file; for
            a KerasHub preset: `"imagenet"` (its own weights) or `None`.
        input_shape: for a zoo name or preset: the model input `(h, w, 3)`.
        augmentation: a `keras_tl.augment` preset name or layer, applied to
            training batches of phase 2 (and phase 1), or `None`.
        learning_rate: the head's peak rate in phase 2; `None`: 1e-3.
        layer_decay: each stage's rate is this factor times the rate of the
            stage above it, in (0, 1] (1.0: one rate for all). Default
            `1 / 2.6` (ULMFiT), `0.7` for a KerasHub vision transformer.
        schedule: `"cosine"` or `"linear"` (warm-up then decay to zero,
            `keras_tl.schedules.WarmupDecay`), `"slanted_triangular"`,
            `"one_cycle"`, or any `LearningRateSchedule` of phase-2 steps.
        warmup_fraction: fraction of phase-2 steps spent warming up; at
            least `MIN_WARMUP_STEPS` steps (a third of a shorter run), so a
            small data set's few steps still warm up.
        unfreeze: when the frozen stages unfreeze, keras-tl's one
            unfreezing specification (see `keras_tl.engine.unfreeze_rule`):
            `None` (ULMFiT's rule), `{"every": n}`, `{"at_epochs": [...]}`,
            `{"patience": n}` (on `val_loss`) or `{"phases": n}`.
        initially_trainable: top stages trainable from the start of phase 2;
            the number of stages unfreezes everything at once.
        rewarm_steps: re-warm-up, in steps, of each newly unfrozen stage.
        label_smoothing: mixes each one-hot label with the uniform
            distribution by this much in phase 2 (timm and Model Maker use
            0.1); `0` trains on the labels as they are.
        restore_best_weights: with validation data, phase 2 ends with the
            weights of its epoch with the best validation accuracy.
        keep_head_if_worse: when phase 2 ends below phase 1's validation
            accuracy (on small data, unfreezing can undo a well-fitted
            head), return phase 1's model, with a warning that says what to
            change. `False` keeps phase 2's model and still warns. Needs
            validation data.
        train_batchnorm: let BatchNorm layers of unfrozen stages train.
        stages: explicit `keras_tl.Stage` list of the backbone (default:
            `keras_tl.get_stages`: zoo stages, else `num_groups` depth groups).
        num_groups: depth groups of a backbone that is not from the zoo.
        optimizer: Keras optimizer name or template instance; `None`: Adam.
        class_weight: `None`, `"balanced"` (each class present weighs the
            same in the loss) or `{class_index: weight}`, in both phases.
        ema: `False`, `True` (momentum 0.99) or a momentum in (0, 1): the
            optimizer keeps an exponential moving average of the trained
            weights (Keras' `use_ema`; timm's model EMA), validation reads
            the averaged weights, and they are what the model ends with.
        strategy: a `tf.distribute.Strategy` (TensorFlow); defaults to the
            active one. On JAX, set `keras.distribution.DataParallel` instead.
        seed: seed of the split, shuffling and head fit.
        callbacks: more Keras callbacks for the phase-2 `fit`.
        checkpoint_dir: a folder for a checkpoint after every epoch of the
            fine-tuning `fit` (`keras_tl.TrainingCheckpoint` in its own
            `keras_tl_checkpoint` subfolder, with the unfreezing state);
            calling the recipe again with it after an interruption resumes
            after the last finished epoch.
        verbose: 0 silent, 1 progress and unfreeze messages.
        lr_factor: deprecated: `layer_decay = 1 / lr_factor`.
        unfreeze_every: deprecated: `unfreeze={"every": n}`.
        unfreeze_at: deprecated: `unfreeze={"at_epochs": [...]}`.
        unfreeze_patience: deprecated: `unfreeze={"patience": n}`.
        lora_rank: train rank-`lora_rank` LoRA adapters instead of
            unfreezing stages (needs `Dense`/`EinsumDense` kernels in the
            backbone: transformers; `None`: full fine-tuning by stages).
        mixed_precision: `True` computes the backbone in `"mixed_float16"`
            when the backend sees a GPU, else in `"mixed_bfloat16"` (or pass
            either name): variables stay float32, the head (logits, softmax)
            and the loss compute in float32, and with float16 `compile`
            wraps the optimizer in a `keras.optimizers.LossScaleOptimizer`
            (kept through each unfreezing). The returned model keeps the
            policy and predicts float32 probabilities. `False`: float32.
        jit_compile: `model.compile`'s `jit_compile` (`True` for XLA; `"auto"`
            uses it where Keras supports it, e.g. on GPUs).

    Returns:
        A `keras.Model` from raw images to class probabilities, with
        `model.history` holding both phases (phase 1 first) and
        `model.history.unfreeze_events` (epoch, stage, parameters).

    Example:

    ```python
    model = keras_tl.recipes.fine_tune(
        "resnet50", "leaves/train", "leaves/val", input_shape=(224, 224, 3),
        epochs=8)
    model.save("leaves.keras")
    ```
    """
    # Every argument is checked before the head phase spends time on the data.
    check_knobs(
        "fine_tune", epochs=epochs, learning_rate=learning_rate, batch_size=batch_size,
        callbacks=callbacks, checkpoint_dir=checkpoint_dir, seed=seed, verbose=verbose,
        class_weight=class_weight, augmentation=augmentation, schedule=schedule,
        optimizer=optimizer, strategy=strategy, mixed_precision=mixed_precision,
        jit_compile=jit_compile, label_smoothing=label_smoothing, ema=ema,
    )
    check_positive_int(head_epochs, "head_epochs")
    if not 0 <= warmup_fraction < 1:
        raise ValueError(f"fine_tune: warmup_fraction must be in [0, 1); got {warmup_fraction!r}.")
    for old, key, value in (("unfreeze_every", "every", unfreeze_every),
                            ("unfreeze_at", "at_epochs", unfreeze_at),
                            ("unfreeze_patience", "patience", unfreeze_patience)):
        if value is not None:
            unfreeze = renamed_argument(old, {key: value}, "unfreeze", unfreeze, None,
                                        "fine_tune")
    check_unfreeze(unfreeze)
    learning_rate = DEFAULT_LEARNING_RATE if learning_rate is None else learning_rate
    optimizer = "adam" if optimizer is None else optimizer
    layer_decay = _layer_decay(layer_decay, lr_factor)
    if lora_rank is not None:
        if int(lora_rank) != lora_rank or lora_rank < 1:
            raise ValueError(f"lora_rank must be an integer >= 1; got {lora_rank!r}.")
        if stages is not None:
            raise ValueError("Pass stages or lora_rank, not both: LoRA unfreezes no stages.")
    data = as_dataset(
        train_data,
        batch_size=batch_size,
        validation_data=validation_data,
        validation_split=validation_split,
        image_size=tuple(input_shape[:2]) if input_shape is not None else None,
        num_classes=num_classes,
        class_names=class_names,
        # Phase 1 embeds the images in a fixed order; phase 2 shuffles below.
        shuffle=False,
        seed=seed,
    )
    model = feature_extraction(
        backbone, data, num_classes=data.num_classes, class_names=data.class_names,
        epochs=head_epochs, batch_size=batch_size, weights=weights,
        input_shape=input_shape, augmentation=augmentation, strategy=strategy,
        seed=seed, verbose=verbose, mixed_precision=mixed_precision,
        jit_compile=jit_compile, class_weight=class_weight,
    )
    head_history = model.history
    # Phase 1's model, to return if phase 2 ends worse.
    head_weights = model.get_weights() if data.validation is not None else None
    network = _nested_backbone(model)
    if lora_rank is not None:
        # Adapter variables are created here: under the strategy, mirrored.
        with distribution_scope(strategy):
            enable_lora(network, lora_rank)
        stages, rule, layer_decay = (), None, 1.0
    else:
        stages = stages or get_stages(network, num_groups=num_groups)
        if layer_decay is None:
            layer_decay = (
                TRANSFORMER_LAYER_DECAY if is_transformer(network) else ULMFIT_LAYER_DECAY
            )
        rule = unfreeze_rule(len(stages), epochs, initially_trainable, unfreeze=unfreeze)

    steps_per_epoch = count_steps(data.train)
    total_steps = epochs * steps_per_epoch
    if warmup_fraction > 0 and total_steps > 1:
        floor = min(MIN_WARMUP_STEPS, total_steps // 3)
        warmup_fraction = max(warmup_fraction, floor / total_steps)
    train = (
        data.train.unbatch()
        .shuffle(10_000, seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        # One stream across epochs (each a new shuffle); `fit_stages` counts
        # epochs with steps_per_epoch, and a resumed run skips the finished
        # epochs' batches.
        .repeat()
        .prefetch(tf.data.AUTOTUNE)
    )
    train, validation, loss = augment_training(
        train, data.validation, augmentation, data.num_classes, recipe="fine_tune",
        label_smoothing=label_smoothing, multi_label=data.multi_label,
        label_weights=multi_label_weights(class_weight, training_labels(data))
        if data.multi_label and class_weight is not None else None)
    history, unfreezing = fit_stages(
        model, stages, train, validation=validation, epochs=epochs,
        steps_per_epoch=steps_per_epoch, learning_rate=learning_rate,
        layer_decay=layer_decay, schedule=schedule, warmup_fraction=warmup_fraction,
        optimizer=optimizer, initially_trainable=initially_trainable, unfreeze=rule,
        rewarm_steps=rewarm_steps, train_batchnorm=train_batchnorm, loss=loss,
        # The labels are read (a pass over the data) only when weights are asked for.
        # Mixed (soft) labels carry no class to weigh; smoothed one-hot ones do.
        class_weight=None if class_weight is None or mixes_labels(augmentation)
        or data.multi_label
        else class_weight_dict(class_weight, training_labels(data), data.num_classes),
        metrics=classification_metrics(data.multi_label),
        restore_best_weights=best_epoch_monitor(restore_best_weights, data.multi_label),
        callbacks=callbacks,
        checkpoint_dir=checkpoint_dir,
        checkpoint_fingerprint=recipe_fingerprint(
            "fine_tune", train_data, class_names=data.class_names, batch_size=batch_size,
            learning_rate=learning_rate, seed=seed, lora_rank=lora_rank,
            augmentation=augmentation, label_smoothing=label_smoothing, ema=ema),
        strategy=strategy, jit_compile=jit_compile, verbose=verbose, ema=ema,
    )
    if lora_rank is not None:
        merge_lora(model)
        # Frozen by the backbone's own flag, which (unlike the variables'
        # flags LoRA set) is saved, so the model reloads as it is now.
        freeze(network)
        # A fresh optimizer: the trained one holds slots of the adapters,
        # which would be saved with the model.
        with distribution_scope(strategy):
            model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss,
                          metrics=classification_metrics(data.multi_label),
                          jit_compile=jit_compile,
                          # As `compile_for_evaluation`: a reloaded model would
                          # not rebuild a loss-scale wrapper.
                          auto_scale_loss=False)
            model.optimizer.build(model.trainable_variables)
    if loss != "sparse_categorical_crossentropy":
        # Trained on one-hot MixUp labels; the saved model evaluates integer ones.
        compile_for_evaluation(model, strategy, jit_compile)
    model.history = merge_histories(head_history, history, model)
    model.history.unfreeze_events = list(unfreezing.events) if unfreezing else []
    model.history.kept = "fine_tuned"
    quality = "val_average_precision" if data.multi_label else "val_accuracy"
    head_accuracy = _last(head_history, quality)
    tuned_accuracy = _last(history, quality, best=restore_best_weights is True)
    if head_weights is not None and None not in (head_accuracy, tuned_accuracy) \
            and tuned_accuracy < head_accuracy:
        if keep_head_if_worse:
            model.set_weights(head_weights)
            model.history.kept = "head"
        warnings.warn(
            f"fine_tune: phase 2 ended at {quality} {tuned_accuracy:.4f}, below the head "
            f"alone ({head_accuracy:.4f}); "
            + ("the head's model (phase 1) is returned. "
               if keep_head_if_worse else "phase 2's model is returned anyway. ")
            + "On a small data set, unfreezing can undo a well-fitted head: try fewer "
            "epochs, a lower learning_rate, a smaller layer_decay, or feature_extraction.",
            UserWarning, stacklevel=2)
    if data.multi_label and data.validation is not None and model.history.kept != "head":
        # The network changed since phase 1 chose them.
        fit_thresholds(model, data.validation, batch_size=batch_size)
    return model


def _last(history, key, best=False):
    """The last value of `key` (the best, when the best epoch was kept)."""
    values = [v for v in getattr(history, "history", {}).get(key) or [] if np.isfinite(v)]
    if not values:
        return None
    return float(max(values) if best else values[-1])


def _layer_decay(layer_decay, lr_factor):
    if lr_factor is not None:
        warnings.warn(
            "fine_tune(lr_factor=...) is renamed layer_decay (= 1 / lr_factor), "
            "the name text_classifier uses too.",
            DeprecationWarning,
            stacklevel=3,
        )
        if layer_decay is not None:
            raise ValueError("Pass layer_decay or lr_factor, not both.")
        if not lr_factor >= 1:
            raise ValueError(f"lr_factor must be >= 1; got {lr_factor!r}.")
        return 1.0 / lr_factor
    # None: chosen from the backbone once it is built.
    return layer_decay


def _nested_backbone(model):
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if len(nested) != 1:
        raise ValueError(
            f"Expected one backbone inside {model.name!r}; found {len(nested)} "
            "nested models."
        )
    return nested[0]
