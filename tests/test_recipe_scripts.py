"""Every end-to-end script in recipes/ runs with --smoke, offline."""

import importlib.util
import os

import pytest

pytestmark = pytest.mark.tensorflow_only

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "recipes", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.integration
def test_feature_extraction_leaves_smoke(tmp_path):
    script = _load("feature_extraction_leaves")
    model, report = script.main(["--smoke", "--out", str(tmp_path)])
    for name in ("model.keras", "model_int8.tflite", "model_int8.labels.txt", "model_int8.json",
                 "curves.png", "confusion_matrix.png"):
        assert (tmp_path / name).exists(), name
    # Class folders are read in sorted order; the labels follow the model's outputs.
    assert (tmp_path / "model_int8.labels.txt").read_text().split() == ["one", "two", "zero"]
    assert report.top1_agreement >= 0.9


@pytest.mark.slow
@pytest.mark.integration
def test_distill_for_mobile_smoke(tmp_path):
    script = _load("distill_for_mobile")
    teacher, student, reports, agreement = script.main(["--smoke", "--out", str(tmp_path)])
    assert student.count_params() * 10 <= teacher.count_params()
    assert reports["student"].size_bytes < reports["teacher"].size_bytes
    assert agreement > 0.6  # three classes: chance is 1/3
    assert (tmp_path / "student_int8.tflite").exists()
