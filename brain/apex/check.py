"""`brain apex check`: the smoke test and the fallback drill, from the laptop.

Owns asking every route brain uses one tiny question through the real client (streamed, as
brain asks), reading who answered from LiteLLM's headers, and the drill: with Ollama on Apex
stopped, routes that start on Apex's GPU must cascade to the cloud (or, for routes with no
cloud step, fail as designed), and flip back once it runs again. It prints nothing and asks
nothing itself: the command passes `pause` (wait for the user) and `progress` callbacks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from brain import backends
from brain.apex import catalog
from brain.backends.base import Backend
from brain.errors import BrainError, ConfigError, KeyProblem, Unreachable
from brain.tasks import PREMIUM_ROUTE

PROMPT = "This is a connection test. Reply with the single word OK."
JSON_VERSION = 1


@dataclass
class RouteCheck:
    route: str
    tasks: list[str]
    ok: bool = False
    model: str = ""  # x-litellm-model-id: the deployment that answered
    group: str = ""  # the model group that answered (another one after a fallback)
    fallbacks: int = 0  # Apex's own hand-offs before the answer
    fallback_reason: str = ""
    first_token_ms: int | None = None
    total_ms: int | None = None
    cost: float | None = None
    reply: str = ""
    error: str = ""
    missing: bool = False  # Apex has no such route
    skipped: str = ""

    @property
    def on_apex_gpu(self) -> bool | None:
        """True when the answering deployment is a local model on Apex (per the catalog)."""
        return is_local(self.model)

    def as_json(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "tasks": self.tasks,
            "ok": self.ok,
            "skipped": self.skipped or None,
            "model": self.model or None,
            "answered_by_group": self.group or None,
            "apex_fallbacks": self.fallbacks,
            "fallback_reason": self.fallback_reason or None,
            "on_apex_gpu": self.on_apex_gpu,
            "latency_ms": {"first_token": self.first_token_ms, "total": self.total_ms},
            "cost": self.cost,
            "error": self.error or None,
            "missing": self.missing,
        }


def is_local(model_id: str) -> bool | None:
    """Whether a rendered deployment id ("apex-gemma3-27b@brain_dump") runs on Apex's GPU."""
    key = model_id.split("@", 1)[0]
    deployment = catalog.DEPLOYMENTS.get(key)
    if deployment is None:
        return None
    return catalog.PROVIDERS[deployment.provider].local


def ensure_reachable(endpoint: Backend) -> None:
    from brain.offline import probe

    if not endpoint.url:
        raise ConfigError(
            "Apex is not configured (apex.url is empty).",
            "Set it with `brain config set apex.url http://APEX:4000` (or BRAIN_APEX_URL).",
        )
    verdict = probe.probe(endpoint.url, max(endpoint.connect, 2.0))
    if not verdict.ok:
        raise Unreachable(
            f"Apex at {endpoint.url} does not answer: {verdict.reason}.",
            "On Apex: is the proxy running (`docker compose ps` in its folder)? On both "
            "machines: is Tailscale up (`tailscale status`)? Then run `brain apex check` again.",
        )


def check_route(endpoint: Backend, route: str, tasks: list[str]) -> RouteCheck:
    result = RouteCheck(route, tasks)
    try:
        answer = backends.chat(
            endpoint,
            route,
            [{"role": "user", "content": PROMPT}],
            temperature=0.0,
            max_tokens=16,
        )
    except KeyProblem:
        raise
    except ConfigError as exc:
        result.error = exc.message
        result.missing = "no route named" in exc.message
        return result
    except BrainError as exc:
        result.error = exc.message
        return result
    result.ok = True
    result.model = answer.model
    result.first_token_ms = answer.first_token_ms
    result.total_ms = answer.total_ms
    result.cost = answer.cost
    result.reply = answer.text.strip()[:80]
    result.group = route
    if answer.apex_fallbacks:
        hop = answer.apex_fallbacks[0]
        result.fallbacks = 1
        result.group = hop.get("answered_by", "") or route
        result.fallback_reason = hop.get("reason", "")
    return result


def smoke(
    endpoint: Backend,
    routes: Mapping[str, list[str]],
    *,
    premium: bool = False,
    only: Iterable[str] | None = None,
    progress: Callable[[RouteCheck], None] | None = None,
) -> list[RouteCheck]:
    """Ask every route once; the paid route only when `premium` (it costs money)."""
    wanted = set(only) if only else None
    results = []
    for route, tasks in routes.items():
        if wanted is not None and route not in wanted:
            continue
        if route == PREMIUM_ROUTE and not premium:
            result = RouteCheck(route, tasks, skipped="paid: add --premium to ask it too")
        else:
            result = check_route(endpoint, route, tasks)
        results.append(result)
        if progress:
            progress(result)
    return results


def exit_code(results: list[RouteCheck]) -> int:
    from brain.errors import CONFIG, OK, UNAVAILABLE

    if any(r.missing for r in results):
        return CONFIG
    if any(not r.ok and not r.skipped for r in results):
        return UNAVAILABLE
    return OK


def as_json(endpoint: Backend, results: list[RouteCheck]) -> dict[str, Any]:
    return {
        "version": JSON_VERSION,
        "apex": endpoint.url,
        "ok": exit_code(results) == 0,
        "routes": [r.as_json() for r in results],
    }


# ----- the drill -----------------------------------------------------------------------------

STOP_OLLAMA = (
    "On Apex, stop Ollama now: on Windows, right-click the Ollama icon in the taskbar tray → "
    "Quit Ollama; on Linux, `sudo systemctl stop ollama`."
)
START_OLLAMA = (
    "On Apex, start Ollama again: on Windows, start Ollama from the Start menu; on Linux, "
    "`sudo systemctl start ollama`."
)


@dataclass
class Verdict:
    route: str
    ok: bool
    text: str


@dataclass
class DrillReport:
    before: list[RouteCheck]
    during: list[RouteCheck] = field(default_factory=list)
    after: list[RouteCheck] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    flip_back_s: float | None = None

    @property
    def ok(self) -> bool:
        return bool(self.verdicts) and all(v.ok for v in self.verdicts)

    def as_json(self) -> dict[str, Any]:
        return {
            "version": JSON_VERSION,
            "ok": self.ok,
            "before": [r.as_json() for r in self.before],
            "ollama_stopped": [r.as_json() for r in self.during],
            "ollama_started": [r.as_json() for r in self.after],
            "flip_back_s": self.flip_back_s,
            "verdicts": [{"route": v.route, "ok": v.ok, "text": v.text} for v in self.verdicts],
        }


def no_cloud_step(route: str) -> bool:
    chain = catalog.CHAINS.get(route)
    if chain is None:
        return False
    return all(catalog.PROVIDERS[catalog.DEPLOYMENTS[k].provider].local for k in chain)


def drill(
    endpoint: Backend,
    routes: Mapping[str, list[str]],
    pause: Callable[[str], None],
    *,
    progress: Callable[[str, RouteCheck], None] | None = None,
    flip_back_timeout: float = 90.0,
    poll_every: float = 3.0,
) -> DrillReport:
    """Stop Ollama, see the cascade; start it, see routes flip back. `pause` waits for the user."""

    def run(phase: str, only: Iterable[str] | None = None) -> list[RouteCheck]:
        return smoke(
            endpoint,
            routes,
            premium=False,
            only=only,
            progress=(lambda r: progress(phase, r)) if progress else None,
        )

    before = [r for r in run("before") if not r.skipped]
    report = DrillReport(before)
    local = [r for r in before if r.ok and r.on_apex_gpu]
    if not local:
        failing = [r.route for r in before if not r.ok]
        why = (
            f"routes {', '.join(failing)} do not answer"
            if failing
            else "no route is answered by a local model on Apex"
        )
        report.verdicts.append(
            Verdict(
                "*",
                False,
                f"nothing to drill: {why}. Run `brain apex check` first and start Ollama on Apex.",
            )
        )
        return report
    pause(STOP_OLLAMA)
    report.during = run("ollama stopped")
    report.verdicts += cascade_verdicts(before, report.during)
    pause(START_OLLAMA)
    wanted = [r.route for r in local]
    report.after, report.flip_back_s = _wait_flip_back(
        lambda: run("ollama started", wanted), wanted, flip_back_timeout, poll_every
    )
    report.verdicts += flip_back_verdicts(report.after, wanted, flip_back_timeout)
    return report


def cascade_verdicts(before: list[RouteCheck], during: list[RouteCheck]) -> list[Verdict]:
    """With Ollama on Apex stopped: did each route cascade to the cloud (or fail as designed)?"""
    found = {r.route: r for r in during}
    verdicts = []
    for r in before:
        d = found.get(r.route)
        if d is not None:
            verdicts.append(_cascade(r, d))
    return verdicts


def _cascade(r: RouteCheck, d: RouteCheck) -> Verdict:
    if not r.ok:
        return Verdict(r.route, False, f"did not answer before the drill: {r.error}")
    if not r.on_apex_gpu:
        text = (
            f"not on Ollama ({r.model}); still answered by {d.model}"
            if d.ok
            else f"not on Ollama ({r.model}), yet it failed: {d.error}"
        )
        return Verdict(r.route, d.ok, text)
    if d.ok and d.on_apex_gpu is False:
        return Verdict(r.route, True, f"cascaded from {r.model} to {d.model} ({d.group})")
    if d.ok:
        return Verdict(
            r.route, False, f"still answered by {d.model} on Apex's GPU: is Ollama really stopped?"
        )
    if no_cloud_step(r.route):
        return Verdict(
            r.route,
            True,
            "no answer from Apex, as designed: this route has no cloud step; brain answers it "
            "on this laptop",
        )
    return Verdict(r.route, False, f"did not cascade to the cloud: {d.error}")


def _wait_flip_back(
    check: Callable[[], list[RouteCheck]], wanted: list[str], timeout: float, every: float
) -> tuple[list[RouteCheck], float | None]:
    start = time.monotonic()
    while True:
        after = check()
        if {r.route for r in after if r.ok and r.on_apex_gpu} >= set(wanted):
            return after, round(time.monotonic() - start, 1)
        if time.monotonic() - start > timeout:
            return after, None
        time.sleep(every)


def flip_back_verdicts(after: list[RouteCheck], wanted: list[str], timeout: float) -> list[Verdict]:
    found = {r.route: r for r in after}
    verdicts = []
    for route in wanted:
        a = found.get(route)
        if a is not None and a.ok and a.on_apex_gpu:
            verdicts.append(Verdict(route, True, f"flipped back to {a.model}"))
        else:
            now = (a.model or a.error) if a else "no answer"
            verdicts.append(
                Verdict(
                    route,
                    False,
                    f"did not flip back to Apex's GPU within {timeout:.0f} s (now: {now}); is "
                    "Ollama running and its model pulled?",
                )
            )
    return verdicts
