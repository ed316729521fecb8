"""Pictures of training: learning curves and confusion matrices.

Each function returns a `matplotlib.figure.Figure` (a notebook shows it as
the cell's value) and also writes a PNG when given a path. Figures are made
without pyplot, so the user's backend is never switched: `plt.show()` keeps
working in a notebook, and saving works on a headless machine.
"""

import os

__all__ = [
    "confusion_matrix",
    "new_figure",
    "plot_confusion_matrix",
    "plot_history",
    "save_figure",
]


def new_figure(figsize):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    # Agg renders to a file without a display, whatever pyplot's backend is.
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path):
    if path is not None:
        from keras_tl._utils.io import save_atomic

        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        save_atomic(path, lambda target: fig.savefig(target, dpi=100))
    return fig


def plot_history(history, path=None, title=None):
    """Draws the loss and accuracy curves of one or more trainings.

    Args:
        history: a `keras.callbacks.History`, its `.history` dict, or a
            dict `{label: history}` to overlay several runs.
        path: optional output `.png` path (folders are created).
        title: optional figure title.

    Returns:
        A `matplotlib.figure.Figure`.

    Example:

    ```python
    fig = plot_history(model.history, "artifacts/curves.png")  # also writes the PNG
    ```
    """
    runs = history if _is_run_dict(history) else {"": history}
    fig = new_figure((10, 4))
    axes = fig.subplots(1, 2)
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
    return save_figure(fig, path)


def _is_run_dict(history):
    return isinstance(history, dict) and history and all(
        hasattr(v, "history") or isinstance(v, dict) for v in history.values()
    )


def confusion_matrix(y_true, y_pred, num_classes):
    """Counts of (true, predicted) label pairs.

    Args:
        y_true: int labels.
        y_pred: predicted int labels.
        num_classes: the matrix side.

    Returns:
        An int numpy array `(num_classes, num_classes)`; rows are true
        classes, columns predicted ones.

    Example:

    >>> confusion_matrix([0, 1, 1], [0, 1, 0], 2).tolist()
    [[1, 0], [1, 1]]
    """
    import numpy as np

    matrix = np.zeros((num_classes, num_classes), int)
    np.add.at(matrix, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return matrix


def plot_confusion_matrix(y_true, y_pred, class_names, path=None, title=None):
    """Draws a confusion matrix (rows: true class, columns: predicted).

    Args:
        y_true: int labels.
        y_pred: predicted int labels.
        class_names: names of the classes, in label order.
        path: optional output `.png` path (folders are created).
        title: optional title; defaults to the accuracy.

    Returns:
        A `matplotlib.figure.Figure`.

    Example:

    ```python
    fig = plot_confusion_matrix(y, model.predict(x).argmax(-1), names, "cm.png")
    ```
    """
    import numpy as np

    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    n = len(class_names)
    matrix = confusion_matrix(y_true, y_pred, n)
    size = max(4, 0.5 * n + 2)
    fig = new_figure((size, size))
    ax = fig.subplots()
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
    return save_figure(fig, path)
