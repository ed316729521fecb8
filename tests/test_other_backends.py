"""`make test`'s runs of the training-path tests on JAX and on PyTorch.

Each backend's run is a pytest process of its own (a Keras backend is chosen
once per process), started by one test of the TensorFlow suite. As tests of
the suite they share the two cores with the TensorFlow tests: the worker that
starts one waits, the other worker runs TensorFlow tests beside it, and
whichever finishes first takes the next test. Run side by side after the
suite, the two runs left a core idle while the longer one (JAX, compiling its
programs for the first time in a fresh clone) went on alone.

They run where `KERAS_TL_TEST_OTHER_BACKENDS=1` (`make test` sets it); a
plain `pytest` skips them, and `make test-jax` / `make test-torch` run every
test on one backend instead.
"""

import os
import subprocess
import sys

import pytest

# Started first (see tests/conftest.py): the longest single tests of the run.
pytestmark = [pytest.mark.integration, pytest.mark.tensorflow_only, pytest.mark.runs_first]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARK = "training_path and not tensorflow_only"
# The logs stay beside the checkout, where `make test` prints their summaries.
LOG = os.path.join(ROOT, ".backends_test.{backend}.log")
# pytest's and pytest-xdist's variables describe this process, not the child.
PARENT_ONLY = ("PYTEST_CURRENT_TEST", "PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT",
               "PYTEST_XDIST_TESTRUNUID", "PYTEST_ADDOPTS")


def _files_with_training_path_tests(session):
    """The test files that hold tests the child selects, from this session's
    collection: the child imports and collects only these (about 8 s less
    than the whole suite), and a test marked in any way is found."""
    files = {str(item.path) for item in session.items
             if "training_path" in item.keywords and "tensorflow_only" not in item.keywords}
    return sorted(os.path.relpath(path, ROOT) for path in files)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_training_path_tests_pass_on(backend, request):
    if os.environ.get("KERAS_TL_TEST_OTHER_BACKENDS") != "1":
        pytest.skip("`make test` runs the training-path tests on JAX and PyTorch "
                    "(KERAS_TL_TEST_OTHER_BACKENDS=1)")
    pytest.importorskip(backend)
    files = _files_with_training_path_tests(request.session)
    assert files, "no test is marked training_path"
    env = {k: v for k, v in os.environ.items() if k not in PARENT_ONLY}
    env.update(KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    log_path = LOG.format(backend=backend)
    with open(log_path, "w") as log:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "--durations=5", "-m", MARK, *files],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=900,
        )
    with open(log_path) as log:
        report = log.read()
    assert done.returncode == 0, f"{backend}: tests marked {MARK!r} failed:\n{report[-6000:]}"
    assert " passed" in report.splitlines()[-1], report[-2000:]
