"""Where a KerasHub preset comes from, and whether it can be fetched.

Text and image presets share this: a remote preset (a built-in name,
`hf://`, `kaggle://`, `modelscope://`) is probed before KerasHub fetches
it, so a machine without network fails in seconds instead of minutes.
"""

import os
import socket
import threading
import urllib.parse

__all__ = [
    "PROBE_TIMEOUT",
    "REMOTE_SCHEMES",
    "cached_hf_folder",
    "host_reachable",
    "is_local_path",
    "remote_host",
    "resolve_remote",
]

REMOTE_SCHEMES = {
    "hf": "huggingface.co",
    "kaggle": "api.kaggle.com",
    "modelscope": "www.modelscope.cn",
}

# Seconds to wait for a preset's host before declaring the network absent.
PROBE_TIMEOUT = 5.0


def remote_host(preset):
    """The host a remote preset is fetched from, or `None` for an unknown scheme.

    Built-in names (no scheme) come from Kaggle.
    """
    if "://" in preset:
        scheme = preset.split("://", 1)[0]
        if scheme == "hf":
            endpoint = os.environ.get("HF_ENDPOINT")
            if endpoint:
                return urllib.parse.urlparse(endpoint).hostname
        return REMOTE_SCHEMES.get(scheme)
    return REMOTE_SCHEMES["kaggle"]


def host_reachable(host, port=443, timeout=PROBE_TIMEOUT):
    """Whether a TCP connection to `host` opens within `timeout` seconds.

    Runs in a thread because name resolution has no timeout of its own.

    Returns:
        `(reachable, error)`.
    """
    result = {}

    def probe():
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result["ok"] = True
        except OSError as error:
            result["error"] = error

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    return bool(result.get("ok")), result.get("error", "no answer")


def cached_hf_folder(preset):
    """The local snapshot of an `hf://` preset already downloaded, or `None`."""
    try:
        import huggingface_hub

        repo_id = preset.split("://", 1)[1]
        return huggingface_hub.snapshot_download(repo_id, local_files_only=True)
    except Exception:
        return None


def is_local_path(preset):
    """Whether a string that is not an existing folder still reads as a path."""
    return os.sep in preset or preset.startswith((".", "~")) or bool(
        os.altsep and os.altsep in preset
    )


def resolve_remote(preset, offline_message, reachable=host_reachable, cached=cached_hf_folder):
    """What KerasHub should load for a remote preset name or handle.

    The preset itself when its host answers; else, for an `hf://` handle,
    the copy in the Hugging Face cache; else a `ConnectionError` that says
    how to bring the preset here as a folder.

    Args:
        preset: a built-in name or a `hf://`, `kaggle://`, `modelscope://`
            handle.
        offline_message: `(preset, reason) -> str`, the error's text.
        reachable: the host probe (a module's own, so tests can replace it).
        cached: the Hugging Face cache lookup (likewise).
    """
    host = remote_host(preset)
    if host is None:
        raise ValueError(
            f"Unsupported preset handle {preset!r}; use hf://, kaggle:// or "
            "modelscope://, a built-in name or a local folder."
        )
    ok, error = reachable(host)
    if ok:
        return preset
    if preset.startswith("hf://"):
        folder = cached(preset)
        if folder is not None:
            return folder
    raise ConnectionError(offline_message(preset, f"{host} is unreachable ({error})"))
