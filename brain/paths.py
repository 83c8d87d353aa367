"""Where brain's files live: config.toml, the data dir (history, queue), the cache dir.

platformdirs' answers for app `brain` (XDG on Linux), `BRAIN_CONFIG` or `--config` for the
config file. Directories are made private (0700) on first use (brain.files).
"""

from __future__ import annotations

import os
from pathlib import Path

APP = "brain"


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    from brain.files import expand

    if explicit:
        return expand(explicit)
    env = os.environ.get("BRAIN_CONFIG")
    if env:
        return expand(env)
    from platformdirs import user_config_dir

    return Path(user_config_dir(APP, appauthor=False)) / "config.toml"


def data_dir() -> Path:
    """brain's data directory (0700): StorageError when it cannot be made."""
    from platformdirs import user_data_dir

    from brain import files

    path = Path(user_data_dir(APP, appauthor=False))
    try:
        return files.private_dir(path)
    except OSError as exc:
        raise files.storage_error(exc, path, "make its data directory") from exc


def cache_dir() -> Path:
    """brain's cache directory (0700). When it cannot be made, its path all the same: every
    cache write may fail, and a failed one only costs a request next time."""
    from platformdirs import user_cache_dir

    from brain import files

    path = Path(user_cache_dir(APP, appauthor=False))
    try:
        return files.private_dir(path)
    except OSError:
        return path
