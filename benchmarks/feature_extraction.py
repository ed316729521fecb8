"""Feature extraction: keras-tl's cached fast path vs the Keras guide's way.

The guide keeps the frozen backbone inside the model and pays a forward pass
per image per epoch. keras-tl runs the backbone once and trains the head on
the cached embeddings. Same data (512 real MNIST digits as 96x96 RGB), same
ResNet50 (weights=None: timing only; the forward cost is the same with
ImageNet weights), 10 epochs. Printed side by side from one run:

- in-loop: backbone inside `fit` every epoch, Dense head, Adam, 10 epochs;
- cached + Adam head: one forward pass, then the same Dense head trained
  for 10 epochs on the embeddings (same optimization, so the same accuracy);
- cached + closed-form head: `keras_tl.recipes.feature_extraction` itself;
- the limit: one forward pass over the data plus the head's training.

Run: `.venv/bin/python benchmarks/feature_extraction.py [--images 512]`
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_tl import build_backbone  # noqa: E402
from keras_tl.datasets import load_mnist_5k  # noqa: E402
from keras_tl.features import extract  # noqa: E402
from keras_tl.heads import build_head  # noqa: E402
from keras_tl.recipes import feature_extraction  # noqa: E402


STEPS_PER_EXECUTION = 16


def make_data(n, size, seed=0):
    x, y = load_mnist_5k()
    idx = np.random.default_rng(seed).permutation(len(x))[: 2 * n]
    images = tf.image.resize(tf.image.grayscale_to_rgb(tf.constant(x[idx], tf.float32)),
                             (size, size)).numpy()
    return (images[:n], y[idx[:n]]), (images[n:], y[idx[n:]])


def accuracy(model, x, y):
    return float((model.predict(x, batch_size=64, verbose=0).argmax(-1) == y).mean())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--backbone", default="resnet50")
    args = parser.parse_args()
    (x, y), (xv, yv) = make_data(args.images, args.size)
    shape = (args.size, args.size, 3)
    keras.utils.set_random_seed(0)
    backbone = build_backbone(args.backbone, weights=None, input_shape=shape)
    batch = 32

    # Warm-up: trace the forward pass once so no row pays for it.
    backbone.predict(x[:batch], verbose=0)

    t0 = time.perf_counter()
    backbone.predict(x, batch_size=batch, verbose=0)
    forward = time.perf_counter() - t0

    # The Keras guide: frozen backbone inside the model, every epoch.
    # Both heads start from the same weights and see the batches in the same
    # order, so the two paths run the same optimization.
    dense = keras.layers.Dense(10, activation="softmax")
    dense.build((None, backbone.output.shape[-1]))
    initial = dense.get_weights()
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

    # Cached embeddings + the same Dense head and optimizer.
    t0 = time.perf_counter()
    features, labels = extract(backbone, (x, y), batch_size=batch)
    head = keras.Sequential([keras.Input((features.shape[1],)),
                             keras.layers.Dense(10, activation="softmax")])
    head.layers[-1].set_weights(initial)
    # Several head steps per call into the compiled function: a step on
    # cached embeddings is so cheap that Python dispatch would dominate it.
    head.compile(optimizer=keras.optimizers.Adam(1e-3),
                 loss="sparse_categorical_crossentropy",
                 steps_per_execution=STEPS_PER_EXECUTION)
    keras.utils.set_random_seed(1)
    t1 = time.perf_counter()
    head.fit(features, labels, batch_size=batch, epochs=args.epochs, verbose=0)
    head_seconds = time.perf_counter() - t1
    cached_seconds = time.perf_counter() - t0
    cached_model = keras.Sequential([backbone, head])
    cached_acc = accuracy(cached_model, xv, yv)

    # keras-tl's recipe: cached embeddings + closed-form head.
    t0 = time.perf_counter()
    recipe = feature_extraction(backbone, (x, y), batch_size=batch, verbose=0)
    recipe_seconds = time.perf_counter() - t0
    recipe_acc = accuracy(recipe, xv, yv)

    limit = forward + head_seconds
    print(f"\n{args.backbone} at {args.size} px, {args.images} images, {args.epochs} epochs, "
          f"{os.cpu_count()} CPU cores")
    print("| path | seconds | speed-up vs in-loop | held-out accuracy |")
    print("|---|---|---|---|")
    print(f"| in-loop (Keras guide) | {in_loop_seconds:.1f} | 1.0x | {in_loop_acc:.3f} |")
    print(f"| cached + same Adam head | {cached_seconds:.1f} | "
          f"{in_loop_seconds / cached_seconds:.1f}x | {cached_acc:.3f} |")
    print(f"| keras-tl recipe (cached + closed-form head) | {recipe_seconds:.1f} | "
          f"{in_loop_seconds / recipe_seconds:.1f}x | {recipe_acc:.3f} |")
    print(f"| one forward pass | {forward:.1f} | - | - |")
    print(f"\ncached path: embeddings {cached_seconds - head_seconds:.1f} s, head training "
          f"{head_seconds:.2f} s")
    print(f"\nin-loop epoch / forward pass: {in_loop_seconds / args.epochs / forward:.2f}x")
    print(f"cached total / (forward pass + head training): {cached_seconds / limit:.2f}x "
          "(limit 1.2x)")
    print(f"accuracy difference, cached vs in-loop: {100 * (cached_acc - in_loop_acc):+.1f} pt")


if __name__ == "__main__":
    main()
