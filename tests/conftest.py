"""Test-session set-up shared by every test file."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Two host devices for JAX, so `keras.distribution.DataParallel` tests run on
# a real two-device mesh. XLA reads this when JAX starts.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
).strip()

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

BACKEND = keras.backend.backend()

if BACKEND == "jax":
    import jax

    # XLA compilation is most of a small JAX test's time, and many tests
    # compile the same programs (the same small networks' initializers,
    # train and predict steps): a persistent cache shared by the xdist
    # workers compiles each once. It lives in the checkout, so a fresh
    # clone starts cold and `git clean -xdf` removes it.
    jax.config.update(
        "jax_compilation_cache_dir",
        os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                     ".jax_cache"),
    )
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    # For the same reason as Grappler below: XLA's optimizing passes cost
    # the tiny test programs more than they save; the programs compute the
    # same values up to rounding.
    jax.config.update("jax_disable_most_optimizations", True)

# TensorFlow's graph optimizer (Grappler) rewrites every traced function
# before its first run: op fusions and folding that pay off over many steps
# of a real model, but on the tests' tiny models, trained for a few steps,
# cost more than they save (6-15 % of heavy training and export tests'
# time, in three sets of alternating runs).
# It changes how a graph is computed, not what: training results move by
# rounding only, and exports are byte for byte the same (the LiteRT
# converter runs its own passes).
if BACKEND == "tensorflow":
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})

# Two logical CPU devices, so tests can run code under a real
# `tf.distribute.MirroredStrategy`. This must happen before any TF op runs.
_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
    )
except RuntimeError:
    # Already initialized (e.g. by a plugin): MirroredStrategy tests then
    # see whatever devices exist.
    pass


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "slow: a heavy test (about 3.5 s or more; a lighter test of the same "
        "capability stays in the loop); `make test` runs it, `make test-fast` skips it",
    )
    config.addinivalue_line(
        "markers",
        "integration: an end-to-end run (notebook, recipe script, CLI verb, demo, "
        "resume after a kill); `make test` runs them, `make test-fast` skips them",
    )
    config.addinivalue_line(
        "markers",
        "tensorflow_only: needs the TensorFlow backend (tf.distribute, LiteRT "
        "conversion, tfmot, notebooks and scripts run once, on TensorFlow)",
    )
    config.addinivalue_line("markers", "jax_only: needs the JAX backend")
    config.addinivalue_line(
        "markers",
        "runs_first: handed out before every other test (the runs of the other "
        "backends' tests, the longest of the suite)",
    )
    config.addinivalue_line(
        "markers",
        "training_path: trains, saves or reloads through a recipe or building block "
        "that must behave alike on every backend; `make test` runs these on JAX and "
        "PyTorch as well (`make test-jax`/`make test-torch` run every test there)",
    )
    config.addinivalue_line(
        "markers",
        "backend_independent: code that runs the same under every KERAS_BACKEND "
        "(tf.data pipelines, whose Keras layers run on TensorFlow; imports); it "
        "runs once, on TensorFlow",
    )


def pytest_collection_modifyitems(config, items):
    import pytest

    # Heavy tests first: pytest-xdist hands tests out in this order, so the
    # long ones start while the short ones fill in around them, instead of
    # one of them starting last and leaving the other worker idle. The sort
    # is stable and the same in every worker (xdist requires that).
    items.sort(key=lambda item: 0 if "runs_first" in item.keywords
               else 1 if "integration" in item.keywords else 2)
    for item in items:
        if BACKEND != "tensorflow" and "tensorflow_only" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=f"TensorFlow backend only (running {BACKEND})"))
        if BACKEND != "tensorflow" and "backend_independent" in item.keywords:
            item.add_marker(pytest.mark.skip(
                reason=f"backend-independent: runs once, on TensorFlow (running {BACKEND})"))
        if BACKEND != "jax" and "jax_only" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=f"JAX backend only (running {BACKEND})"))
        if "two_cpu_strategy" in getattr(item, "fixturenames", ()) and BACKEND != "tensorflow":
            item.add_marker(pytest.mark.skip(reason="tf.distribute runs on TensorFlow only"))


import contextlib  # noqa: E402
import tempfile  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@contextlib.contextmanager
def _shared_across_processes(name):
    """The file that holds `name` for every process of one `make test` run.

    `make test` runs the suite in several processes (two TensorFlow workers,
    and the JAX and PyTorch runs they start) and points
    `KERAS_TL_TEST_SHARED` at a fresh folder: the first process to get here
    builds the file under a lock, the others wait for it and read it.
    Outside `make test` every process builds its own, in a folder of its own.

    Yields:
        `(path, exists)`: build the file at `path` when `exists` is False.
    """
    folder = os.environ.get("KERAS_TL_TEST_SHARED")
    if not folder:
        with tempfile.TemporaryDirectory() as own:
            yield os.path.join(own, name), False
        return
    import fcntl

    path = os.path.join(folder, name)
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield path, os.path.exists(path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def mnist_cnn_small():
    """A small BatchNorm CNN trained briefly on real MNIST digits.

    Trained weights (not a random init) make numeric checks meaningful.
    Trained once per `make test` run and shared by its processes (weights
    files are backend-independent).
    """
    import keras

    from keras_tl.domain_adaptation import adabn
    from keras_tl.backbones import build_small_cnn
    from keras_tl.examples.datasets import load_mnist_5k

    keras.utils.set_random_seed(0)
    model = build_small_cnn((28, 28, 1), 10, width=16, name="mnist_cnn_small")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    with _shared_across_processes("mnist_cnn_small.weights.h5") as (path, exists):
        if exists:
            model.load_weights(path)
            return model
        x, y = load_mnist_5k()
        order = np.random.default_rng(0).permutation(len(x))[:2000]
        model.fit(x[order].astype("float32"), y[order], batch_size=64, epochs=2, verbose=0)
        # 64 steps leave BatchNorm's moving averages (momentum 0.99) near
        # their initial values; pooled statistics of the training images
        # make the network in inference mode the one that was trained, on
        # every backend.
        adabn(model, x[order].astype("float32"))
        model.save_weights(path)
    return model


@pytest.fixture(scope="session")
def digits_target():
    from keras_tl.examples.datasets import load_digits_target

    x, y = load_digits_target()
    return x.astype("float32"), y


@pytest.fixture(scope="session")
def two_cpu_strategy():
    """One `MirroredStrategy` over the two logical CPUs, shared by all tests.

    Several strategies with all-reduce collectives in one process can
    collide on collective instance keys; one shared strategy reducing
    through one device avoids that and is still a real two-replica
    strategy.
    """
    devices = [d.name for d in tf.config.list_logical_devices("CPU")[:2]]
    assert len(devices) == 2, "two logical CPUs are configured at import time"
    return tf.distribute.MirroredStrategy(
        devices, cross_device_ops=tf.distribute.ReductionToOneDevice()
    )


@pytest.fixture
def run_script_here(monkeypatch):
    """Runs a test's script in this process, as `python -c script *argv`.

    Tests that compare a subprocess with a second run of the same script
    train the second one here, beside it: one start of Python and
    TensorFlow less. `beside`, a `subprocess.Popen`, is killed if the script
    raises, so a failure never leaves it running.

    Example:

    ```python
    def test_same(run_script_here):
        fresh = subprocess.Popen([sys.executable, "-c", SCRIPT, "a.npz"])
        run_script_here(SCRIPT, ["here", "b.npz"], beside=fresh)
    ```
    """
    import sys

    def run(script, argv, beside=None):
        monkeypatch.setattr(sys, "argv", [str(arg) for arg in argv])
        monkeypatch.setattr(sys, "path", list(sys.path))
        try:
            exec(compile(script, argv[0], "exec"), {"__name__": argv[0]})
        except BaseException:
            if beside is not None:
                beside.kill()
            raise

    return run
