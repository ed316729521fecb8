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
    "plot_images",
    "save_figure",
    "show_batch",
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
    if hasattr(history, "fit") and hasattr(history, "layers"):
        history = getattr(history, "history", None)
    runs = history if _is_run_dict(history) else {"": history}
    drawable = [getattr(run, "history", run) for run in runs.values()]
    if not any(isinstance(logs, dict) and any(logs.get(k) for k in (
            "loss", "accuracy", "val_loss", "val_accuracy")) for logs in drawable):
        raise ValueError(
            "No training history to draw: a model loaded from a file does not keep its "
            "history. Pass the History that fit returned, or model.history of the model a "
            "recipe returned (before saving), or the `<stem>.training.json` metrics of the "
            "CLI.")
    fig = new_figure((10, 4))
    axes = fig.subplots(1, 2)
    for label, run in runs.items():
        logs = getattr(run, "history", run) or {}
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


def plot_images(images, titles=None, path=None, columns=4, title=None):
    """Draws images in a grid, each with its title.

    Args:
        images: `(n, height, width, channels)` pixels in [0, 255] (or
            [0, 1]), 1 or 3 channels.
        titles: one string per image, or `None`.
        path: optional output `.png` path.
        columns: images per row.
        title: optional figure title.

    Returns:
        A `matplotlib.figure.Figure`.

    Example:

    ```python
    plot_images(x[:8], [str(label) for label in y[:8]], "samples.png")
    ```
    """
    import numpy as np

    images = np.asarray(images, np.float32)
    if images.ndim != 4 or not len(images):
        raise ValueError(f"images must be a non-empty (n, height, width, channels) array; "
                         f"got shape {images.shape}.")
    if images.max() > 1.0:
        images = images / 255.0
    images = np.clip(images, 0.0, 1.0)
    columns = max(1, min(int(columns), len(images)))
    rows = -(-len(images) // columns)
    fig = new_figure((2.2 * columns, 2.4 * rows))
    for index, image in enumerate(images):
        ax = fig.add_subplot(rows, columns, index + 1)
        if image.shape[-1] == 1:
            ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(image[..., :3])
        if titles is not None:
            ax.set_title(titles[index], fontsize=8)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def show_batch(data, count=16, path=None, columns=4, image_size=None):
    """Draws a batch of the data as a recipe reads it (fastai's
    `show_batch`): images after loading and resizing, with class names.

    Args:
        data: a folder with one subfolder per class, `(x, y)` arrays, a
            `tf.data.Dataset` or `keras_tl.data.ImageData`.
        count: how many images.
        path: optional output `.png` path.
        columns: images per row.
        image_size: `(height, width)` to resize a folder's images to.

    Returns:
        A `matplotlib.figure.Figure`.

    Example:

    ```python
    show_batch("leaves/train", image_size=(224, 224), path="batch.png")
    ```
    """
    from keras_tl.data import ImageData
    from keras_tl.data import as_arrays
    from keras_tl.data import as_dataset

    names = None
    if isinstance(data, (str, os.PathLike)) or (isinstance(data, tuple) and len(data) == 2):
        data = as_dataset(data, image_size=image_size, shuffle=False)
    if isinstance(data, ImageData):
        names = data.class_names
    images, labels = as_arrays(data, limit=count, split="train")
    titles = None
    if labels is not None:
        labels = labels.argmax(-1) if labels.ndim == 2 else labels
        titles = [names[int(label)] if names else str(int(label)) for label in labels]
    return plot_images(images, titles, path=path, columns=columns)
