"""Run the installed brain under a memory cap and read its peak memory (issue 31).

Every memory test runs brain with an address-space limit (RLIMIT_AS, what `ulimit -v` and
`prlimit --as` set), so a read without a bound fails inside brain instead of taking the
machine down; the peak resident memory comes from wait4's rusage of that one process (tests/support/peak.py
starts it, so the figure is brain's own).
Used by tests/test_bounds.py and bench/memory.py. POSIX only.
"""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO

CAP = 512 << 20  # bytes of address space; brain's own is ~170 MiB (threads reserve stacks)
PEAK = Path(__file__).with_name("peak.py")


@dataclass
class Capped:
    code: int
    stdout: str
    stderr: str
    peak_kib: int  # the process's largest resident set (ru_maxrss), KiB

    @property
    def peak_mib(self) -> float:
        return self.peak_kib / 1024


def run_capped(
    argv: list[str],
    env: dict[str, str],
    *,
    stdin: IO[bytes] | int | None = subprocess.DEVNULL,
    input: bytes | None = None,
    cap: int = CAP,
    timeout: float = 120.0,
    cwd: str | None = None,
    linger: float = 0.0,
) -> Capped:
    """Run `argv` with at most `cap` bytes of address space; its exit code, output and peak.

    The command is started by tests/support/peak.py, a small launcher, so that its peak is its
    own and not that of this (larger) process it would otherwise be forked from. `input` is
    written to its stdin, which is closed `linger` seconds later."""
    import sys
    import tempfile

    with tempfile.NamedTemporaryFile("r", suffix=".peak") as peak:
        launcher = [sys.executable, str(PEAK), peak.name, str(cap), "--", *argv]
        proc = subprocess.Popen(
            launcher,
            stdin=subprocess.PIPE if input is not None else stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
        )
        if input is not None:
            assert proc.stdin is not None
            feed = threading.Thread(target=_feed, args=(proc.stdin, input, linger), daemon=True)
            feed.start()
            proc.stdin = None  # the feeder closes it; communicate() must not, at once
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        text = peak.read().strip()
    return Capped(
        proc.returncode,
        out.decode("utf-8", "replace"),
        err.decode("utf-8", "replace"),
        int(text) if text else 0,
    )


def _feed(stream: IO[bytes], data: bytes, linger: float = 0.0) -> None:
    """Write `data`; close after `linger` seconds (a server that ends at end of input)."""
    import time

    try:
        stream.write(data)
        stream.flush()
        time.sleep(linger)
        stream.close()
    except OSError:
        pass  # brain stopped reading (as it should past its bound)
