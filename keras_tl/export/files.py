"""The files an export writes: the `.tflite`, its labels and its report.

Everything is computed and checked in memory first. Then each file is
written under a temporary name in its folder, and only when all three are
written and flushed are they renamed into place, the `.tflite` last: a
failed write (a full disk) replaces nothing, and an export that fails
earlier leaves an earlier export under the same names as it was.
"""

import json
import os

from keras_tl._utils.interrupts import raise_if_interrupted
from keras_tl._utils.io import save_atomic
from keras_tl.export.labels import labels_path

__all__ = [
    "check_report_path",
    "export_paths",
    "write_export",
]

_REPORT_SUFFIX = ".json"


def export_paths(path):
    """`(labels path, report path)` of the export at `path`."""
    return labels_path(path), os.path.splitext(os.fspath(path))[0] + _REPORT_SUFFIX


def check_report_path(report_path):
    """Refuses to replace a `<stem>.json` that is not a keras-tl export
    report: the user's own file of that name is never overwritten.

    Example:

    ```python
    check_report_path("phone/digits.json")
    ```
    """
    if not os.path.exists(report_path):
        return
    try:
        with open(report_path, encoding="utf-8") as f:
            saved = json.load(f)
        ours = isinstance(saved, dict) and {"path", "quantization", "size_bytes"} <= set(saved)
    except (OSError, ValueError):
        ours = False
    if not ours:
        raise ValueError(
            f"{report_path!r} exists and is not a keras-tl export report; the export would "
            "write its report there. Move that file, or export under another name."
        )


def write_export(report, content, labels):
    """Writes `content` to `report.path`, the labels and the JSON report.

    A Ctrl-C that came during the export, even one Python swallowed, cancels
    it here, before any file is replaced."""
    files = [
        (report.path, bytes(content)),
        (report.labels_path, ("\n".join(labels) + "\n").encode("utf-8")),
        (report.report_path, (json.dumps(report.to_dict(), indent=2) + "\n").encode("utf-8")),
    ]

    def write(index):
        # Each `save_atomic` renames its file after its `save` returns; the
        # next file is written and flushed inside that `save`, so every
        # temporary is on disk before the first rename, and the `.tflite`
        # is renamed last.
        if index == len(files):
            return
        path, data = files[index]

        def save(temporary):
            with open(temporary, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            write(index + 1)

        if index == len(files) - 1:
            # The last moment to cancel: after this, renames only.
            raise_if_interrupted()
        save_atomic(path, save, suffix="")

    raise_if_interrupted()
    write(0)
