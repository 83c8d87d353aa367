"""The entry point (`brain`, `python -m brain`): `brain --help` from the help kept by
brain.helpcache when it is still true, everything else through click (brain.cli).

Importing click costs ~25 ms, more than the interpreter's own start; `--help` needs none of it
once click has rendered it once. Imports nothing beyond os, sys and brain.helpcache.
"""

from __future__ import annotations

import os
import sys

from brain.helpcache import cached_help

HELP_ARGS = (["--help"], ["-h"])


def main() -> None:
    """`brain`: the cached root help for `brain --help`, click for everything else."""
    if sys.argv[1:] in HELP_ARGS:
        text = cached_help()
        if text is not None and _encodable(text):
            sys.exit(_show(text))
    from brain.cli import main as full

    full()


def _encodable(text: str) -> bool:
    """stdout is open and its encoding can write the help (else click, which copes)."""
    if sys.stdout is None:  # started with stdout closed
        return False
    try:
        text.encode(sys.stdout.encoding or "utf-8")
    except (LookupError, UnicodeError):
        return False
    return True


def _show(text: str) -> int:
    """Print the help; a reader that left is fine (0), a stdout that cannot be written is 74
    with a line saying so, as brain.cli says it."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
        return 0
    except (OSError, ValueError) as exc:
        try:  # what could not be written goes nowhere, and the last flush stays quiet
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        if isinstance(exc, BrokenPipeError):
            return 0
        why = getattr(exc, "strerror", None) or str(exc)
        sys.stderr.write(
            f"brain: error: could not write to stdout: {why}.\n"
            "  → Check where the output goes (a full disk behind `>`, a closed terminal).\n"
        )
        return 74
