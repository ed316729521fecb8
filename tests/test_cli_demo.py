import json
import os

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
                             "none", "--image-size", "32", "--epochs", "2", "--out", str(out)])
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
    with open(out.parent / "model.json", encoding="utf-8") as f:
        trained = json.load(f)
    assert trained["backbone"] == "mobilenet"
    assert trained["method"] == "feature-extraction"
    assert trained["epochs"] == 2
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

    assert main(["evaluate", str(model_path), str(data), "--top-k-wrong", "3"]) == 0
    printed = capfd.readouterr().out
    assert "accuracy" in printed and "precision" in printed
    with open(model_path.parent / "model.evaluation.json", encoding="utf-8") as f:
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

    assert main(["evaluate", str(model_path), str(data), "--top-k-wrong", "3"]) == 0
    printed = capfd.readouterr().out
    assert "accuracy" in printed and "precision" in printed
    with open(tmp_path / "tiny.evaluation.json", encoding="utf-8") as f:
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

    assert main(["predict", str(model_path), str(tmp_path / "nope.png")]) == 2
    assert "nope.png" in capfd.readouterr().err


def test_cli_backbones_and_version(capfd):
    assert main(["backbones", "--source", "keras_applications"]) == 0
    names = capfd.readouterr().out.split()
    assert "mobilenet_v2" in names and "resnet50" in names
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capfd.readouterr().out.strip() == f"keras-tl {keras_tl.__version__}"


def test_cli_bad_backbone_is_a_clear_error_and_writes_nothing(tmp_path, capfd):
    data = _folder(tmp_path / "leaves")
    out = tmp_path / "model.keras"
    code = main(["train", str(data), "--backbone", "resnet5O", "--weights", "none",
                 "--out", str(out)])
    assert code == 2
    assert "Unknown backbone 'resnet5O'" in capfd.readouterr().err
    assert not out.exists()


def _table_means(markdown):
    """`{method: first accuracy cell}` of a results.md table."""
    means = {}
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[1][:1].isdigit() and "/" not in cells[1]:
            means[cells[0]] = float(cells[1].split()[0])
    return means


@pytest.mark.integration
def test_demo_quick_has_honest_rows_and_no_tensorflow_noise(tmp_path, monkeypatch, capfd, caplog):
    """`keras-tl demo --quick`: every stage of the demo, on one budget and seed.

    Also the check that the demo prints neither TensorFlow's retracing
    warning (it trains a new model per method) nor the LiteRT converter's
    C++ notices (it converts four files).
    """
    monkeypatch.setenv("KERAS_TL_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    printed = capfd.readouterr()
    table = (out / "results.md").read_text()
    means = _table_means(table)
    zero_shot, fe = means["zero-shot source model"], means["feature_extraction"]
    assert 0.2 < zero_shot < 0.9  # a real, imperfect transfer
    assert fe > zero_shot
    assert "fine_tune" in means
    assert (out / "fine_tune.keras").exists()
    assert (out / "curves.png").exists()
    assert "| int8 |" in table and "| float16 |" in table
    assert "| int8 |" in printed.out  # the table is printed too
    # The pretrained source model is cached for the next run.
    assert any(p.suffix == ".keras" for p in (tmp_path / "cache").iterdir())
    logged = printed.out + printed.err + caplog.text
    assert "retracing" not in logged
    assert "fully_quantize" not in logged and "XNNPACK" not in logged
