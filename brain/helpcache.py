"""The root help as click rendered it, kept for the next `brain --help` (brain.quick).

Kept in brain's cache dir with what it depends on: brain's version, where it is installed
(the help names docs there) and the sources it is written from (SOURCES), the width click wraps
to, and config.toml (the user's tasks are listed). Used only when all of that is unchanged, and
only on Linux and the BSDs, where the cache dir and config.toml are cheap to know without
platformdirs (brain.xdg); on macOS and Windows, or in any doubt, click renders the help each time. Help
rendered while the settings could not be read (a bad config.toml or BRAIN_* variable: the
user's tasks are then missing from it) is never kept.

What must stay true: the text kept is byte for byte what click prints; this module imports
nothing beyond os, sys and brain.xdg.
"""

from __future__ import annotations

import os
import sys

from brain import __version__

FORMAT = "brain-help 1"
MAX_HELP = 1 << 22  # bytes; a larger kept help is not used
# The files the root help is written from (an editable install changes them in place).
SOURCES = (("cli.py",), ("tasks", "__init__.py"), ("commands", "common.py"))


def _dirs() -> tuple[str, str] | None:
    """(cache dir, config file) as brain.paths says on Linux and the BSDs; None elsewhere
    (macOS and Windows, where platformdirs answers: the slow path, always correct)."""
    from brain import xdg

    cache, config_dir = xdg.user_dir("cache"), xdg.user_dir("config")
    if cache is None or config_dir is None:
        return None
    config = os.environ.get("BRAIN_CONFIG") or os.path.join(config_dir, "config.toml")
    return cache, config


def width() -> int:
    """The width click's HelpFormatter wraps to (shutil.get_terminal_size, at most 80)."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:  # as shutil.get_terminal_size: the terminal's, or 80 (also for 0)
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns or 80
        except (AttributeError, ValueError, OSError):
            columns = 80
    return max(min(columns, 80) - 2, 50)


def _stamp(path: str) -> str:
    path = os.path.expanduser(path)
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        try:  # a dangling link is not the same as nothing there
            st = os.lstat(path)
        except (OSError, ValueError):
            return "absent"
        return f"link:{st.st_mtime_ns}:{st.st_ino}"
    return f"{st.st_mtime_ns}:{st.st_size}:{st.st_ino}"


def key(config: str) -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    sources = [_stamp(os.path.join(here, *p)) for p in SOURCES]
    return "\t".join([FORMAT, __version__, here, *sources, str(width()), config, _stamp(config)])


def cached_help() -> str | None:
    dirs = _dirs()
    if dirs is None:
        return None
    cache, config = dirs
    try:
        with open(os.path.join(cache, "help.txt"), encoding="utf-8") as fh:
            head = fh.readline(1 << 16).rstrip("\n")
            body = fh.read(MAX_HELP + 1)
    except (OSError, ValueError):
        return None
    return body if head == key(config) and body and len(body) <= MAX_HELP else None


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
