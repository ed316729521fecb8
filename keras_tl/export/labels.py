"""Class names beside a `.tflite` file: `<stem>.labels.txt`, one a line."""

import os

from keras_tl.export.convert import is_keras3

__all__ = [
    "LABELS_FILE",
    "labels_for",
    "labels_path",
    "read_labels",
]

# The labels file packed inside a `.tflite` with metadata; also the shared
# file name older keras-tl versions wrote beside every export in a folder.
LABELS_FILE = "labels.txt"
_LABELS_SUFFIX = ".labels.txt"


def labels_for(model, class_names, num_outputs):
    if class_names is None:
        from keras_tl.heads import get_class_names

        class_names = get_class_names(model) if is_keras3(model) else None
    if class_names is None:
        class_names = [str(i) for i in range(num_outputs)]
    names = [str(name) for name in class_names]
    for index, name in enumerate(names):
        # One name a line in the labels file and in the packed metadata:
        # a blank name is dropped by readers and a line break splits one
        # name in two, and either shifts every later label off its output.
        if not name.strip() or "\n" in name or "\r" in name:
            raise ValueError(
                f"Class name {index} is {name!r}: class names must be non-blank and on "
                "one line (labels files hold one name a line). Pass class_names= with "
                "a name for every output."
            )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(
            f"Class names {repeated} appear more than once; each output needs its own name "
            "(a labels file cannot tell two outputs with one name apart)."
        )
    if num_outputs and len(names) != num_outputs:
        raise ValueError(
            f"{len(names)} class names for a model with {num_outputs} outputs; "
            "pass one name per output."
        )
    return names


def labels_path(path):
    """The labels file written beside a `.tflite` file: `<stem>.labels.txt`.

    Each export has its own, so several files in one folder keep their own
    class names.

    Args:
        path: the `.tflite` file.

    Example:

    >>> labels_path("phone/digits.tflite")
    'phone/digits.labels.txt'
    """
    path = os.fspath(path)
    return os.path.splitext(path)[0] + _LABELS_SUFFIX


def read_labels(path):
    """Reads the class names of an export (one name per line).

    Args:
        path: a labels file, or the `.tflite` file: then `<stem>.labels.txt`
            beside it, else a `labels.txt` beside it (older exports), else
            the labels packed inside the file with its metadata.

    Example:

    ```python
    read_labels("phone/digits.tflite")[:3]  # -> ['0', '1', '2']
    ```
    """
    path = os.fspath(path)
    if path.endswith(".tflite"):
        beside = labels_path(path)
        shared = os.path.join(os.path.dirname(os.path.abspath(path)), LABELS_FILE)
        if os.path.exists(beside):
            path = beside
        elif os.path.exists(shared):
            path = shared
        else:
            from keras_tl.export.metadata import read_associated_files

            packed = read_associated_files(path).get(LABELS_FILE)
            if packed is None:
                raise FileNotFoundError(
                    f"No {os.path.basename(beside)} or {LABELS_FILE} beside {path}, "
                    "and no labels packed in the file."
                )
            return _lines(packed.decode("utf-8").splitlines())
    with open(path, encoding="utf-8") as f:
        return _lines(f)


def _lines(lines):
    return [line.rstrip("\r\n") for line in lines if line.strip()]
