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

__all__ = ["CONVERTER_NOTICES", "RETRACING_MESSAGE", "drop_retracing_warnings", "quiet_converter"]

RETRACING_MESSAGE = "triggered tf.function retracing"

# Whole lines the converter, the calibrator and the interpreter print on
# every conversion or interpreter start: informational only.
CONVERTER_NOTICES = re.compile(
    r"^(fully_quantize: \d+, inference_type: \d+, input_inference_type: \w+, "
    r"output_inference_type: \w+"
    r"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."
    r"|INFO: Initialized TensorFlow Lite runtime\.)\s*$"
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
def quiet_converter():
    """Runs a block with the converter's C++ notices removed from stderr.

    File descriptor 2 goes to a temporary file for the duration of the
    block; afterwards every line that is not one of `CONVERTER_NOTICES` is
    written back to stderr, so errors and warnings still show (after the
    block rather than during it).

    Example:

    ```python
    with quiet_converter():
        report = to_tflite(model, "model.tflite")
    ```
    """
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
                    if not CONVERTER_NOTICES.match(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
