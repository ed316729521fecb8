"""Benchmark: labels as users have them, keras-tl vs the Keras-guide head, side by side.

The digits backbone (`keras_tl.examples.pretrained.mnist_cnn`, pretrained on
5,000 MNIST digits, cut at its pooled features) stays frozen in every row.
Three tasks, each over several seeds (mean ± std), in one run:

1. **Multi-label digits** (`keras_tl.examples.datasets.load_multi_label_digits`:
   one to three digits per image, the label is the set shown; training and
   validation images drawn from 60% of scikit-learn's digits, the test
   images from the other 40%). keras-tl's `feature_extraction` (one-vs-rest
   closed-form head, per-class thresholds by validation F1) vs the Keras
   guide's head (the frozen backbone called with `training=False`, a
   `Dense(k, "sigmoid")`, binary cross-entropy, Adam 1e-3, threshold 0.5).
   Test mean average precision, macro F1 and seconds.
2. **20:1 imbalance** (scikit-learn digits, classes 0-4 with 100 training
   images each, 5-9 with 5; validation drawn in the same ratio, 20 and 1
   per class; test: every other image). keras-tl with
   `class_weight="balanced"` and without vs the Keras guide's softmax head
   with scikit-learn's `compute_class_weight("balanced")`. Test balanced
   accuracy, accuracy and seconds.
3. **The demo task with the field's habits**: `fine_tune` on 10 labelled
   digits per class with and without label smoothing 0.1, weight EMA, and
   test-time augmentation (flips and crops). Test accuracy and seconds.

    python benchmarks/labels.py [--seeds 3] [--guide-epochs 30,100]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_tl  # noqa: E402
from keras_tl.examples.datasets import few_shot_split  # noqa: E402
from keras_tl.examples.datasets import load_digits_target  # noqa: E402
from keras_tl.examples.datasets import load_multi_label_digits  # noqa: E402
from keras_tl.examples.pretrained import mnist_cnn  # noqa: E402
from keras_tl.multi_label import multi_label_scores  # noqa: E402


def backbone():
    network = mnist_cnn()  # a fresh copy from the cache
    return keras.Model(network.input, network.get_layer("avg_pool").output,
                       name="digits_backbone")


def guide_head(num_classes, activation, loss, x, y, validation, epochs, class_weight=None):
    """The Keras transfer-learning guide's recipe: frozen base called in
    inference mode, a new dense layer, Adam; trained on images."""
    base = backbone()
    base.trainable = False
    inputs = keras.Input(x.shape[1:])
    outputs = keras.layers.Dense(num_classes, activation=activation)(base(inputs, training=False))
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(1e-3), loss)
    model.fit(x, y, validation_data=validation, epochs=epochs, batch_size=32,
              class_weight=class_weight, verbose=0)
    return model


def balanced_accuracy(y, predicted):
    return float(np.mean([np.mean(predicted[y == k] == k) for k in np.unique(y)]))


def timed(make):
    keras.utils.set_random_seed(0)
    start = time.perf_counter()
    model = make()
    return model, time.perf_counter() - start


def summary(values, digits=3):
    values = np.asarray(values, np.float64)
    return f"{values.mean():.{digits}f} ± {values.std():.{digits}f}"


def multi_label_rows(seeds, epoch_budgets):
    results = {"keras-tl feature_extraction": []}
    for seed in seeds:
        x, y = load_multi_label_digits(300, "train", seed=seed)
        xv, yv = load_multi_label_digits(150, "train", seed=seed + 100)
        xt, yt = load_multi_label_digits(600, "test", seed=seed)
        x, xv, xt = (a.astype("float32") for a in (x, xv, xt))
        model, seconds = timed(lambda: keras_tl.feature_extraction(
            backbone(), (x, y), (xv, yv), seed=seed, verbose=0))
        figures = multi_label_scores(yt, model.predict(xt, verbose=0),
                                     keras_tl.get_thresholds(model))
        results["keras-tl feature_extraction"].append(
            (figures["mean_average_precision"], figures["macro_f1"], seconds))
        for epochs in epoch_budgets:
            model, seconds = timed(lambda: guide_head(
                10, "sigmoid", "binary_crossentropy", x, y, (xv, yv), epochs))
            figures = multi_label_scores(yt, model.predict(xt, verbose=0))
            results.setdefault(f"Keras-guide sigmoid head, {epochs} epochs", []).append(
                (figures["mean_average_precision"], figures["macro_f1"], seconds))
    return results


def imbalanced_split(seed):
    x, y = load_digits_target()
    rng = np.random.default_rng(seed)
    train, validation = [], []
    for k in range(10):
        index = rng.permutation(np.flatnonzero(y == k))
        many = k < 5
        train.extend(index[: 100 if many else 5])
        validation.extend(index[100 if many else 5 : (120 if many else 6)])
    test = np.setdiff1d(np.arange(len(y)), np.concatenate([train, validation]))
    x = x.astype("float32")
    return (x[train], y[train]), (x[validation], y[validation]), (x[test], y[test])


def imbalance_rows(seeds, epoch_budgets):
    from sklearn.utils.class_weight import compute_class_weight

    names = ["keras-tl feature_extraction, class_weight='balanced'",
             "keras-tl feature_extraction, no class weights",
             "Keras-guide softmax head, compute_class_weight"]
    results = {name: [] for name in names[:2]}
    for seed in seeds:
        (x, y), validation, (xt, yt) = imbalanced_split(seed)
        for name, class_weight in zip(names[:2], ("balanced", None)):
            model, seconds = timed(lambda: keras_tl.feature_extraction(
                backbone(), (x, y), validation, class_weight=class_weight, seed=seed,
                verbose=0))
            predicted = model.predict(xt, verbose=0).argmax(-1)
            results[name].append((balanced_accuracy(yt, predicted),
                                  float(np.mean(predicted == yt)), seconds))
        weights = compute_class_weight("balanced", classes=np.arange(10), y=y)
        for epochs in epoch_budgets:
            model, seconds = timed(lambda: guide_head(
                10, "softmax", "sparse_categorical_crossentropy", x, y, validation, epochs,
                class_weight=dict(enumerate(weights))))
            predicted = model.predict(xt, verbose=0).argmax(-1)
            results.setdefault(f"{names[2]}, {epochs} epochs", []).append(
                (balanced_accuracy(yt, predicted), float(np.mean(predicted == yt)), seconds))
    return results


def habit_rows(seeds, epochs):
    settings = {
        "fine_tune": ({}, False),
        "+ label_smoothing=0.1": ({"label_smoothing": 0.1}, False),
        "+ ema=True": ({"ema": True}, False),
        "+ label_smoothing=0.1, ema=True": ({"label_smoothing": 0.1, "ema": True}, False),
        "fine_tune, evaluated with tta='flip_crop'": ({}, "flip_crop"),
    }
    results = {name: [] for name in settings}
    x, y = load_digits_target()
    for seed in seeds:
        (xs, ys), (rest_x, rest_y) = few_shot_split(x, y, 10, seed=seed)
        (xv, yv), (xt, yt) = few_shot_split(rest_x, rest_y, 10, seed=seed + 1)
        xs, xv, xt = (a.astype("float32") for a in (xs, xv, xt))
        plain = None
        for name, (options, tta) in settings.items():
            if tta and plain is not None:
                model, seconds = plain
            else:
                model, seconds = timed(lambda: keras_tl.fine_tune(
                    backbone(), (xs, ys), (xv, yv), epochs=epochs, num_groups=3,
                    batch_size=16, seed=seed, keep_head_if_worse=False, verbose=0,
                    **options))
                if not options:
                    plain = (model, seconds)
            start = time.perf_counter()
            accuracy = keras_tl.evaluate(model, (xt, yt), tta=tta).accuracy
            results[name].append((accuracy, seconds + time.perf_counter() - start))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--guide-epochs", default="30,100",
                        help="epoch budgets of the Keras-guide head, comma-separated")
    parser.add_argument("--fine-tune-epochs", type=int, default=10)
    args = parser.parse_args()
    seeds = list(range(args.seeds))
    budgets = [int(e) for e in args.guide_epochs.split(",")]
    mnist_cnn()  # trained once and cached before any timing

    print(f"\nMulti-label digits (300 training, 150 validation, 600 test images; "
          f"{len(seeds)} seeds)\n")
    print("| method | test mean AP | test macro F1 | seconds |")
    print("|---|---|---|---|")
    for name, rows in multi_label_rows(seeds, budgets).items():
        ap, f1, seconds = zip(*rows)
        print(f"| {name} | {summary(ap)} | {summary(f1)} | {summary(seconds, 1)} |")

    print(f"\n20:1 imbalanced digits (100 training images for classes 0-4, 5 for 5-9; "
          f"{len(seeds)} seeds)\n")
    print("| method | test balanced accuracy | test accuracy | seconds |")
    print("|---|---|---|---|")
    for name, rows in imbalance_rows(seeds, budgets).items():
        balanced, accuracy, seconds = zip(*rows)
        print(f"| {name} | {summary(balanced)} | {summary(accuracy)} | "
              f"{summary(seconds, 1)} |")

    print(f"\nThe demo task with the field's habits (10 labelled digits per class, "
          f"fine_tune {args.fine_tune_epochs} epochs, {len(seeds)} seeds)\n")
    print("| setting | test accuracy | seconds |")
    print("|---|---|---|")
    for name, rows in habit_rows(seeds, args.fine_tune_epochs).items():
        accuracy, seconds = zip(*rows)
        print(f"| {name} | {summary(accuracy)} | {summary(seconds, 1)} |")


if __name__ == "__main__":
    main()
