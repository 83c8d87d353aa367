"""The backend ladder: which backends a question may use, in which order, and the loop over
them.

- Order (DESIGN.md "Backends, in order"): apex, then the laptop's local server; `anthropic`
  only for a premium task with `[premium] direct` in the default mode. `--online`: apex only;
  `--offline`: local only. A task whose fallback is "none" (premium) never reaches local.
- A failure before the first token moves down the ladder (ONE notice line naming who answers
  next and why, said once that one speaks: never "answering on this laptop" right before
  "Nothing could answer"); after the first token a cut-off answer is kept as partial, never replaced.
- Nothing is silently truncated: a backend whose context is known to be too small for the
  input is left out before anything is sent; a task with a long-input route takes it when the
  input is past the local context; input too long for every backend is bad input (65).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from brain import premium
from brain.app import AUTO, OFFLINE, ONLINE
from brain.backends import estimate_tokens
from brain.backends.base import Answer, ChatRequest, Sink
from brain.client import Message, refuse_too_long
from brain.errors import TEMPFAIL, BackendError, ConfigError, Unreachable
from brain.tasks import Task

if TYPE_CHECKING:
    from brain.app import App

__all__ = ["AUTO", "OFFLINE", "ONLINE", "Outcome", "Plan", "next_backend", "plan", "run"]

KEPT = "Your input is kept: `brain queue run` sends it once something answers."


@dataclass
class Outcome:
    answer: Answer
    task: str
    route: str
    fallbacks: list[dict[str, str]] = field(default_factory=list)


@dataclass
class Plan:
    """What a question will do, decided before anything is sent."""

    task: Task
    route: str
    mode: str
    local_model: str
    messages: list[Message]
    tokens: int
    backends: list[str]  # names, in order: apex, anthropic, local
    left_out: list[tuple[str, str, str]] = field(default_factory=list)  # (name, why, fix)
    current: str = ""  # the backend being asked now (a partial answer is kept under its name)

    def request(self, app: App, name: str) -> ChatRequest:
        model = app.backend(name).model_for(self.route, self.local_model)
        return ChatRequest(
            model, self.messages, self.task.temperature, self.task.max_tokens, self.tokens
        )


def order(app: App, task: Task, mode: str, route: str) -> tuple[list[str], list[tuple]]:
    """The backends `task` may use in `mode`, and those left out with why (and the fix)."""
    names: list[str] = []
    left: list[tuple[str, str, str]] = []
    if mode != OFFLINE:
        if app.settings.apex_url:
            names.append("apex")
        else:
            fix = "To use Apex: `brain config init` asks its URL and key; then `brain status`."
            if mode == ONLINE:
                raise ConfigError("Apex is not configured, and --online allows nothing else.", fix)
            left.append(("apex", "not configured (apex.url is empty)", fix))
        if names and premium.direct_allowed(app.settings, task, route, mode):
            names.append("anthropic")  # when a configured Apex cannot be reached
    if task.may_fall_back and mode != ONLINE:
        names.append("local")
    if not names:
        raise Unreachable(*_nowhere(task, route, mode))
    return names, left


def _nowhere(task: Task, route: str, mode: str) -> tuple[str, str]:
    if mode == OFFLINE:
        return (
            f"`{task.name}` answers only on Apex (route {route}), and --offline (or "
            "BRAIN_OFFLINE) keeps brain on this laptop.",
            f"Run it again without --offline when Apex is reachable. {KEPT}",
        )
    return (
        f"`{task.name}` answers only on Apex (route {route}), and Apex is not configured.",
        f"To use Apex: `brain config init` asks its URL and key; then `brain status`. {KEPT}",
    )


def plan(
    app: App,
    task: Task,
    messages: list[Message],
    *,
    mode: str = AUTO,
    route: str | None = None,
    model: str | None = None,
) -> Plan:
    """Choose the route and the backends for `messages`; BadInput (65) when no backend it may
    use can read that much. Asks the network only about inputs too long to fit anywhere
    unasked (the local context, Apex's /model/info)."""
    tokens = estimate_tokens(messages)
    local_model = model or app.settings.local_model
    chosen = route or task.route
    names, left = order(app, task, mode, chosen)
    if route is None and task.long_route and _past_local(app, names, local_model, tokens):
        chosen = task.long_route
    the_plan = Plan(task, chosen, mode, local_model, messages, tokens, names, left)
    _fit(app, the_plan)
    return the_plan


def _past_local(app: App, names: list[str], model: str, tokens: int) -> bool:
    """Past the laptop's context (DESIGN.md: digest's long input goes to long_context_summary)."""
    limit = app.backend("local").context_tokens(model, tokens) if "local" in names else None
    if limit is None:
        configured = int(app.settings.get("local", "context_tokens"))
        limit = configured or 8192
    return tokens > limit


def _fit(app: App, the_plan: Plan) -> None:
    """Leave out the backends that cannot read the input; refuse it if none can."""
    limits: list[tuple[str, int]] = []
    for name in list(the_plan.backends):
        backend = app.backend(name)
        model = the_plan.local_model if name == "local" else the_plan.route
        limit = backend.context_tokens(model, the_plan.tokens)
        if limit is None:
            continue
        # Apex's figure is for input alone; a local context also holds the answer: keep room
        # for it (a quarter of the context at most, so a short input on a small model goes).
        room = limit if name == "apex" else limit - min(the_plan.task.max_tokens, limit // 4)
        if the_plan.tokens > room:
            limits.append((backend.label(), limit))
            the_plan.backends.remove(name)
            why = f"the input (~{the_plan.tokens:,} tokens) is longer than its context ({limit:,})"
            the_plan.left_out.append((name, why, ""))
    if not the_plan.backends:
        raise refuse_too_long(the_plan.tokens, limits)


def run(app: App, the_plan: Plan, sink: Sink) -> Outcome:
    """Answer with the first backend of the plan that can."""
    task = the_plan.task
    premium.check_plan(app.settings, task, the_plan.route)
    tried: list[tuple[str, BackendError]] = []
    for name in the_plan.backends:
        backend = app.backend(name)
        request = the_plan.request(app, name)
        told: Sink = sink
        if tried:
            line = f"{_short(tried[-1][1].reason)} — {backend.taking_over(request.model)}."
            told = _Announced(sink, line)
        if name != "local":  # the local backend says itself whether its model is loading
            sink.waiting(f"{backend.taking_over(request.model)}…")
        the_plan.current = name
        try:
            answer = backend.chat(request, told)
        except BackendError as exc:
            if not exc.fallback_ok:
                raise
            tried.append((name, exc))
            continue
        fallbacks = [{"backend": n, "reason": e.reason} for n, e in tried]
        return Outcome(answer, task.name, the_plan.route, fallbacks + answer.apex_fallbacks)
    error = _nothing_answered(app, the_plan, tried)
    error.tried = tried  # type: ignore[attr-defined]  # each backend's own error (a digest in parts)
    raise error


class _Announced:
    """A fallback's one notice line ("Apex: refused — answering on this laptop with X"), said
    when the next backend really speaks (its first token, or a notice such as "loading"),
    never before a failure of its own: then the error names both, and nothing claimed an
    answer that did not come."""

    def __init__(self, sink: Sink, line: str) -> None:
        self.sink, self.line = sink, line

    def _say(self) -> None:
        if self.line:
            line, self.line = self.line, ""
            self.sink.notice(line)

    def delta(self, text: str) -> None:
        self._say()
        self.sink.delta(text)

    def notice(self, text: str) -> None:
        self._say()
        self.sink.notice(text)

    def waiting(self, text: str) -> None:
        self.sink.waiting(text)


def _short(reason: str) -> str:
    from brain.client import one_line

    return one_line(reason, 200)


def _nothing_answered(
    app: App, the_plan: Plan, tried: list[tuple[str, BackendError]]
) -> Unreachable | BackendError:
    error = _nothing_answered_error(app, the_plan, tried)
    # A server that is there and said "try later" (408, 503) makes the whole a passing
    # failure (75), as it would have been alone; refused, unreachable or broken is 69.
    if isinstance(error, Unreachable) and any(e.exit_code == TEMPFAIL for _, e in tried):
        error.exit_code = TEMPFAIL
    return error


def _nothing_answered_error(
    app: App, the_plan: Plan, tried: list[tuple[str, BackendError]]
) -> Unreachable | BackendError:
    if tried and all(e.too_long for _, e in tried):
        error = tried[-1][1]
        return refuse_too_long(the_plan.tokens, []) if len(tried) > 1 else error
    if the_plan.mode == ONLINE and tried:
        reason, fix = app.backend("apex").explain(tried[0][1])
        return Unreachable(f"{reason}; --online allows nothing else.", f"{fix} {KEPT}".strip())
    if not the_plan.task.may_fall_back and tried:
        told = [app.backend(name).explain(error) for name, error in tried]
        reason = "; ".join(r for r, _ in told)
        fix = " ".join(dict.fromkeys(f for _, f in told if f))
        return Unreachable(
            f"{reason}. `{the_plan.task.name}` answers only on Apex (route {the_plan.route}) "
            "and never falls back to another model.",
            f"{fix} {KEPT}".strip(),
        )
    lines = ["Nothing could answer; your input is kept in the queue."]
    fixes: list[str] = []
    for name, why, fix in the_plan.left_out:
        lines.append(f"{_title(name)}: {why}")
        if fix:
            fixes.append(fix)
    for name, error in tried:
        reason, fix = app.backend(name).explain(error)
        lines.append(reason if reason.lower().startswith(name) else f"{name}: {reason}")
        if fix:
            fixes.append(fix)
    fixes.append("Then `brain queue run` sends what was kept (`brain queue list` shows it).")
    return Unreachable("\n".join(lines), "\n".join(dict.fromkeys(fixes)))


def _title(name: str) -> str:
    return {"apex": "Apex", "local": "local", "anthropic": "Anthropic"}.get(name, name)


def next_backend(app: App, task: Task, mode: str, route: str | None = None) -> tuple[str, str]:
    """Who the next question would go to, from what is known without asking the network (the
    REPL toolbar): (backend name, or "none"; why). "apex?" while Apex's state is unknown."""
    route = route or task.route
    try:
        names, left = order(app, task, mode, route)
    except (Unreachable, ConfigError) as exc:
        return "none", exc.message
    away = f"Apex is {left[0][1]}" if left else ""
    for name in names:
        if name == "apex":
            state, why = app.backend("apex").state()
            if state == "away":
                away = why
                continue
            return ("apex?" if state == "unknown" else "apex"), why
        if name == "anthropic":
            return name, f"{away}; [premium] direct asks Anthropic"
        return name, "the mode is offline" if mode == OFFLINE else away
    return "none", f"{away}; {task.name} answers only on Apex"
