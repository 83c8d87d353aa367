"""The root help as click rendered it, kept for the next `brain --help` (brain.quick).

Kept in brain's cache dir with what it depends on: brain's version, where it is installed
(the help names docs there) and the two sources it is written from, the width click wraps to,
and config.toml (the user's tasks are listed). Used only when all of that is unchanged, and
only where the cache dir and config.toml are cheap to know without platformdirs (Linux and the
BSDs, macOS); elsewhere, or in any doubt, click renders the help each time.

What must stay true: the text kept is byte for byte what click prints; this module imports
nothing beyond os and sys.
"""

from __future__ import annotations

import os
import sys

from brain import __version__

FORMAT = "brain-help 1"


def _home(*parts: str) -> str:
    return os.path.join(os.path.expanduser("~"), *parts)


def _xdg(var: str, default: tuple[str, ...]) -> str:
    # As platformdirs reads them on Linux and the BSDs: the variable unless empty.
    value = os.environ.get(var, "")
    return value if value.strip() else _home(*default)


def _dirs() -> tuple[str, str] | None:
    """(cache dir, config file) as platformdirs would say, where that is cheap to know;
    None elsewhere (Windows: the slow path, always correct)."""
    config = os.environ.get("BRAIN_CONFIG") or ""
    if sys.platform == "darwin":
        base = _home("Library", "Caches", "brain")
        config = config or _home("Library", "Application Support", "brain", "config.toml")
        return base, config
    if os.name != "posix":
        return None
    config = config or os.path.join(_xdg("XDG_CONFIG_HOME", (".config",)), "brain", "config.toml")
    return os.path.join(_xdg("XDG_CACHE_HOME", (".cache",)), "brain"), config


def width() -> int:
    """The width click's HelpFormatter wraps to (shutil.get_terminal_size, at most 80)."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 80
    return max(min(columns, 80) - 2, 50)


def _stamp(path: str) -> str:
    try:
        st = os.stat(os.path.expanduser(path))
    except (OSError, ValueError):
        return "absent"
    return f"{st.st_mtime_ns}:{st.st_size}:{st.st_ino}"


def key(config: str) -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    # The sources the help is written from: an editable install changes them in place.
    sources = [_stamp(os.path.join(here, *p)) for p in (("cli.py",), ("tasks", "__init__.py"))]
    return "\t".join([FORMAT, __version__, here, *sources, str(width()), config, _stamp(config)])


def cached_help() -> str | None:
    dirs = _dirs()
    if dirs is None:
        return None
    cache, config = dirs
    try:
        with open(os.path.join(cache, "help.txt"), encoding="utf-8") as fh:
            head = fh.readline().rstrip("\n")
            body = fh.read(1 << 16)
    except (OSError, ValueError):
        return None
    return body if head == key(config) and body else None


def remember_help(text: str, cache_dir: str, config: str) -> None:
    """Keep the root help click just rendered (`text`, as printed), for the next `--help`.
    Only where the fast path would look for it, and for the config it would stat."""
    dirs = _dirs()
    if dirs is None or os.path.abspath(dirs[0]) != os.path.abspath(cache_dir):
        return
    if os.path.abspath(os.path.expanduser(dirs[1])) != os.path.abspath(config):
        return
    path = os.path.join(cache_dir, "help.txt")
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(key(dirs[1]) + "\n" + text)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
