"""Domain adaptation on a real shift: MNIST-5k -> scikit-learn digits.

Source: the 5,000 MNIST digits (labelled). Target: scikit-learn's 1,797
handwritten digits in MNIST geometry (other writers, 8x8 scans upsampled):
their images are used without labels for adaptation, and their labels only
to measure accuracy. For each seed, a small BatchNorm CNN is trained on the
source (`keras_tl.examples.pretrained.mnist_cnn`), then, side by side from copies of
it:

- source only: the source model as is;
- source only + fine-tuning: `--epochs` more epochs on the source alone
  (the control for the extra training the next two get);
- AdaBN: `adapt_domain(method="adabn")` (no training, no target labels);
- CORAL and DANN: `adapt_domain(method=...)`, `--epochs` epochs from the
  source model, with and without the final BatchNorm recalibration.

Run: `python benchmarks/adapt.py` (about 5 minutes on 2 CPU cores).
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_tl.examples.datasets import load_digits_target  # noqa: E402
from keras_tl.examples.datasets import load_mnist_5k  # noqa: E402
from keras_tl.examples.pretrained import mnist_cnn  # noqa: E402
from keras_tl.recipes import adapt_domain  # noqa: E402


def copy_of(model):
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def accuracy(model, x, y):
    probs = model.predict(x.astype("float32"), batch_size=256, verbose=0)
    return float((probs.argmax(-1) == y).mean())


def fine_tune_on_source(model, x, y, epochs, seed):
    keras.utils.set_random_seed(seed)
    steps = epochs * int(np.ceil(len(x) / 64))
    model.compile(
        optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(1e-3, steps)),
        loss="sparse_categorical_crossentropy",
    )
    order = np.random.default_rng(seed).permutation(len(x))
    model.fit(x[order].astype("float32"), y[order], batch_size=64, epochs=epochs, verbose=0)
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()

    x_source, y_source = load_mnist_5k()
    x_target, y_target = load_digits_target()
    rows = {}

    def record(name, seed, value, seconds):
        rows.setdefault(name, []).append(value)
        print(f"  seed {seed} {name:<32} target accuracy {value:.4f} ({seconds:.1f} s)")

    for seed in range(args.seeds):
        source_model = mnist_cnn(epochs=10, seed=seed)
        print(f"seed {seed}: source accuracy on MNIST-5k "
              f"{accuracy(source_model, x_source, y_source):.4f}")
        record("source only", seed, accuracy(source_model, x_target, y_target), 0.0)

        start = time.perf_counter()
        tuned = fine_tune_on_source(copy_of(source_model), x_source, y_source, args.epochs, seed)
        record("source only + fine-tuning", seed, accuracy(tuned, x_target, y_target),
               time.perf_counter() - start)

        start = time.perf_counter()
        model = adapt_domain(copy_of(source_model), None, x_target, method="adabn", verbose=0)
        record("AdaBN", seed, accuracy(model, x_target, y_target), time.perf_counter() - start)

        for method in ("coral", "dann"):
            for recalibrate in (False, True):
                keras.utils.set_random_seed(seed)
                start = time.perf_counter()
                model = adapt_domain(
                    copy_of(source_model), (x_source, y_source), x_target, method=method,
                    epochs=args.epochs, recalibrate_batchnorm=recalibrate, seed=seed,
                    verbose=0,
                )
                name = method.upper() + (" + AdaBN" if recalibrate else "")
                record(name, seed, accuracy(model, x_target, y_target),
                       time.perf_counter() - start)

    baseline = np.asarray(rows["source only"])
    print(f"\nTarget accuracy (scikit-learn digits, {len(y_target)} images, no target "
          f"labels used), {args.seeds} seeds")
    print("| method | mean | std | vs source only (points) | per seed |\n|---|---|---|---|---|")
    for name, values in rows.items():
        values = np.asarray(values)
        gain = 100 * (values - baseline).mean()
        per_seed = ", ".join(f"{v:.4f}" for v in values)
        print(f"| {name} | {values.mean():.4f} | {values.std():.4f} | {gain:+.1f} | {per_seed} |")


if __name__ == "__main__":
    main()
