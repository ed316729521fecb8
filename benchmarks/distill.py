"""Distillation epoch time: cached teacher logits vs the teacher run online.

Online, every step runs the teacher forward and the student forward and
backward; with `Distiller.cache_teacher_logits` the teacher ran once before
training, so an epoch is the student's alone. A backward pass costs about
two forward passes, so the FLOPs predict

    online / cached = (3 * student_flops + teacher_flops) / (3 * student_flops)

This script counts the forward FLOPs of both networks (multiply-adds x 2
of their Conv2D and Dense layers), times epochs of both paths side by side
in one process (after a warm-up epoch that traces the step functions), and
prints the measured ratio next to the predicted one.

Usage: nice python benchmarks/distill.py [--epochs 3] [--teacher-width 64]
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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--teacher-width", type=int, default=64)
    parser.add_argument("--student-width", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--images", type=int, default=4000)
    args = parser.parse_args()

    x, y = load_mnist_5k()
    x, y = x[: args.images].astype("float32"), y[: args.images]
    keras.utils.set_random_seed(0)
    teacher = build_small_cnn((28, 28, 1), 10, width=args.teacher_width, name="teacher")
    student = build_small_cnn((28, 28, 1), 10, width=args.student_width, name="student")
    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam", metrics=["accuracy"])

    import tensorflow as tf

    online = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(y), seed=0)
        .batch(args.batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    start = time.perf_counter()
    cached = distiller.cache_teacher_logits((x, y), args.batch_size, seed=0)
    cache_seconds = time.perf_counter() - start

    online_s, online_all = epoch_seconds(distiller, online, args.epochs)
    cached_s, cached_all = epoch_seconds(distiller, cached, args.epochs)

    s_flops, t_flops = forward_flops(student), forward_flops(teacher)
    predicted = (3 * s_flops + t_flops) / (3 * s_flops)
    print(f"{args.images} images, batch {args.batch_size}; teacher {teacher.count_params()} "
          f"params, {t_flops / 1e6:.2f} MFLOPs/image; student {student.count_params()} params, "
          f"{s_flops / 1e6:.2f} MFLOPs/image")
    print(f"teacher logits cached once in {cache_seconds:.2f} s")
    print(f"online teacher epoch: {online_s:.2f} s (median of {[round(t, 2) for t in online_all]})")
    print(f"cached teacher epoch: {cached_s:.2f} s (median of {[round(t, 2) for t in cached_all]})")
    print(f"measured online/cached = {online_s / cached_s:.2f}x; "
          f"FLOPs predict (3*S + T) / (3*S) = {predicted:.2f}x")


if __name__ == "__main__":
    main()
