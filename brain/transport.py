"""The network under brain's HTTP: httpcore's sync backend with reads that honour the calling
thread's Deadline (brain.client) and name resolution with a hard limit.

Imported only when the first HTTP client is made (httpcore is not on `brain --help`'s path).
What must stay true: a read never waits past the deadline, whatever trickles in; a cancel is
seen within READ_SLICE seconds; every address of a name is tried, as create_connection does.
"""

from __future__ import annotations

import time
from typing import Any

import httpcore

from brain import plainhttp
from brain.deadline import Deadline, current_deadline


def _clip(timeout: float | None) -> float | None:
    """brain.plainhttp's wait for one socket operation (the caller's timeout, the deadline, a
    slice), failing as httpcore does."""
    try:
        return plainhttp.clip(timeout)
    except plainhttp.ReadTimeout as exc:
        raise httpcore.ReadTimeout(str(exc)) from None
    except plainhttp.ReadError as exc:
        raise httpcore.ReadError(str(exc)) from None


def resolve(host: str, port: int, limit: float, deadline: Deadline | None = None) -> list[str]:
    """brain.plainhttp.resolve (a hard limit on name resolution), failing as httpcore does."""
    try:
        return plainhttp.resolve(host, port, limit, deadline)
    except plainhttp.ConnectTimeout as exc:
        raise httpcore.ConnectTimeout(str(exc)) from None
    except plainhttp.ConnectError as exc:
        raise httpcore.ConnectError(str(exc)) from None


class Stream(httpcore.NetworkStream):
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        started = time.monotonic()
        while True:
            wait = _clip(timeout)
            try:
                return self._inner.read(max_bytes, wait)
            except httpcore.ReadTimeout:
                waited = time.monotonic() - started
                if wait == timeout or (timeout is not None and waited >= timeout):
                    raise
                # Only a slice ran out: look at the deadline again.

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        deadline = current_deadline()
        if deadline is not None and deadline.cancelled:
            raise httpcore.WriteError(f"cancelled: {deadline.why}")
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: Any = None, timeout: Any = None):
        return Stream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore.SyncBackend):
    """httpcore's network backend with reads that honour the thread's Deadline and a name
    resolution with a hard limit."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> Any:
        deadline = current_deadline()
        limit = timeout if timeout is not None else 10.0
        if deadline is not None and deadline.connect is not None:
            limit = min(limit, deadline.connect)
        started = time.monotonic()
        failure: Exception | None = None
        # Each address in turn, as socket.create_connection does (IPv6 and IPv4 both).
        for address in resolve(host, port, limit, deadline):
            left = max(limit - (time.monotonic() - started), 0.05)
            try:
                inner = super().connect_tcp(address, port, left, local_address, socket_options)
            except httpcore.ConnectError as exc:
                failure = exc
                continue
            return Stream(inner)
        raise failure or httpcore.ConnectError(f"no address for {host}")
