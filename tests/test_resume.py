"""A `fine_tune` run killed with SIGKILL resumes from its checkpoint folder
and ends where an uninterrupted run ends."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import keras, numpy as np
    from keras_tl.backbones import build_small_cnn
    from keras_tl.examples.datasets import load_digits_target
    from keras_tl.recipes import fine_tune

    out, checkpoint_dir, kill_after = sys.argv[1], sys.argv[2], int(sys.argv[3])

    class Kill(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == kill_after:
                os.kill(os.getpid(), signal.SIGKILL)

    x, y = load_digits_target()
    keras.utils.set_random_seed(0)
    network = build_small_cnn((28, 28, 1), 10, width=8, name="cnn")
    backbone = keras.Model(network.input, network.get_layer("avg_pool").output)
    model = fine_tune(
        backbone, (x[:128].astype("float32"), y[:128]), num_classes=10, epochs=4,
        batch_size=32, num_groups=3, initially_trainable=0, unfreeze={"every": 1},
        checkpoint_dir=checkpoint_dir or None,
        callbacks=[Kill()] if kill_after >= 0 else [], verbose=0, seed=0)
    np.save(out, model.predict(x[1500:1600].astype("float32"), verbose=0))
    print("stages", model.history.history["trainable_stages"][1:])
    """
)


def _start(tmp_path, name, checkpoint_dir, kill_after):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    out = tmp_path / f"{name}.npy"
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(out), str(checkpoint_dir or ""), str(kill_after)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    return process, out


def _finish(started):
    process, out = started
    try:
        stdout, stderr = process.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr), out


def _run(tmp_path, name, checkpoint_dir, kill_after):
    return _finish(_start(tmp_path, name, checkpoint_dir, kill_after))


@pytest.mark.slow
@pytest.mark.integration
def test_fine_tune_killed_mid_way_resumes_from_its_checkpoint(tmp_path, run_script_here, capsys):
    checkpoint_dir = tmp_path / "checkpoint"
    killed_run = _start(tmp_path, "killed", checkpoint_dir, kill_after=1)
    # The uninterrupted reference shares nothing with the killed and resumed
    # runs: it trains here, in the test's own process (no second start of
    # Python and TensorFlow), while the killed run trains in its own.
    reference_out = tmp_path / "reference.npy"
    run_script_here(SCRIPT, ["reference", reference_out, "", "-1"], beside=killed_run[0])
    reference_stdout = capsys.readouterr().out
    killed, _ = _finish(killed_run)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    checkpoint = checkpoint_dir / "keras_tl_checkpoint"
    assert (checkpoint / "progressive_unfreezing.json").exists()
    assert (checkpoint / "fingerprint.json").exists()
    # The user's own file in the folder is never touched.
    (checkpoint_dir / "notes.txt").write_text("mine")
    resumed, resumed_out = _run(tmp_path, "resumed", checkpoint_dir, kill_after=-1)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Skipping variable loading" not in resumed.stderr
    assert not checkpoint.exists(), "the checkpoint is removed when training ends"
    assert (checkpoint_dir / "notes.txt").read_text() == "mine"
    # The resumed model's history holds the whole run, as the reference's.
    stages = [line for line in reference_stdout.splitlines() if line.startswith("stages")]
    assert stages and stages[0] in resumed.stdout
    # The resumed epochs draw their batches in a new shuffled order, so the
    # weights differ by the noise of a reshuffle, not by a lost state: a run
    # that restarted the stages or the optimizer would differ far more.
    # (Measured: 0.02 on TensorFlow, 0.06 on PyTorch.)
    resumed_probs, reference_probs = np.load(resumed_out), np.load(reference_out)
    assert np.abs(resumed_probs - reference_probs).max() < 0.15
    agreement = (resumed_probs.argmax(-1) == reference_probs.argmax(-1)).mean()
    assert agreement >= 0.9
