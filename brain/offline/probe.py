"""Is Apex reachable? `GET /health/liveliness` (no key, no model call), beside the request.

What must stay true (DESIGN.md, "Deciding that Apex is away…"; issue 29 items 1, 3, 10):
- The probe runs beside every Apex request (`Beside`), so a healthy Apex pays no round trip
  before its answer, and a frozen one (a stopped proxy, a hung GPU, a half-open port) is left
  within about a second, also right after a success: when the probe fails before the first
  token, it cancels the request and the ladder moves down.
- A verdict is classified by what failed, never by how long it took: a refused connection or
  a failed name look-up is never remembered (a returning Apex is used by the very next
  command); a timeout is remembered for FAIL_TTL seconds (a run of commands on the patio pays
  it once). A good verdict is kept only to tell the REPL toolbar and `brain status`.
- The probe has a hard limit, name resolution included (brain.client.resolve).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from brain.client import Deadline
from brain.secrets import without_password

FAIL_TTL = 10.0
OK, REFUSED, DNS, TIMEOUT, HTTP = "ok", "refused", "dns", "timeout", "http"


@dataclass
class Verdict:
    url: str
    ok: bool
    reason: str  # why not reachable, or "" when it is
    at: float  # wall-clock time of the observation
    latency_ms: int | None = None
    kind: str = OK  # ok | refused | dns | timeout | http
    cached: bool = False

    def age(self) -> float:
        return max(time.time() - self.at, 0.0)


def _cache_file(cache_dir: Path) -> Path:
    return cache_dir / "apex-probe.json"


def last(cache_dir: Path, url: str) -> Verdict | None:
    """The last verdict about `url`, whatever its age (for the toolbar and status)."""
    from brain.files import load_cache

    data = load_cache(_cache_file(cache_dir))
    if data is None:
        return None
    try:
        latency = data.get("latency_ms")
        verdict = Verdict(
            url=str(data["url"]),
            ok=bool(data["ok"]),
            reason=str(data.get("reason", "")),
            at=float(data["at"]),
            latency_ms=latency if isinstance(latency, int) and latency >= 0 else None,
            kind=str(data.get("kind", OK if data["ok"] else TIMEOUT)),
        )
    except (ValueError, TypeError, KeyError, OverflowError):
        return None  # a wrong-typed file is no verdict
    if verdict.url != without_password(url) or not math.isfinite(verdict.at):
        return None
    verdict.cached = True
    return verdict


def away(cache_dir: Path, url: str, ttl: float = FAIL_TTL) -> Verdict | None:
    """A timeout seen in the last `ttl` seconds: Apex is taken to be away without asking."""
    verdict = last(cache_dir, url)
    if verdict is None or verdict.ok or verdict.kind != TIMEOUT:
        return None
    age = time.time() - verdict.at
    return verdict if 0 <= age <= min(ttl, FAIL_TTL) else None


def remember(cache_dir: Path, verdict: Verdict) -> None:
    """Keep a verdict (0600, atomically); a write failure only costs a probe next time."""
    from brain.files import save_cache

    data = asdict(verdict)
    data.pop("cached")
    data["url"] = without_password(verdict.url)  # a password in the URL never reaches a file
    save_cache(_cache_file(cache_dir), data)


def probe(url: str, timeout: float = 1.0) -> Verdict:
    """One liveness probe, bounded by `timeout` for the connection (DNS included) and
    `timeout` more for the answer."""
    from brain.client import NetError, TooBig, describe, request

    start = time.monotonic()
    deadline = Deadline(2 * timeout, connect=timeout)
    try:
        reply = request(
            "GET",
            url.rstrip("/") + "/health/liveliness",
            timeout=timeout,
            connect=timeout,
            limit=4096,
            deadline=deadline,
        )
    except (NetError, TooBig) as exc:
        ms = int((time.monotonic() - start) * 1000)
        phrase = describe(exc)
        return Verdict(url, False, phrase, time.time(), ms, _kind(exc, phrase))
    ms = int((time.monotonic() - start) * 1000)
    if reply.status >= 500 or reply.status in (404, 408):
        # 404: something else listens there (not a LiteLLM proxy); 5xx: the proxy is sick.
        why = f"/health/liveliness answered HTTP {reply.status}"
        return Verdict(url, False, why, time.time(), ms, HTTP)
    return Verdict(url, True, "", time.time(), ms, OK)


def _kind(exc: BaseException, phrase: str) -> str:
    from brain.client import is_timeout

    if "does not resolve" in phrase:
        return DNS
    if is_timeout(exc):
        return TIMEOUT
    if "refused" in phrase:
        return REFUSED
    return HTTP


class Beside:
    """The probe in a thread beside a request: when it fails before the request's first
    token, it cancels the request's deadline with the reason."""

    def __init__(self, url: str, deadline: Deadline, timeout: float) -> None:
        self.url, self.deadline, self.timeout = url, deadline, timeout
        self.verdict: Verdict | None = None
        self._thread = threading.Thread(target=self._run, name="apex-probe", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        verdict = probe(self.url, self.timeout)
        self.verdict = verdict
        if not verdict.ok:
            self.deadline.cancel(f"Apex ({self.url}): {verdict.reason}")

    def result(self, wait: float = 0.0) -> Verdict | None:
        self._thread.join(wait)
        return self.verdict


def check(cache_dir: Path, url: str, timeout: float = 1.0) -> Verdict:
    """A probe now (a remembered timeout counts), with Tailscale's words when it fails; the
    verdict is remembered. For `brain status`, the REPL toolbar and `brain claude`."""
    verdict = away(cache_dir, url)
    if verdict is not None:
        return verdict
    verdict = probe(url, timeout)
    if not verdict.ok:
        verdict.reason = with_tailscale(verdict.reason)
    remember(cache_dir, verdict)
    return verdict


def with_tailscale(reason: str) -> str:
    from brain.offline.diagnose import tailscale

    extra = tailscale()
    return f"{reason}; {extra}" if extra else reason
