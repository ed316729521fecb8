import json
import os
import pathlib

import keras
import numpy as np
import pytest
from PIL import Image

import keras_tl
from keras_tl.cli import main


def _folder(root):
    rng = np.random.default_rng(0)
    for name in ("healthy", "rust"):
        (root / name).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(rng.integers(0, 255, (36, 36, 3), dtype=np.uint8)).save(
                root / name / f"{i}.png")
    return root


# One CLI-trained model serves the train, evaluate, predict and export checks:
# training and converting a zoo backbone is the expensive part, and the
# verbs are meant to run one after the other on the same file.
cli_model_group = pytest.mark.xdist_group("cli_trained_model")


@pytest.fixture(scope="session")
def cli_trained(tmp_path_factory, worker_id):
    """`keras-tl train` on a two-class image folder: `(data, model_path, stdout)`.

    Trained once per test run: pytest-xdist workers share the folder above
    their own temporary folders, and a file lock lets the first one train.
    MobileNet (v1) is the smallest zoo backbone the CLI accepts by name;
    the checks are about the verbs and the files they write, not accuracy.
    """
    import contextlib
    import io

    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    root = (base.parent if worker_id != "master" else base) / "cli_trained_model"
    data, out, log = root / "leaves", root / "out" / "model.keras", root / "train_stdout.txt"
    with FileLock(str(root) + ".lock"):
        if not log.exists():
            _folder(data)
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                code = main(["train", str(data), "--backbone", "mobilenet", "--weights",
                             "none", "--image-size", "32", "--output", str(out)])
            assert code == 0
            log.write_text(printed.getvalue())
    return data, out, log.read_text()


@pytest.mark.integration
@cli_model_group
def test_cli_train_writes_model_and_curves(cli_trained):
    data, out, printed = cli_trained
    assert out.exists() and (out.parent / "model_curves.png").exists()
    model = keras.models.load_model(str(out), safe_mode=True)
    assert keras_tl.get_class_names(model) == ["healthy", "rust"]
    assert "Saved" in printed
    with open(out.parent / "model.training.json", encoding="utf-8") as f:
        trained = json.load(f)
    assert trained["backbone"] == "mobilenet"
    assert trained["method"] == "feature-extraction"
    # Feature extraction fits its head in closed form: no epochs.
    assert trained["epochs"] is None and trained["epochs_run"] == 1
    assert set(trained["final_metrics"]) >= {"loss", "accuracy"}
    assert trained["class_names"] == ["healthy", "rust"]
    # Saved compiled: evaluate works on the reloaded file as it is.
    images, labels = keras_tl.data.to_arrays(
        keras_tl.as_dataset(str(data), image_size=(32, 32), shuffle=False).train)
    assert 0.0 <= model.evaluate(images, labels, verbose=0)[1] <= 1.0


@pytest.mark.integration
@cli_model_group
def test_cli_export_int8_of_trained_model(cli_trained, capfd):
    """On JAX this is also the check that a model trained there exports: the
    export verb converts the saved file in a TensorFlow subprocess."""
    data, out, _ = cli_trained
    # keras-tl export: int8 needs calibration data, and says so.
    assert main(["export", str(out), "--quantization", "int8"]) == 2
    assert "--data" in capfd.readouterr().err
    assert main(["export", str(out), "--quantization", "int8", "--data", str(data)]) == 0
    printed = capfd.readouterr().out
    assert "top-1 agreement" in printed
    assert "image_classifier" in printed  # MediaPipe-ready metadata by default
    assert (out.parent / "model_int8.tflite").exists()
    with open(out.parent / "model_int8.json", encoding="utf-8") as f:
        saved = json.load(f)
    assert saved["quantization"] == "int8" and saved["metadata"] == "image_classifier"
    assert str(out.parent / "model_int8.json") in printed
    assert (out.parent / "model_int8.labels.txt").read_text().split() == ["healthy", "rust"]


@pytest.mark.integration
@cli_model_group
def test_cli_evaluate_and_predict_the_trained_model(cli_trained, capfd):
    data, model_path, _ = cli_trained
    images = _check_evaluate_and_predict(
        model_path, data, model_path.parent / "model.evaluation.json", capfd
    )
    assert main(["predict", str(model_path), "--top-k", "2", images[0]]) == 0
    (line,) = capfd.readouterr().out.strip().splitlines()
    assert line.startswith(images[0]) and "healthy" in line and "rust" in line

    assert main(["predict", str(model_path), str(data / "nope.png")]) == 2
    assert "nope.png" in capfd.readouterr().err


def _tiny_saved_model(path):
    """A 2-class classifier with stored class names, saved untrained."""
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    x = keras.layers.Dense(2, activation="softmax", name="probabilities")(x)
    outputs = keras_tl.ClassNames(["healthy", "rust"], name="class_names")(x)
    model = keras.Model(inputs, outputs)
    model.save(path)
    return model


def test_cli_evaluate_and_predict(tmp_path, capfd):
    """The verbs alone, on a tiny untrained model (fast feedback)."""
    data = _folder(tmp_path / "leaves")
    model_path = tmp_path / "tiny.keras"
    _tiny_saved_model(str(model_path))
    _check_evaluate_and_predict(model_path, data, tmp_path / "tiny.evaluation.json", capfd)

    assert main(["predict", str(model_path), str(tmp_path / "nope.png")]) == 2
    assert "nope.png" in capfd.readouterr().err
    # The tiny model pools globally: a mirror changes nothing, so --tta
    # prints what the plain prediction prints.
    image = str(data / "rust" / "0.png")
    assert main(["predict", str(model_path), image]) == 0
    plain = capfd.readouterr().out
    assert main(["predict", str(model_path), image, "--tta"]) == 0
    assert capfd.readouterr().out == plain
    # A folder stands for the images under it, in file order.
    assert main(["predict", str(model_path), str(data / "rust")]) == 0
    lines = capfd.readouterr().out.strip().splitlines()
    assert len(lines) == 5 and all(line.startswith(str(data / "rust")) for line in lines)


def _check_evaluate_and_predict(model_path, data, report_path, capfd):
    """`evaluate` prints and writes its report; `predict` prints a line per image."""
    assert main(["evaluate", str(model_path), str(data), "--top-k-wrong", "3"]) == 0
    printed = capfd.readouterr().out
    assert "accuracy" in printed and "precision" in printed
    with open(report_path, encoding="utf-8") as f:
        report = json.load(f)
    assert report["class_names"] == ["healthy", "rust"]
    assert sum(c["support"] for c in report["per_class"].values()) == 10
    assert len(report["most_confidently_wrong"]) <= 3

    images = [str(data / "rust" / "0.png"), str(data / "healthy" / "1.png")]
    assert main(["predict", str(model_path)] + images) == 0
    lines = capfd.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    for line, image in zip(lines, images):
        path, label, score = line.split("\t")
        assert path == image and label in ("healthy", "rust") and 0.5 <= float(score) <= 1
    return images


@pytest.mark.integration
@cli_model_group
def test_cli_export_report_leaves_the_training_report(cli_trained, capfd):
    _, out, _ = cli_trained
    training = out.parent / "model.training.json"
    before = training.read_bytes()
    assert main(["export", str(out)]) == 0
    capfd.readouterr()
    assert training.read_bytes() == before
    with open(out.parent / "model.json", encoding="utf-8") as f:
        assert "top1_agreement" in json.load(f)


@pytest.mark.integration
@pytest.mark.tensorflow_only
def test_cli_checkpoint_dir_dot_keeps_the_working_folder(tmp_path, monkeypatch, capfd):
    # Data, notes and the checkpoint all in the folder the command runs in.
    monkeypatch.chdir(tmp_path)
    _folder(tmp_path / "leaves")
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["train", "leaves", "--method", "fine-tune", "--backbone", "mobilenet",
                 "--weights", "none", "--image-size", "32", "--epochs", "1",
                 "--checkpoint-dir", ".", "--out", "model.keras"]) == 0
    capfd.readouterr()
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert len(list((tmp_path / "leaves").rglob("*.png"))) == 10
    assert (tmp_path / "model.keras").exists()
    assert not (tmp_path / "keras_tl_checkpoint").exists()


def test_cli_train_refuses_an_unwritable_out_before_training(tmp_path, capfd):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file, not a folder")
    assert main(["train", str(tmp_path / "missing-data"), "--backbone", "mobilenet",
                 "--out", str(blocked / "model.keras")]) == 2
    assert "not a writable folder" in capfd.readouterr().err
    assert blocked.read_text() == "a file, not a folder"
    assert main(["train", str(tmp_path), "--out", str(tmp_path / "m.h5")]) == 2
    assert "--output must end in .keras" in capfd.readouterr().err


def test_cli_train_refuses_epochs_it_would_ignore(tmp_path, capfd):
    assert main(["train", str(tmp_path), "--epochs", "5"]) == 2
    err = capfd.readouterr().err
    assert "--epochs has no effect here" in err and "--augmentation" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert main(["train", str(tmp_path), "--lora-rank", "4"]) == 2
    assert "add --method fine-tune" in capfd.readouterr().err


def test_cli_errors_are_one_line_and_debug_shows_the_traceback(tmp_path, capfd):
    missing = str(tmp_path / "missing.keras")
    assert main(["predict", missing, "x.png"]) == 2
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err and "--debug" in err
    with pytest.raises(FileNotFoundError):
        main(["--debug", "predict", missing, "x.png"])
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"not a zip")
    assert main(["evaluate", str(corrupt), str(tmp_path)]) == 2
    assert "truncated or corrupt" in capfd.readouterr().err


@pytest.mark.integration
@pytest.mark.tensorflow_only
def test_readme_command_line_session_runs_as_written(tmp_path, monkeypatch, capfd):
    # Every command of the README's "Five minutes on the command line",
    # as a user would type it, in an empty folder, offline.
    import re
    import shlex

    readme = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text(
        encoding="utf-8")
    session = re.search(r"## Five minutes on the command line\n.*?```bash\n(.*?)```", readme,
                        re.S).group(1)
    commands = [shlex.split(line) for line in session.strip().splitlines()]
    assert [c[:2] for c in commands] == [["keras-tl", "samples"], ["keras-tl", "train"],
                                         ["keras-tl", "evaluate"], ["keras-tl", "predict"],
                                         ["keras-tl", "export"]]
    monkeypatch.chdir(tmp_path)
    for command in commands:
        assert main(command[1:]) == 0, command
        captured = capfd.readouterr()
        # Quiet: no TensorFlow notices, no converter chatter.
        assert "I0000" not in captured.err and "fully_quantize" not in captured.err, captured.err
    for written in ("digits.keras", "digits.training.json", "digits.evaluation.json",
                    "digits_int8.tflite", "digits_int8.json"):
        assert (tmp_path / written).exists(), written
    # A pretrained backbone transfers: far above chance (0.1); 0.95 measured.
    trained = json.loads((tmp_path / "digits.training.json").read_text(encoding="utf-8"))
    assert trained["final_metrics"]["val_accuracy"] >= 0.6
