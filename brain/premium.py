"""The premium lane (paid Claude): who may reach it, what it cost, the daily cap, and the
direct call to Anthropic when Apex is away.

What must stay true (DESIGN.md, issue 22, docs/premium.md):
- Only a task whose fallback is "none" ever asks a premium route: `brain premium`,
  `/premium`, or a user task that names a premium route with fallback = "none". A task that
  may fall back never names one (`check_tasks`, when the task table is built from config),
  `--route` cannot point one at it (`check_plan`, run by the ladder before anything is
  sent), and a long input never switches to one by itself (`long_route`).
- Nothing falls back *to* premium: the ladder's only client-side step is the local model,
  and a premium task never falls back at all. The Apex side is `fallback_targets_premium`.
- `[premium] daily_usd` refuses a premium request (exit 75) once today's recorded premium
  spending has reached it.
- `[premium] direct = true`: when Apex cannot be reached, a premium task asks Anthropic's
  Messages API itself with the `anthropic` key. Nothing else ever does.

A premium route is `premium_reasoning`, or the route `[tasks.premium]` names. Imports
neither click nor rich; prints nothing (notices go through callbacks).
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from brain.errors import (
    BackendError,
    BadInput,
    ConfigError,
    KeyProblem,
    TemporaryFailure,
    Unreachable,
    UsageError,
)
from brain.tasks import NONE, PREMIUM_ROUTE, Task

if TYPE_CHECKING:
    import httpx

    from brain.client import Answer, Message, OnDelta
    from brain.settings import Settings
    from brain.store import Store

ANTHROPIC_VERSION = "2023-06-01"

# USD per million tokens (input, output), Anthropic's list prices, by model-name prefix; the
# first match wins, so more specific prefixes come first. Used only for direct answers (Apex
# reports its own figure). A model not listed has no known price: its answers are not counted,
# and with a daily cap set brain refuses to call it directly (the cap could not hold).
PRICES: list[tuple[str, float, float]] = [
    ("claude-opus-4-0", 15.0, 75.0),
    ("claude-opus-4-1", 15.0, 75.0),
    ("claude-opus-4-2025", 15.0, 75.0),
    ("claude-opus-4", 5.0, 25.0),  # 4.5 and later
    ("claude-sonnet-4", 3.0, 15.0),
    ("claude-3-7-sonnet", 3.0, 15.0),
    ("claude-haiku-4", 1.0, 5.0),
    ("claude-3-5-haiku", 0.8, 4.0),
]


# ----- who may reach premium ------------------------------------------------------------


def routes(tasks: dict[str, Task] | None = None, user: dict[str, Any] | None = None) -> set[str]:
    """The premium routes: premium_reasoning and the route of the `premium` task.

    Pass the merged task table, or the raw `[tasks.NAME]` tables of config (cheaper: no
    prompts are read).
    """
    found = {PREMIUM_ROUTE}
    if tasks is not None and "premium" in tasks:
        found.add(tasks["premium"].route)
    if user is not None:
        route = (user.get("premium") or {}).get("route")
        if isinstance(route, str) and route:
            found.add(route)
    return found


def check_tasks(tasks: dict[str, Task]) -> None:
    """Refuse a task table where a task that may fall back could reach a premium route.

    Refused rather than quietly changed: the user wrote the task, and a quiet change of
    its fallback would surprise them later (docs/premium.md).
    """
    premium = routes(tasks)
    for task in tasks.values():
        if task.route in premium and task.fallback != NONE:
            raise ConfigError(
                f'[tasks.{task.name}] asks the premium route `{task.route}` with fallback = "'
                f'{task.fallback}": premium never falls back to another model, and a task '
                "that falls back never asks premium.",
                f'Add fallback = "none" to [tasks.{task.name}] (it then answers only on Apex), '
                "or give it another route.",
            )
        if task.long_route in premium and task.route not in premium:
            raise ConfigError(
                f"[tasks.{task.name}] long_route = `{task.long_route}` would send long inputs "
                "to paid Claude without being asked.",
                f"Choose another long_route for [tasks.{task.name}]; ask premium explicitly "
                'with `brain premium "..."`.',
            )


def check_plan(settings: Settings, task: Task, route: str) -> None:
    """The last check before a request goes out: a task that may fall back never asks premium."""
    if route in routes(user=settings.tasks) and task.fallback != NONE:
        raise UsageError(
            f"`{route}` is the paid premium lane, and `{task.name}` falls back to other "
            "models; brain never mixes the two.",
            'Ask premium explicitly: brain premium "..."',
        )


def fallback_targets_premium(
    fallbacks: Iterable[dict[str, Any]], premium: Iterable[str] = (PREMIUM_ROUTE,)
) -> list[str]:
    """For Apex's own config (LiteLLM `router_settings.fallbacks`, a list of
    `{group: [fallback groups]}`): the groups whose fallback chain reaches a premium route.
    Empty means the config is safe; `brain apex render`/`check` refuse anything else.
    """
    premium = set(premium)
    chains: dict[str, list[str]] = {}
    for entry in fallbacks:
        for group, targets in entry.items():
            chains.setdefault(group, []).extend(targets or [])
    bad = []
    for group in chains:
        seen: set[str] = set()
        todo = list(chains[group])
        while todo:
            target = todo.pop()
            if target in seen:
                continue
            seen.add(target)
            if target in premium:
                bad.append(group)
                break
            todo.extend(chains.get(target, []))
    return bad


# ----- spending -------------------------------------------------------------------------


def start_of_today(now: float | None = None) -> float:
    """Local midnight: the daily cap follows the user's own day."""
    day = datetime.date.fromtimestamp(time.time() if now is None else now)
    return time.mktime(day.timetuple())


def spent_today(store: Store, premium: Iterable[str], now: float | None = None) -> float:
    since = start_of_today(now)
    return sum(store.spent_since(since, route) for route in set(premium))


def check_cap(settings: Settings, store: Store, route: str) -> None:
    """Refuse (exit 75) a premium request once today's spending has reached [premium] daily_usd."""
    cap = float(settings.get("premium", "daily_usd"))
    premium = routes(user=settings.tasks)
    if cap <= 0 or route not in premium:
        return
    spent = spent_today(store, premium)
    if spent >= cap:
        raise TemporaryFailure(
            f"Premium is capped at ${cap:.2f} a day ([premium] daily_usd), and today's premium "
            f"answers have cost ${spent:.4f}. Nothing was sent.",
            "It answers again after midnight. To allow more today: "
            f"`brain config set premium.daily_usd {max(cap * 2, 1):g}` (0 removes the cap). "
            "The other tasks (ask, code, …) still answer.",
        )


@dataclass
class Spending:
    """What one premium answer cost and where today stands; shown after the answer."""

    cost: float | None
    today: float
    cap: float | None
    source: str  # "apex" (LiteLLM's x-litellm-response-cost) or "list price" (direct)

    def line(self) -> str:
        if self.cost is None:
            head = "premium: Apex reported no cost for this answer"
        else:
            head = f"premium: this answer cost ${self.cost:.4f}"
            if self.source != "apex":
                head += f" ({self.source})"
        tail = f"today so far ${self.today:.4f}"
        if self.cap and self.today >= self.cap:
            tail += (
                f", past your ${self.cap:.2f} daily cap: further premium questions today are "
                "refused"
            )
        elif self.cap:
            tail += f" of your ${self.cap:.2f} daily cap (${self.cap - self.today:.4f} left)"
        return f"{head}; {tail}."

    def as_json(self) -> dict[str, Any]:
        return {"cost": self.cost, "today_usd": self.today, "daily_cap_usd": self.cap}


def spending(settings: Settings, store: Store, route: str, answer: Answer) -> Spending | None:
    """Today's premium figures after an answer on `route` (None when it is not premium).

    Call after the answer is recorded, so today's total includes it.
    """
    premium = routes(user=settings.tasks)
    if route not in premium:
        return None
    cap = float(settings.get("premium", "daily_usd")) or None
    source = "apex" if answer.backend == "apex" else "estimated from Anthropic's list price"
    return Spending(answer.cost, spent_today(store, premium), cap, source)


# ----- direct to Anthropic --------------------------------------------------------------


def direct_allowed(settings: Settings, task: Task, route: str, mode: str) -> bool:
    """[premium] direct applies only to a premium task, asked in the default (auto) mode."""
    return (
        bool(settings.get("premium", "direct"))
        and mode == "auto"
        and task.fallback == NONE
        and route in routes(user=settings.tasks)
    )


def ask_direct(
    settings: Settings,
    task: Task,
    messages: list[Message],
    apex_reason: str,
    on_delta: OnDelta | None = None,
) -> Answer:
    """The ladder's one call into this module when Apex could not answer a premium task."""
    from brain import secrets

    try:
        return ask_anthropic(
            settings,
            task,
            messages,
            get_key=lambda: secrets.get("anthropic"),
            on_delta=on_delta,
        )
    except BackendError as exc:
        raise Unreachable(
            f"Nothing could answer premium. {apex_reason}; {exc.reason}.",
            "Check the network (and `brain status` for Apex). Your input is kept: "
            "`brain queue run` sends it once something answers.",
        ) from exc


def price(model: str) -> tuple[float, float] | None:
    for prefix, usd_in, usd_out in PRICES:
        if model.startswith(prefix):
            return usd_in, usd_out
    return None


def ask_anthropic(
    settings: Settings,
    task: Task,
    messages: list[Message],
    *,
    get_key: Callable[[], str | None],
    on_delta: OnDelta | None = None,
) -> Answer:
    """One streamed Messages API call to Anthropic; the Answer has backend "anthropic"."""
    import httpx

    from brain.client import Answer, describe_transport

    model = str(settings.get("premium", "model"))
    if settings.get("premium", "daily_usd") and price(model) is None:
        raise ConfigError(
            f"brain does not know what `{model}` costs, so with a daily cap set it will not "
            "call it directly (the cap could not hold).",
            "Set [premium] model to a Claude model brain knows (e.g. claude-sonnet-4-5), or "
            "set premium.daily_usd to 0.",
        )
    key = get_key()
    if not key:
        raise KeyProblem(
            "[premium] direct is on, but no `anthropic` key is set.",
            "Set it with `brain keys set anthropic` (or export BRAIN_ANTHROPIC_KEY), or turn "
            "direct off: `brain config set premium.direct false`.",
        )
    system = "\n\n".join(m["content"] for m in messages if m.get("role") == "system")
    turns = [
        {"role": m["role"], "content": m["content"]}
        for m in messages
        if m.get("role") in ("user", "assistant")
    ]
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": task.max_tokens,
        "temperature": min(task.temperature, 1.0),  # Anthropic's range is 0–1
        "messages": turns,
        "stream": True,
    }
    if system:
        body["system"] = system
    headers = {
        "x-api-key": key,
        "anthropic-version": ANTHROPIC_VERSION,
        "content-type": "application/json",
        "user-agent": "brain",
    }
    base = str(settings.get("premium", "anthropic_url")).rstrip("/")
    timeout = httpx.Timeout(connect=5.0, read=120.0, write=10.0, pool=5.0)
    answer = Answer(backend="anthropic", route=model, model=model)
    start = time.monotonic()
    try:
        # trust_env: api.anthropic.com is on the internet, where a user's HTTPS proxy applies.
        with httpx.Client(timeout=timeout, trust_env=True) as client:
            with client.stream(
                "POST", base + "/v1/messages", json=body, headers=headers
            ) as response:
                if response.status_code != 200:
                    response.read()
                    raise _anthropic_error(response, model)
                _read_stream(response, answer, on_delta, start)
    except httpx.TransportError as exc:
        if answer.first_token_ms is None:
            reason = f"Anthropic at {base}: {describe_transport(exc)}"
            raise BackendError(reason, reason=reason) from exc
        answer.partial = True
        answer.partial_reason = f"the stream from Anthropic broke: {describe_transport(exc)}"
    answer.total_ms = int((time.monotonic() - start) * 1000)
    rates = price(answer.model) or price(model)
    if rates is not None and answer.usage:
        answer.cost = (
            answer.usage.get("prompt_tokens", 0) * rates[0]
            + answer.usage.get("completion_tokens", 0) * rates[1]
        ) / 1_000_000
    return answer


def _read_stream(
    response: httpx.Response, answer: Answer, on_delta: OnDelta | None, start: float
) -> None:
    stopped = False
    for line in response.iter_lines():
        if not line.startswith("data:"):
            continue  # "event:" names repeat the data's own "type"
        try:
            event = json.loads(line[5:].strip())
        except json.JSONDecodeError:
            continue
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            answer.model = str(message.get("model") or answer.model)
            _usage(answer, message.get("usage"))
        elif kind == "content_block_delta":
            delta = event.get("delta") or {}
            text = (delta.get("text") or "") if delta.get("type") == "text_delta" else ""
            if text:
                if answer.first_token_ms is None:
                    answer.first_token_ms = int((time.monotonic() - start) * 1000)
                answer.text += text
                if on_delta:
                    on_delta(text)
        elif kind == "message_delta":
            _usage(answer, event.get("usage"))
            if (event.get("delta") or {}).get("stop_reason") == "max_tokens":
                answer.partial = True
                answer.partial_reason = "the answer hit the task's max_tokens limit"
        elif kind == "message_stop":
            stopped = True
        elif kind == "error":
            err = event.get("error") or {}
            reason = f"Anthropic reported {err.get('type', 'an error')}: {err.get('message', '')}"
            if answer.first_token_ms is None:
                raise BackendError(reason, reason=reason, exit_code=75)
            answer.partial = True
            answer.partial_reason = reason
            return
    if not stopped and not answer.partial:
        reason = "the stream from Anthropic ended before the answer was complete"
        if answer.first_token_ms is None:
            raise BackendError(reason, reason=reason)
        answer.partial = True
        answer.partial_reason = reason


def _usage(answer: Answer, usage: Any) -> None:
    if not isinstance(usage, dict):
        return
    if isinstance(usage.get("input_tokens"), int):
        answer.usage["prompt_tokens"] = usage["input_tokens"]
    if isinstance(usage.get("output_tokens"), int):
        answer.usage["completion_tokens"] = usage["output_tokens"]


def _anthropic_error(response: httpx.Response, model: str) -> Exception:
    """Anthropic's errors ({"type":"error","error":{type,message}}; research/providers.md §4)."""
    status = response.status_code
    try:
        err = response.json().get("error") or {}
    except (ValueError, AttributeError):
        err = {}
    etype = str(err.get("type") or "")
    message = str(err.get("message") or response.text[:200])
    if status in (401, 403):
        return KeyProblem(
            f"Anthropic rejected the `anthropic` key (HTTP {status}: {message}).",
            "Set a valid key with `brain keys set anthropic` (or BRAIN_ANTHROPIC_KEY).",
        )
    if status == 429 and etype == "enforced_spend_limit_reached":
        return TemporaryFailure(
            f"Anthropic refused: your account's spend limit is reached ({message}).",
            "Raise the limit in the Anthropic console, or wait for it to reset.",
        )
    if status == 429 or status == 529:
        retry = response.headers.get("retry-after")
        when = f" in {retry} s" if retry else " in a minute"
        what = "is overloaded" if status == 529 else "is rate limiting this key"
        return TemporaryFailure(
            f"Anthropic {what} (HTTP {status}: {message}).",
            f"Try again{when}; your input is kept (`brain queue run` replays it).",
        )
    if status == 404 or (status == 400 and "model" in message.lower()):
        return ConfigError(
            f"Anthropic does not accept the model `{model}` (HTTP {status}: {message}).",
            "Set [premium] model to a current Claude model, e.g. "
            "`brain config set premium.model claude-sonnet-4-5`.",
        )
    if status == 400 or status == 413:
        return BadInput(f"Anthropic refused the request (HTTP {status}: {message}).")
    reason = f"Anthropic answered HTTP {status}: {message}"
    return BackendError(reason, "This is usually passing; try again.", reason=reason)
