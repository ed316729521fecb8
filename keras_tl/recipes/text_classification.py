"""Recipe: a BERT-family text classifier, head first, then fine-tuned.

The standard BERT fine-tuning recipe (Devlin et al. 2019; Sun et al. 2019,
"How to Fine-Tune BERT for Text Classification"; Howard & Ruder 2018 for
gradual unfreezing), composed from keras-tl blocks:

1. the head's dense layer is fitted in closed form on the frozen encoder's
   cached pooled embeddings (`keras_tl.text.extract_text_features` +
   `keras_tl.heads.fit_linear_head`), so fine-tuning starts from a good head
   instead of a random one that would send large gradients into the encoder;
2. transformer layers are unfrozen from the top down in `unfreeze["phases"]`
   phases (the embeddings last), each layer with its own learning rate
   decaying by `layer_decay` per layer away from the head (layer-wise
   learning-rate decay, `keras_tl.optimizers.discriminative_optimizer`),
   under one linear warm-up (`warmup_fraction` of the steps) then cosine
   warm-down to zero (`keras_tl.schedules.WarmupDecay`), all inside one
   `fit` (`keras_tl.callbacks.ProgressiveUnfreezing`).
"""

import math
import time

import keras
import numpy as np

from keras_tl._utils.precision import apply_policy
from keras_tl._utils.precision import precision_scope
from keras_tl._utils.precision import resolve_policy
from keras_tl._utils.precision import uses_policy
from keras_tl._utils.distribute import distribution_scope
from keras_tl._utils.knobs import check_knobs
from keras_tl._utils.knobs import class_weight_dict
from keras_tl._utils.knobs import renamed_argument
from keras_tl.checkpoints import recipe_fingerprint
from keras_tl.engine import best_epoch_monitor
from keras_tl.engine import classification_metrics
from keras_tl.engine import epoch_history
from keras_tl.engine import fit_stages
from keras_tl.heads import fit_linear_head
from keras_tl.heads import fit_multi_label_head
from keras_tl.heads import fit_thresholds
from keras_tl.heads import set_thresholds
from keras_tl.lora import enable_lora
from keras_tl.losses import MultiLabelCrossentropy
from keras_tl.losses import SparseLabelSmoothingCrossentropy
from keras_tl.multi_label import multi_label_scores
from keras_tl.multi_label import multi_label_weights
from keras_tl.stages import check_unfreeze
from keras_tl.lora import merge_lora
from keras_tl.stages import freeze
from keras_tl.text import DEFAULT_TEXT_PRESET
from keras_tl.text import as_text_dataset
from keras_tl.text import build_text_classifier
from keras_tl.text import extract_text_features
from keras_tl.text import get_text_stages

__all__ = ["FULL_LEARNING_RATE", "LORA_LEARNING_RATE", "MODES", "text_classifier"]

MODES = ("fine_tune", "feature_extraction")

# Peak rates: BERT's for full fine-tuning (Devlin et al. 2019); LoRA's
# adapters start at zero and take about ten times more (Hu et al. 2021 used
# 4e-4 to 5e-4 for RoBERTa-base).
FULL_LEARNING_RATE = 5e-5
LORA_LEARNING_RATE = 5e-4


DEFAULT_PHASES = 3


def _optimizer_kwargs(optimizer, weight_decay):
    """`weight_decay` goes to AdamW given by name; a template instance
    carries its own settings."""
    return {"weight_decay": weight_decay} if optimizer == "adamw" else {}


def text_classifier(
    train_data,
    validation_data=None,
    *,
    preset=DEFAULT_TEXT_PRESET,
    num_classes=None,
    class_names=None,
    sequence_length=128,
    mode="fine_tune",
    epochs=3,
    batch_size=32,
    learning_rate=None,
    layer_decay=0.8,
    unfreeze=None,
    warmup_fraction=0.1,
    schedule="cosine",
    optimizer=None,
    weight_decay=0.01,
    pooling="mean",
    dropout=0.1,
    class_weight=None,
    label_smoothing=0.0,
    ema=False,
    restore_best_weights=True,
    augmentation=None,
    strategy=None,
    text_column="text",
    label_column="label",
    validation_split=None,
    C=None,
    callbacks=None,
    checkpoint_dir=None,
    seed=0,
    verbose=1,
    lora_rank=None,
    mixed_precision=False,
    jit_compile="auto",
    unfreeze_phases=None,
):
    """Trains a text classifier on a KerasHub BERT-family encoder.

    Defaults follow the BERT fine-tuning literature: AdamW at 5e-5 with
    weight decay 0.01 (Devlin et al. 2019), 10% linear warm-up then cosine
    decay (BERT's original decay is `schedule="linear"`), layer-wise learning-rate decay 0.8 (Sun et al. 2019 used 0.95 for
    12-layer BERT-base; shallower encoders such as MiniLM's 6 layers take a
    steeper decay), top-down gradual unfreezing (ULMFiT).

    With `lora_rank`, the encoder stays frozen and low-rank adapters on its
    attention and feed-forward kernels (`keras_tl.lora.enable_lora`) train
    with the head for `epochs` epochs, under the same warm-up and decay, at
    a default peak rate of 5e-4; they are merged into the kernels before
    the model is returned (`keras_tl.lora.merge_lora`), with its encoder
    frozen.

    Args:
        train_data: a tuple `(texts, labels)` of lists or arrays, a CSV path
            (columns `text_column`, `label_column`) or a `tf.data.Dataset` of
            `(text, label)`. Labels are class indices or class names.
        validation_data: optional validation set in the same forms.
        preset: a KerasHub BERT-family preset name (default
            `"bert_base_multi"`, 104 languages including Portuguese), a local
            preset folder (KerasHub, or Hugging Face with config.json,
            vocab.txt and model.safetensors), an `hf://` handle (e.g.
            BERTimbau, `"hf://neuralmind/bert-base-portuguese-cased"`), a
            `(backbone, preprocessor)` pair or a KerasHub `TextClassifier`.
        num_classes: number of classes (inferred from the labels otherwise).
        class_names: class names stored in the model.
        sequence_length: tokens per text; longer texts are truncated. On CPU,
            64 costs about a quarter of 256.
        mode: `"fine_tune"` (head, then gradual unfreezing) or
            `"feature_extraction"` (frozen encoder, head only on cached
            embeddings; seconds, no back-propagation through the encoder).
        epochs: fine-tuning epochs after the head fit, a number >= 0: `0`
            stops after the head fit (the encoder stays frozen), and a
            fraction such as `0.5` fine-tunes on half an epoch's batches.
            Negative, NaN or infinite values raise a `ValueError`.
        batch_size: batch size, an integer >= 1.
        learning_rate: peak learning rate of the head and the top layer
            (default 5e-5; 5e-4 with `lora_rank`).
        layer_decay: learning-rate factor per layer away from the head.
        unfreeze: keras-tl's unfreezing specification (see
            `keras_tl.engine.unfreeze_rule`); the text recipe unfreezes in
            phases of the fine-tuning steps: `{"phases": n}` (default 3)
            splits them into `n` phases, each unfreezing the next group of
            stages top-down, the last one reaching the embeddings.
        warmup_fraction: fraction of fine-tuning steps of linear warm-up.
        schedule: the warm-down after the warm-up: a name from
            `keras_tl.SCHEDULES` (`"linear"` is BERT's original) or a
            `LearningRateSchedule`.
        optimizer: Keras optimizer name or template instance; `None`: AdamW
            with `weight_decay` (BERT's).
        weight_decay: AdamW decoupled weight decay.
        pooling: `"mean"` (masked mean of token vectors) or `"pooled"`
            (BERT's `[CLS]` pooler).
        dropout: dropout before the head's dense layer.
        class_weight: `None`, `"balanced"` (each class present weighs the
            same in the loss) or `{class_index: weight}`; used by the head
            fit and by fine-tuning.
        label_smoothing: smooths the labels towards the uniform by this
            much in fine-tuning (`keras_tl.SparseLabelSmoothingCrossentropy`;
            the closed-form head fit is unsmoothed). `0` leaves the labels.
        restore_best_weights: with validation data, fine-tuning ends with
            the weights of its phase with the best validation accuracy (mean
            average precision for a multi-label task), or of the best value
            of the logged value it names (`"val_loss"`).
        augmentation: `None`: the image presets and layers do not apply to
            text (the shared knob is here so every recipe takes it).
        ema: `False`, `True` (momentum 0.99) or a momentum in (0, 1): in
            fine-tuning, the optimizer keeps an exponential moving average of the trained
            weights (Keras' `use_ema`; timm's model EMA), validation reads
            the averaged weights, and they are what the model ends with.
        strategy: a `tf.distribute.Strategy` (TensorFlow) to build and
            train the model in; defaults to the active one.
        text_column: CSV text column.
        label_column: CSV label column.
        validation_split: fraction of `train_data` held out when no
            `validation_data` is given.
        C: fix the head fit's inverse L2 strength instead of choosing it.
        callbacks: Keras callbacks for the fine-tuning `fit` (one epoch per
            unfreezing phase).
        checkpoint_dir: a folder for a checkpoint after every epoch of the
            fine-tuning `fit` (`keras_tl.TrainingCheckpoint` in its own
            `keras_tl_checkpoint` subfolder, with the unfreezing state);
            calling the recipe again with it after an interruption resumes
            after the last finished epoch.
        seed: seed of splits, shuffles and initialization.
        verbose: 0 silent, 1 progress.
        lora_rank: train rank-`lora_rank` LoRA adapters (and the head)
            instead of unfreezing layers; `None` for full fine-tuning.
        mixed_precision: `True` computes the encoder in `"mixed_float16"`
            when the backend sees a GPU, else in `"mixed_bfloat16"` (or pass
            either name): variables stay float32, the head (logits, softmax)
            and the loss compute in float32, and with float16 `compile`
            wraps the optimizer in a `keras.optimizers.LossScaleOptimizer`.
            The returned model keeps the policy and predicts float32
            probabilities. `False`: float32.
        jit_compile: `compile`'s `jit_compile` (`True` for XLA; `"auto"`
            uses it where Keras supports it, e.g. on GPUs).
        unfreeze_phases: deprecated: `unfreeze={"phases": n}`.

    Returns:
        A `keras_tl.text.PooledTextClassifier` that predicts class
        probabilities from raw strings, with `model.history` (one entry per
        phase: `"head"`, then `"unfreeze_1"`... or, with LoRA, `"lora_1"`
        ... one per epoch; each with `trainable_params` and `seconds`) and
        `model.stages`.

    Raises:
        ValueError: empty texts, labels out of range, a CSV missing a column,
            an unknown preset or mode, `epochs` below 0, `batch_size` below 1
            or a `learning_rate` that is not a positive finite number.
        ConnectionError: a remote preset without network (pass a folder).

    Example:

    ```python
    model = keras_tl.recipes.text_classifier(
        "reviews_pt.csv", preset="hf://neuralmind/bert-base-portuguese-cased",
        text_column="review_text", label_column="sentiment",
        validation_split=0.1)
    model.predict(["Adorei o produto!"]).argmax(-1)
    ```
    """
    # Every argument is checked before the encoder passes over any text.
    check_knobs(
        "text_classifier", epochs=epochs, learning_rate=learning_rate, batch_size=batch_size,
        callbacks=callbacks, checkpoint_dir=checkpoint_dir, seed=seed, verbose=verbose,
        class_weight=class_weight, schedule=schedule, optimizer=optimizer, strategy=strategy,
        mixed_precision=mixed_precision, jit_compile=jit_compile, zero_epochs=True,
        label_smoothing=label_smoothing, ema=ema,
    )
    if augmentation is not None:
        raise ValueError(
            "text_classifier: augmentation applies to images; pass None for text (augment "
            "the texts themselves before training)."
        )
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}.")
    if not 0 < layer_decay <= 1:
        raise ValueError(f"layer_decay must be in (0, 1]; got {layer_decay}.")
    if lora_rank is not None and (int(lora_rank) != lora_rank or lora_rank < 1):
        raise ValueError(f"lora_rank must be an integer >= 1; got {lora_rank!r}.")
    if unfreeze_phases is not None:
        unfreeze = renamed_argument("unfreeze_phases", {"phases": unfreeze_phases},
                                    "unfreeze", unfreeze, None, "text_classifier")
    unfreeze = check_unfreeze(unfreeze) or {"phases": DEFAULT_PHASES}
    if "phases" not in unfreeze:
        raise ValueError(
            "text_classifier unfreezes in phases of the fine-tuning steps: pass "
            f"unfreeze={{'phases': n}}; got {unfreeze!r}."
        )
    policy = resolve_policy(mixed_precision)
    if learning_rate is None:
        learning_rate = FULL_LEARNING_RATE if lora_rank is None else LORA_LEARNING_RATE
    optimizer = "adamw" if optimizer is None else optimizer
    keras.utils.set_random_seed(seed)
    data = as_text_dataset(
        train_data,
        text_column=text_column,
        label_column=label_column,
        batch_size=batch_size,
        validation_split=validation_split,
        validation_data=validation_data,
        num_classes=num_classes,
        class_names=class_names,
        seed=seed,
    )
    if data.multi_label:
        # Keras' `class_weight` reads 0/1 label vectors as one-hot: the
        # weights go into the loss instead.
        positive, negative = multi_label_weights(class_weight, data.labels) or (None, None)
        loss = MultiLabelCrossentropy(label_smoothing, positive, negative)
        head_class_weight, class_weight = class_weight, None
    else:
        loss = SparseLabelSmoothingCrossentropy(label_smoothing)
        class_weight = head_class_weight = class_weight_dict(
            class_weight, data.labels, data.num_classes)
    with distribution_scope(strategy), precision_scope(policy):
        model = build_text_classifier(
            preset, data.num_classes, sequence_length=sequence_length,
            pooling=pooling, class_names=data.class_names, dropout=dropout,
            multi_label=data.multi_label,
        )
    if data.multi_label:
        model.compile(**_saved_loss(model))
    if not uses_policy(model.backbone, policy):
        # A backbone passed in, or a preset that names its own dtype.
        apply_policy(model.backbone, policy)
    # The head computes the probabilities and the loss reads them: float32.
    # (The preprocessor's tokenizer keeps its integer and string dtypes.)
    apply_policy(model.head, "float32" if policy else None)
    stages = get_text_stages(model)
    for stage in stages:
        stage.set_trainable(False)
    # Phase 0: the head on cached embeddings of the frozen encoder.
    start = time.perf_counter()
    texts, labels = data.texts, data.labels
    validation = None
    if data.validation is not None:
        val_texts = [s.decode("utf-8") for t, _ in data.validation for s in t.numpy()]
        val_labels = np.concatenate([l.numpy() for _, l in data.validation])
        # One pass over both splits: one encoder function traced, not two.
        texts = np.concatenate([np.asarray(texts, dtype=object),
                                np.asarray(val_texts, dtype=object)])
    features, _ = extract_text_features(model, texts, batch_size=2 * batch_size,
                                        verbose=verbose)
    if data.validation is not None:
        features, val_features = features[:len(labels)], features[len(labels):]
        validation = (val_features, val_labels)
    if data.multi_label:
        kernel, bias, chosen_c, thresholds = fit_multi_label_head(
            features, labels, validation=validation, C=C, class_weight=head_class_weight,
            seed=seed,
        )
        set_thresholds(model, thresholds)
    else:
        kernel, bias, chosen_c = fit_linear_head(
            features, labels, data.num_classes, validation=validation, C=C,
            class_weight=head_class_weight, seed=seed,
        )
    model.head.get_layer("logits").set_weights([kernel, bias])
    logs = {"phase": "head", "C": chosen_c, "seconds": time.perf_counter() - start}
    logs.update(_head_scores(model.head, features, labels, validation, data.multi_label))
    logs.update(trainable_stages=0, steps=0)
    epochs_logs = [logs]
    if verbose:
        print(_describe(logs))

    fingerprint = recipe_fingerprint(
        "text_classifier", train_data, class_names=data.class_names, batch_size=batch_size,
        learning_rate=learning_rate, seed=seed, lora_rank=lora_rank, C=chosen_c,
        label_smoothing=label_smoothing, ema=ema)
    if mode == "fine_tune" and epochs > 0 and lora_rank is not None:
        epochs_logs += _fit_lora(model, data, epochs=epochs, rank=lora_rank,
                  learning_rate=learning_rate, schedule=schedule,
                  warmup_fraction=warmup_fraction, weight_decay=weight_decay,
                  class_weight=class_weight, loss=loss, ema=ema,
                  metrics=_metrics(data.multi_label),
                  callbacks=callbacks, chosen_c=chosen_c,
                  checkpoint_dir=checkpoint_dir, fingerprint=fingerprint,
                  optimizer=optimizer, strategy=strategy, jit_compile=jit_compile,
                  verbose=verbose)
    elif mode == "fine_tune" and epochs > 0:
        # One `fit` of `phases` sub-epochs over the repeated data; at each
        # sub-epoch boundary ProgressiveUnfreezing unfreezes the next group
        # of stages (repeating an epoch in `at_epochs` unfreezes several).
        steps_per_epoch = int(data.train.cardinality())
        phases = max(1, min(int(unfreeze["phases"]), len(stages)))
        phase_steps = max(int(round(epochs * steps_per_epoch / phases)), 1)
        counts = [round((p + 1) * len(stages) / phases) for p in range(phases)]
        at_epochs = [p for p in range(1, phases) for _ in range(counts[p] - counts[p - 1])]
        timer = _EpochTimer()
        fitted, _ = fit_stages(
            model, stages, data.train.repeat(), validation=data.validation,
            epochs=phases, steps_per_epoch=phase_steps, learning_rate=learning_rate,
            layer_decay=layer_decay, schedule=schedule, warmup_fraction=warmup_fraction,
            optimizer=optimizer, optimizer_kwargs=_optimizer_kwargs(optimizer, weight_decay),
            initially_trainable=counts[0], unfreeze={"at_epochs": at_epochs},
            loss=loss, metrics=_metrics(data.multi_label),
            class_weight=class_weight, callbacks=[timer] + list(callbacks or []),
            restore_best_weights=best_epoch_monitor(restore_best_weights, data.multi_label),
            checkpoint_dir=checkpoint_dir, checkpoint_fingerprint=fingerprint,
            strategy=strategy, jit_compile=jit_compile, verbose=0, ema=ema,
        )
        for phase in range(phases):
            logs = {k: v[phase] for k, v in fitted.history.items()}
            logs.update(
                phase=f"unfreeze_{phase + 1}",
                C=chosen_c,
                steps=phase_steps,
                seconds=timer.elapsed(phase, phases),
            )
            epochs_logs.append(logs)
            if verbose:
                print(_describe(logs))
        # A plain optimizer, so the model saves and reloads like any KerasHub
        # classifier (the per-stage optimizers are for training only; a
        # reloaded model would not rebuild a loss-scale wrapper).
        model.compile(jit_compile=jit_compile, auto_scale_loss=False, **_saved_loss(model))
    if data.multi_label and data.validation is not None and len(epochs_logs) > 1:
        # The encoder and head changed since the closed-form fit chose them.
        fit_thresholds(model, (np.asarray(val_texts, dtype=object), val_labels),
                       batch_size=2 * batch_size)
    model.history = epoch_history(model, epochs_logs)
    model.stages = stages
    return model


def _fit_lora(model, data, *, epochs, rank, learning_rate, schedule,
              warmup_fraction, weight_decay, class_weight, loss, metrics, ema, callbacks,
              chosen_c,
              checkpoint_dir, fingerprint, optimizer, strategy, jit_compile, verbose):
    """LoRA adapters and the head in one `fit`, then merged into the kernels;
    returns the logs of each epoch."""
    # BERT's pooler takes no part in mean pooling: no adapters for it.
    exclude = ("pooled_dense",) if model.pooling == "mean" else ()
    enable_lora(model.backbone, rank, exclude=exclude)
    steps_per_epoch = int(data.train.cardinality())
    num_epochs = max(1, math.ceil(epochs))
    epoch_steps = max(int(round(epochs * steps_per_epoch / num_epochs)), 1)
    timer = _EpochTimer()
    fitted, _ = fit_stages(
        model, (), data.train.repeat(), validation=data.validation, epochs=num_epochs,
        steps_per_epoch=epoch_steps, learning_rate=learning_rate, layer_decay=1.0,
        schedule=schedule, warmup_fraction=warmup_fraction, optimizer=optimizer,
        optimizer_kwargs=_optimizer_kwargs(optimizer, weight_decay), strategy=strategy,
        loss=loss, metrics=metrics,
        class_weight=class_weight, callbacks=[timer] + list(callbacks or []), verbose=0,
        checkpoint_dir=checkpoint_dir, checkpoint_fingerprint=fingerprint,
        jit_compile=jit_compile, ema=ema,
    )
    epochs_logs = []
    for epoch in range(num_epochs):
        logs = {k: v[epoch] for k, v in fitted.history.items()}
        logs.update(phase=f"lora_{epoch + 1}", C=chosen_c, steps=epoch_steps,
                    seconds=timer.elapsed(epoch, num_epochs), trainable_stages=0)
        epochs_logs.append(logs)
        if verbose:
            print(_describe(logs))
    merge_lora(model)
    # Frozen by the backbone's own flag, which (unlike the variables' flags
    # LoRA set) is saved with the model.
    freeze(model.backbone)
    # A plain optimizer, built without the adapters, so the model saves and
    # reloads like any KerasHub classifier.
    model.compile(jit_compile=jit_compile, auto_scale_loss=False, **_saved_loss(model))
    return epochs_logs


class _EpochTimer(keras.callbacks.Callback):
    """Wall-clock seconds of each epoch (unfreezing phase)."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)

    def elapsed(self, epoch, num_epochs):
        """Seconds of `epoch` of `num_epochs`; `None` for an epoch a resumed
        run restored from its checkpoint rather than trained."""
        index = epoch - (num_epochs - len(self.seconds))
        return self.seconds[index] if index >= 0 else None


def _saved_loss(model):
    # KerasHub's "auto" loss and metrics are for one class per text.
    if not getattr(model, "multi_label", False):
        return {}
    return {"loss": "binary_crossentropy", "metrics": classification_metrics(True)}


def _metrics(multi_label):
    # The name Keras logs for a sparse accuracy varies with its target's
    # shape; this one is always "accuracy".
    if multi_label:
        return classification_metrics(True)
    return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]


def _head_scores(head, features, labels, validation, multi_label=False):
    def scores(f, y):
        probabilities = head.predict(f, batch_size=1024, verbose=0)
        y = np.asarray(y)
        if multi_label:
            loss = keras.ops.convert_to_numpy(keras.losses.binary_crossentropy(
                y.astype(np.float32), probabilities))
            return float(np.mean(loss)), multi_label_scores(
                y, probabilities)["mean_average_precision"]
        loss = keras.ops.convert_to_numpy(
            keras.losses.sparse_categorical_crossentropy(y, probabilities))
        return float(np.mean(loss)), float((probabilities.argmax(-1) == y).mean())

    name = "average_precision" if multi_label else "accuracy"
    logs = {}
    logs["loss"], logs[name] = scores(features, labels)
    if validation is not None:
        logs["val_loss"], logs[f"val_{name}"] = scores(*validation)
    return logs


def _describe(logs):
    parts = [f"{logs['phase']}:"]
    if logs.get("trainable_stages"):
        parts.append(f"trainable_stages={logs['trainable_stages']}")
    for key in ("loss", "accuracy", "average_precision", "val_loss", "val_accuracy",
                "val_average_precision", "seconds"):
        if logs.get(key) is not None:
            parts.append(f"{key}={logs[key]:.4f}" if key != "seconds" else f"{logs[key]:.1f}s")
    return " ".join(parts)
