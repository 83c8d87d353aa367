"""A deadline that counts content, not bytes, and the thread-local slot the network reads it
from (brain.transport). Tiny and import-free on purpose: brain.client and brain.transport
both use it.

What must stay true: only the parsers move a Deadline (`progress()`, when a piece of the answer
arrives); keep-alive pings, empty chunks or headers dribbled a byte at a time do not. A
cancel (the liveness probe beside an Apex request) is ignored once content has started.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

READ_SLICE = 0.2  # seconds a blocked read waits before looking at its deadline again

_local = threading.local()


class Deadline:
    """A point in time by which the next piece of content must arrive.

    `progress()` moves it `seconds` ahead; only the parsers call it, on content. `cancel()` (from
    any thread) makes the next read fail; `why` says why.
    """

    def __init__(self, seconds: float, *, connect: float | None = None) -> None:
        self.seconds = _finite(seconds)
        self.at = time.monotonic() + self.seconds
        self.connect = connect
        self.why = ""
        self.started = False  # content arrived: from now on a cancel is ignored
        self._cancelled = threading.Event()
        self._lock = threading.Lock()

    def progress(self) -> None:
        self.at = time.monotonic() + self.seconds

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def start(self) -> None:
        with self._lock:
            self.started = True

    def cancel(self, why: str) -> bool:
        """Stop the exchange unless its content has begun; True when it was stopped."""
        with self._lock:
            if self.started:
                return False
            self.why = why
            self._cancelled.set()
            return True

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()


def _finite(seconds: float) -> float:
    # inf or 1e308 from a config would overflow time arithmetic; a day is "no limit" enough.
    return min(max(float(seconds), 0.0), 86_400.0)


@contextmanager
def watching(deadline: Deadline) -> Iterator[Deadline]:
    """Reads on this thread honour `deadline` until the block ends."""
    before = getattr(_local, "deadline", None)
    _local.deadline = deadline
    try:
        yield deadline
    finally:
        _local.deadline = before


def current_deadline() -> Deadline | None:
    """The Deadline reads on this thread honour (brain.transport asks it)."""
    return getattr(_local, "deadline", None)
