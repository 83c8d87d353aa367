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
        if text is not None:
            try:
                sys.stdout.write(text)
                sys.stdout.flush()
            except BrokenPipeError:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)
    from brain.cli import main as full

    full()
