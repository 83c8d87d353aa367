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
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from brain.errors import TemporaryFailure, UsageError
from brain.tasks import NONE, PREMIUM_ROUTE, Task, check_premium, premium_routes

if TYPE_CHECKING:
    from brain.backends.base import Answer
    from brain.settings import Settings
    from brain.store import Store

# ----- who may reach premium ------------------------------------------------------------


# The premium routes and the task-table rule live with the table (brain.tasks), which checks
# them whenever it is built; they are named here too, where the rest of premium is.
routes = premium_routes
check_tasks = check_premium


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


# ----- direct to Anthropic (brain.backends.anthropic asks it) ----------------------------


def direct_allowed(settings: Settings, task: Task, route: str, mode: str) -> bool:
    """[premium] direct applies only to a premium task, asked in the default (auto) mode."""
    return (
        bool(settings.get("premium", "direct"))
        and mode == "auto"
        and task.fallback == NONE
        and route in routes(user=settings.tasks)
    )
