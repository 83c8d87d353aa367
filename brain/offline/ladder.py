"""The backend ladder: Apex first, then the laptop's local model, then nothing.

A request that fails before its first token moves down the ladder when the mode and the
task's policy allow; after the first token a cut-off answer is returned as partial, never
replaced. Premium (fallback "none") never leaves Apex. Each fallback is reported once through
`notice` and recorded in `Outcome.fallbacks`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from brain import client, premium
from brain.client import Answer, Endpoint, Message, OnDelta
from brain.errors import BackendError, ConfigError, Unreachable
from brain.offline import local as local_mod
from brain.offline import probe
from brain.settings import Settings
from brain.tasks import Task

AUTO, ONLINE, OFFLINE = "auto", "online", "offline"


@dataclass
class Outcome:
    answer: Answer
    task: str
    route: str
    fallbacks: list[dict[str, str]] = field(default_factory=list)


@dataclass
class Plan:
    """What a request will do, decided before anything is sent."""

    task: Task
    route: str
    mode: str
    local_model: str
    long_input: bool = False
    est_tokens: int = 0


def estimate_tokens(messages: list[Message]) -> int:
    # ~4 characters a token for English prose; close enough to choose a route.
    return sum(len(m.get("content", "")) for m in messages) // 4 + 8 * len(messages)


def plan(
    settings: Settings,
    task: Task,
    messages: list[Message],
    mode: str = AUTO,
    route: str | None = None,
    model: str | None = None,
) -> Plan:
    est = estimate_tokens(messages)
    long_input = est > int(settings.get("local", "context_tokens"))
    chosen = route or (task.long_route if long_input and task.long_route else task.route)
    return Plan(task, chosen, mode, model or settings.local_model, long_input, est)


def apex_endpoint(settings: Settings, key: str | None) -> Endpoint:
    return Endpoint(
        "apex",
        settings.apex_url,
        key,
        float(settings.get("apex", "connect_timeout")),
        float(settings.get("apex", "first_token_timeout")),
    )


def local_endpoint(settings: Settings) -> Endpoint:
    return Endpoint(
        "local",
        settings.local_url,
        None,
        1.0,
        float(settings.get("local", "first_token_timeout")),
    )


def run(
    settings: Settings,
    the_plan: Plan,
    messages: list[Message],
    *,
    cache_dir: Path,
    get_key: Callable[[], str | None],
    on_delta: OnDelta | None = None,
    notice: Callable[[str], None] = lambda _msg: None,
    on_local_start: Callable[[str], None] | None = None,
) -> Outcome:
    """Answer `messages` with the first backend that can, as `the_plan` allows."""
    task = the_plan.task
    premium.check_plan(settings, task, the_plan.route)
    fallbacks: list[dict[str, str]] = []
    apex_reason = ""
    apex_fix = ""
    if the_plan.mode != OFFLINE:
        url = settings.apex_url
        if not url:
            # Not a fallback: with no Apex configured the laptop is the only backend. Say so
            # only when nothing answers, or when the task needs Apex.
            apex_reason = "not configured (apex.url is empty)"
            apex_fix = "To use Apex: `brain config init` asks its URL and key; then `brain status`."
            if the_plan.mode == ONLINE:
                raise ConfigError(
                    "Apex is not configured, and --online allows nothing else.", apex_fix
                )
            if not task.may_fall_back:
                raise Unreachable(
                    f"`{task.name}` answers only on Apex (route {the_plan.route}), and Apex is "
                    "not configured.",
                    _kept(apex_fix),
                )
        else:
            verdict = probe.check(
                cache_dir,
                url,
                float(settings.get("apex", "probe_ttl")),
                float(settings.get("apex", "connect_timeout")),
            )
            if not verdict.ok:
                apex_reason = f"Apex ({url}): {verdict.reason}"
                if verdict.cached:
                    apex_reason += " (seen in the last few seconds)"
                apex_fix = (
                    "Check that Apex is on and Tailscale is connected (`tailscale status`); "
                    "`brain status` shows what brain sees."
                )
            else:
                endpoint = apex_endpoint(settings, get_key())
                try:
                    answer = client.chat(
                        endpoint,
                        the_plan.route,
                        messages,
                        temperature=task.temperature,
                        max_tokens=task.max_tokens,
                        on_delta=on_delta,
                    )
                except BackendError as exc:
                    if not exc.fallback_ok:
                        raise
                    apex_reason = exc.reason
                    apex_fix = exc.fix or "`brain status` shows what brain sees of Apex."
                    if exc.transport:
                        # The host could not be reached after a good probe (it just went
                        # away): the next commands skip it for a while. An HTTP error or a
                        # slow first token concerns one route; other routes may answer.
                        probe.remember(
                            cache_dir,
                            probe.Verdict(url, False, exc.detail, time.time(), probe.CHEAP_MS),
                        )
                else:
                    probe.remember(
                        cache_dir, probe.Verdict(url, True, "", time.time(), answer.first_token_ms)
                    )
                    fallbacks.extend(answer.apex_fallbacks)
                    return Outcome(answer, task.name, the_plan.route, fallbacks)
        if the_plan.mode == ONLINE:
            raise Unreachable(f"{apex_reason}; --online allows nothing else.", _kept(apex_fix))
        if premium.direct_allowed(settings, task, the_plan.route, the_plan.mode):
            # Still the premium lane the user asked for, by another road; never a fallback.
            notice(f"{apex_reason} — asking Anthropic directly ([premium] direct = true).")
            fallbacks.append({"backend": "apex", "reason": apex_reason})
            answer = premium.ask_direct(settings, task, messages, apex_reason, on_delta)
            return Outcome(answer, task.name, the_plan.route, fallbacks)
        if not task.may_fall_back:
            raise Unreachable(
                f"{apex_reason}. `{task.name}` answers only on Apex (route {the_plan.route}) "
                "and never falls back to another model.",
                _kept(apex_fix),
            )
        if url:
            fallbacks.append({"backend": "apex", "reason": apex_reason})
    elif not task.may_fall_back:
        raise Unreachable(
            f"`{task.name}` answers only on Apex (route {the_plan.route}), and --offline "
            "(or BRAIN_OFFLINE) keeps brain on this laptop.",
            _kept("Run it again without --offline when Apex is reachable."),
        )

    local = local_endpoint(settings)
    model = the_plan.local_model
    if fallbacks:
        notice(f"{fallbacks[-1]['reason']} — answering on this laptop with {model}.")
    if the_plan.long_input:
        notice(
            f"The input is about {the_plan.est_tokens} tokens, more than the local model's "
            f"context ({settings.get('local', 'context_tokens')}); its answer may miss parts."
        )
    warm = local_mod.loaded(settings.local_url, model)  # None: not Ollama, or not running
    if warm is False:
        notice(f"loading {model} on this laptop; the first answer after a pause takes longer.")
    if on_local_start:
        on_local_start(
            f"loading {model} on this laptop…"
            if warm is False
            else f"{model} is thinking on this laptop…"
        )
    try:
        answer = client.chat(
            local,
            model,
            messages,
            temperature=task.temperature,
            max_tokens=task.max_tokens,
            on_delta=on_delta,
        )
    except BackendError as exc:
        state = local_mod.inspect(settings.local_url, model)
        local_reason = (
            state.summary() if (not state.running or state.pulled is False) else exc.reason
        )
        local_fix = state.fix() or exc.fix or ""
        if not state.running:
            others = [f for f in local_mod.discover() if f.url != settings.local_url]
            if others:
                first = others[0]
                local_fix = (
                    f"{first.kind} answers at {first.url}: use it with "
                    f"`brain config set local.url {first.url}`. Or: {local_fix}"
                )
        lines = ["Nothing could answer; your input is kept in the queue."]
        if apex_reason:
            lines.append(
                apex_reason if apex_reason.lower().startswith("apex") else f"Apex: {apex_reason}"
            )
        lines.append(f"local: {local_reason}")
        fixes = [p for p in (local_fix, apex_fix) if p]
        fixes.append("Then `brain queue run` sends what was kept (`brain queue list` shows it).")
        raise Unreachable("\n".join(lines), "\n".join(fixes)) from exc
    if warm is not None:
        local_mod.keep_warm(settings.local_url, model, str(settings.get("local", "keep_alive")))
    return Outcome(answer, task.name, the_plan.route, fallbacks)


def _kept(fix: str) -> str:
    tail = "Your input is kept: `brain queue run` sends it once something answers."
    return f"{fix} {tail}".strip()
