"""Image input: folders, numpy arrays or `tf.data` become batched datasets.

Every recipe accepts the same three forms of `train_data`:

- a folder path with one subfolder per class (`root/cat/001.jpg`, ...);
- a tuple `(x, y)` of numpy arrays (images in [0, 255], integer labels);
- a `tf.data.Dataset` of `(image, label)` pairs, batched or not.
"""

import dataclasses
import os
import warnings

import numpy as np
import tensorflow as tf

from keras_tl._utils.validation import check_finite
from keras_tl._utils.validation import check_pixel_range
from keras_tl._utils.validation import check_positive_int
from keras_tl._utils.validation import check_same_length
from keras_tl._utils.validation import pair_spec
from keras_tl.multi_label import encode_labels
from keras_tl.multi_label import is_multi_label

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageData",
    "as_arrays",
    "as_dataset",
    "decodes_with_pil",
    "is_image_csv",
    "is_text_data",
    "load_image",
    "read_image_csv",
    "scan_image_folder",
    "to_arrays",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")

# Decoded, resized images of a folder split are kept in memory after the
# first epoch when they take at most this many bytes (float32 pixels), so
# later epochs skip reading and decoding the files.
_CACHE_BYTES = 2 * 1024**3


@dataclasses.dataclass
class ImageData:
    """Batched, prefetched datasets plus what the model needs to know.

    Args:
        train: `tf.data.Dataset` of `(images, labels)` batches.
        validation: the held-out split, or `None`.
        class_names: list of class names (folder names, or `"0"`, `"1"`, ...).
        image_shape: `(height, width, channels)` of one image.
        train_arrays: `(x, y)` of the training split when the data came as
            arrays (in training order, unshuffled), else `None`: lets the
            feature cache run `predict` on arrays directly.
        multi_label: the labels are 0/1 vectors, one column per class
            (several classes per example; see `keras_tl.multi_label`).

    Example:

    ```python
    data = as_dataset((x, y), validation_split=0.2)
    data.num_classes, data.image_shape  # -> (10, (28, 28, 1))
    ```
    """

    train: tf.data.Dataset
    validation: tf.data.Dataset = None
    class_names: list = None
    image_shape: tuple = None
    train_arrays: tuple = None
    multi_label: bool = False

    @property
    def num_classes(self):
        return len(self.class_names)


def _check_arrays(x, y, num_classes, class_names=None):
    if y is None or isinstance(y, (str, bytes)) or not hasattr(y, "__len__"):
        raise TypeError(
            f"Labels y must be a sequence or array of class indices or names, one per "
            f"image; got {type(y).__name__}."
        )
    x = np.asarray(x)
    y = y if is_multi_label(y) else np.asarray(y)
    check_same_length(len(x), len(y), "image", "x and y have different lengths: ")
    if len(x) == 0:
        raise ValueError("The data is empty: x has no images.")
    if x.dtype.kind not in "uif":
        raise ValueError(
            f"Images must be numbers (uint8 or float pixels); got dtype {x.dtype}."
        )
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(
            f"Images must have shape (n, height, width, channels); got {x.shape}."
        )
    if 0 in x.shape[1:]:
        raise ValueError(
            f"Images must have a height, width and channels of at least 1; got shape "
            f"{x.shape}."
        )
    check_finite(x, "x", "image")
    check_pixel_range(x, "images x")
    y, class_names, multi_label = encode_labels(y, class_names, "labels y")
    if multi_label:
        if num_classes is not None and num_classes != y.shape[1]:
            raise ValueError(
                f"num_classes={num_classes}, and the multi-label labels y have "
                f"{y.shape[1]} classes (columns)."
            )
        return x, y, y.shape[1], class_names
    if num_classes is None and class_names is not None:
        num_classes = len(class_names)
    if num_classes is None:
        num_classes = int(y.max()) + 1
        present = len(np.unique(y))
        if num_classes > 1000 and num_classes > 10 * present:
            raise ValueError(
                f"The largest label is {num_classes - 1} but only {present} distinct labels "
                "occur: labels must be class indices 0 .. num_classes-1, not ids. Map them "
                "to indices, or pass them as class names (strings)."
            )
    bad = (y < 0) | (y >= num_classes)
    if bad.any():
        raise ValueError(
            f"Labels out of range: {int(bad.sum())} labels are outside "
            f"[0, {num_classes - 1}] (e.g. {y[bad][:3].tolist()}). Labels must be "
            "0 .. num_classes-1."
        )
    if num_classes < 2:
        raise ValueError("Classification needs at least two classes; y has one.")
    return x, y.astype(np.int32), num_classes, class_names


# The format each extension promises, as PIL names it: a file whose bytes
# are another format (a TIFF named `.png`) is skipped and named, since
# TensorFlow's decoder reads by content and fails on some mid-run.
_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".gif": "GIF"}
# What TensorFlow's BMP decoder reads as PIL shows it: 24- and 32-bit
# pixels. Palette (8-bit and less), 1-bit and grayscale BMPs would come out
# as palette indices or fail, so those are decoded by PIL.
_TF_BMP_MODES = ("RGB", "RGBA")


def scan_image_folder(directory, with_decoders=False):
    """Lists the images of a one-subfolder-per-class directory.

    Hidden folders and files (`.ipynb_checkpoints/`, `.DS_Store`) are
    ignored at any depth. Files that are not images, cannot be decoded, or
    whose bytes are not their extension's format are skipped with a warning
    naming them. Every image listed is read as PIL shows it: the few kinds
    TensorFlow's decoder would read otherwise (palette and 1-bit BMPs) are
    marked for decoding with PIL.

    Args:
        directory: path of the root folder.
        with_decoders: also return, per image, whether it is decoded with
            PIL rather than TensorFlow.

    Returns:
        `(paths, labels, class_names)`, and the boolean array of PIL
        decoding last with `with_decoders=True`.

    Raises:
        ValueError: fewer than two class folders, or a class with no image.

    Example:

    ```python
    paths, labels, names = scan_image_folder("beans/train")
    names  # -> ['angular_leaf_spot', 'bean_rust', 'healthy']
    ```
    """
    from PIL import Image

    directory = os.fspath(directory)
    if os.path.isfile(directory):
        raise NotADirectoryError(
            f"{directory!r} is a file, not a folder. Pass a folder with one subfolder "
            "of images per class (keras_tl.predict takes single images)."
        )
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"Image folder {directory!r} does not exist. Pass a folder with one "
            "subfolder of images per class."
        )
    class_names = sorted(
        d for d in os.listdir(directory)
        if os.path.isdir(os.path.join(directory, d)) and not d.startswith(".")
    )
    if len(class_names) < 2:
        raise ValueError(
            f"{directory!r} has {len(class_names)} class subfolder(s); a "
            "classifier needs at least two (one subfolder of images per class)."
        )
    paths, labels, via_pil, skipped = [], [], [], []
    for label, name in enumerate(class_names):
        class_dir = os.path.join(directory, name)
        found = 0
        for root, folders, files in os.walk(class_dir):
            folders[:] = sorted(f for f in folders if not f.startswith("."))
            for file in sorted(files):
                if file.startswith("."):
                    continue
                path = os.path.join(root, file)
                extension = os.path.splitext(file)[1].lower()
                if extension not in _FORMATS:
                    skipped.append(path)
                    continue
                try:
                    with Image.open(path) as image:
                        image.verify()
                    # verify() misses truncated JPEGs: decoding does not. A
                    # reduced-scale draft reads every byte at a fraction of
                    # the cost of a full decode.
                    with Image.open(path) as image:
                        if image.format != _FORMATS[extension]:
                            raise ValueError(f"{image.format} bytes in a {extension} file")
                        pil = _needs_pil(image)
                        image.draft(image.mode, (max(1, image.width // 8),
                                                 max(1, image.height // 8)))
                        image.load()
                except Exception:
                    skipped.append(path)
                    continue
                paths.append(path)
                labels.append(label)
                via_pil.append(pil)
                found += 1
        if found == 0:
            raise ValueError(
                f"Class folder {class_dir!r} has no readable image. Add images or "
                "remove the folder."
            )
    if skipped:
        warnings.warn(
            f"Skipped {len(skipped)} file(s) that are not readable images of the "
            "format their extension names: "
            + ", ".join(skipped[:10])
            + (" ..." if len(skipped) > 10 else ""),
            stacklevel=2,
        )
    result = (paths, np.asarray(labels, np.int32), class_names)
    return result + (np.asarray(via_pil, bool),) if with_decoders else result


def read_image_csv(path, image_column="image", label_column="label", label_delimiter=None):
    """Reads image files and their labels from a CSV file with a header row.

    The form Kaggle and Model Maker data sets come in, and the one a
    multi-label data set needs (a folder per class cannot give an image
    several classes): one row per image, its file (relative to the CSV's
    folder, or absolute) and its label, or, with `label_delimiter`, its
    class names separated by it (`"rust;spot"`; an empty cell: no class).

    Args:
        path: the CSV file (UTF-8).
        image_column: the column of the image files.
        label_column: the column of the labels.
        label_delimiter: the separator of several class names in one cell.

    Returns:
        `(paths, labels)`: the image files (absolute paths) and the labels
        as read (lists of names with `label_delimiter`).

    Raises:
        FileNotFoundError: the CSV, or an image file it names, is missing
            (all missing files are named).
        ValueError: a named column is missing.

    Example:

    ```python
    paths, labels = read_image_csv("planet/train.csv", "image_name", "tags", " ")
    ```
    """
    from keras_tl.text.data import read_text_csv

    files, labels = read_text_csv(path, image_column, label_column)
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    paths = [f if os.path.isabs(f) else os.path.join(folder, f) for f in files]
    missing = [f for f, p in zip(files, paths) if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(
            f"CSV file {os.fspath(path)!r} names {len(missing)} image file(s) that do not "
            f"exist (relative to {folder!r}): {missing[:5]}. Fix the paths or the "
            f"{image_column!r} column."
        )
    if label_delimiter:
        labels = [[part.strip() for part in label.split(label_delimiter) if part.strip()]
                  for label in labels]
    return paths, labels


def is_image_csv(path, image_column="image"):
    """Whether `path` is a CSV file whose header has `image_column`.

    Args:
        path: a path.
        image_column: the column that names image files.

    Example:

    ```python
    is_image_csv("planet/train.csv", "image_name")  # -> True
    ```
    """
    import csv

    path = os.fspath(path)
    if not path.lower().endswith((".csv", ".tsv")) or not os.path.isfile(path):
        return False
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as file:
        header = next(csv.reader(file), [])
    return image_column in header


def decodes_with_pil(path):
    """Whether `load_image` reads the image file at `path` with PIL (palette,
    1-bit and grayscale BMPs), as `scan_image_folder` marks it.

    Args:
        path: an image file.

    Returns:
        A bool.

    Example:

    ```python
    load_image(path, (224, 224), 3, via_pil=decodes_with_pil(path))
    ```
    """
    from PIL import Image

    with Image.open(path) as image:
        return _needs_pil(image)


def _needs_pil(image):
    return image.format == "BMP" and image.mode not in _TF_BMP_MODES


def load_image(path, image_size, channels, via_pil=False):
    """Reads and resizes one image file inside a `tf.data` pipeline.

    Args:
        path: a string tensor.
        image_size: `(height, width)`.
        channels: 1 or 3.
        via_pil: decode with PIL (as `scan_image_folder` marks palette and
            1-bit BMPs) rather than TensorFlow; a boolean or boolean tensor.

    Returns:
        A float32 `(height, width, channels)` tensor in [0, 255].

    Example:

    ```python
    image = load_image(tf.constant("leaves/rust/1.png"), (224, 224), 3)
    ```
    """
    def with_tensorflow():
        raw = tf.io.read_file(path)
        return tf.io.decode_image(raw, channels=channels, expand_animations=False)

    def with_pil():
        image = tf.numpy_function(
            lambda p: _pil_pixels(p, channels), [path], tf.uint8, stateful=False)
        image.set_shape((None, None, channels))
        return image

    if isinstance(via_pil, bool):
        image = with_pil() if via_pil else with_tensorflow()
    else:
        image = tf.cond(via_pil, with_pil, with_tensorflow)
    image = tf.image.resize(image, image_size)
    image.set_shape((*image_size, channels))
    return image


def _pil_pixels(path, channels):
    from PIL import Image

    if isinstance(path, np.ndarray):  # eager calls pass a 0-d array
        path = path.item()
    with Image.open(path.decode() if isinstance(path, bytes) else path) as image:
        return np.asarray(image.convert("L" if channels == 1 else "RGB"), np.uint8).reshape(
            image.height, image.width, channels)


def _split_mask(n, validation_split, seed):
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    n_val = int(round(n * validation_split))
    mask = np.zeros(n, bool)
    mask[order[:n_val]] = True
    return mask


def as_dataset(
    data,
    *,
    batch_size=32,
    validation_split=None,
    validation_data=None,
    image_size=None,
    num_classes=None,
    class_names=None,
    channels=3,
    shuffle=True,
    seed=0,
    cache=True,
    text_column="text",
    label_column="label",
    image_column="image",
    label_delimiter=None,
):
    """Turns a folder, a CSV, `(x, y)` arrays or a `tf.data.Dataset` into `ImageData`.

    Text is one more kind of data: `(texts, labels)` with strings, a CSV
    file, a `tf.data.Dataset` of strings or a `TextData` go to
    `keras_tl.text.as_text_dataset` and come back as a `TextData`.

    Image files are read and decoded in parallel (`tf.data.AUTOTUNE`),
    kept in memory after the first epoch when a split's decoded images take
    at most 2 GiB (and `cache` is on), and every dataset prefetches its next
    batches while the model trains.

    Labels are class indices or names, one per example, or, for a
    multi-label task (several classes per example), a 0/1 matrix
    `(n, classes)`, lists of names per example, or a CSV cell of names
    joined by `label_delimiter` (see `keras_tl.multi_label`).

    Args:
        data: a folder path (one subfolder per class), a CSV file with an
            `image_column` of image files and a `label_column` (see
            `read_image_csv`), a tuple `(x, y)` of numpy arrays, or a
            `tf.data.Dataset` of `(image, label)` (batched or not).
        batch_size: batch size of the returned datasets.
        validation_split: fraction held out for validation, drawn with
            `seed` (the same images every run). From a `tf.data.Dataset`,
            each example goes to validation with this probability; the
            examples are counted first (one pass over the data when its
            length is unknown) so that a split leaving either side empty
            is refused.
        validation_data: a separate validation set in any of the same forms;
            excludes `validation_split`.
        image_size: `(height, width)`; required for folders of images of
            mixed sizes, optional (resize) otherwise.
        num_classes: number of classes; inferred from the labels otherwise.
        class_names: names of the classes; folder names for folders.
        channels: channels decoded from image files (3 = RGB).
        shuffle: shuffle the training split every epoch.
        seed: seed of the split and the shuffle.
        cache: keep a folder's decoded images in memory after the first
            epoch (when they fit in 2 GiB). Turn it off for data read once,
            such as the one forward pass of cached feature extraction.
        text_column: for a CSV of texts, the column of the texts.
        label_column: for a CSV, the column of the labels.
        image_column: for a CSV of images, the column of the image files.
        label_delimiter: for a CSV, the separator of several class names in
            one label cell (a multi-label task); `None`: one class per cell.

    Returns:
        An `ImageData` (a `keras_tl.text.TextData` for text).

    Raises:
        ValueError: arrays of different lengths, labels out of range, fewer
            than two classes, an empty class folder, a `validation_split`
            that leaves no example for training or for validation.

    Example:

    ```python
    data = as_dataset("leaves/", image_size=(224, 224), validation_split=0.2)
    data.class_names  # -> ['healthy', 'rust']
    ```
    """
    image_csv = isinstance(data, (str, os.PathLike)) and is_image_csv(data, image_column)
    if not image_csv and is_text_data(data):
        from keras_tl.text import as_text_dataset

        return as_text_dataset(
            data, text_column=text_column, label_column=label_column, batch_size=batch_size,
            validation_split=validation_split, validation_data=validation_data,
            num_classes=num_classes, class_names=class_names, shuffle=shuffle, seed=seed,
            label_delimiter=label_delimiter,
        )
    if validation_split is not None and validation_data is not None:
        raise ValueError("Pass either validation_split or validation_data, not both.")
    if validation_split is not None and not 0.0 < validation_split < 1.0:
        raise ValueError(f"validation_split must be in (0, 1); got {validation_split}.")
    batch_size = check_positive_int(batch_size, "batch_size")
    if image_size is not None:
        image_size = _check_image_size(image_size)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB); got {channels!r}.")

    if isinstance(data, ImageData):
        return data
    if isinstance(data, (str, os.PathLike)):
        if image_csv:
            paths, labels = read_image_csv(data, image_column, label_column, label_delimiter)
            y, class_names, multi_label = encode_labels(
                labels, class_names, f"CSV file {os.fspath(data)!r}")
            if class_names is None:
                class_names = [str(i) for i in range(y.shape[1] if multi_label
                                                        else int(y.max()) + 1)]
            y = y if multi_label else y.astype(np.int32)
            via_pil = np.asarray([decodes_with_pil(p) for p in paths], bool)
        else:
            paths, y, names, via_pil = scan_image_folder(data, with_decoders=True)
            if class_names is not None and list(class_names) != names:
                raise ValueError(
                    f"class_names {list(class_names)} do not match the class folders of "
                    f"{os.fspath(data)!r}, {names} (sorted). Leave class_names out to use "
                    "the folder names, or rename the folders."
                )
            class_names = names
        if image_size is None:
            image_size = _common_size(paths)
        num_classes = len(class_names)
        x_source = np.asarray(paths)

        def make(indices):
            ds = tf.data.Dataset.from_tensor_slices(
                (x_source[indices], y[indices], via_pil[indices]))
            if via_pil[indices].any():
                def load(path, label, pil):
                    return load_image(path, image_size, channels, pil), label
            else:
                # One decoder for the whole split: no per-image branch.
                def load(path, label, pil):
                    return load_image(path, image_size, channels), label
            ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)
            # Before the shuffle, so each epoch reshuffles the cached images.
            decoded_bytes = len(indices) * 4 * int(np.prod(image_size)) * channels
            if cache and decoded_bytes <= _CACHE_BYTES:
                ds = ds.cache()
            return ds

        image_shape = (*image_size, channels)
        n = len(paths)
        x_arrays = False
    elif isinstance(data, tuple) and len(data) == 2:
        x, y, num_classes, class_names = _check_arrays(
            data[0], data[1], num_classes, class_names
        )
        if image_size is not None and tuple(x.shape[1:3]) != image_size:
            x = tf.image.resize(x.astype(np.float32), image_size).numpy()
        image_shape = tuple(x.shape[1:])

        def make(indices):
            return tf.data.Dataset.from_tensor_slices((x[indices], y[indices]))

        n = len(x)
        x_arrays = True
    elif isinstance(data, tf.data.Dataset):
        return _from_tf_dataset(
            data, batch_size, validation_split, validation_data, image_size,
            num_classes, class_names, shuffle, seed,
        )
    else:
        raise TypeError(
            "data must be a folder path, a tuple (x, y) of arrays or a "
            f"tf.data.Dataset of (image, label); got {type(data).__name__}."
        )

    indices = np.arange(n)
    val_ds = None
    if validation_split:
        mask = _split_mask(n, validation_split, seed)
        if not 0 < mask.sum() < n:
            raise ValueError(
                f"validation_split={validation_split} of {n} examples leaves "
                f"{int(mask.sum())} for validation and {n - int(mask.sum())} for "
                "training; both need at least one. Choose a split between "
                f"{1 / n:.3g} and {1 - 1 / n:.3g}, or pass validation_data."
            )
        val_ds = _batch(make(indices[mask]), batch_size, False, seed)
        indices = indices[~mask]
    elif validation_data is not None:
        val_ds = _validation_dataset(
            validation_data, batch_size, image_shape, num_classes, class_names, channels,
            image_column, label_column, label_delimiter)
    train_ds = _batch(make(indices), batch_size, shuffle, seed, len(indices))
    train_arrays = (x[indices], y[indices]) if x_arrays else None
    multi_label = np.ndim(y) == 2
    if class_names is None:
        class_names = [str(i) for i in range(num_classes)]
    elif len(class_names) != num_classes:
        raise ValueError(
            f"{len(class_names)} class_names given for {num_classes} classes."
        )
    return ImageData(train_ds, val_ds, list(class_names), tuple(image_shape), train_arrays,
                     multi_label)


def _check_image_size(image_size):
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    try:
        size = tuple(image_size)
    except TypeError:
        size = ()
    if len(size) != 2 or not all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1 for s in size):
        raise ValueError(
            f"image_size must be (height, width) in pixels, both >= 1 (or one number for a "
            f"square); got {image_size!r}."
        )
    return tuple(int(s) for s in size)


def is_text_data(data):
    """Whether `data` holds texts: a `TextData`, a CSV file, `(texts,
    labels)` whose texts are strings, or a `tf.data.Dataset` of strings.

    Args:
        data: what a recipe or `as_dataset` was given.

    Returns:
        A bool.

    Example:

    >>> is_text_data((["great", "awful"], [1, 0])), is_text_data("leaves/")
    (True, False)
    """
    if type(data).__name__ == "TextData":
        return True
    if isinstance(data, (str, os.PathLike)):
        return os.fspath(data).lower().endswith((".csv", ".tsv")) and not os.path.isdir(data)
    if isinstance(data, tuple) and len(data) == 2:
        texts = data[0]
        if isinstance(texts, (list, tuple)) and texts:
            return isinstance(texts[0], str)
        if isinstance(texts, np.ndarray) and texts.ndim == 1:
            return texts.dtype.kind in "US" or (texts.dtype == object and texts.size > 0
                                               and isinstance(texts.flat[0], str))
        return False
    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        first = spec[0] if isinstance(spec, tuple) else spec
        return getattr(first, "dtype", None) == tf.string
    return False


def _validation_dataset(data, batch_size, image_shape, num_classes, class_names, channels,
                        image_column="image", label_column="label", label_delimiter=None):
    """Validation data labelled with the training classes' indices: a
    validation folder's subfolders, and string labels, are matched to the
    training classes by name (a missing class is fine; an unknown one is an
    error that names it)."""
    if isinstance(data, (str, os.PathLike)) and is_image_csv(data, image_column):
        return as_dataset(
            data, batch_size=batch_size, image_size=image_shape[:2], class_names=class_names,
            shuffle=False, channels=channels, image_column=image_column,
            label_column=label_column, label_delimiter=label_delimiter,
        ).train
    if isinstance(data, (str, os.PathLike)) and class_names is not None:
        paths, labels, names, via_pil = scan_image_folder(data, with_decoders=True)
        unknown = [name for name in names if name not in class_names]
        if unknown:
            raise ValueError(
                f"The validation folder {os.fspath(data)!r} has class folder(s) {unknown} "
                f"that the training data does not have ({list(class_names)}). Rename or "
                "remove them."
            )
        index = np.asarray([list(class_names).index(name) for name in names], np.int32)
        paths = np.asarray(paths)
        ds = tf.data.Dataset.from_tensor_slices((paths, index[labels], via_pil))
        size = tuple(image_shape[:2])
        ds = ds.map(lambda p, l, pil: (load_image(p, size, channels, pil), l),
                    num_parallel_calls=tf.data.AUTOTUNE)
        return _batch(ds, batch_size, False, None)
    named = class_names if class_names is not None and list(class_names) != [
        str(i) for i in range(num_classes)] else None
    return as_dataset(
        data, batch_size=batch_size, image_size=image_shape[:2],
        num_classes=num_classes, class_names=named if not isinstance(
            data, (str, os.PathLike)) else None,
        shuffle=False, channels=channels,
    ).train


def _batch(ds, batch_size, shuffle, seed, buffer=None):
    if shuffle:
        ds = ds.shuffle(buffer or 10_000, seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _common_size(paths):
    from PIL import Image

    sizes = set()
    for path in paths[:2000]:
        with Image.open(path) as image:
            sizes.add(image.size[::-1])
        if len(sizes) > 1:
            raise ValueError(
                "The images have different sizes (e.g. "
                f"{sorted(sizes)[:2]}); pass image_size=(height, width)."
            )
    return sizes.pop()


def _from_tf_dataset(
    data, batch_size, validation_split, validation_data, image_size,
    num_classes, class_names, shuffle, seed,
):
    spec = pair_spec(data, "(image, label)")
    if len(spec[0].shape) == 4:
        data = data.unbatch()
        spec = data.element_spec
    if image_size is not None:
        data = data.map(
            lambda x, y: (tf.image.resize(x, image_size), y),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        spec = data.element_spec
    num_examples = None
    label_shape = spec[1].shape
    multi_label = len(label_shape) == 1 and label_shape[0] not in (None, 1)
    if multi_label:
        # 0/1 vectors, one column per class: checked where they are read.
        if num_classes is not None and num_classes != label_shape[0]:
            raise ValueError(
                f"num_classes={num_classes}, and the dataset's multi-label labels have "
                f"{label_shape[0]} columns."
            )
        num_classes = int(label_shape[0])
        data = data.map(lambda x, y: (x, tf.cast(y, tf.float32)))
    elif num_classes is None:
        if class_names is not None:
            num_classes = len(class_names)
        else:
            raw = [np.asarray(l) for _, l in data.as_numpy_iterator()]
            if not raw:
                raise ValueError("The tf.data.Dataset is empty.")
            raw = np.concatenate([r.reshape(-1) for r in raw])
            if raw.dtype.kind not in "iub" and not (
                    raw.dtype.kind == "f" and np.all(np.isfinite(raw)) and np.all(raw % 1 == 0)):
                raise ValueError(
                    "The tf.data.Dataset's labels must be integer class indices; got "
                    f"{raw.dtype} values such as {raw[:3].tolist()}. Map names or one-hot "
                    "labels to indices (e.g. with a StringLookup or argmax) first."
                )
            labels = raw.astype(np.int64)
            num_examples = labels.size
            num_classes = int(labels.max()) + 1
            if labels.min() < 0:
                raise ValueError("Labels out of range: negative labels found.")
    val_ds = None
    if validation_split:
        # Each example is drawn into validation by its position alone, so the
        # split is the same every pass without holding the data in memory.
        def in_validation(index):
            draw = tf.random.stateless_uniform([], seed=[seed, tf.cast(index, tf.int32)])
            return draw < validation_split

        # Named functions, not lambdas: AutoGraph reads their source, and two
        # lambdas on one line make it print a notice that it cannot.
        def is_val(index, element):
            return in_validation(index)

        def is_train(index, element):
            return tf.logical_not(in_validation(index))

        def drop_index(index, element):
            return element

        _check_split_sizes(data, validation_split, num_examples, in_validation)
        indexed = data.enumerate()
        val_ds = _batch(indexed.filter(is_val).map(drop_index), batch_size, False, seed)
        data = indexed.filter(is_train).map(drop_index)
    elif validation_data is not None:
        val_ds = as_dataset(
            validation_data, batch_size=batch_size, num_classes=num_classes,
            shuffle=False,
        ).train
    train_ds = _batch(data, batch_size, shuffle, seed)
    class_names = class_names or [str(i) for i in range(num_classes)]
    return ImageData(train_ds, val_ds, list(class_names), tuple(spec[0].shape),
                     multi_label=multi_label)


def _check_split_sizes(data, validation_split, num_examples, in_validation):
    """Raises `ValueError` when the split leaves either side empty.

    The examples are counted with one pass over `data` unless their number is
    known (from its cardinality or an earlier pass); the draws themselves
    depend on the positions only, so they are counted without the data.
    """
    if num_examples is None:
        num_examples = int(data.cardinality())
        if num_examples < 0:
            num_examples = int(data.reduce(np.int64(0), lambda count, _: count + 1))
    if num_examples == 0:
        raise ValueError("The tf.data.Dataset is empty.")
    num_val = int(
        tf.data.Dataset.range(num_examples)
        .map(lambda index: tf.cast(in_validation(index), tf.int64))
        .reduce(np.int64(0), tf.add)
    )
    if not 0 < num_val < num_examples:
        raise ValueError(
            f"validation_split={validation_split} of {num_examples} examples leaves "
            f"{num_val} for validation and {num_examples - num_val} for training; "
            "both need at least one. Each example of a tf.data.Dataset goes to "
            "validation with that probability: choose a fraction further from 0 "
            "and 1, or pass validation_data."
        )


def as_arrays(data, limit=None, seed=None, image_size=None, channels=None,
              split="validation", batched=None, item="sample"):
    """`(inputs, labels or None)` as numpy arrays, from any form of data
    keras-tl accepts: the one boundary from data to arrays.

    Arrays, `(x, y)` tuples, dicts (or tuples) of arrays for models with
    several inputs, `tf.data.Dataset`s (batched or not, with or without
    labels), `ImageData` (its `split`, else the training set) and image
    folders (read with `as_dataset`, in file order).

    Args:
        data: the data.
        limit: at most this many examples: the first ones, or a random draw
            (in the data's order) when `seed` is given.
        seed: seed of the random draw.
        image_size: `(height, width)` to resize a folder's images to.
        channels: channels to decode a folder's images with.
        split: `"validation"` or `"train"`, for `ImageData`.
        batched: whether a `tf.data.Dataset` yields batches; default: read
            from its element spec.
        item: what one input is (`"image"`, ...), for messages.

    Returns:
        `(inputs, labels)`; `labels` is `None` for unlabelled data. Labels
        of shape `(n, 1)` become `(n,)`; others (one-hot) keep their shape.

    Raises:
        ValueError: the data is empty, or inputs and labels differ in length.
        TypeError: a form of data keras-tl does not read.

    Example:

    >>> x, y = as_arrays((np.zeros((4, 8, 8, 3)), [0, 1, 0, 1]), limit=2)
    >>> x.shape, y.tolist()
    ((2, 8, 8, 3), [0, 1])
    """
    import keras

    from keras_tl._utils.validation import dataset_arrays

    if isinstance(data, (str, os.PathLike)):
        data = as_dataset(data, image_size=image_size, shuffle=False,
                          **({} if channels is None else {"channels": channels}))
    if isinstance(data, ImageData):
        data = (split == "validation" and data.validation) or data.train
    labels = None
    if isinstance(data, tf.data.Dataset):
        data = dataset_arrays(data, limit if seed is None else None, batched=batched)
    if isinstance(data, tuple) and len(data) == 2:
        data, labels = data
    try:
        if isinstance(data, (dict, tuple)):
            data = keras.tree.map_structure(np.asarray, data)
            n = len(keras.tree.flatten(data)[0])
        elif isinstance(data, (np.ndarray, list)) or hasattr(data, "__array__"):
            data = np.asarray(data)
            n = len(data)
        else:
            raise TypeError(
                "Data must be an array, a pair (x, y), a dict of arrays, a "
                f"tf.data.Dataset, keras_tl ImageData or an image folder; got "
                f"{type(data).__name__}."
            )
    except ValueError as error:
        raise ValueError(
            f"The inputs cannot form one array ({error}): every example must have the "
            "same shape."
        ) from None
    if n == 0:
        raise ValueError("The data is empty.")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        check_same_length(n, len(labels), item)
    if limit is not None and n > limit:
        if seed is None:
            index = np.arange(limit)
        else:
            index = np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))
        data = keras.tree.map_structure(lambda v: v[index], data)
        labels = None if labels is None else labels[index]
    return data, labels


def to_arrays(dataset, limit=None):
    """Collects a (batched or unbatched) `(image, label)` dataset into arrays:
    `as_arrays` for a labelled dataset.

    Args:
        dataset: `tf.data.Dataset` of `(images, labels)`.
        limit: stop after this many examples.

    Returns:
        `(x, y)` numpy arrays.

    Example:

    ```python
    x_val, y_val = to_arrays(as_dataset("leaves/", validation_split=0.2).validation)
    ```
    """
    x, y = as_arrays(dataset, limit=limit)
    if y is None:
        raise ValueError("The dataset has no labels: it must yield (images, labels) pairs.")
    return x, y
