"""Benchmark: what fine-tuning costs, measured side by side in one run.

1. Step time with only the head and the top stage (conv5) trainable vs full
   fine-tuning (every stage trainable, BatchNorm frozen in both): frozen
   stages must not pay for a backward pass.
2. The overhead of keras-tl's fine-tuning machinery vs plain `fit` with the
   same trainable set (and an identical plain run, for the noise floor): `ProgressiveUnfreezing` (which unfreezes conv5 after
   the first epoch, in the same `fit`) with a plain Adam, and with
   per-stage rates (`discriminative_optimizer`, a `MultiOptimizer`).

Step times are medians over interleaved rounds (every run sees the same
machine load), after a warm-up that traces each train function; the cost of
one unfreeze (optimizer rebuild and retrace) is reported separately.
ResNet50, random weights and images (timing does not depend on them),
96x96 px by default.

    python benchmarks/fine_tune.py [--image-size 96] [--batch-size 16]
        [--steps 6] [--rounds 4]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_tl.backbones import build_backbone  # noqa: E402
from keras_tl.callbacks import ProgressiveUnfreezing  # noqa: E402
from keras_tl.heads import attach_head  # noqa: E402
from keras_tl.heads import build_head  # noqa: E402
from keras_tl.optimizers import discriminative_optimizer  # noqa: E402
from keras_tl.stages import get_stages  # noqa: E402


class StepTimer(keras.callbacks.Callback):
    """Wall time of every training step."""

    def __init__(self):
        super().__init__()
        self.steps = []

    def on_epoch_begin(self, epoch, logs=None):
        self.last = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        self.steps.append(now - self.last)
        self.last = now


def build(image_size, trainable):
    keras.utils.set_random_seed(0)
    backbone = build_backbone("resnet50", weights=None,
                              input_shape=(image_size, image_size, 3))
    model = attach_head(backbone, build_head(2048, 10))
    stages = get_stages(backbone)
    backbone.trainable = True
    for index, stage in enumerate(stages):
        stage.set_trainable(trainable == "full" or index == len(stages) - 1)
    return model, stages


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = args.batch_size * 4
    x = rng.uniform(0, 255, (n, args.image_size, args.image_size, 3)).astype("float32")
    y = rng.integers(0, 10, n)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(args.batch_size).repeat().prefetch(2)
    loss = "sparse_categorical_crossentropy"
    print(f"ResNet50 {args.image_size}x{args.image_size}, batch {args.batch_size}, "
          f"{args.rounds} interleaved rounds of {args.steps} steps per run")

    runs = {}
    model, _ = build(args.image_size, "full")
    model.compile(keras.optimizers.Adam(1e-4), loss)
    runs["full fine-tuning (plain fit)"] = (model, lambda stages: [])
    model, _ = build(args.image_size, "top")
    model.compile(keras.optimizers.Adam(1e-4), loss)
    runs["head + conv5 (plain fit)"] = (model, lambda stages: [])
    model, _ = build(args.image_size, "top")
    model.compile(keras.optimizers.Adam(1e-4), loss)
    # An identical second plain run: its difference from the first is the
    # measurement noise of this machine.
    runs["head + conv5 (plain fit, control)"] = (model, lambda stages: [])
    model, stages = build(args.image_size, "top")
    model.compile(keras.optimizers.Adam(1e-4), loss)
    runs["head + conv5 (ProgressiveUnfreezing, Adam)"] = (model, stages)
    model, stages = build(args.image_size, "top")
    model.compile(discriminative_optimizer(stages, 1e-4), loss)
    runs["head + conv5 (ProgressiveUnfreezing, per-stage rates)"] = (model, stages)

    def callbacks(value, **kwargs):
        if callable(value):
            return []
        return [ProgressiveUnfreezing(value, verbose=0, **kwargs)]

    # Warm-up: traces every train function. The callback runs start with
    # the head only and unfreeze conv5 after one epoch, inside that fit: the
    # extra time of that epoch is the cost of one unfreeze.
    unfreeze_cost = {}
    for name, (model, value) in runs.items():
        timer = StepTimer()
        extra = callbacks(value, at_epochs=[1], initially_trainable=0)
        model.fit(data, epochs=2 if extra else 1, steps_per_epoch=args.steps,
                  callbacks=[*extra, timer], shuffle=False, verbose=0)
        if extra:
            unfreeze_cost[name] = timer.steps[args.steps]

    # Timed rounds, interleaved so that every run sees the same load. The
    # callback runs keep conv5 trainable (same trainable set as plain fit).
    times = {name: [] for name in runs}
    names = list(runs)
    for round_index in range(args.rounds):
        for name in names[round_index % len(names):] + names[: round_index % len(names)]:
            model, value = runs[name]
            timer = StepTimer()
            extra = callbacks(value, at_epochs=[], initially_trainable=1)
            model.fit(data, epochs=1, steps_per_epoch=args.steps + 1,
                      callbacks=[*extra, timer], shuffle=False, verbose=0)
            times[name].extend(timer.steps[1:])  # the first step starts the iterator

    print(f"\n{'run':<56} {'trainable':>12} {'median step (s)':>16}")
    medians = {}
    for name, (model, _) in runs.items():
        medians[name] = float(np.median(times[name]))
        params = int(sum(np.prod(v.shape) for v in model.trainable_variables))
        print(f"{name:<56} {params:>12,} {medians[name]:>16.4f}")
    full, top, control, callback, discriminative = medians.values()
    print(f"\nfull / top-only step time: {full / top:.2f}x (target >= 2x)")
    print(f"noise floor (identical plain run): {100 * (control / top - 1):+.1f}%")
    print(f"ProgressiveUnfreezing overhead vs plain fit: {100 * (callback / top - 1):+.1f}% "
          "of step time (target <= 5%)")
    print(f"  with per-stage rates (MultiOptimizer): {100 * (discriminative / top - 1):+.1f}%")
    for name, seconds in unfreeze_cost.items():
        print(f"one unfreeze (optimizer rebuild + retrace), {name.split('(')[1][:-1]}: "
              f"first step after it {seconds:.2f} s")


if __name__ == "__main__":
    main()
