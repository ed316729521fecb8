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


def test_cli_train_writes_model_and_curves(tmp_path, capfd):
    """On JAX this is also the check that a model trained there exports: the
    export verb converts the saved file in a TensorFlow subprocess."""
    data = _folder(tmp_path / "leaves")
    out = tmp_path / "out" / "model.keras"
    code = main(["train", str(data), "--backbone", "mobilenet_v2", "--weights", "none",
                 "--image-size", "32", "--out", str(out)])
    assert code == 0
    assert out.exists() and (tmp_path / "out" / "model_curves.png").exists()
    model = keras.models.load_model(str(out), safe_mode=True)
    assert keras_tl.get_class_names(model) == ["healthy", "rust"]
    assert "Saved" in capfd.readouterr().out
    with open(tmp_path / "out" / "model.json", encoding="utf-8") as f:
        trained = json.load(f)
    assert trained["backbone"] == "mobilenet_v2"
    assert trained["method"] == "feature-extraction"
    assert set(trained["final_metrics"]) >= {"loss", "accuracy"}
    assert trained["class_names"] == ["healthy", "rust"]
    # Saved compiled: evaluate works on the reloaded file as it is.
    images, labels = keras_tl.data.to_arrays(
        keras_tl.as_dataset(str(data), image_size=(32, 32), shuffle=False).train)
    assert 0.0 <= model.evaluate(images, labels, verbose=0)[1] <= 1.0

    # keras-tl export: int8 needs calibration data, and says so.
    assert main(["export", str(out), "--quantization", "int8"]) == 2
    assert "--data" in capfd.readouterr().err
    assert main(["export", str(out), "--quantization", "int8", "--data", str(data)]) == 0
    printed = capfd.readouterr().out
    assert "top-1 agreement" in printed
    assert "image_classifier" in printed  # MediaPipe-ready metadata by default
    assert (tmp_path / "out" / "model_int8.tflite").exists()
    with open(tmp_path / "out" / "model_int8.json", encoding="utf-8") as f:
        saved = json.load(f)
    assert saved["quantization"] == "int8" and saved["metadata"] == "image_classifier"
    assert str(tmp_path / "out" / "model_int8.json") in printed
    assert (tmp_path / "out" / "model_int8.labels.txt").read_text().split() == ["healthy", "rust"]


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


@pytest.mark.slow
def test_demo_table_has_honest_rows(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_TL_CACHE", str(tmp_path / "cache"))
    from keras_tl.examples.demo import run_demo

    rows = run_demo(labels_per_class=(2,), seeds=(0,), methods=["feature_extraction", "fine_tune"],
                    out_dir=str(tmp_path / "demo"), verbose=0)
    by_method = {r["method"]: r for r in rows}
    zero_shot = by_method["zero-shot source model"]["mean"]
    fe = by_method["feature_extraction"]["mean"]
    assert 0.2 < zero_shot < 0.9  # a real, imperfect transfer
    assert fe > zero_shot
    assert os.path.exists(tmp_path / "demo" / "results.md")
    assert os.path.exists(tmp_path / "demo" / "fine_tune.keras")
    assert os.path.exists(tmp_path / "demo" / "curves.png")
    assert "int8" in (tmp_path / "demo" / "results.md").read_text()
    # The pretrained source model is cached for the next run.
    assert any(p.suffix == ".keras" for p in (tmp_path / "cache").iterdir())
