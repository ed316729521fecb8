"""`tf.distribute` strategies the recipes refuse before any work: Keras 3
cannot train under `MultiWorkerMirroredStrategy`, and a backbone built
outside the strategy's scope would fail at its first unfreeze."""

import os
import subprocess

import keras
import numpy as np
import pytest

import keras_tl

pytestmark = pytest.mark.tensorflow_only


def test_a_backbone_built_outside_the_strategy_scope_is_refused_by_name(two_cpu_strategy):
    x = np.random.default_rng(0).uniform(0, 255, (16, 16, 16, 3)).astype("float32")
    y = np.arange(16) % 2
    cnn = keras_tl.build_small_cnn((16, 16, 3), 2, width=8)
    outside = keras.Model(cnn.input, cnn.get_layer("avg_pool").output, name="outside")
    with pytest.raises(ValueError, match=r"'outside' was built outside the scope of the "
                                         r"MirroredStrategy.*`with strategy.scope\(\):`"):
        keras_tl.fine_tune(outside, (x, y), epochs=1, strategy=two_cpu_strategy, verbose=0)
    # Built inside, the same network trains under the strategy.
    with two_cpu_strategy.scope():
        cnn = keras_tl.build_small_cnn((16, 16, 3), 2, width=8)
        inside = keras.Model(cnn.input, cnn.get_layer("avg_pool").output, name="inside")
    model = keras_tl.feature_extraction(inside, (x, y), strategy=two_cpu_strategy, verbose=0)
    assert model.predict(x, verbose=0).shape == (16, 2)


@pytest.mark.slow
def test_multi_worker_mirrored_strategy_is_refused_with_the_keras_issue_and_the_jax_route(
        tmp_path):
    # A process of its own: a MultiWorkerMirroredStrategy configures TF's
    # collectives for the whole process. One local worker (no TF_CONFIG).
    from keras_tl._utils.processes import python_command

    code = (
        "import numpy as np, tensorflow as tf, keras_tl\n"
        "strategy = tf.distribute.MultiWorkerMirroredStrategy()\n"
        "x = np.zeros((8, 16, 16, 3), 'float32'); y = np.arange(8) % 2\n"
        "for call in (lambda: keras_tl.fine_tune('mobilenet_v3_small', (x, y), weights=None,"
        " strategy=strategy, verbose=0),\n"
        "             lambda: strategy.scope().__enter__() and keras_tl.distill("
        "keras_tl.build_small_cnn((16, 16, 3), 2), keras_tl.build_small_cnn((16, 16, 3), 2,"
        " width=4), (x, y), verbose=0)):\n"
        "    try:\n"
        "        call()\n"
        "    except ValueError as error:\n"
        "        print('REFUSED', error)\n"
    )
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("TF_CONFIG", None)
    done = subprocess.run(python_command(code=code), capture_output=True, text=True,
                          timeout=300, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    refusals = [line for line in done.stdout.splitlines() if line.startswith("REFUSED")]
    assert len(refusals) == 2, done.stdout[-2000:]
    for line in refusals:
        assert "keras-team/keras/issues/20585" in line
        assert "KERAS_BACKEND=jax" in line and "DataParallel" in line
