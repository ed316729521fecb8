"""TensorFlow notices that keras-tl's commands keep out of their output.

Two kinds, both expected and neither actionable by a user:

- The retracing warning ("N out of the last M calls to ... triggered
  tf.function retracing"). TensorFlow counts traces per Python code
  object, so every new Keras model's first `predict` or `fit` counts as a
  retrace of one function; a command that trains several models in a row
  (the demo: a fresh model per method and seed) trips it although no
  function is traced twice. It goes through the `tensorflow` Python logger,
  where a filter drops exactly that message.
- The LiteRT converter's and interpreter's C++ notices
  ("fully_quantize: 0, inference_type: 6, ...", "INFO: Created TensorFlow
  Lite XNNPACK delegate for CPU."). They are written to file descriptor 2
  by C++ code, below Python's `sys.stderr`, so `quiet_converter` captures
  the descriptor around a conversion and writes back every other line.
"""

import contextlib
import logging
import os
import re
import sys
import tempfile

__all__ = [
    "CONVERTER_NOTICES",
    "RETRACING_MESSAGE",
    "STARTUP_NOTICES",
    "drop_retracing_warnings",
    "quiet_converter",
    "quiet_native_logs",
    "start_tensorflow_quietly",
]

RETRACING_MESSAGE = "triggered tf.function retracing"

# Whole lines the converter, the calibrator and the interpreter print on
# every conversion or interpreter start: informational only.
CONVERTER_NOTICES = re.compile(
    r"^(fully_quantize: \d+, inference_type: \d+, input_inference_type: \w+, "
    r"output_inference_type: \w+"
    r"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."
    r"|INFO: Initialized TensorFlow Lite runtime\.)\s*$"
    # The MLIR converter's notes on options it ignores or fills in itself.
    r"|^W\d{4} [\d:.]+\s+\d+ (tf_tfl_flatbuffer_helpers|flatbuffer_export)\.cc:\d+\] "
    r"(Ignored \w+\.|Skipping runtime version metadata in the model\..*)\s*$"
)

# What TensorFlow's C++ side prints when it loads, whatever
# TF_CPP_MIN_LOG_LEVEL says (absl's INFO lines come before logging is
# initialized): the oneDNN and "no CUDA driver" notices, on a CPU machine.
STARTUP_NOTICES = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written "
    r"to STDERR"
    r"|I\d{4} [\d:.]+\s+\d+ \w+\.cc:\d+\] .*"
    r"|E\d{4} [\d:.]+\s+\d+ cuda_\w+\.cc:\d+\] failed call to cuInit: .*"
    r"|To enable the following instructions: .*rebuild TensorFlow with the appropriate "
    r"compiler flags\.)\s*$"
)


class _DropRetracing(logging.Filter):
    """Drops TensorFlow's frequent-retracing warning, and nothing else."""

    def filter(self, record):
        return RETRACING_MESSAGE not in record.getMessage()


_FILTER = _DropRetracing()


def drop_retracing_warnings():
    """Filters the retracing warning out of the `tensorflow` logger.

    Idempotent; every other TensorFlow log record still goes through.

    Example:

    >>> drop_retracing_warnings()
    >>> drop_retracing_warnings()  # a second call adds nothing
    """
    logger = logging.getLogger("tensorflow")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)


@contextlib.contextmanager
def quiet_native_logs(notices=None):
    """Runs a block with TensorFlow's C++ notices removed from stderr.

    File descriptor 2 goes to a temporary file for the duration of the
    block; afterwards every line that is not one of `notices` (default:
    `CONVERTER_NOTICES` and `STARTUP_NOTICES`) is written back to stderr,
    so errors and warnings still show (after the block rather than during
    it).

    Args:
        notices: compiled patterns of whole lines to drop.

    Example:

    ```python
    with quiet_native_logs():
        import tensorflow
    ```
    """
    notices = notices or (CONVERTER_NOTICES, STARTUP_NOTICES)
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        # No real descriptor 2 (e.g. an embedded interpreter): nothing to do.
        yield
        return
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", errors="replace")
            kept = [line for line in text.splitlines(keepends=True)
                    if not any(pattern.match(line) for pattern in notices)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def quiet_converter():
    """`quiet_native_logs` around a LiteRT conversion.

    Example:

    ```python
    with quiet_converter():
        report = to_tflite(model, "model.tflite")
    ```
    """
    return quiet_native_logs()


def start_tensorflow_quietly():
    """Imports TensorFlow and initializes its devices with the start-up
    notices dropped (once; nothing if it is already loaded or absent).

    Example:

    >>> start_tensorflow_quietly()
    """
    if "tensorflow" in sys.modules or os.environ.get("KERAS_TL_DEBUG"):
        return
    try:
        with quiet_native_logs():
            import tensorflow as tf

            # The device scan prints the "failed call to cuInit" notice.
            tf.config.list_physical_devices()
            tf.zeros(())
    except ImportError:
        pass
