"""Child processes keras-tl starts never import code from the working folder."""

import subprocess

import pytest

from keras_tl._utils.processes import python_command

PLANTED = "open({marker!r}, 'w').write('ran'); raise SystemExit('planted module ran')\n"


@pytest.fixture
def planted(tmp_path, monkeypatch):
    """A working folder holding a `tensorflow.py`, a `keras.py` and a
    `keras_tl.py` that would leave a marker file if imported."""
    marker = tmp_path / "marker"
    for name in ("tensorflow", "keras", "keras_tl", "numpy"):
        (tmp_path / f"{name}.py").write_text(PLANTED.format(marker=str(marker)))
    monkeypatch.chdir(tmp_path)
    return marker


def test_module_child_ignores_the_working_folder(planted):
    result = subprocess.run(python_command(module="keras_tl.cli", args=["--version"]),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("keras-tl ")
    assert not planted.exists()


def test_code_child_ignores_the_working_folder_and_gets_its_arguments(planted):
    code = "import sys, numpy; print(sys.argv[1:], numpy.__name__)"
    result = subprocess.run(python_command(code=code, args=["a", 2]),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "['a', '2'] numpy"
    assert not planted.exists()


def test_export_on_another_backend_reruns_isolated(planted, monkeypatch):
    # What `keras-tl export` does under KERAS_BACKEND=jax or torch.
    from keras_tl import cli

    calls = []
    monkeypatch.setattr(subprocess, "run",
                        lambda command, **kwargs: calls.append(command) or
                        subprocess.CompletedProcess(command, 0))
    assert cli._run_on_tensorflow(["export", "m.keras"]) == 0
    (command,) = calls
    assert command[1] == "-I" and command[-2:] == ["export", "m.keras"]


def test_python_command_takes_module_or_code():
    with pytest.raises(ValueError, match="module or code"):
        python_command()
    with pytest.raises(ValueError, match="module or code"):
        python_command(module="a", code="b")


@pytest.mark.tensorflow_only
def test_ctrl_c_swallowed_during_an_export_still_cancels_it(tmp_path, monkeypatch, capsys):
    import os
    import signal
    import time

    from keras_tl import cli
    from keras_tl.backbones import build_small_cnn
    from keras_tl.export import convert

    model = build_small_cnn((8, 8, 1), 2, width=2, name="m")
    model.save(tmp_path / "m.keras")
    (tmp_path / "m.tflite").write_bytes(b"the previous export")
    real = convert.convert_model

    def interrupted_convert(*args, **kwargs):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        except KeyboardInterrupt:
            pass  # what a garbage-collector callback does with it
        return real(*args, **kwargs)

    monkeypatch.setattr("keras_tl.export.image.convert_model", interrupted_convert)
    # A process started in the background inherits SIGINT ignored, not
    # Python's default handler: the command must give back whichever it had.
    before = signal.getsignal(signal.SIGINT)
    assert cli.main(["export", str(tmp_path / "m.keras")]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert (tmp_path / "m.tflite").read_bytes() == b"the previous export"
    assert sorted(os.listdir(tmp_path)) == ["m.keras", "m.tflite"]
    # Outside the command, SIGINT has its handler from before again.
    assert signal.getsignal(signal.SIGINT) is before
