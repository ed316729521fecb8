"""`keras_tl.TrainingCheckpoint` and every recipe's `checkpoint_dir`: the
checkpoint lives in its own subfolder, deletes nothing of the user's,
refuses another run's state, locks its folder and keeps the run's history."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_tl.checkpoints import CHECKPOINT_SUBFOLDER
from keras_tl.checkpoints import CheckpointMismatchError
from keras_tl.checkpoints import TrainingCheckpoint
from keras_tl.checkpoints import data_fingerprint


def _data(seed=0, n=64):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 4)).astype("float32"), rng.integers(0, 3, n)


def _model(width=8):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(width, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


class _Interrupt(keras.callbacks.Callback):
    def __init__(self, at):
        super().__init__()
        self.at = at

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at:
            raise KeyboardInterrupt


def _fit(model, folder, data, epochs, fingerprint=None, interrupt=None):
    callbacks = [TrainingCheckpoint(folder, fingerprint=fingerprint or
                                    {"data": data_fingerprint(data)})]
    if interrupt is not None:
        callbacks.append(_Interrupt(interrupt))
    return model.fit(*data, epochs=epochs, batch_size=16, callbacks=callbacks, verbose=0)


def _user_files(folder):
    (folder / "data").mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    (folder / "data" / "image.png").write_bytes(b"not really")


def _assert_user_files(folder):
    assert (folder / "notes.txt").read_text() == "mine"
    assert (folder / "data" / "image.png").read_bytes() == b"not really"


def test_finished_run_removes_only_its_subfolder(tmp_path):
    _user_files(tmp_path)
    _fit(_model(), tmp_path, _data(), epochs=2)
    _assert_user_files(tmp_path)
    assert not (tmp_path / CHECKPOINT_SUBFOLDER).exists()
    assert sorted(os.listdir(tmp_path)) == ["data", "notes.txt"]


def test_working_folder_as_checkpoint_dir_loses_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _user_files(tmp_path)
    _fit(_model(), ".", _data(), epochs=1)
    _assert_user_files(tmp_path)


def test_interrupted_run_resumes_with_the_whole_history(tmp_path):
    data = _data()
    with pytest.raises(KeyboardInterrupt):
        _fit(_model(), tmp_path, data, epochs=4, interrupt=1)
    saved = json.loads((tmp_path / CHECKPOINT_SUBFOLDER / "history.json").read_text())
    assert saved["epoch"] == [0, 1]
    history = _fit(_model(), tmp_path, data, epochs=4)
    assert history.epoch == [0, 1, 2, 3]
    assert all(isinstance(e, int) for e in saved["epoch"])
    assert len(history.history["loss"]) == 4
    assert history.history["loss"][:2] == saved["loss"]
    assert not (tmp_path / CHECKPOINT_SUBFOLDER).exists()


def test_other_data_is_refused_by_name(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _fit(_model(), tmp_path, _data(0), epochs=3, interrupt=0)
    with pytest.raises(CheckpointMismatchError, match="belongs to another run.*data") as info:
        _fit(_model(), tmp_path, _data(1), epochs=3)
    assert CHECKPOINT_SUBFOLDER in str(info.value) and "Delete that folder" in str(info.value)
    # The refused run left the checkpoint as it was.
    assert (tmp_path / CHECKPOINT_SUBFOLDER / "latest.weights.h5").exists()


def test_other_model_is_refused(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _fit(_model(8), tmp_path, _data(), epochs=3, interrupt=0)
    with pytest.raises(CheckpointMismatchError, match="model"):
        _fit(_model(16), tmp_path, _data(), epochs=3)


def test_fewer_epochs_than_done_says_so_and_keeps_the_checkpoint(tmp_path):
    data = _data()
    with pytest.raises(KeyboardInterrupt):
        _fit(_model(), tmp_path, data, epochs=5, interrupt=2)
    with pytest.raises(CheckpointMismatchError, match="already holds 3 epochs.*asks for 2"):
        _fit(_model(), tmp_path, data, epochs=2)
    assert (tmp_path / CHECKPOINT_SUBFOLDER / "latest.weights.h5").exists()


def test_half_written_checkpoint_falls_back_to_the_previous_epoch(tmp_path):
    data = _data()
    with pytest.raises(KeyboardInterrupt):
        _fit(_model(), tmp_path, data, epochs=5, interrupt=2)
    folder = tmp_path / CHECKPOINT_SUBFOLDER
    (folder / "latest.weights.h5").write_bytes(b"\x89HDF\r\n half a file")
    history = _fit(_model(), tmp_path, data, epochs=5)
    # The previous copy (after epoch 2) was restored: epochs 3 to 5 ran.
    assert history.epoch[-1] == 4


def test_unreadable_checkpoint_is_refused_by_name(tmp_path):
    data = _data()
    with pytest.raises(KeyboardInterrupt):
        _fit(_model(), tmp_path, data, epochs=5, interrupt=1)
    folder = tmp_path / CHECKPOINT_SUBFOLDER
    (folder / "training_metadata.json").write_text("{not json")
    (folder / "training_metadata.json.bkp").unlink(missing_ok=True)
    with pytest.raises(CheckpointMismatchError, match="cannot be read") as info:
        _fit(_model(), tmp_path, data, epochs=5)
    assert str(folder) in str(info.value)


def test_checkpoint_dir_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "file.txt"
    path.write_text("mine")
    with pytest.raises(ValueError, match="is a file"):
        TrainingCheckpoint(path)
    assert path.read_text() == "mine"


LOCK_HOLDER = textwrap.dedent(
    """
    import sys, time
    import keras, numpy as np
    from keras_tl.checkpoints import TrainingCheckpoint

    class Hold(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            print("holding", flush=True)
            time.sleep(60)

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile("adam", "mse")
    model.fit(np.zeros((8, 4)), np.zeros((8, 3)), epochs=2, verbose=0,
              callbacks=[TrainingCheckpoint(sys.argv[1]), Hold()])
    """
)


@pytest.mark.tensorflow_only
@pytest.mark.slow
def test_second_process_on_one_folder_is_refused(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(tmp_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    try:
        assert holder.stdout.readline().strip() == "holding"
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        model.compile("adam", "mse")
        with pytest.raises(CheckpointMismatchError, match="Another process is training"):
            model.fit(np.zeros((8, 4)), np.zeros((8, 3)), epochs=2, verbose=0,
                      callbacks=[TrainingCheckpoint(tmp_path)])
    finally:
        holder.kill()
        holder.communicate(timeout=60)


def test_data_fingerprint_tells_data_apart(tmp_path):
    x, y = _data()
    assert data_fingerprint((x, y)) == data_fingerprint((x.copy(), y.copy()))
    assert data_fingerprint((x, y)) != data_fingerprint((x[:-1], y[:-1]))
    changed = x.copy()
    changed[-1, 0] += 1
    assert data_fingerprint((x, y)) != data_fingerprint((changed, y))
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "1.png").write_bytes(b"12")
    first = data_fingerprint(str(tmp_path))
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / ".ipynb_checkpoints" / "x.png").write_bytes(b"1")
    assert data_fingerprint(str(tmp_path)) == first
    (tmp_path / "a" / "2.png").write_bytes(b"1")
    assert data_fingerprint(str(tmp_path)) != first
    assert data_fingerprint((["a b", "c"], [0, 1]))["shapes"] == [[2], [2]]


def _classifier(name, width):
    from keras_tl.backbones import build_small_cnn

    keras.utils.set_random_seed(0)
    return build_small_cnn((8, 8, 1), 2, width=width, name=name)


def _images(n=32):
    rng = np.random.default_rng(0)
    y = np.arange(n) % 2
    x = rng.uniform(0, 100, size=(n, 8, 8, 1)) + 100 * y[:, None, None, None]
    return x.astype("float32"), y


@pytest.mark.slow
@pytest.mark.parametrize("method", ["coral", "dann"])
def test_adapt_domain_with_checkpoint_dir_trains_and_resumes(tmp_path, method):
    from keras_tl.recipes import adapt_domain

    _user_files(tmp_path)
    x, y = _images()
    target = 0.5 * x + 30
    stop = _Interrupt(0)
    with pytest.raises(KeyboardInterrupt):
        adapt_domain(_classifier("clf", 2), (x, y), target, method=method, epochs=3,
                     batch_size=8, checkpoint_dir=tmp_path, callbacks=[stop], verbose=0)
    assert (tmp_path / CHECKPOINT_SUBFOLDER / "latest.weights.h5").exists()
    model = adapt_domain(_classifier("clf", 2), (x, y), target, method=method, epochs=3,
                         batch_size=8, checkpoint_dir=tmp_path, verbose=0)
    assert len(model.history.history["loss"]) == 3
    assert not (tmp_path / CHECKPOINT_SUBFOLDER).exists()
    _assert_user_files(tmp_path)


@pytest.mark.slow
def test_distill_with_checkpoint_dir_trains_resumes_and_refuses_other_data(tmp_path):
    from keras_tl.recipes import distill

    x, y = _images()
    teacher = _classifier("teacher", 4)
    with pytest.raises(KeyboardInterrupt):
        distill(teacher, _classifier("student", 2), (x, y), epochs=3, batch_size=8,
                checkpoint_dir=tmp_path, callbacks=[_Interrupt(0)], verbose=0)
    with pytest.raises(CheckpointMismatchError, match="another run"):
        distill(teacher, _classifier("student", 2), (x[:16], y[:16]), epochs=3,
                batch_size=8, checkpoint_dir=tmp_path, verbose=0)
    student = distill(teacher, _classifier("student", 2), (x, y), epochs=3, batch_size=8,
                      checkpoint_dir=tmp_path, verbose=0)
    assert len(student.history.history["loss"]) == 3
    assert not (tmp_path / CHECKPOINT_SUBFOLDER).exists()


@pytest.mark.tensorflow_only
@pytest.mark.slow
def test_user_files_beside_every_output_survive(tmp_path):
    """One folder holds the user's files and everything keras-tl writes
    there: a checkpoint, an embedding cache, an export, a plot."""
    import keras_tl
    from keras_tl.features import extract

    mine = {"notes.txt": b"mine", "model.json": b'{"mine": true}',
            "train.labels.txt": b"mine", "m.labels.txt.bak": b"mine"}
    for name, content in mine.items():
        (tmp_path / name).write_bytes(content)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "keep.png").write_bytes(b"mine")
    history = _fit(_model(), tmp_path, _data(), epochs=2)
    images = np.random.default_rng(0).uniform(0, 255, (8, 8, 8, 3)).astype("float32")
    cnn = keras_tl.build_small_cnn((8, 8, 3), 2, width=2)
    extract(cnn, (images, np.arange(8) % 2), cache_path=tmp_path / "cache.npy")
    # `model.tflite` would write its report to `model.json`, which is the
    # user's: refused, nothing written.
    with pytest.raises(ValueError, match="model.json.*not a keras-tl export report"):
        keras_tl.to_tflite(cnn, tmp_path / "model.tflite")
    keras_tl.to_tflite(cnn, tmp_path / "phone.tflite")
    keras_tl.to_tflite(cnn, tmp_path / "phone.tflite")  # its own report: replaced
    keras_tl.plots.plot_history(history, tmp_path / "curves.png")
    for name, content in mine.items():
        assert (tmp_path / name).read_bytes() == content, name
    assert (tmp_path / "data" / "keep.png").read_bytes() == b"mine"
    written = set(os.listdir(tmp_path)) - set(mine) - {"data"}
    assert written == {"cache.npy", "cache.labels.npy", "phone.tflite", "phone.labels.txt",
                       "phone.json", "curves.png"}
