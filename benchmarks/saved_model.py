"""Benchmark: one network as a Keras model and as a TF Hub-style SavedModel.

The digits backbone (`keras_tl.examples.pretrained.mnist_cnn`, pretrained on
5,000 MNIST digits) is written in TF Hub's reusable SavedModel format and
used both ways on the scikit-learn digits (20 labelled images per class for
training, 20 for validation, the other 1,397 held out), side by side in one
run:

1. feature extraction: held-out accuracy and seconds;
2. fine-tuning (head, then progressive unfreezing of 3 depth groups):
   held-out accuracy and seconds;
3. the `.keras` file of the SavedModel-backed model vs the SavedModel
   folder (the graph's variables are stored once);
4. LiteRT agreement of the SavedModel-backed model (float32 export).

TensorFlow backend only.

    python benchmarks/saved_model.py [--epochs 4] [--per-class 20]
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_tl  # noqa: E402
from keras_tl.examples.datasets import few_shot_split  # noqa: E402
from keras_tl.examples.datasets import load_digits_target  # noqa: E402
from keras_tl.examples.pretrained import mnist_cnn  # noqa: E402
from keras_tl.examples.pretrained import write_reusable_saved_model  # noqa: E402
from keras_tl.saved_model_backbone import build_saved_model_backbone  # noqa: E402


def folder_bytes(folder):
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(folder) for name in names)


def accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, verbose=0), -1) == y))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--per-class", type=int, default=20)
    args = parser.parse_args()

    source = mnist_cnn()
    x, y = load_digits_target()
    (xs, ys), (rest_x, rest_y) = few_shot_split(x, y, args.per_class, seed=0)
    (xv, yv), (xt, yt) = few_shot_split(rest_x, rest_y, args.per_class, seed=1)
    xs, xv, xt = xs.astype("float32"), xv.astype("float32"), xt.astype("float32")
    work = tempfile.mkdtemp(prefix="keras_tl_bench_")
    folder = write_reusable_saved_model(
        keras.Model(source.input, source.get_layer("avg_pool").output),
        os.path.join(work, "digits_features"))

    def keras_backbone():
        network = mnist_cnn()  # a fresh copy from the cache
        return keras.Model(network.input, network.get_layer("avg_pool").output)

    def saved_model_backbone():
        # The graph rescales inside (a keras-tl CNN): raw pixels in.
        return build_saved_model_backbone(folder, pixel_scale=1.0)

    rows, models = [], {}
    for recipe in ("feature_extraction", "fine_tune"):
        for kind, make in (("Keras model", keras_backbone),
                           ("SavedModel", saved_model_backbone)):
            keras.utils.set_random_seed(0)
            start = time.perf_counter()
            if recipe == "feature_extraction":
                model = keras_tl.feature_extraction(make(), (xs, ys), (xv, yv), verbose=0)
            else:
                model = keras_tl.fine_tune(
                    make(), (xs, ys), (xv, yv), epochs=args.epochs, num_groups=3,
                    unfreeze={"every": 1}, batch_size=32, verbose=0)
            seconds = time.perf_counter() - start
            rows.append((recipe, kind, accuracy(model, xt, yt), seconds))
            models[recipe, kind] = model

    print(f"\n{len(ys)} labelled digits for training, {len(yv)} for validation, {len(yt)} "
          f"held out; fine_tune epochs={args.epochs}\n")
    print("| recipe | backbone | held-out accuracy | seconds |")
    print("|---|---|---|---|")
    for recipe, kind, acc, seconds in rows:
        print(f"| {recipe} | {kind} | {acc:.3f} | {seconds:.1f} |")

    model = models["feature_extraction", "SavedModel"]
    path = os.path.join(work, "model.keras")
    model.save(path)
    report = keras_tl.to_tflite(model, os.path.join(work, "model.tflite"),
                                check_data=(xt[:200], yt[:200]))
    print(f"\n.keras file {os.path.getsize(path):,} B vs SavedModel folder "
          f"{folder_bytes(folder):,} B (ratio {os.path.getsize(path) / folder_bytes(folder):.2f})")
    print(f"LiteRT float32 vs Keras on 200 held-out digits: top-1 agreement "
          f"{report.top1_agreement:.3f}, max |diff| {report.max_abs_diff:.1e}")


if __name__ == "__main__":
    main()
