"""brain's own directories on Linux and the BSDs, by the XDG rule, as platformdirs gives them,
without importing platformdirs (with tempfile and shutil it costs ~5 ms of every command).

The rule (the XDG Base Directory spec, and platformdirs 4.x): `$XDG_CONFIG_HOME`,
`$XDG_DATA_HOME`, `$XDG_CACHE_HOME` when set to an absolute path, else `~/.config`,
`~/.local/share`, `~/.cache`; then `brain`. On macOS and Windows these return None and
platformdirs answers (brain.paths). tests/test_paths.py checks both agree here.

Imports nothing beyond os and sys (brain.helpcache uses it before anything else is loaded).
"""

from __future__ import annotations

import os
import sys

_DIRS = {
    "config": ("XDG_CONFIG_HOME", (".config",)),
    "data": ("XDG_DATA_HOME", (".local", "share")),
    "cache": ("XDG_CACHE_HOME", (".cache",)),
}


def user_dir(kind: str) -> str | None:
    """brain's `kind` ("config", "data" or "cache") directory, or None where platformdirs
    must say (macOS, Windows)."""
    if os.name != "posix" or sys.platform == "darwin":
        return None
    var, default = _DIRS[kind]
    base = os.environ.get(var, "")
    if not os.path.isabs(base):  # unset, empty or relative: not used, as the spec says
        base = os.path.join(_home(), *default)
    return os.path.join(base, "brain")


def _home() -> str:
    home = os.environ.get("HOME")
    if home is not None and not os.path.isabs(home):  # a relative HOME is no home
        try:
            import pwd

            return pwd.getpwuid(os.getuid()).pw_dir
        except (ImportError, KeyError):
            pass
    return os.path.expanduser("~")
