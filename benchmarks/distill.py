"""Distillation epoch time: cached teacher logits vs the teacher run online.

Online, every step runs the teacher forward and the student forward and
backward; with `Distiller.cache_teacher_logits` the teacher ran once before
training, so an epoch is the student's alone. A backward pass costs about
two forward passes, so the FLOPs predict

    online / cached = (3 * student_flops + teacher_flops) / (3 * student_flops)

This script counts the forward FLOPs of both networks (multiply-adds x 2
of their Conv2D and Dense layers), times epochs of both paths side by side
in one process (after a warm-up epoch that traces the step functions), and
prints the measured ratio next to the predicted one for a sweep of student
widths. A very small student is bound by per-step overhead (data pipeline,
step dispatch, BatchNorm and pooling, which FLOPs do not count), so its
cached epochs fall short of the prediction; students large enough to be
compute-bound show how close the FLOPs model comes. A second table puts
the time an epoch saves next to the time of one teacher pass over the data
(what caching removes), and the FLOP rates of teacher inference and student
training, which the FLOPs model assumes equal.

Usage: nice python benchmarks/distill.py [--epochs 3] [--student-widths 4,16,32]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_tl.backbones import build_small_cnn  # noqa: E402
from keras_tl.datasets import load_mnist_5k  # noqa: E402
from keras_tl.distill import Distiller  # noqa: E402


def forward_flops(model):
    """FLOPs of one example's forward pass through Conv2D and Dense layers."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += forward_flops(layer)
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw, c_in, _ = layer.kernel.shape
            total += 2 * h * w * kh * kw * c_in * c_out
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * int(np.prod(layer.kernel.shape))
    return total


def epoch_seconds(distiller, dataset, epochs):
    distiller.fit(dataset, epochs=1, verbose=0)  # warm-up: traces the step
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        distiller.fit(dataset, epochs=1, verbose=0)
        times.append(time.perf_counter() - start)
    return float(np.median(times)), times


def compare(teacher, student, x, y, batch_size, epochs):
    """Median epoch seconds of the online and the cached-teacher paths."""
    import tensorflow as tf

    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam", metrics=["accuracy"])
    online = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(y), seed=0)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    start = time.perf_counter()
    cached = distiller.cache_teacher_logits((x, y), batch_size, seed=0)
    cache_seconds = time.perf_counter() - start
    online_s, online_all = epoch_seconds(distiller, online, epochs)
    cached_s, cached_all = epoch_seconds(distiller, cached, epochs)
    # The floor: the same student trained alone on the labels, same batches.
    alone = keras.models.clone_model(student)
    alone.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    alone_s, _ = epoch_seconds(alone, online, epochs)
    return cache_seconds, online_s, online_all, cached_s, cached_all, alone_s


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--teacher-width", type=int, default=64)
    parser.add_argument("--student-widths", default="4,16,32",
                        help="comma-separated widths of the students to sweep")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--images", type=int, default=4000)
    args = parser.parse_args()

    x, y = load_mnist_5k()
    x, y = x[: args.images].astype("float32"), y[: args.images]
    keras.utils.set_random_seed(0)
    teacher = build_small_cnn((28, 28, 1), 10, width=args.teacher_width, name="teacher")
    t_flops = forward_flops(teacher)
    print(f"{args.images} MNIST images, batch {args.batch_size}, {os.cpu_count()} CPU cores; "
          f"teacher width {args.teacher_width}: {teacher.count_params():,} params, "
          f"{t_flops / 1e6:.2f} MFLOPs/image")
    rows = []
    for width in [int(w) for w in args.student_widths.split(",")]:
        student = build_small_cnn((28, 28, 1), 10, width=width, name=f"student_{width}")
        s_flops = forward_flops(student)
        cache_s, online_s, online_all, cached_s, cached_all, alone_s = compare(
            teacher, student, x, y, args.batch_size, args.epochs)
        predicted = (3 * s_flops + t_flops) / (3 * s_flops)
        rows.append((width, student.count_params(), s_flops, cache_s, online_s, cached_s,
                     alone_s, online_s / cached_s, predicted))
        print(f"  student width {width}: online epochs {[round(t, 2) for t in online_all]} s, "
              f"cached {[round(t, 2) for t in cached_all]} s, logits cached in {cache_s:.2f} s")

    print("\n| student width | params | student MFLOPs/image | online epoch (s) "
          "| cached epoch (s) | student alone epoch (s) | measured online/cached "
          "| FLOPs predict (3S+T)/3S | measured / predicted |")
    print("|---|---|---|---|---|---|---|---|---|")
    for width, params, s_flops, _, online_s, cached_s, alone_s, measured, predicted in rows:
        print(f"| {width} | {params:,} | {s_flops / 1e6:.2f} | {online_s:.2f} "
              f"| {cached_s:.2f} | {alone_s:.2f} | {measured:.2f}x | {predicted:.2f}x "
              f"| {measured / predicted:.2f} |")
    # Where the FLOPs model parts from the clock: it assumes every FLOP costs
    # the same, while on a CPU the teacher's wide inference convolutions run
    # at several times the FLOP rate of a narrow student's forward+backward.
    print("\n| student width | teacher pass (s) | online - cached (s) "
          "| teacher inference GFLOP/s | student training GFLOP/s |")
    print("|---|---|---|---|---|")
    for width, _, s_flops, cache_s, online_s, cached_s, _, _, _ in rows:
        print(f"| {width} | {cache_s:.2f} | {online_s - cached_s:.2f} "
              f"| {t_flops * len(y) / cache_s / 1e9:.0f} "
              f"| {3 * s_flops * len(y) / cached_s / 1e9:.0f} |")


if __name__ == "__main__":
    main()
