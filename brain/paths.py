"""Where brain's files live: config.toml, the data dir (history, queue), the cache dir.

platformdirs' answers for app `brain` (the XDG rule on Linux and the BSDs, worked out by
brain.xdg without importing platformdirs), `BRAIN_CONFIG` or `--config` for the config file.
Directories are made private (0700) on first use (brain.files).
"""

from __future__ import annotations

import os
from pathlib import Path

APP = "brain"


def _user_dir(kind: str) -> Path:
    """platformdirs' user_{kind}_dir for brain: by the XDG rule on Linux and the BSDs
    (brain.xdg, no import of platformdirs), by platformdirs elsewhere."""
    from brain import xdg

    found = xdg.user_dir(kind)
    if found is None:
        import platformdirs

        found = getattr(platformdirs, f"user_{kind}_dir")(APP, appauthor=False)
    return Path(found)


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    from brain.files import expand

    if explicit:
        return expand(explicit)
    env = os.environ.get("BRAIN_CONFIG")
    if env:
        return expand(env)
    return _user_dir("config") / "config.toml"


def data_dir() -> Path:
    """brain's data directory (0700): StorageError when it cannot be made."""
    from brain import files

    path = _user_dir("data")
    try:
        return files.private_dir(path)
    except OSError as exc:
        raise files.storage_error(exc, path, "make its data directory") from exc


def cache_dir() -> Path:
    """brain's cache directory (0700). When it cannot be made, its path all the same: every
    cache write may fail, and a failed one only costs a request next time."""
    from brain import files

    path = _user_dir("cache")
    try:
        return files.private_dir(path)
    except OSError:
        return path
