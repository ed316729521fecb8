"""`PooledTextClassifier`: a BERT-family encoder, a pooling and the keras-tl head."""

import keras

from keras_tl.heads import build_head
from keras_tl.heads import get_thresholds
from keras_tl.heads import set_thresholds
from keras_tl.text.presets import DEFAULT_TEXT_PRESET
from keras_tl.text.presets import load_text_preset

__all__ = ["POOLINGS", "PooledTextClassifier", "build_text_classifier", "text_encoder"]

POOLINGS = ("mean", "pooled")


def _text_classifier_base():
    import keras_hub

    return keras_hub.models.TextClassifier


@keras.saving.register_keras_serializable(package="keras_tl")
class PooledTextClassifier(_text_classifier_base()):
    """A BERT-family encoder, a pooling and the keras-tl classification head.

    A KerasHub `TextClassifier`: `fit`, `predict` and `evaluate` take raw
    strings (the preprocessor tokenizes them in the input pipeline), and the
    model saves to `.keras` and loads back with `safe_mode=True`. The head is
    `keras_tl.heads.build_head` (L2 normalization, dense logits, softmax,
    class names), so its dense layer can be fitted in closed form on cached
    embeddings before fine-tuning.

    Args:
        backbone: a KerasHub BERT-family backbone.
        num_classes: number of classes.
        preprocessor: the `keras_hub.models.TextClassifierPreprocessor` that
            tokenizes strings, or `None` for models fed token ids.
        pooling: `"mean"` (average of the token vectors under the padding
            mask; sentence encoders such as MiniLM are trained for it) or
            `"pooled"` (BERT's pooler on the `[CLS]` token).
        class_names: names stored in the model (default `"0"`, `"1"`, ...).
        dropout: dropout rate before the head's dense layer.
        multi_label: a sigmoid score per class (several classes per text);
            compile it with `loss="binary_crossentropy"` (KerasHub's
            `"auto"` loss is for one class per text).
        thresholds: a multi-label model's per-class decision thresholds
            (0.5 each by default; `keras_tl.heads.fit_thresholds`).
        **kwargs: `keras_hub.models.Task` arguments (`name`, `compile`).

    Example:

    ```python
    backbone, preprocessor = load_text_preset("bert_base_multi", 128)
    model = PooledTextClassifier(backbone, 2, preprocessor,
                                 class_names=["neg", "pos"])
    model.predict(["Que filme maravilhoso!"]).shape  # -> (1, 2)
    ```
    """

    def __init__(
        self,
        backbone,
        num_classes,
        preprocessor=None,
        pooling="mean",
        class_names=None,
        dropout=0.1,
        multi_label=False,
        thresholds=None,
        **kwargs,
    ):
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}; got {pooling!r}.")
        class_names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
        if len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class_names given for {num_classes} classes.")
        inputs = backbone.input
        outputs = backbone(inputs)
        if pooling == "pooled":
            if not (isinstance(outputs, dict) and "pooled_output" in outputs):
                raise ValueError(
                    f"{type(backbone).__name__} has no pooler output; use pooling='mean'."
                )
            pooled = outputs["pooled_output"]
        else:
            sequence = outputs["sequence_output"] if isinstance(outputs, dict) else outputs
            pooled = keras.layers.GlobalAveragePooling1D(name="mean_pooling")(
                sequence, mask=inputs["padding_mask"]
            )
        hidden_dim = int(pooled.shape[-1])
        head = build_head(hidden_dim, num_classes, class_names, dropout=dropout,
                          multi_label=multi_label)
        if thresholds is not None:
            set_thresholds(head, thresholds)
        probabilities = head(pooled)
        # Set before the base class compiles: `TextClassifier.compile("auto")`
        # reads it and picks a loss on probabilities rather than logits.
        self.activation = keras.activations.sigmoid if multi_label else keras.activations.softmax
        self.multi_label = bool(multi_label)
        super().__init__(inputs=inputs, outputs=probabilities, **kwargs)
        self.backbone = backbone
        self.preprocessor = preprocessor
        self.head = head
        self.num_classes = int(num_classes)
        self.pooling = pooling
        self.class_names = class_names
        self.dropout = dropout
        # The pooler takes no part in mean pooling; frozen, it gets no
        # "missing gradient" warnings and no optimizer slots.
        if pooling == "mean" and _has_layer(backbone, "pooled_dense"):
            backbone.get_layer("pooled_dense").trainable = False

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "pooling": self.pooling,
                "class_names": list(self.class_names),
                "dropout": self.dropout,
                "multi_label": self.multi_label,
                "thresholds": get_thresholds(self.head),
            }
        )
        return config


def _has_layer(model, name):
    return any(layer.name == name for layer in model.layers)


def text_encoder(model):
    """The part of a `PooledTextClassifier` from token ids to embeddings.

    Args:
        model: a `PooledTextClassifier`.

    Returns:
        A `keras.Model` sharing the classifier's layers (not a copy): token
        ids in, the pooled embedding the head reads out.

    Example:

    ```python
    embeddings = text_encoder(model).predict(model.preprocessor(texts))
    ```
    """
    if model.pooling == "mean":
        pooled = model.get_layer("mean_pooling").output
    else:
        pooled = model.backbone(model.input)["pooled_output"]
    return keras.Model(model.input, pooled, name="text_encoder")


def build_text_classifier(
    preset=DEFAULT_TEXT_PRESET,
    num_classes=2,
    *,
    sequence_length=128,
    pooling="mean",
    class_names=None,
    dropout=0.1,
    multi_label=False,
):
    """A `PooledTextClassifier` on a preset, or on a backbone you built.

    Args:
        preset: a preset name, folder or `hf://` handle (see
            `load_text_preset`), a `(backbone, preprocessor)` pair, or a
            KerasHub `TextClassifier` whose backbone and preprocessor are
            reused.
        num_classes: number of classes.
        sequence_length: tokens per text (for presets).
        pooling: `"mean"` or `"pooled"` (see `PooledTextClassifier`).
        class_names: names stored in the model.
        dropout: dropout before the head's dense layer.
        multi_label: an independent sigmoid score per class (several classes
            per text), with per-class thresholds stored in the model.

    Returns:
        A `PooledTextClassifier`.

    Example:

    ```python
    model = build_text_classifier("hf://neuralmind/bert-base-portuguese-cased",
                                  2, sequence_length=128)
    ```
    """
    import keras_hub

    if isinstance(preset, keras_hub.models.Task):
        backbone, preprocessor = preset.backbone, preset.preprocessor
    elif isinstance(preset, tuple) and len(preset) == 2:
        backbone, preprocessor = preset
    else:
        backbone, preprocessor = load_text_preset(preset, sequence_length)
    if preprocessor is None:
        raise ValueError(
            "The text model needs a preprocessor (tokenizer) to predict from raw "
            "strings; pass a (backbone, preprocessor) pair."
        )
    return PooledTextClassifier(
        backbone, num_classes, preprocessor, pooling=pooling,
        class_names=class_names, dropout=dropout, multi_label=multi_label,
    )
