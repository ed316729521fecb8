"""Classification heads, and the class names that travel with a model."""

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="keras_tl")
class ClassNames(keras.layers.Layer):
    """An identity layer that stores a classifier's class names.

    Placed on the output of the models keras-tl builds, so the names are
    saved in the `.keras` file and come back on load (`export.to_tflite`
    writes them to `labels.txt`). It computes nothing, so TFLite conversion
    removes it.

    Args:
        class_names: list of strings, one per output unit.
        **kwargs: standard `keras.layers.Layer` arguments.

    Example:

    >>> outputs = ClassNames(["cat", "dog"])(keras.layers.Dense(2)(x))
    >>> get_class_names(keras.Model(inputs, outputs))
    ['cat', 'dog']
    """

    def __init__(self, class_names, **kwargs):
        kwargs.setdefault("name", "class_names")
        super().__init__(**kwargs)
        self.class_names = [str(name) for name in class_names]

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"class_names": list(self.class_names)})
        return config


def get_class_names(model):
    """Returns the class names stored in `model`, or `None`.

    Args:
        model: a `keras.Model`; the names are read from its `ClassNames`
            layer (searching nested models too).

    Example:

    >>> get_class_names(model)
    ['angular_leaf_spot', 'bean_rust', 'healthy']
    """
    for layer in getattr(model, "layers", []):
        if isinstance(layer, ClassNames):
            return list(layer.class_names)
        if isinstance(layer, keras.Model):
            names = get_class_names(layer)
            if names is not None:
                return names
    return None


# Inverse L2 strengths tried when validation data (or enough labels for
# cross-validation) can choose; on L2-normalized embeddings weak
# regularization wins once each class has a few examples.
LOGISTIC_C_GRID = (0.1, 1.0, 10.0, 100.0, 1000.0)
DEFAULT_LOGISTIC_C = 100.0


def build_head(feature_dim, num_classes, class_names=None, normalize=True, dropout=0.0):
    """The classification head keras-tl puts on a backbone.

    `UnitNormalization` (embeddings on the unit sphere, so the head's scale
    does not depend on the backbone's), optional `Dropout`, a `Dense` named
    `"logits"`, a softmax named `"probabilities"` and `ClassNames`. Keeping
    the logits as their own layer lets distillation and calibration reach
    them.

    Args:
        feature_dim: width of the embeddings.
        num_classes: number of classes.
        class_names: names stored in the model (default `"0"`, `"1"`, ...).
        normalize: L2-normalize the embeddings first.
        dropout: dropout rate before the dense layer.

    Example:

    >>> head = build_head(2048, 3, ["a", "b", "c"])
    >>> head.output.shape
    (None, 3)
    """
    inputs = keras.Input(shape=(feature_dim,), name="embedding")
    x = inputs
    if normalize:
        x = keras.layers.UnitNormalization(name="normalize")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    x = keras.layers.Dense(num_classes, name="logits")(x)
    x = keras.layers.Activation("softmax", name="probabilities")(x)
    outputs = ClassNames(class_names or [str(i) for i in range(num_classes)])(x)
    return keras.Model(inputs, outputs, name="head")


def fit_linear_head(
    features,
    labels,
    num_classes,
    validation=None,
    C=None,
    class_weight=None,
    seed=0,
):
    """Fits the head's dense layer in closed form on cached embeddings.

    Multinomial logistic regression (L-BFGS, scikit-learn) on L2-normalized
    embeddings: the optimum, not the result of N epochs of SGD, in a fraction
    of a second. The inverse regularization strength `C` is chosen on
    `validation` when given, else by 3-fold cross-validation when every
    class has at least 3 examples, else `DEFAULT_LOGISTIC_C`.

    Args:
        features: float array `(n, feature_dim)` (unnormalized embeddings).
        labels: int array `(n,)`.
        num_classes: number of classes (classes absent from `labels` get
            a large negative bias).
        validation: optional `(features, labels)` to choose `C` on.
        C: fix the inverse regularization strength instead of choosing.
        class_weight: optional `{class: weight}` or `"balanced"`.
        seed: random seed.

    Returns:
        `(kernel, bias, C)`: kernel `(feature_dim, num_classes)`, bias
        `(num_classes,)` for logits of the normalized embeddings.

    Example:

    >>> kernel, bias, C = fit_linear_head(features, labels, num_classes=10)
    >>> head.get_layer("logits").set_weights([kernel, bias])
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    z = _unit(features)
    labels = np.asarray(labels).astype(np.int64)
    present = np.unique(labels)
    if len(present) < 2:
        raise ValueError(
            "The training data has a single class; a classifier needs "
            "examples of at least two classes."
        )

    def make(c):
        return LogisticRegression(
            C=c, max_iter=3000, class_weight=class_weight, random_state=seed
        )

    if C is None:
        if validation is not None and len(validation[1]):
            zv, yv = _unit(validation[0]), np.asarray(validation[1])
            scores = [make(c).fit(z, labels).score(zv, yv) for c in LOGISTIC_C_GRID]
            C = LOGISTIC_C_GRID[int(np.argmax(scores))]
        elif np.bincount(labels)[present].min() >= 3:
            folds = StratifiedKFold(3, shuffle=True, random_state=seed)
            scores = [
                cross_val_score(make(c), z, labels, cv=folds).mean()
                for c in LOGISTIC_C_GRID
            ]
            C = LOGISTIC_C_GRID[int(np.argmax(scores))]
        else:
            C = DEFAULT_LOGISTIC_C
    model = make(C).fit(z, labels)
    coef, intercept = model.coef_, model.intercept_
    if len(model.classes_) == 2:
        # scikit-learn keeps one vector for two classes: split it
        # symmetrically so the softmax equals its sigmoid.
        coef = np.concatenate([-coef / 2, coef / 2])
        intercept = np.concatenate([-intercept / 2, intercept / 2])
    kernel = np.zeros((z.shape[1], num_classes), np.float32)
    bias = np.full((num_classes,), -1e4, np.float32)
    kernel[:, model.classes_] = coef.T
    bias[model.classes_] = intercept
    return kernel, bias, float(C)


def _unit(features):
    features = np.asarray(features, np.float32)
    norm = np.linalg.norm(features, axis=1, keepdims=True)
    # UnitNormalization divides by sqrt(max(sum(x^2), 1e-12)).
    return features / np.maximum(norm, 1e-6)


def attach_head(backbone, head, name=None):
    """Joins a backbone and a head into one flat, end-to-end model.

    The head's layers are applied to the backbone's output (shared, not
    copied), so `model.get_layer("logits")` reaches the dense layer and
    the model's predictions equal `head(backbone(x))`.

    Args:
        backbone: `keras.Model` from images to embeddings.
        head: `keras.Model` from embeddings to outputs (see
            `keras_tl.heads.build_head`).
        name: name of the result; defaults to `<backbone>_classifier`.

    Example:

    >>> model = attach_head(backbone, head)
    """
    inputs = keras.Input(shape=backbone.input_shape[1:], name="image")
    x = backbone(inputs)
    for layer in head.layers[1:]:
        x = layer(x)
    model_name = name or backbone.name.replace("_backbone", "") + "_classifier"
    return keras.Model(inputs, x, name=model_name)
