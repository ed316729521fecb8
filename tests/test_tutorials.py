"""Every tutorial notebook runs top to bottom in smoke mode, offline."""

import glob
import os

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.tensorflow_only

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "tutorials", "*.ipynb")))
KERNEL_SETUP = ("import tensorflow as tf\n"
                "tf.config.optimizer.set_experimental_options({'disable_meta_optimizer': True})")


def test_there_are_three_tutorials():
    names = [os.path.basename(p) for p in NOTEBOOKS]
    assert names == [
        "01_feature_extraction_leaves.ipynb",
        "02_bert_sentiment_portuguese.ipynb",
        "03_distill_for_mobile.ipynb",
    ]


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs_in_smoke_mode(path, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_TL_SMOKE", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    notebook = nbformat.read(path, as_version=4)
    # As in the test processes (tests/conftest.py): TensorFlow's graph
    # rewrites cost the smoke runs' tiny models more than they save. The
    # kernel runs this first; the notebook's own cells run unchanged.
    notebook.cells.insert(0, nbformat.v4.new_code_cell(KERNEL_SETUP))
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    errors = [o for c in notebook.cells if c.cell_type == "code"
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert any(p.suffix == ".tflite" for p in tmp_path.rglob("*")), "every tutorial exports"
