"""Does the `medium` augmentation preset help at 10 labels per class?

Task: scikit-learn's handwritten digits in MNIST geometry, `--labels`
labelled images per class (drawn per seed with `few_shot_split`), the rest
for testing. Side by side for each seed, with and without
`keras_tl.augment.Augmentation("medium", flip=None)` (digits must not be
mirrored):

- from scratch: the small BatchNorm CNN trained on the few labels, the
  augmentation layer inside the model (active only in `fit`);
- feature extraction on the CNN pretrained on MNIST-5k: the recipe's
  cached closed-form head (no augmentation), the recipe in the training
  loop with an identity layer (the in-loop control: same head training,
  no augmentation) and with `augmentation=`, and with `augmented_copies=`
  (the cached fast path on augmented copies).

Run: `python benchmarks/augment.py` (about 3 minutes on 2 CPU cores).
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_tl.augment import Augmentation  # noqa: E402
from keras_tl.backbones import build_small_cnn  # noqa: E402
from keras_tl.examples.datasets import few_shot_split  # noqa: E402
from keras_tl.examples.datasets import load_digits_target  # noqa: E402
from keras_tl.examples.pretrained import mnist_cnn  # noqa: E402
from keras_tl.recipes import feature_extraction  # noqa: E402


def accuracy(model, x, y):
    probs = model.predict(x.astype("float32"), batch_size=256, verbose=0)
    return float((probs.argmax(-1) == y).mean())


def train_from_scratch(x, y, augmentation, seed, steps=400, batch_size=16):
    keras.utils.set_random_seed(seed)
    classifier = build_small_cnn((28, 28, 1), 10)
    inputs = keras.Input((28, 28, 1))
    x_in = augmentation(inputs) if augmentation is not None else inputs
    model = keras.Model(inputs, classifier(x_in))
    epochs = int(np.ceil(steps * batch_size / len(x)))
    model.compile(
        optimizer=keras.optimizers.Adam(
            keras.optimizers.schedules.CosineDecay(2e-3, epochs * int(np.ceil(len(x) / batch_size)))
        ),
        loss="sparse_categorical_crossentropy",
    )
    model.fit(x.astype("float32"), y, batch_size=batch_size, epochs=epochs, verbose=0)
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--labels", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30, help="in-loop head epochs")
    parser.add_argument("--copies", type=int, default=10, help="cached augmented copies")
    args = parser.parse_args()

    x, y = load_digits_target()
    source = mnist_cnn()
    backbone = keras.Model(source.input, source.get_layer("avg_pool").output, name="mnist_cnn")
    rows = {}

    def record(name, seed, value, seconds):
        rows.setdefault(name, []).append(value)
        print(f"  seed {seed} {name:<48} test accuracy {value:.4f} ({seconds:.1f} s)", flush=True)

    for seed in range(args.seeds):
        (x_train, y_train), (x_test, y_test) = few_shot_split(x, y, args.labels, seed=seed)
        for name, augmentation in (("none", None), ("medium", "medium")):
            layer = Augmentation("medium", flip=None, seed=seed) if augmentation else None
            start = time.perf_counter()
            model = train_from_scratch(x_train, y_train, layer, seed)
            record(f"scratch CNN, augmentation={name}", seed, accuracy(model, x_test, y_test),
                   time.perf_counter() - start)

        start = time.perf_counter()
        model = feature_extraction(backbone, (x_train, y_train), verbose=0, seed=seed)
        record("feature extraction, augmentation=none", seed,
               accuracy(model, x_test, y_test), time.perf_counter() - start)
        keras.utils.set_random_seed(seed)
        start = time.perf_counter()
        model = feature_extraction(
            backbone, (x_train, y_train), augmentation=keras.layers.Identity(),
            epochs=args.epochs, verbose=0, seed=seed,
        )
        record("feature extraction, no augmentation in the loop", seed,
               accuracy(model, x_test, y_test), time.perf_counter() - start)
        keras.utils.set_random_seed(seed)
        start = time.perf_counter()
        model = feature_extraction(
            backbone, (x_train, y_train), augmentation=Augmentation("medium", flip=None, seed=seed),
            epochs=args.epochs, verbose=0, seed=seed,
        )
        record("feature extraction, medium in the loop", seed,
               accuracy(model, x_test, y_test), time.perf_counter() - start)
        keras.utils.set_random_seed(seed)
        start = time.perf_counter()
        model = feature_extraction(
            backbone, (x_train, y_train), augmentation=Augmentation("medium", flip=None, seed=seed),
            augmented_copies=args.copies, verbose=0, seed=seed,
        )
        record(f"feature extraction, medium x{args.copies} cached copies", seed,
               accuracy(model, x_test, y_test), time.perf_counter() - start)

    print(f"\nTest accuracy at {args.labels} labels per class, {args.seeds} seeds")
    print("| setting | mean | std | per seed |\n|---|---|---|---|")
    for name, values in rows.items():
        values = np.asarray(values)
        print(f"| {name} | {values.mean():.4f} | {values.std():.4f} | "
              + ", ".join(f"{v:.4f}" for v in values) + " |")


if __name__ == "__main__":
    main()
