"""Is Apex reachable? A cheap GET /health/liveliness with short timeouts, and a cached verdict.

The verdict lives in the cache dir so a run of commands does not probe each time. A good
verdict lasts `apex.probe_ttl`. A bad verdict that was cheap to reach (refused, or a name
that failed at once) is not reused at all: probing again costs milliseconds, and Apex coming
back is noticed on the very next command. A bad verdict that cost time (a timeout: a
blackholed address, a hung server, a DNS server that does not answer) is reused for at most
FAIL_TTL seconds. A successful request refreshes the verdict (`remember`).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

FAIL_TTL = 10.0
CHEAP_MS = 100  # a failure found faster than this is re-checked rather than cached


@dataclass
class Verdict:
    url: str
    ok: bool
    reason: str  # why not reachable, or "" when it is
    at: float  # wall-clock time of the observation
    latency_ms: int | None = None
    cached: bool = False


def _cache_file(cache_dir: Path) -> Path:
    return cache_dir / "apex-probe.json"


def cached(cache_dir: Path, url: str, ttl: float) -> Verdict | None:
    try:
        data = json.loads(_cache_file(cache_dir).read_text())
        verdict = Verdict(**data)
    except (OSError, ValueError, TypeError):
        return None
    if not verdict.ok and (verdict.latency_ms or 0) < CHEAP_MS:
        return None
    age = time.time() - verdict.at
    limit = ttl if verdict.ok else min(ttl, FAIL_TTL)
    if verdict.url != url or age < 0 or age > limit:
        return None
    verdict.cached = True
    return verdict


def remember(cache_dir: Path, verdict: Verdict) -> None:
    """Store a verdict; a write failure only costs a probe next time."""
    path = _cache_file(cache_dir)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        data = asdict(verdict)
        data.pop("cached")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)
    except OSError:
        pass


def probe(url: str, timeout: float = 1.0) -> Verdict:
    """GET {url}/health/liveliness: no key, no model call, ~1 RTT when Apex is up.

    Runs in a thread with a hard deadline: httpx's timeouts do not bound name resolution,
    and a resolver that never answers (MagicDNS with Tailscale down) must cost ~1 s too.
    """
    import threading

    box: list[Verdict] = []
    start = time.monotonic()
    worker = threading.Thread(target=lambda: box.append(_probe(url, timeout)), daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    if box:
        return box[0]
    ms = int((time.monotonic() - start) * 1000)
    return Verdict(
        url, False, "no answer in time (timed out; the name may not resolve)", time.time(), ms
    )


def _probe(url: str, timeout: float) -> Verdict:
    import httpx

    from brain.client import describe_transport

    start = time.monotonic()
    try:
        response = httpx.get(
            url.rstrip("/") + "/health/liveliness",
            timeout=httpx.Timeout(timeout),
            trust_env=False,
        )
    except httpx.HTTPError as exc:
        ms = int((time.monotonic() - start) * 1000)
        return Verdict(url, False, describe_transport(exc), time.time(), ms)
    ms = int((time.monotonic() - start) * 1000)
    if response.status_code >= 500 or response.status_code in (404, 408):
        # 404: something else listens there (not a LiteLLM proxy); 5xx: the proxy is sick.
        return Verdict(
            url, False, f"/health/liveliness answered HTTP {response.status_code}", time.time(), ms
        )
    return Verdict(url, True, "", time.time(), ms)


def check(cache_dir: Path, url: str, ttl: float, timeout: float = 1.0) -> Verdict:
    verdict = cached(cache_dir, url, ttl)
    if verdict is None:
        verdict = probe(url, timeout)
        if not verdict.ok:
            from brain.offline.diagnose import tailscale

            extra = tailscale()
            if extra:
                verdict.reason = f"{verdict.reason}; {extra}"
        remember(cache_dir, verdict)
    return verdict
