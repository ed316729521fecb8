"""Ctrl-C that cancels, even when Python swallows the `KeyboardInterrupt`.

Python raises `KeyboardInterrupt` wherever the main thread happens to be
when SIGINT arrives. Inside a garbage-collector callback or a `__del__`
(JAX and TensorFlow register both) the exception is printed as "Exception
ignored" and dropped, and a command would go on to write its files and exit
with status 0. `cancellable()` records every SIGINT as well as raising it,
and `raise_if_interrupted()`, called before files are put in place, raises
again for one that was swallowed.
"""

import contextlib
import signal
import threading

__all__ = ["cancellable", "raise_if_interrupted"]

_interrupts = {"count": 0}


def _handler(signum, frame):
    _interrupts["count"] += 1
    raise KeyboardInterrupt


@contextlib.contextmanager
def cancellable():
    """Records SIGINT while the block runs (main thread only), then puts the
    previous handler back.

    Example:

    ```python
    with cancellable():
        export()  # files are written only if no Ctrl-C came
    ```
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _handler)
    _interrupts["count"] = 0
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _interrupts["count"] = 0


def raise_if_interrupted():
    """Raises `KeyboardInterrupt` if Ctrl-C came inside `cancellable()`,
    even if the first `KeyboardInterrupt` was swallowed.

    Example:

    ```python
    raise_if_interrupted()  # before renaming files into place
    ```
    """
    if _interrupts["count"]:
        raise KeyboardInterrupt("interrupted (Ctrl-C)")
