"""Multi-label tasks: several classes per example, scored independently.

A leaf with two diseases, a review about price and delivery: each class
gets its own sigmoid score, the head is fitted one-vs-rest, and each class
has its own decision threshold (the one with the best F1 on validation
data), stored in the model with the class names. This module holds what
the task needs beside the model: reading labels given as a 0/1 matrix, as
lists of names or as delimited strings; the per-class weights of
`class_weight`; the thresholds; and the scores (average precision, F1).
"""

import warnings

import numpy as np

from keras_tl._utils.validation import labels_to_indices

__all__ = [
    "best_f1_thresholds",
    "encode_labels",
    "is_multi_label",
    "label_sets",
    "multi_hot",
    "multi_label_scores",
    "multi_label_weights",
    "refuse_multi_label",
]


def is_multi_label(labels, label_delimiter=None):
    """Whether `labels` describe a multi-label task.

    Multi-label labels are a 2-D array `(n, k)` of 0/1 (or booleans), a
    sequence whose items are lists, tuples or sets of class names (or
    indices), or, with `label_delimiter`, strings of names separated by it
    (`"price;delivery"`) where some example has more or fewer than one.

    Args:
        labels: the labels as a user passes them.
        label_delimiter: the separator of names inside one string label, or
            `None` (strings are one class each).

    Returns:
        A bool.

    Example:

    >>> is_multi_label([["rust"], ["rust", "spot"]]), is_multi_label([0, 1, 1])
    (True, False)
    """
    if hasattr(labels, "shape") and getattr(labels, "ndim", 1) == 2:
        # One column is ambiguous (a binary label?): refused as a shape later.
        return labels.shape[1] > 1
    if isinstance(labels, (str, bytes)) or not hasattr(labels, "__len__"):
        return False
    items = list(labels) if not isinstance(labels, np.ndarray) else labels.tolist()
    if any(isinstance(item, (list, tuple, set, frozenset)) for item in items):
        return True
    if label_delimiter:
        return any(len(_split(item, label_delimiter)) != 1 for item in items
                   if isinstance(item, str))
    return False


def _split(text, delimiter):
    return [part.strip() for part in str(text).split(delimiter) if part.strip()]


def multi_hot(labels, class_names=None, what="data", label_delimiter=None):
    """Multi-label labels as a float32 0/1 matrix `(n, k)`, and the class names.

    Args:
        labels: a 0/1 matrix `(n, k)`, a sequence of lists (or sets) of class
            names or indices, or strings of names joined by
            `label_delimiter`. An example may have no class.
        class_names: the known class names, in model order; names found in
            the labels otherwise, sorted (indices need no names).
        what: the data's name in error messages.
        label_delimiter: the separator inside string labels.

    Returns:
        `(y, class_names)`: float32 `(n, k)` and the names (`None` for a
        matrix given without them).

    Raises:
        ValueError: values other than 0 and 1, a class name not among
            `class_names`, a class index out of range.

    Example:

    >>> y, names = multi_hot([["rust"], ["rust", "spot"], []])
    >>> y.tolist(), names
    ([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]], ['rust', 'spot'])
    """
    if hasattr(labels, "shape") and getattr(labels, "ndim", 1) == 2:
        y = np.asarray(labels)
        if y.dtype.kind not in "biuf" or not np.isin(y, (0, 1)).all():
            bad = np.argwhere(~np.isin(y, (0, 1))) if y.dtype.kind in "biuf" else None
            where = f" (e.g. {y[tuple(bad[0])].item()!r} at row {int(bad[0][0])})" if bad is not None \
                and len(bad) else ""
            raise ValueError(
                f"Multi-label labels of shape {y.shape} in the {what} must be 0 or 1{where}: "
                "one column per class, 1 where the example has it. For one class per "
                "example pass class indices of shape (n,); for soft targets use "
                "keras_tl.distill."
            )
        if class_names is not None and len(class_names) != y.shape[1]:
            raise ValueError(
                f"{len(class_names)} class_names given for the {y.shape[1]} label columns "
                f"of the {what}."
            )
        return y.astype(np.float32), class_names
    rows = []
    for row, item in enumerate(labels.tolist() if isinstance(labels, np.ndarray) else labels):
        if isinstance(item, bytes):
            item = item.decode("utf-8")
        if isinstance(item, str):
            item = _split(item, label_delimiter) if label_delimiter else [item.strip()]
        elif item is None or isinstance(item, float) and np.isnan(item):
            item = []
        elif not isinstance(item, (list, tuple, set, frozenset, np.ndarray)):
            item = [item]
        rows.append([str(v) if not isinstance(v, (int, np.integer)) else int(v) for v in item])
    values = [v for row in rows for v in row]
    if values and all(isinstance(v, int) for v in values) and class_names is None:
        k = max(values) + 1
        names = None
        index = {i: i for i in range(k)}
    else:
        if class_names is not None:
            names = [str(n) for n in class_names]
        else:
            names = sorted({str(v) for v in values})
        index = {name: i for i, name in enumerate(names)}
        index.update({i: i for i in range(len(names))})
        k = len(names)
    y = np.zeros((len(rows), k), np.float32)
    for row, item in enumerate(rows):
        for value in item:
            key = value if isinstance(value, int) else str(value)
            if key not in index:
                known = names if names is not None else list(range(k))
                raise ValueError(
                    f"The {what} has label {value!r} at row {row}, which is not among the "
                    f"classes {known}. Add it to class_names or fix the label."
                )
            y[row, index[key]] = 1.0
    return y, names


def encode_labels(labels, class_names=None, what="data", label_delimiter=None):
    """Labels as model targets: class indices, or a multi-hot matrix.

    The one entry point for labels in keras-tl's data readers: one class
    per example gives int64 indices `(n,)` (see
    `keras_tl._utils.validation.labels_to_indices`); multi-label forms (see
    `is_multi_label`) give float32 `(n, k)`.

    Args:
        labels: the labels as a user passes them.
        class_names: the known class names.
        what: the data's name in error messages.
        label_delimiter: the separator of names inside string labels.

    Returns:
        `(targets, class_names, multi_label)`.

    Example:

    >>> encode_labels(["a", "b"])[2], encode_labels([["a", "b"], ["b"]])[2]
    (False, True)
    """
    if is_multi_label(labels, label_delimiter):
        y, names = multi_hot(labels, class_names, what, label_delimiter)
        if len(y) and (y.sum(1) == 1).all() and y.shape[1] > 1 and hasattr(labels, "ndim"):
            warnings.warn(
                f"Every example of the {what} has exactly one class in its 0/1 label "
                "matrix: it is trained as a multi-label task (an independent sigmoid "
                "score per class). If these are one-hot labels of one class per "
                "example, pass y.argmax(-1) instead.",
                stacklevel=3,
            )
        return y, names, True
    if label_delimiter:
        labels = [_split(v, label_delimiter)[0] if isinstance(v, str) and _split(
            v, label_delimiter) else v for v in labels]
    indices, names = labels_to_indices(labels, class_names, what)
    return indices, names, False


def multi_label_weights(class_weight, y):
    """Per-class weights of the positive and the negative examples.

    `"balanced"` gives each class's positives and negatives the same total
    weight (`n / (2 * count)` each, scikit-learn's rule applied per class,
    as one-vs-rest does); a dict `{class: w}` weighs that class's positive
    examples by `w`.

    Args:
        class_weight: `None`, `"balanced"` or `{class_index: weight}`.
        y: the 0/1 training labels `(n, k)`.

    Returns:
        `(positive, negative)`: float32 `(k,)` each, or `None` for `None`.

    Example:

    >>> multi_label_weights("balanced", np.array([[1, 0], [0, 0], [0, 1], [0, 1]]))[0]
    array([2., 1.], dtype=float32)
    """
    if class_weight is None:
        return None
    y = np.asarray(y, np.float32)
    n, k = y.shape
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(f"class_weight must be None, 'balanced' or a dict; got "
                             f"{class_weight!r}.")
        positives = y.sum(0)
        return (n / (2 * np.maximum(positives, 1))).astype(np.float32), (
            n / (2 * np.maximum(n - positives, 1))).astype(np.float32)
    positive = np.ones(k, np.float32)
    for label, weight in class_weight.items():
        if not 0 <= int(label) < k:
            raise ValueError(f"class_weight names class {label}, and the data has "
                             f"{k} classes (0 to {k - 1}).")
        positive[int(label)] = float(weight)
    return positive, np.ones(k, np.float32)


def best_f1_thresholds(y_true, scores, default=0.5):
    """Per-class decision thresholds with the best F1 on `(y_true, scores)`.

    Each class's threshold is the midpoint between the score that ends the
    best-F1 set of positives and the next one down, so a score equal to a
    validation example's never sits on the edge. A class without positive
    examples keeps `default`.

    Args:
        y_true: 0/1 labels `(n, k)`.
        scores: sigmoid scores `(n, k)`.
        default: the threshold of a class that cannot be chosen.

    Returns:
        float32 `(k,)`.

    Example:

    >>> best_f1_thresholds(np.array([[1], [0]]), np.array([[0.8], [0.3]]))
    array([0.55], dtype=float32)
    """
    y_true = np.asarray(y_true, np.float32)
    scores = np.asarray(scores, np.float32)
    thresholds = np.full(y_true.shape[1], default, np.float32)
    for k in range(y_true.shape[1]):
        positives = y_true[:, k].sum()
        if positives == 0:
            continue
        order = np.argsort(-scores[:, k], kind="stable")
        ranked, hits = scores[order, k], np.cumsum(y_true[order, k])
        predicted = np.arange(1, len(order) + 1)
        f1 = 2 * hits / (predicted + positives)
        # Only cut between distinct scores: a tie goes in or out together.
        distinct = np.append(ranked[:-1] > ranked[1:], True)
        best = int(np.flatnonzero(distinct)[np.argmax(f1[distinct])])
        below = ranked[best + 1] if best + 1 < len(ranked) else max(0.0, ranked[best] - 0.1)
        thresholds[k] = (ranked[best] + below) / 2
    return thresholds


def multi_label_scores(y_true, scores, thresholds=None, class_names=None):
    """The figures of a multi-label classifier.

    Mean average precision (scikit-learn's `average_precision_score`, the
    mean over the classes with a positive example) and each class's AP are
    threshold-free; micro and macro F1, precision and recall use
    `thresholds` (0.5 when not given).

    Args:
        y_true: 0/1 labels `(n, k)`.
        scores: sigmoid scores `(n, k)`.
        thresholds: per-class decision thresholds `(k,)`.
        class_names: names for the per-class entries.

    Returns:
        A dict: `mean_average_precision`, `average_precision` (per class),
        `micro_f1`, `macro_f1`, `micro_precision`, `micro_recall`,
        `subset_accuracy` (every class right), `f1` (per class),
        `thresholds`.

    Example:

    >>> scores = multi_label_scores(np.array([[1, 0], [0, 1]]),
    ...                             np.array([[0.9, 0.2], [0.1, 0.7]]))
    >>> scores["mean_average_precision"], scores["macro_f1"]
    (1.0, 1.0)
    """
    from sklearn.metrics import average_precision_score

    y_true = np.asarray(y_true, np.float32)
    scores = np.asarray(scores, np.float32)
    k = y_true.shape[1]
    thresholds = np.full(k, 0.5, np.float32) if thresholds is None else np.asarray(
        thresholds, np.float32)
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    predicted = scores >= thresholds
    truth = y_true > 0.5
    per_class_ap, per_class_f1 = {}, {}
    for i, name in enumerate(names):
        if truth[:, i].any():
            per_class_ap[name] = float(average_precision_score(truth[:, i], scores[:, i]))
        tp = float((predicted[:, i] & truth[:, i]).sum())
        denominator = float(predicted[:, i].sum() + truth[:, i].sum())
        per_class_f1[name] = 2 * tp / denominator if denominator else 1.0
    tp = float((predicted & truth).sum())
    micro_precision = tp / max(float(predicted.sum()), 1.0)
    micro_recall = tp / max(float(truth.sum()), 1.0)
    micro_f1 = 2 * tp / max(float(predicted.sum() + truth.sum()), 1.0)
    return {
        "mean_average_precision": float(np.mean(list(per_class_ap.values())))
        if per_class_ap else float("nan"),
        "average_precision": per_class_ap,
        "micro_f1": micro_f1,
        "macro_f1": float(np.mean(list(per_class_f1.values()))),
        "micro_precision": micro_precision,
        "micro_recall": micro_recall,
        "subset_accuracy": float((predicted == truth).all(1).mean()),
        "f1": per_class_f1,
        "thresholds": {name: float(t) for name, t in zip(names, thresholds)},
    }


def label_sets(scores, thresholds, class_names):
    """The classes each example has: the names whose score reaches the threshold.

    Args:
        scores: sigmoid scores `(n, k)`.
        thresholds: per-class thresholds `(k,)`.
        class_names: the `k` names.

    Returns:
        A list of `n` lists of names, in class order.

    Example:

    >>> label_sets(np.array([[0.9, 0.6], [0.1, 0.2]]), [0.5, 0.7], ["a", "b"])
    [['a'], []]
    """
    hits = np.asarray(scores) >= np.asarray(thresholds)
    return [[class_names[i] for i in np.flatnonzero(row)] for row in hits]


def refuse_multi_label(data, recipe):
    """Raises a clear error when a recipe that cannot take multi-label data gets it.

    Args:
        data: the recipe's `ImageData` (or `TextData`).
        recipe: the recipe's name, for the message.

    Example:

    ```python
    refuse_multi_label(data, "distill")
    ```
    """
    if getattr(data, "multi_label", False):
        raise ValueError(
            f"{recipe} takes one class per example; these labels are multi-label (0/1 rows "
            "or several names per example). Train a multi-label model with "
            "feature_extraction, fine_tune or text_classifier, or pass one class per "
            "example."
        )
