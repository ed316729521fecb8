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
    "resolve_preset",
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


def resolve_preset(preset, *, kind, known_names, unknown_hint, folder_hint, offline_message):
    """Checks a KerasHub preset (image or text) and returns what KerasHub
    should load: the one resolver of both kinds.

    Local folders must exist and hold a `config.json`; a name without a
    scheme must be one of `known_names()`; a remote preset is probed first
    (`resolve_remote`), so a machine without network fails in seconds.

    Args:
        preset: a name, a local folder or a `hf://` / `kaggle://` /
            `modelscope://` handle.
        kind: `"image"` or `"text"`, for messages.
        known_names: `() -> list` of the built-in names of this kind.
        unknown_hint: what to say after an unknown name (where the names
            are listed).
        folder_hint: what a preset folder holds, for a folder without
            `config.json`.
        offline_message: `(preset, reason) -> str` for an unreachable host.

    Returns:
        A string `from_preset` accepts.

    Raises:
        ValueError: an unknown name.
        FileNotFoundError: a folder that does not exist or has no config.json.
        ConnectionError: a remote preset with no network.
    """
    preset = os.fspath(preset)
    if os.path.isdir(preset):
        if not os.path.isfile(os.path.join(preset, "config.json")):
            raise FileNotFoundError(f"Preset folder {preset!r} has no config.json. {folder_hint}")
        return preset
    if "://" not in preset:
        if is_local_path(preset):
            raise FileNotFoundError(
                f"Preset folder {preset!r} does not exist. Pass an existing folder, a "
                "KerasHub preset name or an hf:// handle."
            )
        if preset not in set(known_names()):
            raise ValueError(f"Unknown {kind} preset {preset!r}. {unknown_hint}")
    return resolve_remote(preset, offline_message)


def resolve_remote(preset, offline_message):
    """What KerasHub should load for a remote preset name or handle.

    The preset itself when its host answers; else, for an `hf://` handle,
    the copy in the Hugging Face cache; else a `ConnectionError` that says
    how to bring the preset here as a folder.

    Args:
        preset: a built-in name or a `hf://`, `kaggle://`, `modelscope://`
            handle.
        offline_message: `(preset, reason) -> str`, the error's text.
    """
    host = remote_host(preset)
    if host is None:
        raise ValueError(
            f"Unsupported preset handle {preset!r}; use hf://, kaggle:// or "
            "modelscope://, a built-in name or a local folder."
        )
    # Looked up at call time: tests replace the probe and the cache lookup.
    ok, error = host_reachable(host)
    if ok:
        return preset
    if preset.startswith("hf://"):
        folder = cached_hf_folder(preset)
        if folder is not None:
            return folder
    raise ConnectionError(offline_message(preset, f"{host} is unreachable ({error})"))
