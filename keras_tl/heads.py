"""Classification heads, and the class names that travel with a model."""

import keras
import numpy as np

from keras_tl._utils.knobs import class_weight_dict
from keras_tl._utils.logistic import BatchedLogisticSolver
from keras_tl._utils.logistic import logits_in_chunks
from keras_tl._utils.validation import check_same_length

__all__ = [
    "DEFAULT_LOGISTIC_C",
    "HOLDOUT_MIN_EXAMPLES",
    "LOGISTIC_C_GRID",
    "ClassNames",
    "attach_head",
    "build_head",
    "fit_linear_head",
    "fit_multi_label_head",
    "fit_thresholds",
    "get_class_names",
    "get_thresholds",
    "is_multi_label_model",
    "set_thresholds",
]


@keras.saving.register_keras_serializable(package="keras_tl")
class ClassNames(keras.layers.Layer):
    """An identity layer that stores a classifier's class names.

    Placed on the output of the models keras-tl builds, so the names are
    saved in the `.keras` file and come back on load (`export.to_tflite`
    writes them beside the file and into its metadata). It computes nothing,
    so TFLite conversion
    removes it.

    A multi-label classifier (independent sigmoid scores) also stores each
    class's decision threshold here, so the label sets it predicts come
    back with the model.

    Args:
        class_names: list of strings, one per output unit.
        thresholds: for a multi-label classifier, one decision threshold
            per class; `None` for one class per example.
        **kwargs: standard `keras.layers.Layer` arguments.

    Example:

    ```python
    outputs = ClassNames(["cat", "dog"])(keras.layers.Dense(2)(x))
    get_class_names(keras.Model(inputs, outputs))  # -> ['cat', 'dog']
    ```
    """

    def __init__(self, class_names, thresholds=None, **kwargs):
        kwargs.setdefault("name", "class_names")
        super().__init__(**kwargs)
        self.class_names = [str(name) for name in class_names]
        self.thresholds = None if thresholds is None else [float(t) for t in thresholds]
        if self.thresholds is not None and len(self.thresholds) != len(self.class_names):
            raise ValueError(
                f"{len(self.thresholds)} thresholds given for {len(self.class_names)} classes."
            )

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"class_names": list(self.class_names)})
        if self.thresholds is not None:
            config["thresholds"] = list(self.thresholds)
        return config


def _class_names_layer(model):
    for layer in getattr(model, "layers", []):
        if isinstance(layer, ClassNames):
            return layer
        if isinstance(layer, keras.Model):
            found = _class_names_layer(layer)
            if found is not None:
                return found
    return None


def fit_thresholds(model, validation, batch_size=32):
    """Chooses and stores a multi-label model's per-class thresholds.

    Each class's threshold is the one with the best F1 on `validation`
    (`keras_tl.multi_label.best_f1_thresholds`); a class without a positive
    validation example keeps its threshold.

    Args:
        model: a multi-label `keras.Model` built by keras-tl.
        validation: validation data in any form `keras_tl.data.as_arrays`
            reads (arrays, `(x, y)`, a batched `tf.data.Dataset`), with 0/1
            labels.
        batch_size: rows per forward pass.

    Returns:
        The thresholds, float32 `(classes,)`.

    Example:

    ```python
    fit_thresholds(model, (x_val, y_val))
    ```
    """
    from keras_tl._utils.distribute import model_outputs
    from keras_tl.data import as_arrays
    from keras_tl.multi_label import best_f1_thresholds

    x, y = as_arrays(validation)
    if y is None:
        raise ValueError("fit_thresholds needs labelled validation data, (x, y).")
    scores = np.asarray(model_outputs(model, x, batch_size=batch_size), np.float32)
    current = np.asarray(get_thresholds(model), np.float32)
    chosen = best_f1_thresholds(y, scores)
    has_positive = np.asarray(y).sum(0) > 0
    thresholds = np.where(has_positive, chosen, current)
    set_thresholds(model, thresholds)
    return thresholds


def get_thresholds(model):
    """The per-class decision thresholds of a multi-label model, or `None`.

    Args:
        model: a `keras.Model` keras-tl built (its `ClassNames` layer holds
            them); `None` for a model with one class per example.

    Example:

    ```python
    get_thresholds(model)  # -> [0.41, 0.63, 0.5]
    ```
    """
    layer = _class_names_layer(model)
    return None if layer is None or layer.thresholds is None else list(layer.thresholds)


def is_multi_label_model(model):
    """Whether `model` scores each class independently (multi-label).

    Args:
        model: a `keras.Model`.

    Example:

    ```python
    is_multi_label_model(model)  # -> True for a sigmoid head with thresholds
    ```
    """
    return get_thresholds(model) is not None


def set_thresholds(model, thresholds):
    """Stores per-class decision thresholds in a multi-label model.

    They are saved in the `.keras` file and used by `keras_tl.predict`,
    `keras_tl.evaluate` and the export's label file and report.

    Args:
        model: a multi-label `keras.Model` built by keras-tl.
        thresholds: one threshold in (0, 1) per class.

    Example:

    ```python
    set_thresholds(model, best_f1_thresholds(y_val, model.predict(x_val)))
    ```
    """
    layer = _class_names_layer(model)
    if layer is None or layer.thresholds is None:
        raise ValueError(
            "set_thresholds needs a multi-label model built by keras-tl (a sigmoid head "
            "whose ClassNames layer holds thresholds)."
        )
    thresholds = [float(t) for t in np.asarray(thresholds, np.float32).reshape(-1)]
    if len(thresholds) != len(layer.class_names):
        raise ValueError(
            f"{len(thresholds)} thresholds given for {len(layer.class_names)} classes."
        )
    layer.thresholds = thresholds


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
    layer = _class_names_layer(model)
    return None if layer is None else list(layer.class_names)


# Inverse L2 strengths tried when validation data (or enough labels for
# cross-validation) can choose; on L2-normalized embeddings weak
# regularization wins once each class has a few examples.
LOGISTIC_C_GRID = (0.1, 1.0, 10.0, 100.0, 1000.0)
DEFAULT_LOGISTIC_C = 100.0
# From this many examples on, one hold-out split chooses the regularization:
# it is as reliable as 3 folds there, at a third of the cost.
HOLDOUT_MIN_EXAMPLES = 3000


def build_head(feature_dim, num_classes, class_names=None, normalize=True, dropout=0.0,
               multi_label=False):
    """The classification head keras-tl puts on a backbone.

    `UnitNormalization` (embeddings on the unit sphere, so the head's scale
    does not depend on the backbone's), optional `Dropout`, a `Dense` named
    `"logits"`, a softmax named `"probabilities"` (a sigmoid per class for
    a multi-label task) and `ClassNames`. Keeping the logits as their own
    layer lets distillation and calibration reach them.

    Args:
        feature_dim: width of the embeddings.
        num_classes: number of classes.
        class_names: names stored in the model (default `"0"`, `"1"`, ...).
        normalize: L2-normalize the embeddings first.
        dropout: dropout rate before the dense layer.
        multi_label: independent sigmoid scores, with per-class thresholds
            (0.5 until chosen; see `set_thresholds`) stored in `ClassNames`.

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
    x = keras.layers.Activation("sigmoid" if multi_label else "softmax", name="probabilities")(x)
    outputs = ClassNames(class_names or [str(i) for i in range(num_classes)],
                         thresholds=[0.5] * num_classes if multi_label else None)(x)
    return keras.Model(inputs, outputs, name="head")


def fit_linear_head(
    features,
    labels,
    num_classes,
    validation=None,
    C=None,
    class_weight=None,
    steps=200,
    seed=0,
):
    """Fits the head's dense layer to convergence on cached embeddings.

    Multinomial logistic regression on L2-normalized embeddings, minimizing
    `mean cross-entropy + ||W||^2 / (2 C n)` (scikit-learn's objective) with
    full-batch Adam, started from the normalized class means (the nearest
    class mean classifier). The regularization is chosen on `validation`
    when given, else by cross-validation when every class has at least 3
    examples (3 folds; one stratified 20% hold-out from
    `HOLDOUT_MIN_EXAMPLES` examples on), else `DEFAULT_LOGISTIC_C`.

    All the fits of that choice run as one batched problem in the principal
    basis of the embeddings, and in the `n`-dimensional span of the examples
    when there are fewer examples than dimensions: the same objective and
    minimizer, at a fraction of the cost (see `keras_tl/_utils/logistic.py`).
    Memory-mapped embeddings (`extract(..., cache_path=...)`) are read in
    place when `n >= d`, without a normalized copy.

    Args:
        features: float array `(n, feature_dim)` (unnormalized embeddings),
            or a memory map of one.
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
    from sklearn.model_selection import StratifiedKFold
    from sklearn.model_selection import StratifiedShuffleSplit

    if np.ndim(labels) == 2:
        raise ValueError(
            "fit_linear_head fits one class per example; these labels are a multi-label "
            "matrix (n, classes). Use keras_tl.heads.fit_multi_label_head."
        )
    labels = np.asarray(labels).astype(np.int64)
    check_same_length(len(features), len(labels), "embedding")
    present = np.unique(labels)
    if len(present) < 2:
        raise ValueError(
            "The training data has a single class; a classifier needs "
            "examples of at least two classes."
        )
    if present.min() < 0 or present.max() >= num_classes:
        raise ValueError(f"Labels out of range [0, {num_classes - 1}].")
    weights = _sample_weights(labels, num_classes, class_weight)
    solver = BatchedLogisticSolver(features, labels, num_classes, steps=steps)
    grid = np.asarray(LOGISTIC_C_GRID, np.float32)

    def penalty(c, rows):
        return 1.0 / (2.0 * c * rows)

    def accuracies(kernels, biases, rows, targets):
        hits, targets = np.zeros(len(kernels)), np.asarray(targets)
        # In chunks: `rows` may be a fifth of memory-mapped embeddings.
        for start, logits in logits_in_chunks(rows, kernels, biases):
            hits += (logits.argmax(-1) == targets[start : start + logits.shape[1]]).sum(-1)
        return hits / len(targets)

    n = len(labels)
    if C is None and validation is not None and len(validation[1]):
        kernels, biases = solver.solve(
            np.repeat(weights[None], len(grid), 0), penalty(grid, n)
        )
        scores = accuracies(kernels, biases, validation[0], validation[1])
        best = int(np.argmax(scores))
        kernel, bias, C = kernels[best], biases[best], grid[best]
    else:
        if C is None and np.bincount(labels)[present].min() >= 3:
            if n >= HOLDOUT_MIN_EXAMPLES:
                splitter = StratifiedShuffleSplit(1, test_size=0.2, random_state=seed)
            else:
                splitter = StratifiedKFold(3, shuffle=True, random_state=seed)
            folds = list(splitter.split(np.zeros(n), labels))
            masks, penalties = [], []
            for train, _ in folds:
                mask = np.zeros(n, np.float32)
                mask[train] = weights[train]
                masks += [mask] * len(grid)
                penalties += list(penalty(grid, len(train)))
            kernels, biases = solver.solve(np.stack(masks), penalties)
            scores = np.zeros(len(grid))
            for i, (_, held_out) in enumerate(folds):
                part = slice(i * len(grid), (i + 1) * len(grid))
                held_out = np.sort(held_out)
                rows = _RowsOf(features, held_out)
                scores += accuracies(kernels[part], biases[part], rows, labels[held_out]) / len(folds)
            C = grid[int(np.argmax(scores))]
        elif C is None:
            C = DEFAULT_LOGISTIC_C
        kernels, biases = solver.solve(weights[None], [penalty(C, n)])
        kernel, bias = kernels[0], biases[0]
    absent = np.setdiff1d(np.arange(num_classes), present)
    bias[absent] = -1e4
    return kernel, bias, float(C)


def fit_multi_label_head(
    features,
    labels,
    validation=None,
    C=None,
    class_weight=None,
    steps=200,
    seed=0,
):
    """Fits a multi-label head in closed form: one logistic regression per class.

    The one-vs-rest counterpart of `fit_linear_head`, with the same batched
    solver and speed: every class's sigmoid regression on the L2-normalized
    embeddings, all regularization strengths and folds in one problem. `C`
    is chosen by mean average precision on `validation` (else over 3 folds
    when there are at least 9 examples, else `DEFAULT_LOGISTIC_C`); each
    class's decision threshold is the one with the best F1 on the
    validation scores (else on the folds' held-out scores, else 0.5).

    Args:
        features: float array `(n, feature_dim)`, or a memory map of one.
        labels: 0/1 array `(n, num_classes)`.
        validation: optional `(features, labels)` to choose `C` and the
            thresholds on.
        C: fix the inverse regularization strength instead of choosing.
        class_weight: `None`, `"balanced"` (each class's positives and
            negatives weigh the same) or `{class: weight of its positives}`.
        steps: full-batch optimization steps per fit.
        seed: seed of the cross-validation folds.

    Returns:
        `(kernel, bias, C, thresholds)`.

    Example:

    ```python
    kernel, bias, C, thresholds = fit_multi_label_head(features, y_multi_hot)
    ```
    """
    from sklearn.model_selection import KFold

    from keras_tl.multi_label import best_f1_thresholds
    from keras_tl.multi_label import multi_label_weights
    from keras_tl.multi_label import multi_label_scores

    labels = np.asarray(labels, np.float32)
    check_same_length(len(features), len(labels), "embedding")
    n, num_classes = labels.shape
    positives = labels.sum(0)
    if not ((positives > 0) & (positives < n)).any():
        raise ValueError(
            "No class of the multi-label training data has both positive and negative "
            "examples: each class needs examples with it and without it."
        )
    solver = BatchedLogisticSolver(
        features, labels, num_classes, steps=steps, multi_label=True,
        label_weights=multi_label_weights(class_weight, labels))
    grid = np.asarray(LOGISTIC_C_GRID, np.float32)
    ones = np.ones(n, np.float32)

    def scores_of(kernel, bias, rows):
        out = np.empty((len(rows), num_classes), np.float32)
        for start, logits in logits_in_chunks(rows, kernel[None], bias[None]):
            out[start : start + logits.shape[1]] = 1 / (1 + np.exp(-logits[0]))
        return out

    def mean_ap(kernel, bias, rows, targets):
        score = multi_label_scores(targets, scores_of(kernel, bias, rows))
        return np.nan_to_num(score["mean_average_precision"])

    held_out_scores = None
    if C is None and validation is not None and len(validation[1]):
        kernels, biases = solver.solve(np.repeat(ones[None], len(grid), 0), 1 / (2 * grid * n))
        val_features, val_labels = validation[0], np.asarray(validation[1], np.float32)
        best = int(np.argmax([mean_ap(kernels[i], biases[i], val_features, val_labels)
                              for i in range(len(grid))]))
        kernel, bias, C = kernels[best], biases[best], grid[best]
    else:
        if C is None and n >= 9:
            folds = list(KFold(3, shuffle=True, random_state=seed).split(np.zeros(n)))
            masks, penalties = [], []
            for train, _ in folds:
                mask = np.zeros(n, np.float32)
                mask[train] = 1.0
                masks += [mask] * len(grid)
                penalties += list(1 / (2 * grid * len(train)))
            kernels, biases = solver.solve(np.stack(masks), penalties)
            fold_scores = np.zeros((len(grid), n, num_classes), np.float32)
            for i, (_, held) in enumerate(folds):
                held = np.sort(held)
                for j in range(len(grid)):
                    q = i * len(grid) + j
                    fold_scores[j, held] = scores_of(kernels[q], biases[q], _RowsOf(features, held))
            best = int(np.argmax([np.nan_to_num(multi_label_scores(
                labels, fold_scores[j])["mean_average_precision"]) for j in range(len(grid))]))
            C, held_out_scores = grid[best], (labels, fold_scores[best])
        elif C is None:
            C = DEFAULT_LOGISTIC_C
        kernels, biases = solver.solve(ones[None], [1 / (2 * C * n)])
        kernel, bias = kernels[0], biases[0]
    # A class never seen is never predicted; one always seen always is.
    bias[positives == 0] = -1e4
    bias[positives == n] = 1e4
    if validation is not None and len(validation[1]):
        val_labels = np.asarray(validation[1], np.float32)
        thresholds = best_f1_thresholds(val_labels, scores_of(kernel, bias, validation[0]))
    elif held_out_scores is not None:
        thresholds = best_f1_thresholds(*held_out_scores)
    else:
        thresholds = np.full(num_classes, 0.5, np.float32)
    return kernel, bias, float(C), thresholds


def _sample_weights(labels, num_classes, class_weight):
    weights = class_weight_dict(class_weight, labels, num_classes)
    if weights is None:
        return np.ones(len(labels), np.float32)
    per_class = np.asarray([weights[i] for i in range(num_classes)], np.float32)
    return per_class[labels].astype(np.float32)


class _RowsOf:
    """Rows `indices` of `features`, gathered only when sliced."""

    def __init__(self, features, indices):
        self.features, self.indices = features, indices

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, part):
        return np.asarray(self.features[self.indices[part]], np.float32)


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
