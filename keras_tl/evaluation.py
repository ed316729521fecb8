"""Evaluating a trained classifier and predicting labels for new images.

`evaluate` answers "how good is it, and where does it fail?" in one call:
accuracy, per-class precision and recall, the confusion matrix and the
examples the model got wrong most confidently. `predict` turns image files
or arrays into class names and scores.
"""

import dataclasses
import os

import numpy as np

from keras_tl._utils.distribute import model_outputs
from keras_tl._utils.validation import check_finite
from keras_tl._utils.validation import check_pixel_range
from keras_tl._utils.validation import takes_raw_pixels

__all__ = ["TTA_MODES", "EvaluationReport", "MultiLabelReport", "evaluate", "predict",
           "tta_views"]


@dataclasses.dataclass
class EvaluationReport:
    """What `evaluate` measured.

    Args:
        accuracy: fraction of examples whose top class is the true one.
        class_names: names of the classes, in label order.
        precision: `{class name: precision}` (0 when never predicted).
        recall: `{class name: recall}` (0 when absent from the data).
        support: `{class name: number of examples}`.
        confusion_matrix: int numpy array; rows are true classes, columns
            predicted ones.
        most_confidently_wrong: list of dicts `{"index", "true",
            "predicted", "confidence"}` (and `"file"` for a folder), most
            confident first; `index` is the example's position in the
            evaluated data.
        labels: the true int labels, in data order.
        predictions: the predicted int labels, in data order.
        wrong_images: the images of `most_confidently_wrong`, in its order
            (for `plot_worst`; not saved by `to_dict`).

    Example:

    ```python
    report = keras_tl.evaluate(model, "leaves/test")
    print(report)
    report.plot_confusion_matrix("confusion_matrix.png")
    ```
    """

    accuracy: float
    class_names: list
    precision: dict
    recall: dict
    support: dict
    confusion_matrix: np.ndarray = dataclasses.field(repr=False)
    most_confidently_wrong: list = dataclasses.field(repr=False)
    labels: np.ndarray = dataclasses.field(repr=False)
    predictions: np.ndarray = dataclasses.field(repr=False)
    wrong_images: np.ndarray = dataclasses.field(default=None, repr=False)

    @property
    def balanced_accuracy(self):
        """The mean recall over the classes present in the data: each class
        counts the same, however many examples it has (accuracy lets a
        large class hide a small one)."""
        present = [self.recall[n] for n in self.class_names if self.support[n] > 0]
        return float(np.mean(present)) if present else 0.0

    def plot_worst(self, path=None, columns=4):
        """Draws the most confidently wrong images with their true class,
        predicted class and confidence (fastai's `plot_top_losses`).

        Args:
            path: optional output `.png` path.
            columns: images per row.

        Returns:
            A `matplotlib.figure.Figure`.

        Example:

        ```python
        keras_tl.evaluate(model, "leaves/test").plot_worst("worst.png")
        ```
        """
        from keras_tl.plots import plot_images

        if not self.most_confidently_wrong:
            raise ValueError("No wrong answers to draw: every example was classified right "
                             "(or top_k_wrong=0).")
        titles = [f"{w['true']} -> {w['predicted']}\n{w['confidence']:.2f}"
                  + (f"\n{os.path.basename(w['file'])}" if w.get("file") else "")
                  for w in self.most_confidently_wrong]
        return plot_images(self.wrong_images, titles, path=path, columns=columns,
                           title="most confidently wrong (true -> predicted)")

    def plot_confusion_matrix(self, path=None, title=None):
        """Draws the confusion matrix; see `keras_tl.plots.plot_confusion_matrix`.

        Args:
            path: optional output `.png` path.
            title: optional title; defaults to the accuracy.

        Returns:
            A `matplotlib.figure.Figure`.
        """
        from keras_tl.plots import plot_confusion_matrix

        return plot_confusion_matrix(self.labels, self.predictions, self.class_names,
                                     path=path, title=title)

    def to_dict(self):
        """The report as plain, JSON-serializable Python values.

        Returns:
            A dict with `num_examples`, `accuracy`, `balanced_accuracy`,
            `class_names`,
            `per_class` (`{name: {"precision", "recall", "support"}}`),
            `confusion_matrix` (nested lists) and `most_confidently_wrong`.
        """
        return {
            "num_examples": int(len(self.labels)),
            "accuracy": float(self.accuracy),
            "balanced_accuracy": self.balanced_accuracy,
            "class_names": list(self.class_names),
            "per_class": {
                name: {
                    "precision": float(self.precision[name]),
                    "recall": float(self.recall[name]),
                    "support": int(self.support[name]),
                }
                for name in self.class_names
            },
            "confusion_matrix": np.asarray(self.confusion_matrix).tolist(),
            "most_confidently_wrong": [dict(w) for w in self.most_confidently_wrong],
        }

    def __str__(self):
        width = max([len("class")] + [len(n) for n in self.class_names])
        lines = [
            f"accuracy {self.accuracy:.4f} (balanced {self.balanced_accuracy:.4f}) on "
            f"{len(self.labels)} examples",
            f"{'class':<{width}}  precision  recall  support",
        ]
        for name in self.class_names:
            lines.append(f"{name:<{width}}  {self.precision[name]:>9.3f}  "
                         f"{self.recall[name]:>6.3f}  {self.support[name]:>7d}")
        if self.most_confidently_wrong:
            where = "file" if self.most_confidently_wrong[0].get("file") else "index"
            lines.append(f"most confidently wrong ({where}: true -> predicted, confidence):")
            for w in self.most_confidently_wrong:
                lines.append(f"  {w.get('file', w['index'])}: {w['true']} -> "
                             f"{w['predicted']}, {w['confidence']:.3f}")
        return "\n".join(lines)


@dataclasses.dataclass
class MultiLabelReport:
    """What `evaluate` measured on a multi-label model.

    Args:
        mean_average_precision: mean over the classes (with a positive
            example) of their average precision: threshold-free.
        average_precision: `{class name: AP}`.
        micro_f1: F1 over all (example, class) decisions at the model's
            thresholds.
        macro_f1: mean of the per-class F1.
        f1: `{class name: F1}`.
        micro_precision: precision over all decisions.
        micro_recall: recall over all decisions.
        subset_accuracy: fraction of examples whose whole label set is right.
        thresholds: `{class name: threshold}` used for the decisions.
        support: `{class name: number of positive examples}`.
        class_names: names of the classes, in column order.
        labels: the true 0/1 labels `(n, classes)`.
        scores: the sigmoid scores `(n, classes)`.

    Example:

    ```python
    report = keras_tl.evaluate(model, (x_test, y_test_multi_hot))
    report.mean_average_precision  # -> 0.91
    ```
    """

    mean_average_precision: float
    average_precision: dict
    micro_f1: float
    macro_f1: float
    f1: dict
    micro_precision: float
    micro_recall: float
    subset_accuracy: float
    thresholds: dict
    support: dict
    class_names: list
    labels: np.ndarray = dataclasses.field(repr=False)
    scores: np.ndarray = dataclasses.field(repr=False)

    def to_dict(self):
        """The report as plain, JSON-serializable Python values.

        Returns:
            A dict with `num_examples`, `mean_average_precision`,
            `micro_f1`, `macro_f1`, `micro_precision`, `micro_recall`,
            `subset_accuracy`, `class_names` and `per_class`
            (`{name: {"average_precision", "f1", "threshold", "support"}}`).
        """
        return {
            "num_examples": int(len(self.labels)),
            "multi_label": True,
            "mean_average_precision": float(self.mean_average_precision),
            "micro_f1": float(self.micro_f1),
            "macro_f1": float(self.macro_f1),
            "micro_precision": float(self.micro_precision),
            "micro_recall": float(self.micro_recall),
            "subset_accuracy": float(self.subset_accuracy),
            "class_names": list(self.class_names),
            "per_class": {
                name: {
                    "average_precision": self.average_precision.get(name),
                    "f1": float(self.f1[name]),
                    "threshold": float(self.thresholds[name]),
                    "support": int(self.support[name]),
                }
                for name in self.class_names
            },
        }

    def __str__(self):
        width = max([len("class")] + [len(n) for n in self.class_names])
        lines = [
            f"mean average precision {self.mean_average_precision:.4f}, micro F1 "
            f"{self.micro_f1:.4f}, macro F1 {self.macro_f1:.4f}, exact label sets "
            f"{self.subset_accuracy:.4f} on {len(self.labels)} examples",
            f"{'class':<{width}}  AP      F1      threshold  support",
        ]
        for name in self.class_names:
            ap = self.average_precision.get(name)
            lines.append(f"{name:<{width}}  {'  -   ' if ap is None else f'{ap:.3f}'}   "
                         f"{self.f1[name]:.3f}   {self.thresholds[name]:>9.3f}  "
                         f"{self.support[name]:>7d}")
        return "\n".join(lines)


def evaluate(model, data, class_names=None, batch_size=32, top_k_wrong=8, tta=False):
    """Measures a classifier on labelled data.

    Args:
        model: a Keras classifier whose output is one score per class.
        data: `(x, y)` arrays, a folder with one subfolder of images per
            class (read in sorted order, resized to the model's input), or a
            `tf.data.Dataset` of `(image, label)` (batched or not).
        class_names: names of the classes; default: those stored in the
            model (`keras_tl.get_class_names`), else the folder names, else
            `"0"`, `"1"`, ...
        batch_size: images per prediction batch.
        top_k_wrong: how many of the most confidently wrong examples to keep.
        tta: test-time augmentation: `True` or `"flip"` averages each
            image's class probabilities with its horizontal mirror's
            (fastai's `tta`; for subjects with no left and right, such as
            leaves or animals, not for text or digits); `"flip_crop"` also
            averages the four corner crops of 7/8 of each side, resized
            back (six views). The exported file stays one forward pass.

    A multi-label model (per-class sigmoid scores and thresholds, see
    `keras_tl.multi_label`) is measured on 0/1 label rows (or lists of
    class names per example) and gets a `MultiLabelReport`: mean average
    precision, per-class AP, micro and macro F1 at its thresholds.

    Returns:
        An `EvaluationReport` (a `MultiLabelReport` for a multi-label model).

    Example:

    ```python
    report = keras_tl.evaluate(model, (x_test, y_test))
    report.accuracy  # -> 0.93
    report.to_dict()["per_class"]["rust"]["recall"]  # -> 0.9
    ```
    """
    from keras_tl.heads import get_class_names
    from keras_tl.heads import is_multi_label_model

    _check_positive(batch_size=batch_size)
    if top_k_wrong < 0:
        raise ValueError(f"top_k_wrong must be >= 0; got {top_k_wrong}.")
    model_names = get_class_names(model)
    if is_multi_label_model(model):
        return _multi_label_report(model, data, class_names or model_names, batch_size, tta)
    x, y, data_names = _labelled_arrays(model, data, batch_size, model_names)
    files = None
    if isinstance(data, (str, os.PathLike)):
        from keras_tl.data import scan_image_folder

        # The folder's files, in the order `as_dataset` read them.
        files = scan_image_folder(data)[0]
    if takes_raw_pixels(model):
        check_pixel_range(x, "images")
    scores = _class_scores(model, x, batch_size, tta)
    num_classes = scores.shape[1]
    names = list(class_names or model_names or data_names
                 or [str(i) for i in range(num_classes)])
    if len(names) != num_classes:
        raise ValueError(
            f"{len(names)} class names for a model with {num_classes} outputs: {names}.")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(
            f"Labels must lie in [0, {num_classes}) for a model with {num_classes} "
            f"outputs; got labels from {y.min()} to {y.max()}.")
    return _report(y, scores, names, top_k_wrong, x, files)


def _multi_label_report(model, data, names, batch_size, tta):
    from keras_tl.data import as_arrays
    from keras_tl.heads import get_thresholds
    from keras_tl.multi_label import multi_hot
    from keras_tl.multi_label import multi_label_scores

    if isinstance(data, list) and len(data) == 2:
        data = tuple(data)
    if isinstance(data, tuple) and len(data) == 2 and not hasattr(data[1], "ndim"):
        # Lists of class names per example.
        data = (data[0], multi_hot(data[1], names, "labels")[0])
    x, y = as_arrays(data, split="train", item="image")
    if y is None:
        raise ValueError("evaluate needs labelled data: (x, y) with 0/1 label rows.")
    y = np.asarray(y, np.float32)
    if takes_raw_pixels(model):
        check_pixel_range(x, "images")
    scores = _class_scores(model, x, batch_size, tta)
    if y.ndim != 2 or y.shape[1] != scores.shape[1]:
        raise ValueError(
            f"A multi-label model with {scores.shape[1]} classes is evaluated on 0/1 label "
            f"rows of {scores.shape[1]} columns (or lists of class names); got labels of "
            f"shape {y.shape}."
        )
    names = list(names or [str(i) for i in range(scores.shape[1])])
    figures = multi_label_scores(y, scores, get_thresholds(model), names)
    return MultiLabelReport(
        mean_average_precision=figures["mean_average_precision"],
        average_precision=figures["average_precision"], micro_f1=figures["micro_f1"],
        macro_f1=figures["macro_f1"], f1=figures["f1"],
        micro_precision=figures["micro_precision"], micro_recall=figures["micro_recall"],
        subset_accuracy=figures["subset_accuracy"], thresholds=figures["thresholds"],
        support={n: int(c) for n, c in zip(names, y.sum(0))}, class_names=names,
        labels=y, scores=scores,
    )


def _report(y, scores, names, top_k_wrong, x=None, files=None):
    from keras_tl.plots import confusion_matrix

    predicted = scores.argmax(-1)
    matrix = confusion_matrix(y, predicted, len(names))
    true_counts = matrix.sum(1)
    predicted_counts = matrix.sum(0)
    hits = np.diag(matrix)
    precision = np.divide(hits, predicted_counts, out=np.zeros(len(names)),
                          where=predicted_counts > 0)
    recall = np.divide(hits, true_counts, out=np.zeros(len(names)), where=true_counts > 0)
    wrong = np.flatnonzero(predicted != y)
    confidence = scores[wrong, predicted[wrong]]
    worst = wrong[np.argsort(-confidence, kind="stable")[:top_k_wrong]]
    return EvaluationReport(
        accuracy=float((predicted == y).mean()) if len(y) else 0.0,
        class_names=names,
        precision={n: float(p) for n, p in zip(names, precision)},
        recall={n: float(r) for n, r in zip(names, recall)},
        support={n: int(s) for n, s in zip(names, true_counts)},
        confusion_matrix=matrix,
        most_confidently_wrong=[
            {"index": int(i), "true": names[y[i]], "predicted": names[predicted[i]],
             "confidence": float(scores[i, predicted[i]]),
             **({"file": os.fspath(files[i])} if files is not None and len(files) == len(y)
                else {})}
            for i in worst
        ],
        labels=y,
        predictions=predicted,
        wrong_images=None if x is None or isinstance(x, dict) else np.asarray(x)[worst],
    )


def predict(model, images_or_paths, batch_size=32, top_k=1, tta=False):
    """Predicts class names and scores for images.

    Args:
        model: a Keras classifier whose output is one score per class.
        images_or_paths: an image file path, a list of paths (each loaded
            and resized to the model's input size), one image array
            `(height, width, channels)` or a batch `(n, height, width,
            channels)` of raw pixels (0-255, as the model was trained on).
        batch_size: images per prediction batch.
        top_k: how many classes to return per image.
        tta: test-time augmentation: `True`/`"flip"` (the image and its
            mirror) or `"flip_crop"` (and its four corner crops); see
            `evaluate`.

    Returns:
        `(labels, scores)`: with `top_k=1`, a list of class names (from the
        model, else `"0"`, `"1"`, ...) and a float array `(n,)`; with
        `top_k > 1`, a list of lists of names and an array `(n, top_k)`,
        best first. For a multi-label model: each image's label set (the
        classes whose score reaches the model's threshold; `top_k` is not
        used) and the scores `(n, classes)`.

    Example:

    ```python
    labels, scores = keras_tl.predict(model, ["leaf1.jpg", "leaf2.jpg"])
    labels  # -> ['healthy', 'rust']
    ```
    """
    from keras_tl.heads import get_class_names
    from keras_tl.heads import get_thresholds
    from keras_tl.multi_label import label_sets

    _check_positive(batch_size=batch_size, top_k=top_k)
    x = _images(model, images_or_paths)
    scores = _class_scores(model, x, batch_size, tta)
    names = get_class_names(model) or [str(i) for i in range(scores.shape[1])]
    thresholds = get_thresholds(model)
    if thresholds is not None:
        return label_sets(scores, thresholds, names), scores
    if top_k > scores.shape[1]:
        raise ValueError(f"top_k={top_k} exceeds the model's {scores.shape[1]} classes.")
    order = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
    best = np.take_along_axis(scores, order, axis=1)
    if top_k == 1:
        return [names[i] for i in order[:, 0]], best[:, 0]
    return [[names[i] for i in row] for row in order], best


def _check_positive(**values):
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {value!r}.")


def _input_size(model):
    shape = tuple(model.input_shape)
    size = shape[1:3]
    if len(shape) != 4 or None in size:
        raise ValueError(
            f"Loading image files needs a model with a fixed image input size; "
            f"this one takes {shape}.")
    return size, shape[-1] or 3


def _labelled_arrays(model, data, batch_size, model_names):
    """`(x, y, class names of the data or None)` from any accepted data form."""
    from keras_tl.data import as_arrays
    from keras_tl.data import as_dataset

    names, folder = None, None
    if isinstance(data, (str, os.PathLike)):
        folder = os.fspath(data)
        size, channels = _input_size(model)
        data = as_dataset(data, image_size=size, channels=channels, batch_size=batch_size,
                          shuffle=False)
        names = list(data.class_names)
    elif isinstance(data, list) and len(data) == 2:
        data = tuple(data)
    x, y = as_arrays(data, split="train", item="image")
    if y is None:
        raise ValueError(
            "evaluate needs labelled data: (x, y) arrays, a folder of class "
            "subfolders or a tf.data.Dataset of (x, y).")
    y = _int_labels(y)
    if names is not None and model_names and names != list(model_names):
        missing = [n for n in names if n not in model_names]
        if missing:
            raise ValueError(
                f"Folders {missing} of {folder!r} are not classes of the "
                f"model ({list(model_names)}).")
        # Same classes, other order: map folder labels to the model's.
        y = np.asarray([list(model_names).index(n) for n in names])[y]
        names = list(model_names)
    return x, y, names


def _int_labels(y):
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        # One-hot or soft labels.
        return y.argmax(-1)
    y = y.reshape(-1)
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise ValueError("Labels must be integer class indices.")
    elif y.dtype.kind not in "iu":
        raise ValueError(f"Labels must be integer class indices; got dtype {y.dtype}.")
    return y.astype(int)


def _images(model, images_or_paths):
    if isinstance(images_or_paths, (str, os.PathLike)):
        images_or_paths = [images_or_paths]
    if isinstance(images_or_paths, (list, tuple)) and images_or_paths and all(
        isinstance(p, (str, os.PathLike)) for p in images_or_paths
    ):
        from keras_tl.data import decodes_with_pil
        from keras_tl.data import load_image

        size, channels = _input_size(model)
        images = []
        for path in images_or_paths:
            path = os.fspath(path)
            if os.path.isdir(path):
                raise ValueError(
                    f"{path!r} is a folder; pass image files (e.g. sorted(glob('{path}/*.png')))"
                    ", or use keras_tl.evaluate on a folder of class subfolders."
                )
            if not os.path.isfile(path):
                raise FileNotFoundError(f"Image file {path!r} does not exist.")
            try:
                images.append(np.asarray(load_image(path, size, channels,
                                                    via_pil=decodes_with_pil(path))))
            except Exception as error:
                raise ValueError(f"Cannot read image {path!r}: {error}") from error
        return np.stack(images)
    try:
        x = np.asarray(images_or_paths)
    except ValueError:
        raise ValueError(
            "The images have different shapes; resize them to the model's input "
            f"{_expected_shape(model)} first (or pass their file paths)."
        ) from None
    if x.dtype == object or x.dtype.kind not in "biuf":
        raise TypeError(
            "images_or_paths must be image paths or a numeric image array; got an array of "
            f"dtype {x.dtype}."
        )
    if x.size == 0:
        raise ValueError("No images to predict: the array is empty.")
    if _expected_shape(model) is not None and x.ndim == len(_expected_shape(model)):
        x = x[None]
    expected = _expected_shape(model)
    if expected is not None and (x.ndim != len(expected) + 1 or any(
            e is not None and e != d for e, d in zip(expected, x.shape[1:]))):
        raise ValueError(
            f"The images have shape {x.shape[1:]} and the model takes {expected}; resize "
            "them (or pass their file paths, which are resized to the model's input)."
        )
    check_finite(x.astype("float32") if x.dtype.kind == "f" else x, "images")
    if takes_raw_pixels(model):
        check_pixel_range(x, "images")
    return x.astype("float32")


def _expected_shape(model):
    """The model's image shape without the batch axis, `None` if unknown."""
    try:
        shape = model.input_shape
    except (AttributeError, ValueError):
        return None
    if not isinstance(shape, tuple) or not shape or isinstance(shape[0], tuple):
        return None
    return tuple(shape[1:])


TTA_MODES = ("flip", "flip_crop")

# The side of a corner crop, as a fraction of the image's (torchvision's
# FiveCrop and fastai's TTA crops keep most of the image).
_CROP_FRACTION = 7 / 8


def tta_views(images, mode="flip"):
    """The views test-time augmentation averages over, for a batch of
    images `(n, height, width, channels)`.

    Args:
        images: raw pixels, `(n, height, width, channels)`.
        mode: `"flip"` (the images and their horizontal mirrors) or
            `"flip_crop"` (and the four corner crops of 7/8 of each side,
            resized back to the images' size).

    Returns:
        A list of arrays shaped like `images`.

    Example:

    >>> import numpy as np
    >>> len(tta_views(np.zeros((2, 8, 8, 3)), "flip_crop"))
    6
    """
    import keras

    if mode not in TTA_MODES:
        raise ValueError(f"tta must be False, True or one of {TTA_MODES}; got {mode!r}.")
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError("tta mirrors and crops images (n, height, width, channels); these "
                         f"inputs are not images (shape {images.shape}).")
    views = [images, images[:, :, ::-1]]
    if mode == "flip_crop":
        height, width = images.shape[1:3]
        ch = max(1, int(round(height * _CROP_FRACTION)))
        cw = max(1, int(round(width * _CROP_FRACTION)))
        for top in (0, height - ch):
            for left in (0, width - cw):
                crop = images[:, top:top + ch, left:left + cw].astype("float32")
                views.append(keras.ops.convert_to_numpy(
                    keras.ops.image.resize(crop, (height, width))))
    return views


def _class_scores(model, x, batch_size, tta=False):
    """Per-class probabilities, `(n, num_classes)`; with `tta`, the mean of
    the probabilities of the views `tta_views` makes."""
    if len(x) == 0:
        raise ValueError("No images to predict.")
    if tta:
        if isinstance(x, dict):
            raise ValueError("tta mirrors and crops images (n, height, width, channels); "
                             "these inputs are not images.")
        views = tta_views(x, "flip" if tta is True else tta)
        return sum(_class_scores(model, view, batch_size) for view in views) / len(views)
    scores = np.asarray(model_outputs(model, x, batch_size), "float64")
    if scores.ndim == 1 or scores.shape[-1] == 1:
        # A single sigmoid unit: the probability of class 1.
        p = scores.reshape(-1)
        scores = np.stack([1 - p, p], axis=1)
    scores = scores.reshape(len(x), -1)
    if not np.all(np.isfinite(scores)):
        raise ValueError("The model predicts non-finite scores.")
    if scores.min() < 0 or not np.allclose(scores.sum(1), 1, atol=1e-3):
        # Logits: confidences are only meaningful as probabilities.
        scores = np.exp(scores - scores.max(1, keepdims=True))
        scores /= scores.sum(1, keepdims=True)
    return scores
