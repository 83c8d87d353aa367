"""brain's own files on disk: private directories and files, atomic writes, bounded reads.

What must stay true (issue 31, item 12; docs/security.md):
- brain's directories are 0700 and its files 0600 whatever the umask (the config, the cache
  files, lock files, the REPL history, brain.db): they hold what the user typed and answers.
  A directory of brain's own (named `brain`) that is looser is tightened when brain uses it.
- A file is replaced atomically (written beside it, then renamed), so a crash or a full disk
  leaves the old file whole; a symlink is followed, never replaced by a regular file.
- A cache file is read with a bound and any damage (wrong type, corrupt, deeply nested,
  endless) counts as no cache, never as an error.

Imports nothing from brain but errors.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from brain.errors import StorageError

MAX_CACHE = 1 << 20  # a cache file larger than this is not brain's: ignored


def expand(name: str | os.PathLike[str]) -> Path:
    """`name` with `~` or `~user` expanded; as given when it cannot be (an unknown user, no
    home directory), where pathlib raises RuntimeError."""
    try:
        return Path(name).expanduser()
    except RuntimeError:
        return Path(name)


def private_dir(path: Path) -> Path:
    """`path` as a directory only the user can enter (created 0700; tightened if it is a
    directory of brain's own). OSError when it cannot be made."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    tighten(path)
    return path


def tighten(path: Path) -> None:
    """Make brain's own directory 0700 (only one named `brain`, owned by the user: a directory
    the user chose for other things is left as it is)."""
    if os.name != "posix" or path.name != "brain":
        return
    try:
        info = path.stat()
        if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077:
            path.chmod(0o700)
    except OSError:
        pass


def private_file(path: Path) -> None:
    """Create `path` 0600 if it is missing; tighten it to 0600 if an older brain (or a umask)
    left it readable by others. For files brain appends to in place (brain.db, the REPL
    history).

    An existing file is never opened here: closing a descriptor drops every POSIX lock this
    process holds on the file, SQLite's included (another connection of this process, a
    thread of `brain mcp`, would lose its locks)."""
    try:
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            return
        if os.name == "posix":
            info = path.stat()
            if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077:
                path.chmod(0o600)
    except OSError:
        pass  # made by another process just now, or read-only: whoever opens it says what


def write_private(path: Path, data: str | bytes) -> None:
    """Replace the file at `path` (the target, when `path` is a symlink) with `data`, mode 0600
    (or the file's own mode when it was stricter), atomically. OSError on failure, with the
    old file untouched."""
    target = Path(os.path.realpath(path))
    raw = data.encode("utf-8") if isinstance(data, str) else data
    mode = 0o600
    try:
        mode = stat.S_IMODE(target.stat().st_mode) & 0o600 or 0o600
    except OSError:
        pass
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
        os.chmod(tmp, mode)  # the umask may have taken bits away; never adds any
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def save_cache(path: Path, value: Any) -> bool:
    """Keep `value` as JSON in a private cache file; False when it could not be written (a
    cache is an optimisation: its failure only costs a request next time)."""
    try:
        write_private(path, json.dumps(value))
    except (OSError, TypeError, ValueError):
        return False
    return True


def load_cache(path: Path, kind: type = dict) -> Any:
    """The JSON value in the cache file `path` when it is a `kind`; None for a missing, large,
    damaged, deeply nested or wrong-typed file."""
    try:
        with open(path, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                return None
            raw = fh.read(MAX_CACHE + 1)
        if len(raw) > MAX_CACHE:
            return None
        value = json.loads(raw)
    except (OSError, ValueError, RecursionError):
        return None
    return value if isinstance(value, kind) else None


def open_lock(path: Path) -> int:
    """A lock file's descriptor (0600), for fcntl.flock."""
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)


def storage_error(exc: OSError, path: Path, doing: str) -> StorageError:
    """The StorageError for an OSError while `doing` something with `path`."""
    reason = {28: "the disk is full", 30: "the file system is read-only"}.get(
        exc.errno or 0, exc.strerror or str(exc)
    )
    return StorageError(
        f"brain could not {doing} {path}: {reason}.",
        f"Check that {path.parent} is on a disk with free space and writable for you.",
        cause=reason,
    )


def utf8_size(text: str, step: int = 1 << 16) -> int:
    """Bytes of `text` in UTF-8 without a whole copy of it: none for ASCII, else a slice at a
    time (a 4 MiB input is never encoded whole only to be measured)."""
    if text.isascii():
        return len(text)
    return sum(len(text[at : at + step].encode("utf-8")) for at in range(0, len(text), step))
