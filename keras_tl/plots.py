"""Pictures of training: learning curves and confusion matrices as PNG files."""

import os

__all__ = ["plot_confusion_matrix", "plot_history"]


def plot_history(history, path, title=None):
    """Saves the loss and accuracy curves of one or more trainings as a PNG.

    Args:
        history: a `keras.callbacks.History`, its `.history` dict, or a
            dict `{label: history}` to overlay several runs.
        path: output `.png` path (folders are created).
        title: optional figure title.

    Returns:
        `path`.

    Example:

    ```python
    plot_history(model.history, "artifacts/curves.png")  # -> 'artifacts/curves.png'
    ```
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = history if _is_run_dict(history) else {"": history}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for label, run in runs.items():
        logs = getattr(run, "history", run)
        for ax, metric in zip(axes, ("loss", "accuracy")):
            for prefix, style in (("", "-"), ("val_", "--")):
                values = logs.get(prefix + metric)
                if not values:
                    continue
                name = " ".join(filter(None, [label, prefix.rstrip("_") or "train"]))
                epochs = range(1, len(values) + 1)
                ax.plot(epochs, values, style, marker="o" if len(values) < 3 else None, label=name)
            ax.set_xlabel("epoch")
            ax.set_ylabel(metric)
            ax.grid(alpha=0.3)
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _is_run_dict(history):
    return isinstance(history, dict) and history and all(
        hasattr(v, "history") or isinstance(v, dict) for v in history.values()
    )


def plot_confusion_matrix(y_true, y_pred, class_names, path, title=None):
    """Saves a confusion matrix (rows: true class, columns: predicted) as PNG.

    Args:
        y_true: int labels.
        y_pred: predicted int labels.
        class_names: names of the classes, in label order.
        path: output `.png` path.
        title: optional title; defaults to the accuracy.

    Returns:
        `path`.

    Example:

    ```python
    plot_confusion_matrix(y, model.predict(x).argmax(-1), names, "cm.png")
    # -> 'cm.png'
    ```
    """
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    n = len(class_names)
    matrix = np.zeros((n, n), int)
    np.add.at(matrix, (y_true, y_pred), 1)
    size = max(4, 0.5 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, matrix[i, j], ha="center", va="center",
                    color="white" if matrix[i, j] > matrix.max() / 2 else "black")
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    accuracy = float((y_true == y_pred).mean()) if len(y_true) else 0.0
    ax.set_title(title or f"accuracy {accuracy:.3f}")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
