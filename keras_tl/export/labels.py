"""`labels.txt`: the class names written beside a `.tflite` file."""

import os

from keras_tl.export.convert import _is_keras3

__all__ = ["LABELS_FILE", "read_labels"]

LABELS_FILE = "labels.txt"


def _labels_for(model, class_names, num_outputs):
    if class_names is None:
        from keras_tl.heads import get_class_names

        class_names = get_class_names(model) if _is_keras3(model) else None
    if class_names is None:
        class_names = [str(i) for i in range(num_outputs)]
    return [str(name) for name in class_names]


def read_labels(path):
    """Reads a `labels.txt` written by `to_tflite` (one name per line).

    Args:
        path: the `labels.txt` file, or the `.tflite` file beside it.

    Example:

    ```python
    read_labels("phone/digits.tflite")[:3]  # -> ['0', '1', '2']
    ```
    """
    path = os.fspath(path)
    if path.endswith(".tflite"):
        path = os.path.join(os.path.dirname(os.path.abspath(path)), LABELS_FILE)
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]
