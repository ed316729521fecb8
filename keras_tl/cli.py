"""The `keras-tl` command line: `demo`, `train`, `evaluate`, `predict`, `export`, `backbones`."""

import argparse
import json
import math
import os
import sys
import zipfile

__all__ = ["build_parser", "main"]


def _demo(args):
    from keras_tl.examples.demo import QUICK
    from keras_tl.examples.demo import run_demo

    if args.quick:
        options = dict(QUICK)
        if args.workers is not None:
            options["workers"] = args.workers
        run_demo(out_dir=args.output, **options)
        return 0
    labels = tuple(int(k) for k in args.labels.split(","))
    seeds = tuple(range(args.seeds))
    run_demo(labels_per_class=labels, seeds=seeds, out_dir=args.output, workers=args.workers)
    return 0


def _train(args):
    from keras_tl import recipes
    from keras_tl._utils.interrupts import raise_if_interrupted
    from keras_tl._utils.io import save_atomic
    from keras_tl.plots import plot_history

    if not args.output.endswith(".keras"):
        raise ValueError(f"--output must end in .keras; got {args.output!r}.")
    fast_path = args.method == "feature-extraction" and args.augmentation is None
    if fast_path and args.epochs is not None:
        raise ValueError(
            "--epochs has no effect here: feature extraction fits the new head in closed "
            "form on the embeddings, with no epochs. Drop --epochs, or add --augmentation "
            "(the head then trains for --epochs on augmented images), or use --method "
            "fine-tune."
        )
    if args.lora_rank is not None and args.method != "fine-tune":
        raise ValueError("--lora-rank fine-tunes the backbone's adapters: add --method fine-tune.")
    if args.validation_data is not None and not os.path.isdir(args.validation_data) \
            and not _is_csv(args.validation_data):
        raise FileNotFoundError(
            f"--validation-data {args.validation_data!r} is not a folder of class subfolders "
            "or a CSV of image files and labels.")
    _check_writable(args.output)
    weights = None if args.weights.lower() == "none" else args.weights
    input_shape = None
    if args.image_size:
        input_shape = (args.image_size, args.image_size, 3)
    class_weight = args.class_weight
    if class_weight == "none":
        class_weight = None
    common = dict(
        validation_data=args.validation_data,
        validation_split=None if args.validation_data else args.validation_split,
        weights=weights,
        input_shape=input_shape,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        augmentation=args.augmentation,
        class_weight=class_weight,
        mixed_precision=args.mixed_precision,
        checkpoint_dir=args.checkpoint_dir,
        verbose=1,
    )
    if args.epochs is not None:
        common["epochs"] = args.epochs
    data = args.data
    if _is_csv(args.data):
        # A CSV of image files and labels (the form multi-label data comes
        # in): read here, where its columns and delimiter are known.
        from keras_tl.data import as_dataset

        data = as_dataset(
            args.data, batch_size=args.batch_size, shuffle=False,
            validation_data=common.pop("validation_data"),
            validation_split=common.pop("validation_split"),
            image_size=input_shape[:2] if input_shape else None, **_csv_columns(args))
    if args.method == "feature-extraction":
        model = recipes.feature_extraction(args.backbone, data, **common)
    else:
        model = recipes.fine_tune(args.backbone, data, lora_rank=args.lora_rank,
                                  **common)
    raise_if_interrupted()
    save_atomic(args.output, model.save)
    stem = args.output[: -len(".keras")]
    curves = stem + "_curves.png"
    plot_history(model.history, curves, title=f"{args.backbone} on {args.data}")
    # Its own name: `keras-tl export` writes `<stem>.json` beside the
    # `.tflite`, `keras-tl evaluate` `<stem>.evaluation.json`.
    report_path = stem + ".training.json"
    report = _training_report(args, model)
    save_atomic(report_path, lambda path: _write_json(path, report))
    print(", ".join(f"{k}={v:.4f}" for k, v in report["final_metrics"].items()
                    if v is not None))
    print(f"Saved {args.output}, {curves} and {report_path}.")
    return 0


def _is_csv(path):
    return str(path).lower().endswith((".csv", ".tsv")) and os.path.isfile(path)


def _csv_columns(args):
    return dict(image_column=args.image_column, label_column=args.label_column,
                label_delimiter=args.label_delimiter)


def _training_report(args, model):
    """What was trained and how it ended, for `<out stem>.training.json`."""
    from keras_tl.heads import get_class_names

    logs = getattr(getattr(model, "history", None), "history", None) or {}
    final = {}
    for key, values in logs.items():
        value = values[-1] if len(values) else None
        # JSON has no NaN; a metric missing in the last epoch is null.
        final[key] = float(value) if value is not None and math.isfinite(value) else None
    return {
        "model": os.path.abspath(args.output),
        "data": os.path.abspath(args.data),
        "validation_data": args.validation_data and os.path.abspath(args.validation_data),
        "backbone": args.backbone,
        "method": args.method,
        "weights": args.weights,
        "epochs": args.epochs,
        "epochs_run": max((len(v) for v in logs.values()), default=0),
        "batch_size": args.batch_size,
        "image_size": args.image_size,
        "validation_split": None if args.validation_data else args.validation_split,
        "learning_rate": args.learning_rate,
        "augmentation": args.augmentation,
        "class_weight": args.class_weight,
        "lora_rank": args.lora_rank,
        "mixed_precision": args.mixed_precision,
        "class_names": get_class_names(model),
        "final_metrics": final,
    }


def _check_writable(path):
    """Refuses an output path that training would only fail to write at the end."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ValueError(f"--output {path!r} is a folder; pass a file name ending in .keras.")
    existing = folder
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(
            f"Cannot write {path!r}: {existing!r} is not a writable folder. Choose an "
            "--output in a folder you can write to; nothing was trained."
        )


def _write_json(path, value):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2)
        f.write("\n")


def _load_model(path):
    import keras

    import keras_tl

    # Reading a name loads keras-tl's layers, which a saved model names.
    keras_tl.ImagePreprocessing  # noqa: B018

    if not os.path.isfile(path):
        raise FileNotFoundError(f"Model file {path!r} does not exist.")
    if path.endswith(".keras") and not zipfile.is_zipfile(path):
        # Keras would report "File not found" for a file that is there.
        raise ValueError(
            f"{path!r} is not a readable .keras file (a .keras file is a zip archive): "
            "it may be truncated or corrupt. Save the model again with model.save()."
        )
    return keras.saving.load_model(path)


def _evaluate(args):
    import keras_tl
    from keras_tl._utils.io import save_atomic

    model = _load_model(args.model)
    data = args.data
    if _is_csv(args.data):
        data = keras_tl.as_dataset(
            args.data, image_size=model.input_shape[1:3], shuffle=False,
            class_names=keras_tl.get_class_names(model), batch_size=args.batch_size,
            **_csv_columns(args)).train
    report = keras_tl.evaluate(model, data, batch_size=args.batch_size,
                               top_k_wrong=args.top_k_wrong, tta=args.tta)
    print(report)
    stem = args.model[: -len(".keras")] if args.model.endswith(".keras") else args.model
    output = args.output or stem + ".evaluation.json"
    saved = dict(report.to_dict(), model=os.path.abspath(args.model),
                 data=os.path.abspath(args.data))
    save_atomic(output, lambda path: _write_json(path, saved))
    print(f"Wrote {output}.")
    return 0


def _predict(args):
    import keras_tl

    images = _image_files(args.images, args.image_column)
    model = _load_model(args.model)
    labels, scores = keras_tl.predict(model, images, batch_size=args.batch_size,
                                      top_k=args.top_k, tta=args.tta)
    names = keras_tl.get_class_names(model)
    multi_label = keras_tl.get_thresholds(model) is not None
    for path, label, score in zip(images, labels, scores):
        if multi_label:
            # The label set, then each of its classes' score.
            chosen = [f"{n} {score[names.index(n)]:.4f}" for n in label]
            print(path + "\t" + (";".join(label) or "-") + "\t" + "\t".join(chosen))
        elif args.top_k == 1:
            print(f"{path}\t{label}\t{score:.4f}")
        else:
            print(path + "\t" + "\t".join(f"{n} {s:.4f}" for n, s in zip(label, score)))
    return 0


def _image_files(paths, image_column="image"):
    """The image files named, a folder standing for the images under it and
    a CSV for the files of its `image_column`."""
    from keras_tl.data import IMAGE_EXTENSIONS

    files = []
    for path in paths:
        if _is_csv(path):
            from keras_tl.text.data import read_text_csv

            folder = os.path.dirname(os.path.abspath(path))
            names = read_text_csv(path, image_column, image_column)[0]
            files.extend(n if os.path.isabs(n) else os.path.join(folder, n) for n in names)
        elif os.path.isdir(path):
            found = sorted(
                os.path.join(root, name)
                for root, folders, names in os.walk(path)
                for name in names
                if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")
            )
            if not found:
                raise FileNotFoundError(
                    f"Folder {path!r} holds no image files ({', '.join(IMAGE_EXTENSIONS)}).")
            files.extend(found)
        else:
            files.append(path)
    return files


def _samples(args):
    from keras_tl.examples.datasets import write_samples

    root = write_samples(args.folder, train_per_class=args.per_class)
    print(f"Wrote {root}/train and {root}/validation (handwritten digits, one folder per "
          f"class) and {root}/digits_backbone.keras (a CNN pretrained on MNIST).")
    return 0


def _backbones(args):
    from keras_tl.backbones import list_backbones

    for name in list_backbones(args.source):
        print(name)
    return 0


def _export(args):
    import keras

    if keras.backend.backend() != "tensorflow":
        # LiteRT conversion runs on TensorFlow graphs; a `.keras` file is
        # backend-independent, so a model trained on JAX converts there.
        return _run_on_tensorflow(["--debug"] * args.debug + ["export"] + args.argv)
    import keras_tl

    model = _load_model(args.model)
    output = args.output or args.model[: -len(".keras")] + (
        f"_{args.quantization}" if args.quantization else "") + ".tflite"
    data = None
    if args.data:
        data = keras_tl.as_dataset(
            args.data, image_size=model.input_shape[1:3],
            # With --check-data, every image of --data calibrates; else a fifth
            # is held out to check the file on.
            validation_split=None if args.check_data else 0.2, shuffle=False,
        )
    elif args.quantization == "int8":
        raise ValueError(
            "int8 quantization needs representative images to calibrate "
            "activation ranges: pass --data DIR (a few hundred training images)."
        )
    check = data.validation if data is not None else None
    if args.check_data:
        check = keras_tl.as_dataset(args.check_data, image_size=model.input_shape[1:3],
                                    shuffle=False).train
    from keras_tl._utils.logs import quiet_converter

    with quiet_converter():
        report = _to_tflite(keras_tl, model, output, args, data, check)
    print(report)
    print(f"Wrote {report.path}, {report.labels_path} and {report.report_path}.")
    return 0


def _to_tflite(keras_tl, model, output, args, data, check):
    return keras_tl.to_tflite(
        model,
        output,
        quantization=args.quantization,
        representative_data=data.train if data is not None else None,
        check_data=check,
        io_dtype=args.io_dtype,
        allow_select_tf_ops=args.allow_select_tf_ops,
        sparse_weights=args.sparse_weights,
        metadata=False if args.no_metadata else None,
        grayscale_input=args.grayscale_input,
        normalization=tuple(args.normalization),
    )


def _run_on_tensorflow(argv):
    import subprocess

    from keras_tl._utils.processes import python_command

    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    command = python_command(module="keras_tl.cli", args=argv)
    return subprocess.run(command, env=env, check=False).returncode


def build_parser():
    """The argument parser of the `keras-tl` command.

    Example:

    >>> build_parser().parse_args(["demo", "--seeds", "1"]).seeds
    1
    """
    parser = argparse.ArgumentParser(
        prog="keras-tl", description="Transfer learning for Keras 3: train an image "
        "classifier on a pretrained backbone, evaluate it, label images, export it to "
        "LiteRT for phones.",
        epilog="Run `keras-tl demo --quick` first: it runs offline on bundled data.",
    )
    from keras_tl.version import __version__

    parser.add_argument("--version", action="version", version=f"keras-tl {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error, and TensorFlow's notices")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    formatter = argparse.ArgumentDefaultsHelpFormatter

    def add_output(command, default, what):
        command.add_argument("--output", default=default, help=what)
        # The flag's other spelling, kept so existing scripts run.
        command.add_argument("--out", dest="output", help=argparse.SUPPRESS)

    def add_csv_columns(command):
        command.add_argument("--image-column", default="image",
                             help="a CSV's column of image files (relative to the CSV)")
        command.add_argument("--label-column", default="label", help="a CSV's column of labels")
        command.add_argument("--label-delimiter", default=None,
                             help="separator of several class names in one label cell: a "
                                  "multi-label task (sigmoid scores, a threshold per class)")

    demo = sub.add_parser("demo", help="offline transfer-learning demo on bundled data",
                          formatter_class=formatter)
    demo.add_argument("--labels", default="1,2,5,10", help="labels per class, comma-separated")
    demo.add_argument("--seeds", type=int, default=3, help="number of seeds")
    add_output(demo, "artifacts/demo", "output folder")
    demo.add_argument("--quick", action="store_true",
                      help="every stage on one label budget, one seed and two methods, "
                           "in about a minute: a check of the setup, not the table")
    demo.add_argument("--workers", type=int, default=None,
                      help="processes the runs are spread over, one thread each "
                           "(default: 2, or 1 on one core; --quick: 1)")
    demo.set_defaults(func=_demo)

    train = sub.add_parser("train", help="train a classifier on an image folder",
                           formatter_class=formatter)
    train.add_argument("data", help="folder with one subfolder of images per class, or a "
                                    "CSV of image files and labels (see --label-delimiter "
                                    "for several labels per image)")
    train.add_argument("--backbone", default="mobilenet_v2",
                       help="zoo name (keras-tl backbones), KerasHub image preset, hf:// "
                            "handle or preset folder, SavedModel folder or TF Hub / Kaggle "
                            "handle, or a .keras feature extractor")
    train.add_argument("--weights", default="imagenet",
                       help="imagenet (downloaded once, then cached), none, or a weights file")
    train.add_argument("--method", choices=["feature-extraction", "fine-tune"],
                       default="feature-extraction",
                       help="train only a new head, or also fine-tune the backbone")
    # The flag's old name, kept so existing scripts run.
    train.add_argument("--strategy", dest="method", choices=["feature-extraction", "fine-tune"],
                       help=argparse.SUPPRESS)
    train.add_argument("--epochs", type=int, default=None,
                       help="epochs of training; fine-tune: 10. Not used by feature "
                            "extraction without --augmentation (the head is fitted in "
                            "closed form)")
    train.add_argument("--learning-rate", type=float, default=None,
                       help="peak learning rate (default: the recipe's, 1e-3)")
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--image-size", type=int, default=None,
                       help="input side in pixels (default: the backbone's)")
    train.add_argument("--validation-data", default=None,
                       help="folder of validation images, one subfolder per class "
                            "(instead of --validation-split)")
    train.add_argument("--validation-split", type=float, default=0.2,
                       help="fraction of the data held out for validation")
    train.add_argument("--augmentation", choices=["light", "medium", "heavy"], default=None,
                       help="random image transforms during training (heavy adds MixUp/CutMix)")
    train.add_argument("--class-weight", choices=["none", "balanced"], default="none",
                       help="balanced: every class weighs the same in the loss, however "
                            "many images it has")
    train.add_argument("--lora-rank", type=int, default=None,
                       help="with --method fine-tune: train low-rank adapters of this rank "
                            "instead of the backbone's weights")
    train.add_argument("--mixed-precision", action="store_true",
                       help="compute in float16 (GPU) or bfloat16 (TPU/CPU)")
    train.add_argument("--checkpoint-dir", default=None,
                       help="checkpoint every epoch here; rerun the same command to "
                            "resume after an interruption")
    add_output(train, "model.keras", "output .keras path")
    add_csv_columns(train)
    train.set_defaults(func=_train)

    evaluate = sub.add_parser(
        "evaluate", help="accuracy, per-class precision/recall and worst mistakes of a model",
        formatter_class=formatter)
    evaluate.add_argument("model", help="a .keras model file")
    evaluate.add_argument("data", help="folder with one subfolder of images per class, or a "
                                       "CSV of image files and labels")
    evaluate.add_argument("--batch-size", type=int, default=32)
    evaluate.add_argument("--top-k-wrong", type=int, default=8,
                          help="how many of the most confidently wrong images to list")
    evaluate.add_argument("--tta", nargs="?", const="flip", default=False,
                          choices=["flip", "flip_crop"],
                          help="test-time augmentation: average each image's scores with its "
                               "horizontal mirror's (flip, the default), and its four corner crops' "
                               "(flip_crop); not for digits or text")
    add_output(evaluate, None, "report path (default: <model>.evaluation.json)")
    add_csv_columns(evaluate)
    evaluate.set_defaults(func=_evaluate)

    predict = sub.add_parser("predict", help="label image files (or folders of them)",
                             formatter_class=formatter)
    predict.add_argument("model", help="a .keras model file")
    predict.add_argument("images", nargs="+", help="image files, folders, or CSVs with an "
                                                   "--image-column")
    predict.add_argument("--top-k", type=int, default=1, help="classes to show per image")
    predict.add_argument("--batch-size", type=int, default=32)
    predict.add_argument("--tta", nargs="?", const="flip", default=False,
                         choices=["flip", "flip_crop"],
                         help="test-time augmentation: average each image's scores with its "
                              "horizontal mirror's (flip, the default), and its four corner crops' "
                              "(flip_crop); not for digits or text")
    predict.add_argument("--image-column", default="image",
                         help="a CSV's column of image files")
    predict.set_defaults(func=_predict)

    samples = sub.add_parser(
        "samples", help="write a small image-folder task and a pretrained backbone, offline",
        formatter_class=formatter)
    samples.add_argument("folder", help="a new (or empty) folder")
    samples.add_argument("--per-class", type=int, default=20,
                         help="training images per class")
    samples.set_defaults(func=_samples)

    backbones = sub.add_parser("backbones", help="list the backbone names train accepts",
                               formatter_class=formatter)
    backbones.add_argument("--source", choices=["all", "keras_applications", "keras_hub", "text"],
                           default="all")
    backbones.set_defaults(func=_backbones)

    export = sub.add_parser("export", help="export a .keras model to LiteRT and check it",
                            formatter_class=formatter)
    export.add_argument("model", help="a .keras model file")
    export.add_argument("--quantization", choices=["float16", "dynamic", "int8"], default=None,
                        help="default: float32")
    export.add_argument("--data", help="image folder: calibration (int8) and, without "
                                       "--check-data, a fifth held out for the check")
    export.add_argument("--check-data", default=None,
                        help="image folder the exported file is compared with Keras on")
    add_output(export, None, "output .tflite path (default: <model>[_<quantization>].tflite)")
    export.add_argument("--io-dtype", choices=["float32", "int8", "uint8"], default="float32")
    export.add_argument("--allow-select-tf-ops", action="store_true")
    export.add_argument("--sparse-weights", action="store_true",
                        help="store pruned kernels in the TFLite sparse format")
    export.add_argument("--no-metadata", action="store_true",
                        help="a bare file, without the TFLite Metadata MediaPipe reads")
    export.add_argument("--grayscale-input", choices=["rgb", "keep"], default="rgb",
                        help="a 1-channel model: RGB input converted to gray inside "
                             "the file (default), or keep 1 channel")
    export.add_argument("--normalization", nargs=2, type=float, default=(0.0, 1.0),
                        metavar=("MEAN", "STD"),
                        help="MediaPipe feeds (pixel - MEAN) / STD; default 0 1 "
                             "(keras-tl models rescale inside)")
    export.set_defaults(func=_export)
    return parser


def main(argv=None):
    """Entry point of the `keras-tl` command.

    Args:
        argv: argument list (default `sys.argv[1:]`).

    Example:

    ```python
    main(["demo", "--labels", "5", "--seeds", "1"])  # -> 0
    ```
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    # Before TensorFlow loads: its C++ start-up notices are not for users.
    if args.debug:
        os.environ["KERAS_TL_DEBUG"] = "1"
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras_tl._utils.logs import drop_retracing_warnings
    from keras_tl._utils.logs import start_tensorflow_quietly

    if args.command != "backbones" or args.source != "text":
        start_tensorflow_quietly()

    # Commands that train and convert create new models one after another;
    # TensorFlow's retracing warning about them is expected, not advice.
    drop_retracing_warnings()
    args.argv = [a for a in argv[argv.index(args.command) + 1:]]
    from keras_tl._utils.interrupts import cancellable

    try:
        with cancellable():
            return args.func(args)
    except KeyboardInterrupt:
        print(f"keras-tl {args.command}: interrupted; no file was replaced.",
              file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001  (one line for every failure)
        if args.debug:
            raise
        print(f"keras-tl {args.command}: error: {_one_line(error)} "
              "(--debug shows the traceback)", file=sys.stderr)
        return 2


def _one_line(error):
    """An exception as one line: its first line, named by type unless it is
    one of the plain argument errors."""
    text = " ".join(str(error).split()) or type(error).__name__
    if len(text) > 600:
        # Keras repeats nested configs in its loading errors.
        text = text[:600] + " ..."
    if isinstance(error, (ValueError, FileNotFoundError, FileExistsError, TypeError,
                          ConnectionError)):
        return text
    return f"{type(error).__name__}: {text}"


if __name__ == "__main__":
    sys.exit(main())
