import numpy as np
import pytest

from keras_tl.examples.demo import _jobs
from keras_tl.examples.demo import run_demo


def test_demo_jobs_keep_the_teacher_with_its_student():
    """The distilled student reuses the "adabn + feature_extraction" model
    of the same budget and seed, so both run in one job, slowest first."""
    methods = ["scratch", "adabn + feature_extraction", "student distilled (1/20 params)"]
    jobs = _jobs((1, 5), (0, 1), methods)
    assert len(jobs) == 2 * 2 * 2
    assert jobs[0] == (1, 0, ("adabn + feature_extraction",
                              "student distilled (1/20 params)"), False)
    assert jobs[1] == (1, 0, ("scratch",), False)
    # The curves and the saved model come from the last budget's first seed.
    assert [job[3] for job in jobs] == [False] * 4 + [True] * 2 + [False] * 2
    # Without its teacher's row, the student trains its own teacher.
    assert _jobs((1,), (0,), methods[2:]) == [(1, 0, (methods[2],), True)]


@pytest.mark.integration
def test_demo_in_worker_processes_gives_the_rows_of_one_process(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_TL_CACHE", str(tmp_path / "cache"))
    common = dict(labels_per_class=(1,), seeds=(0, 1), methods=("feature_extraction",),
                  export_rows=False, verbose=0, source_epochs=1)
    one = run_demo(out_dir=str(tmp_path / "one"), workers=1, **common)
    two = run_demo(out_dir=str(tmp_path / "two"), workers=2, **common)
    assert [(r["method"], r["labels_per_class"]) for r in two] == \
        [(r["method"], r["labels_per_class"]) for r in one]
    # The same seeds give the same models; one thread instead of several
    # may only change rounding, hence a prediction or two of ~900.
    np.testing.assert_allclose([s for r in two for s in r["scores"]],
                               [s for r in one for s in r["scores"]], atol=0.005)
