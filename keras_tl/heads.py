"""Classification heads, and the class names that travel with a model."""

import keras
import numpy as np

from keras_tl._utils.validation import check_same_length

__all__ = [
    "DEFAULT_LOGISTIC_C",
    "LOGISTIC_C_GRID",
    "ClassNames",
    "attach_head",
    "build_head",
    "fit_linear_head",
    "get_class_names",
]


@keras.saving.register_keras_serializable(package="keras_tl")
class ClassNames(keras.layers.Layer):
    """An identity layer that stores a classifier's class names.

    Placed on the output of the models keras-tl builds, so the names are
    saved in the `.keras` file and come back on load (`export.to_tflite`
    writes them beside the file and into its metadata). It computes nothing,
    so TFLite conversion
    removes it.

    Args:
        class_names: list of strings, one per output unit.
        **kwargs: standard `keras.layers.Layer` arguments.

    Example:

    ```python
    outputs = ClassNames(["cat", "dog"])(keras.layers.Dense(2)(x))
    get_class_names(keras.Model(inputs, outputs))  # -> ['cat', 'dog']
    ```
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

    ```python
    get_class_names(model)  # -> ['angular_leaf_spot', 'bean_rust', 'healthy']
    ```
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
    steps=300,
    seed=0,
):
    """Fits the head's dense layer to convergence on cached embeddings.

    Multinomial logistic regression on L2-normalized embeddings, minimizing
    `mean cross-entropy + ||W||^2 / (2 C n)` (scikit-learn's objective) with
    full-batch Adam inside one `tf.function`, started from the normalized
    class means (nearest-class-mean classifier). On cached embeddings this
    is a fraction of a second, so the regularization can be chosen: on
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
        steps: full-batch optimization steps per fit.
        seed: seed of the cross-validation folds.

    Returns:
        `(kernel, bias, C)`: kernel `(feature_dim, num_classes)`, bias
        `(num_classes,)` for logits of the normalized embeddings.

    Example:

    ```python
    kernel, bias, C = fit_linear_head(features, labels, num_classes=10)
    head.get_layer("logits").set_weights([kernel, bias])
    ```
    """
    import tensorflow as tf
    from sklearn.model_selection import StratifiedKFold

    z = _unit(features)
    labels = np.asarray(labels).astype(np.int64)
    check_same_length(len(z), len(labels), "embedding")
    present = np.unique(labels)
    if len(present) < 2:
        raise ValueError(
            "The training data has a single class; a classifier needs "
            "examples of at least two classes."
        )
    if present.min() < 0 or present.max() >= num_classes:
        raise ValueError(f"Labels out of range [0, {num_classes - 1}].")
    weights = _sample_weights(labels, num_classes, class_weight)
    solver = _LogisticSolver(z.shape[1], num_classes, steps)

    def fit(idx, c):
        return solver.fit(z[idx], labels[idx], weights[idx], c)

    def accuracy(params, zs, ys):
        kernel, bias = params
        return float(((zs @ kernel + bias).argmax(-1) == ys).mean())

    everything = np.arange(len(labels))
    if C is None:
        if validation is not None and len(validation[1]):
            zv, yv = _unit(validation[0]), np.asarray(validation[1])
            scores = [accuracy(fit(everything, c), zv, yv) for c in LOGISTIC_C_GRID]
            C = LOGISTIC_C_GRID[int(np.argmax(scores))]
        elif np.bincount(labels)[present].min() >= 3:
            folds = list(StratifiedKFold(3, shuffle=True, random_state=seed).split(z, labels))
            scores = [
                np.mean([accuracy(fit(tr, c), z[te], labels[te]) for tr, te in folds])
                for c in LOGISTIC_C_GRID
            ]
            C = LOGISTIC_C_GRID[int(np.argmax(scores))]
        else:
            C = DEFAULT_LOGISTIC_C
    kernel, bias = fit(everything, C)
    absent = np.setdiff1d(np.arange(num_classes), present)
    bias[absent] = -1e4
    del tf
    return kernel, bias, float(C)


def _sample_weights(labels, num_classes, class_weight):
    if class_weight is None:
        return np.ones(len(labels), np.float32)
    if class_weight == "balanced":
        counts = np.bincount(labels, minlength=num_classes).astype(np.float32)
        per_class = len(labels) / (np.count_nonzero(counts) * np.maximum(counts, 1))
    else:
        per_class = np.ones(num_classes, np.float32)
        for label, weight in dict(class_weight).items():
            per_class[int(label)] = float(weight)
    return per_class[labels].astype(np.float32)


class _LogisticSolver:
    """Full-batch Adam on the L2-regularized softmax regression objective.

    Runs in TensorFlow (oneDNN), traced once and reused across folds and
    regularization strengths.
    """

    def __init__(self, dim, num_classes, steps, learning_rate=0.05):
        import tensorflow as tf

        self.num_classes = num_classes
        self.kernel = tf.Variable(tf.zeros((dim, num_classes)))
        self.bias = tf.Variable(tf.zeros((num_classes,)))
        # Adam's first and second moments of kernel and bias.
        self.slots = [
            tf.Variable(tf.zeros_like(v)) for v in (self.kernel, self.bias) * 2
        ]
        self.steps = steps
        self.learning_rate = learning_rate
        self._run = tf.function(self._optimize, reduce_retracing=True)

    def _optimize(self, z, onehot, weights, penalty):
        import tensorflow as tf

        params = [self.kernel, self.bias]
        for slot in self.slots:
            slot.assign(tf.zeros_like(slot))
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        total = tf.reduce_sum(weights)
        loss = tf.constant(0.0)
        for step in tf.range(1, self.steps + 1):
            with tf.GradientTape() as tape:
                logits = tf.matmul(z, self.kernel) + self.bias
                losses = tf.nn.softmax_cross_entropy_with_logits(onehot, logits)
                loss = tf.reduce_sum(weights * losses) / total
                loss += penalty * tf.reduce_sum(tf.square(self.kernel))
            grads = tape.gradient(loss, params)
            t = tf.cast(step, tf.float32)
            for p, g, m, v in zip(params, grads, self.slots[:2], self.slots[2:]):
                m.assign(beta1 * m + (1 - beta1) * g)
                v.assign(beta2 * v + (1 - beta2) * tf.square(g))
                m_hat = m / (1 - beta1**t)
                v_hat = v / (1 - beta2**t)
                p.assign_sub(self.learning_rate * m_hat / (tf.sqrt(v_hat) + eps))
        return loss

    def fit(self, z, labels, weights, C):
        import tensorflow as tf

        # Start from the nearest-class-mean classifier: cosine similarity to
        # each class's normalized mean embedding, scaled to confident logits.
        means = np.zeros((z.shape[1], self.num_classes), np.float32)
        for c in np.unique(labels):
            mean = z[labels == c].mean(0)
            means[:, c] = 10.0 * mean / max(np.linalg.norm(mean), 1e-6)
        self.kernel.assign(means)
        self.bias.assign(np.zeros(self.num_classes, np.float32))
        onehot = np.eye(self.num_classes, dtype=np.float32)[labels]
        penalty = np.float32(1.0 / (2.0 * C * len(labels)))
        self._run(
            tf.constant(z), tf.constant(onehot), tf.constant(weights), tf.constant(penalty)
        )
        return self.kernel.numpy().copy(), self.bias.numpy().copy()


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

    ```python
    model = attach_head(backbone, head)
    ```
    """
    inputs = keras.Input(shape=backbone.input_shape[1:], name="image")
    x = backbone(inputs)
    for layer in head.layers[1:]:
        x = layer(x)
    model_name = name or backbone.name.replace("_backbone", "") + "_classifier"
    return keras.Model(inputs, x, name=model_name)
