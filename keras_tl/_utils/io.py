"""Atomic writes: a file or folder appears whole under its name, or not at all.

Everything is first written under a temporary name in the target's folder
(so the final rename stays on one file system, where `os.replace` is
atomic), flushed to disk, given the permissions a plain `open` would have
given it, and renamed over the target. On any failure the temporary is
removed and the target is left as it was.
"""

import os
import shutil
import tempfile

__all__ = ["save_atomic", "save_directory_atomic", "umask", "write_atomic"]

_TEMPORARY_PREFIX = ".tmp-"


def umask():
    """The process umask, read without changing it where Linux allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    # Elsewhere the umask can only be read by setting it.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync(path):
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _folder_of(path):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    return folder


def save_atomic(path, save, suffix=None):
    """Calls `save(temporary_path)`, then renames the result to `path`.

    For writers that take a path (`model.save`, `np.save`, `savefig`).
    `tempfile.mkstemp` creates the temporary with mode 0600, which the
    rename would keep; it gets `0o666 & ~umask`, as `open` would give.

    Args:
        path: the file to write.
        save: a callable writing the file at the path it is given.
        suffix: ending of the temporary name, for writers that choose the
            format from it (`".keras"`, `".npy"`, `".png"`); default: the
            extension of `path`.

    Returns:
        `path`.
    """
    path = os.fspath(path)
    if suffix is None:
        suffix = os.path.splitext(path)[1]
    handle, temporary = tempfile.mkstemp(
        prefix=_TEMPORARY_PREFIX, suffix=suffix, dir=_folder_of(path)
    )
    os.close(handle)
    try:
        save(temporary)
        os.chmod(temporary, 0o666 & ~umask())
        _fsync(temporary)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return path


def write_atomic(path, content):
    """Writes bytes, or text as UTF-8, to `path` atomically.

    Args:
        path: the file to write.
        content: `bytes` or `str`.

    Returns:
        `path`.
    """
    data = content.encode("utf-8") if isinstance(content, str) else content

    def save(temporary):
        with open(temporary, "wb") as f:
            f.write(data)

    return save_atomic(path, save, suffix="")


def save_directory_atomic(path, save):
    """Calls `save(staging_folder)`, then puts the folder at `path`.

    A folder already at `path` is replaced. Between its removal and the
    rename, `path` is briefly absent: `os.replace` cannot replace a
    non-empty folder.

    Args:
        path: the folder to write.
        save: a callable filling the (existing, empty) folder it is given.

    Returns:
        `path`.
    """
    path = os.fspath(path)
    staging = tempfile.mkdtemp(
        prefix=f"{_TEMPORARY_PREFIX}{os.path.basename(path)}-", dir=_folder_of(path)
    )
    try:
        save(staging)
        for root, _, files in os.walk(staging):
            for name in files:
                _fsync(os.path.join(root, name))
        os.chmod(staging, 0o777 & ~umask())
        if os.path.isdir(path):
            shutil.rmtree(path)
        os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path
