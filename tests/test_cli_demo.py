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
