"""Run the installed brain under a memory cap and read its peak memory (issue 31).

Every memory test runs brain with an address-space limit (RLIMIT_AS, what `ulimit -v` and
`prlimit --as` set), so a read without a bound fails inside brain instead of taking the
machine down; the peak resident memory comes from wait4's rusage of that one process.
Used by tests/test_bounds.py and bench/hostile.py. POSIX only.
"""

from __future__ import annotations

import os
import subprocess
import threading
from dataclasses import dataclass
from typing import IO, Any

CAP = 512 << 20  # bytes of address space; brain's own is ~170 MiB (threads reserve stacks)


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
) -> Capped:
    """Run `argv` with at most `cap` bytes of address space; its exit code, output and peak."""
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE if input is not None else stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=cwd,
        preexec_fn=limit,
    )
    out: dict[str, bytes] = {}

    def drain(name: str, stream: Any) -> None:
        out[name] = stream.read()

    readers = [
        threading.Thread(target=drain, args=(n, s), daemon=True)
        for n, s in (("stdout", proc.stdout), ("stderr", proc.stderr))
    ]
    for r in readers:
        r.start()
    if input is not None:
        assert proc.stdin is not None
        threading.Thread(target=_feed, args=(proc.stdin, input), daemon=True).start()
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        _pid, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    for r in readers:
        r.join(10)
    return Capped(
        proc.returncode,
        out.get("stdout", b"").decode("utf-8", "replace"),
        out.get("stderr", b"").decode("utf-8", "replace"),
        usage.ru_maxrss,
    )


def _feed(stream: IO[bytes], data: bytes) -> None:
    try:
        stream.write(data)
        stream.close()
    except OSError:
        pass  # brain stopped reading (as it should past its bound)
