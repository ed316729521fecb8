"""Same seed, same data, another process: every recipe gives the same weights
(TensorFlow on one machine; see the backends guide for the others)."""

import os
import subprocess
import sys

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.tensorflow_only]

TESTS = os.path.dirname(os.path.abspath(__file__))

# Trains each recipe once with seed 0 on small data and saves its weights.
RUN = r"""
import sys
sys.path.insert(0, sys.argv[2])
import keras
import tensorflow as tf
# As in the test processes (tests/conftest.py): TensorFlow's graph rewrites
# move results by rounding, so both runs compute alike.
tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
import numpy as np
import keras_tl
from test_text import tiny_parts, toy_data

rng = np.random.default_rng(0)
y = np.arange(32) % 2
x = (rng.uniform(0, 120, (32, 16, 16, 3)) + 120 * y[:, None, None, None]).astype("float32")


def cnn(width=8, name="cnn"):
    keras.utils.set_random_seed(0)
    return keras_tl.build_small_cnn((16, 16, 3), 2, width=width, name=name)


def backbone():
    network = cnn()
    return keras.Model(network.input, network.get_layer("avg_pool").output)


common = dict(batch_size=8, seed=0, verbose=0)
models = {
    "feature_extraction": keras_tl.feature_extraction(
        backbone(), (x, y), (x, y), augmentation="light", epochs=2, **common),
    "fine_tune": keras_tl.fine_tune(backbone(), (x, y), (x, y), epochs=2, **common),
    "distill": keras_tl.distill(cnn(), cnn(4, "student"), (x, y), (x, y), epochs=2, **common),
}
classifier = cnn()
classifier.compile("adam", "sparse_categorical_crossentropy")
models["adapt_domain"] = keras_tl.adapt_domain(classifier, (x, y), x[::-1], method="dann",
                                               epochs=2, **common)
texts, labels = toy_data()
models["text_classifier"] = keras_tl.text_classifier(
    (texts, labels), (texts, labels), preset=tiny_parts(), epochs=1, batch_size=4, seed=0,
    verbose=0)
np.savez(sys.argv[1], **{f"{name}/{i}": w for name, model in models.items()
                         for i, w in enumerate(model.get_weights())})
"""


def test_every_recipe_gives_the_same_weights_in_a_fresh_process_and_this_one(
        tmp_path, monkeypatch, run_script_here):
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    fresh = subprocess.Popen([sys.executable, "-c", RUN, str(tmp_path / "fresh.npz"), TESTS],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=tmp_path, env=env)
    # The second run trains here, beside the fresh one: a process that has
    # already run other tests (models built, functions traced, seeds drawn)
    # must still give the fresh process' weights.
    monkeypatch.chdir(tmp_path)
    run_script_here(RUN, ["reproducible", tmp_path / "here.npz", TESTS], beside=fresh)
    _, stderr = fresh.communicate(timeout=600)
    assert fresh.returncode == 0, stderr[-3000:]
    first, second = np.load(tmp_path / "fresh.npz"), np.load(tmp_path / "here.npz")
    assert {key.split("/")[0] for key in first.files} == {
        "feature_extraction", "fine_tune", "distill", "adapt_domain", "text_classifier"}
    for key in first.files:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)
