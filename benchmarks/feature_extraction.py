"""Feature extraction: keras-tl's cached fast path vs the Keras guide's way.

The guide keeps the frozen backbone inside the model and pays a forward pass
per image per epoch. keras-tl runs the backbone once and trains the head on
the cached embeddings. Same data (512 real MNIST digits as 96x96 RGB), same
ResNet50 (weights=None: timing only; the forward cost is the same with
ImageNet weights), 10 epochs. Measured side by side in one run:

- in-loop: backbone inside `fit` every epoch, Dense head, Adam, 10 epochs;
- cached + Adam head: one forward pass, then the same Dense head trained
  for 10 reshuffled passes over the embeddings (the same optimization in
  another batch order);
- the recipe's bar: build the backbone + one forward pass (with its trace)
  + that 10-epoch Adam head, from nothing, as a user would;
- `keras_tl.recipes.feature_extraction` itself, from the zoo name: build,
  one forward pass, and the closed-form head with its regularization chosen
  by 3-fold cross-validation.

The cached path can beat the in-loop one by at most 10 x (in-loop epoch /
forward pass): an in-loop epoch costs one forward pass plus the head's
backward, and the cached path still pays one forward pass. The benchmark
reports each cached path's speed-up as a fraction of that limit.

Run: `.venv/bin/python benchmarks/feature_extraction.py [--images 512] [--repeats 2]`
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_tl import build_backbone  # noqa: E402
from keras_tl import get_spec  # noqa: E402
from keras_tl.examples.datasets import load_mnist_5k  # noqa: E402
from keras_tl.features import extract  # noqa: E402
from keras_tl.recipes import feature_extraction  # noqa: E402

def make_data(n, size, seed=0):
    x, y = load_mnist_5k()
    idx = np.random.default_rng(seed).permutation(len(x))[: 2 * n]
    images = tf.image.resize(tf.image.grayscale_to_rgb(tf.constant(x[idx], tf.float32)),
                             (size, size)).numpy()
    return (images[:n], y[idx[:n]]), (images[n:], y[idx[n:]])


def accuracy(model, x, y):
    return float((model.predict(x, batch_size=64, verbose=0).argmax(-1) == y).mean())


def train_head(features, labels, initial, epochs, batch):
    head = keras.Sequential([keras.Input((features.shape[1],)),
                             keras.layers.Dense(10, activation="softmax")])
    head.layers[-1].set_weights(initial)
    # All epochs in one call into the compiled function: the 10 reshuffled
    # passes as one repeated dataset, every step inside one execution. A
    # step on cached embeddings is so cheap that Keras' per-epoch and
    # per-call dispatch would otherwise cost more than the steps.
    steps = epochs * -(-len(labels) // batch)
    passes = (tf.data.Dataset.from_tensor_slices((features, labels))
              .shuffle(len(labels), seed=1, reshuffle_each_iteration=True)
              .batch(batch).repeat(epochs))
    head.compile(optimizer=keras.optimizers.Adam(1e-3),
                 loss="sparse_categorical_crossentropy", steps_per_execution=steps)
    head.fit(passes, epochs=1, shuffle=False, verbose=0)
    return head


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--repeats", type=int, default=2,
                        help="the bar and the recipe alternate; each keeps its fastest run")
    args = parser.parse_args()
    (x, y), (xv, yv) = make_data(args.images, args.size)
    shape = (args.size, args.size, 3)
    batch = 32
    # One throwaway build: the first one in a process pays for imports.
    build_backbone(args.backbone, weights=None, input_shape=shape)

    dense = keras.layers.Dense(10, activation="softmax")
    dense.build((None, get_spec(args.backbone).feature_dim))
    initial = dense.get_weights()

    # The recipe's bar and the recipe, alternately, each from nothing.
    bar_runs, recipe_runs = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        keras.utils.set_random_seed(0)
        backbone = build_backbone(args.backbone, weights=None, input_shape=shape)
        features, labels = extract(backbone, (x, y), batch_size=batch)
        t1 = time.perf_counter()
        head = train_head(features, labels, initial, args.epochs, batch)
        bar_seconds, head_seconds = time.perf_counter() - t0, time.perf_counter() - t1
        # The same forward pass once traced: the cached path's own cost.
        t0 = time.perf_counter()
        extract(backbone, (x, y), batch_size=batch)
        bar_runs.append((bar_seconds, head_seconds, time.perf_counter() - t0))

        t0 = time.perf_counter()
        keras.utils.set_random_seed(0)
        recipe = feature_extraction(args.backbone, (x, y), weights=None, input_shape=shape,
                                    batch_size=batch, verbose=0)
        recipe_runs.append(time.perf_counter() - t0)
    bar_seconds = min(run[0] for run in bar_runs)
    head_seconds = min(run[1] for run in bar_runs)
    forward = min(run[2] for run in bar_runs)
    recipe_seconds = min(recipe_runs)
    recipe_acc = accuracy(recipe, xv, yv)
    cached_acc = accuracy(keras.Sequential([backbone, head]), xv, yv)
    cached_seconds = forward + head_seconds

    # The Keras guide: frozen backbone inside the model, every epoch. Its
    # head starts from the same weights and takes as many reshuffled passes
    # as the cached Adam head (in another order).
    inputs = keras.Input(shape)
    outputs = dense(backbone(inputs, training=False))
    in_loop = keras.Model(inputs, outputs)
    in_loop.compile(optimizer=keras.optimizers.Adam(1e-3),
                    loss="sparse_categorical_crossentropy")
    keras.utils.set_random_seed(1)
    t0 = time.perf_counter()
    in_loop.fit(x, y, batch_size=batch, epochs=args.epochs, verbose=0)
    in_loop_seconds = time.perf_counter() - t0
    in_loop_acc = accuracy(in_loop, xv, yv)

    limit = args.epochs * (in_loop_seconds / args.epochs) / forward
    print(f"\n{args.backbone} at {args.size} px, {args.images} images, {args.epochs} epochs, "
          f"{os.cpu_count()} CPU cores, fastest of {args.repeats}")
    print("| path | seconds | speed-up vs in-loop | fraction of the limit | held-out accuracy |")
    print("|---|---|---|---|---|")
    print(f"| in-loop (Keras guide) | {in_loop_seconds:.1f} | 1.0x | - | {in_loop_acc:.3f} |")
    print(f"| cached + same Adam head | {cached_seconds:.1f} | "
          f"{in_loop_seconds / cached_seconds:.1f}x | "
          f"{in_loop_seconds / cached_seconds / limit:.2f} | {cached_acc:.3f} |")
    print(f"| recipe's bar: build + forward + Adam head | {bar_seconds:.1f} | - | - | "
          f"{cached_acc:.3f} |")
    print(f"| keras-tl recipe (build + forward + closed-form head) | {recipe_seconds:.1f} | "
          f"{in_loop_seconds / recipe_seconds:.1f}x | "
          f"{in_loop_seconds / recipe_seconds / limit:.2f} | {recipe_acc:.3f} |")
    print(f"| one forward pass (already traced) | {forward:.1f} | - | - | - |")
    print(f"\nlimit of the cached speed-up, 10 x (in-loop epoch / forward pass): {limit:.1f}x")
    print(f"recipe / its bar: {recipe_seconds / bar_seconds:.2f}x (goal <= 1.3x)")
    print(f"cached + Adam head: {in_loop_seconds / cached_seconds / limit:.2f} of the limit "
          "(goal >= 0.9)")
    print(f"accuracy, recipe vs in-loop: {100 * (recipe_acc - in_loop_acc):+.1f} pt")


if __name__ == "__main__":
    main()
