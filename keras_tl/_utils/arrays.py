"""NumPy arrays that TensorFlow can use in place, without a second copy.

Embeddings of large data sets are the biggest thing keras-tl holds in
memory. TensorFlow reads a NumPy array without copying it only through
DLPack, and only when the array is writable, contiguous and aligned to
64 bytes (Eigen's alignment; an unaligned buffer aborts the process).
"""

import numpy as np

__all__ = ["ALIGNMENT", "aligned_empty", "shared_tensor"]

# Eigen's EIGEN_MAX_ALIGN_BYTES in TensorFlow's CPU builds.
ALIGNMENT = 64


def aligned_empty(shape, dtype=np.float32):
    """An uninitialized array whose data starts on a 64-byte boundary.

    Args:
        shape: the array's shape.
        dtype: its dtype.

    Returns:
        A C-contiguous, writable `np.ndarray` that `shared_tensor` can wrap.
    """
    dtype = np.dtype(dtype)
    size = int(np.prod(shape)) * dtype.itemsize
    buffer = np.empty(size + ALIGNMENT, np.uint8)
    start = -buffer.ctypes.data % ALIGNMENT
    return buffer[start : start + size].view(dtype).reshape(shape)


def shared_tensor(array):
    """A TensorFlow tensor over `array`'s own memory, copied only if it must be.

    A writable, C-contiguous, 64-byte aligned float32 array (from
    `aligned_empty`, or a copy-on-write `.npy` memory map, whose header
    keeps the data aligned) becomes a tensor without a copy; anything else
    is converted.

    Args:
        array: a NumPy array or memory map.

    Returns:
        A float32 `tf.Tensor`.
    """
    import tensorflow as tf

    array = np.asarray(array)
    shareable = (
        array.dtype == np.float32
        and array.flags.c_contiguous
        and array.flags.writeable
        and array.ctypes.data % ALIGNMENT == 0
    )
    if shareable:
        try:
            return tf.experimental.dlpack.from_dlpack(array.__dlpack__())
        except (BufferError, TypeError, ValueError, tf.errors.OpError):
            pass
    return tf.convert_to_tensor(array, tf.float32)
