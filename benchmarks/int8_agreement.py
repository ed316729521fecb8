"""int8 that keeps its answers: full int8 against selective int8 on the demo's models.

Trains the `keras-tl demo` models (MNIST-5k source CNN, digits target at
`--labels-per-class` labels per class, one seed) and exports each to int8
twice: every op int8 (`min_agreement=None`) and selective
(`min_agreement=0.99`: the ops that lose most kept in float). Both calibrate
on the labelled and unlabelled target images, as the demo's export table
does, and are checked on the test digits: top-1 agreement with Keras and
size against the float32 file. The selective export chooses its float ops
on the check data it is then scored on, so a two-fold column repeats the
choice on one half of the test digits and scores the file on the other half
(mean of both ways). `dynamic` (int8 weights, float activations) is shown
for reference.

`--calibration` adds the full-int8 agreement against the number of
calibration images, over five random draws each, for the fine-tuned and the
scratch model: the measurement behind `DEFAULT_CALIBRATION_SAMPLES`.

Run: python benchmarks/int8_agreement.py [--methods fine_tune scratch] [--calibration]
"""

import argparse
import os
import tempfile
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from keras_tl.examples.datasets import load_digits_target  # noqa: E402
from keras_tl.examples.demo import METHODS  # noqa: E402
from keras_tl.examples.demo import DemoTask  # noqa: E402
from keras_tl.examples.demo import make_split  # noqa: E402
from keras_tl.export import LiteRTModel  # noqa: E402
from keras_tl.export import to_tflite  # noqa: E402
from keras_tl.examples.pretrained import mnist_cnn  # noqa: E402

TARGET = 0.99


def file_inputs(litert, x):
    # A grayscale model's file takes RGB (converted to gray inside): R = G = B.
    channels = litert.input_details[litert.input_names[0]]["shape"][-1]
    return np.repeat(x, channels, axis=-1) if channels != x.shape[-1] else x


def agreement(path, model, x):
    litert = LiteRTModel(path)
    outputs = litert.predict(file_inputs(litert, x))
    return float(np.mean(outputs.argmax(-1) == model.predict(x, verbose=0).argmax(-1)))


def two_fold(model, calibration, x, y, folder):
    """Float ops chosen on one half of the test digits, agreement measured on
    the other half; both ways, averaged. Also: how often the choice kept
    any op in float."""
    order = np.random.default_rng(0).permutation(len(x))
    halves = np.sort(order[: len(x) // 2]), np.sort(order[len(x) // 2:])
    scores, float_ops = [], 0
    for chosen_on, scored_on in (halves, halves[::-1]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = to_tflite(model, os.path.join(folder, "half.tflite"), quantization="int8",
                               representative_data=calibration,
                               check_data=(x[chosen_on], y[chosen_on]), min_agreement=TARGET)
        scores.append(agreement(report.path, model, x[scored_on]))
        float_ops += bool(report.float_layers)
    return float(np.mean(scores)), float_ops


def compare(name, model, split, folder):
    calibration = np.concatenate([split.x, split.unlabeled])
    check = (split.x_test, split.y_test)
    common = dict(representative_data=calibration, check_data=check)
    full = to_tflite(model, os.path.join(folder, "full.tflite"), quantization="int8",
                     min_agreement=None, **common)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.time()
        selective = to_tflite(model, os.path.join(folder, "selective.tflite"),
                              quantization="int8", min_agreement=TARGET, **common)
        seconds = time.time() - start
    missed = any("min_agreement" in str(w.message) for w in caught)
    held_out, chosen = two_fold(model, calibration, split.x_test, split.y_test, folder)
    dynamic = to_tflite(model, os.path.join(folder, "dynamic.tflite"), quantization="dynamic",
                        check_data=check)
    kept = ", ".join(selective.float_layers) or ("none (target missed)" if missed else "none")
    return (
        f"| {name} | {full.keras_accuracy:.3f} | {full.top1_agreement:.4f} | "
        f"{full.size_ratio:.3f} | {selective.top1_agreement:.4f} | {selective.size_ratio:.3f} "
        f"| {held_out:.4f} ({chosen}/2) | {kept} | {seconds:.0f} | "
        f"{dynamic.top1_agreement:.4f} | {dynamic.size_ratio:.3f} |"
    )


def calibration_sweep(name, model, split, folder, sizes=(100, 300, 500, 1000), draws=5):
    pool = np.concatenate([split.x, split.unlabeled])
    lines = []
    for size in sizes:
        scores = []
        for draw in range(draws):
            rng = np.random.default_rng(draw)
            sample = pool[rng.choice(len(pool), min(size, len(pool)), replace=False)]
            report = to_tflite(model, os.path.join(folder, "cal.tflite"), quantization="int8",
                               min_agreement=None, representative_data=sample,
                               num_calibration_samples=size,
                               check_data=(split.x_test, split.y_test))
            scores.append(report.top1_agreement)
        used = min(size, len(pool))
        lines.append(f"| {name} | {used} | {np.mean(scores):.4f} | {min(scores):.4f} | "
                     f"{max(scores):.4f} | {100 * (max(scores) - min(scores)):.2f} |")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels-per-class", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", nargs="*", default=list(METHODS),
                        help=f"demo methods (default: all): {list(METHODS)}")
    parser.add_argument("--calibration", action="store_true",
                        help="also sweep the number of calibration images")
    args = parser.parse_args()

    source = mnist_cnn(verbose=0)
    x, y = load_digits_target()
    task = DemoTask(source, x.astype("float32"), y)
    split = make_split(task.x, task.y, args.labels_per_class, args.seed)
    print(f"Digits target, {args.labels_per_class} labels per class, seed {args.seed}: "
          f"{len(split.x) + len(split.unlabeled)} calibration images, "
          f"{len(split.x_test)} test images.\n")
    print("| model | Keras accuracy | full int8 agreement | full int8 size | selective "
          "agreement | selective size | two-fold held-out (float chosen) | kept in float "
          "| selective export s | dynamic agreement | dynamic size |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    models = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in args.methods:
            model = METHODS[name](task, split, args.seed)
            models[name] = model
            print(compare(name, model, split, folder), flush=True)
        if args.calibration:
            print("\nFull-int8 agreement against calibration images (5 random draws)\n")
            print("| model | images | mean | min | max | spread (points) |")
            print("|---|---|---|---|---|---|")
            for name in ("fine_tune", "scratch"):
                model = models.get(name) or METHODS[name](task, split, args.seed)
                for line in calibration_sweep(name, model, split, folder):
                    print(line, flush=True)


if __name__ == "__main__":
    main()
