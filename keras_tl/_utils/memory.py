"""Returning freed heap memory to the operating system during long loops.

A forward pass over thousands of batches allocates and frees each batch's
images and activations on TensorFlow's and tf.data's threads. glibc's
`malloc` keeps what those threads free in per-thread arenas for reuse and
does not return it: after 20,000 images at 96 px the process holds about
100 MB it no longer uses, as much as the embeddings themselves.
`malloc_trim` hands it back; elsewhere than glibc this is a no-op.
"""

import ctypes
import ctypes.util
import functools
import time

__all__ = ["release_free_heap"]

_LAST_RELEASE = [float("-inf")]


@functools.cache
def _malloc_trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_free_heap(every=0.0):
    """Returns the heap memory the process has freed to the system (glibc).

    A release takes about 2 ms; inside a loop, `every` bounds its share of
    the loop's time (0.25 s: at most 1%) whatever a step costs.

    Args:
        every: seconds; release only if the last release is at least this
            old. 0 releases now.

    Returns:
        `True` when memory was released, `False` when there was none, it
        was too soon, or the C library has no `malloc_trim`.
    """
    now = time.monotonic()
    if now - _LAST_RELEASE[0] < every:
        return False
    _LAST_RELEASE[0] = now
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False
