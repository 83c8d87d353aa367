"""The entry point (`brain`, `python -m brain`): `brain --help` from the help kept by
brain.helpcache when it is still true, everything else through click (brain.cli).

Importing click costs ~25 ms, more than the interpreter's own start; `--help` needs none of it
once click has rendered it once. Imports nothing beyond sys and brain.helpcache (brain.cli
only when stdout fails, to say so).
"""

from __future__ import annotations

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
    """Print the help; a stdout that cannot be written is brain.cli's to report (imported
    only then)."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
        return 0
    except (OSError, ValueError) as exc:
        from brain.cli import stdout_failed

        return stdout_failed(exc)
