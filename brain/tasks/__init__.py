"""The task table: one row per task, driving subcommands, slash commands, MCP tools, the
benchmark and the rendered Apex config.

Owns the built-in tasks (DESIGN.md), their system prompts (prompts/*.md) and the merge with
user tasks from `[tasks.NAME]`. Imports nothing outside brain.errors and brain.settings; never
click, rich or prompt-toolkit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from brain.errors import ConfigError

LOCAL = "local"
NONE = "none"
PREMIUM_ROUTE = "premium_reasoning"


@dataclass(frozen=True)
class Task:
    name: str
    route: str
    prompt: str  # the system prompt's text
    description: str
    temperature: float = 0.3
    max_tokens: int = 2048
    fallback: str = LOCAL  # "local" or "none"
    long_route: str | None = None
    builtin: bool = True

    @property
    def may_fall_back(self) -> bool:
        return self.fallback == LOCAL


def _prompt(name: str) -> str:
    # A plain path, not importlib.resources: that import (with zipfile, tempfile and shutil)
    # costs ~8 ms of `brain --help`, which lists the tasks (bench/README.md, section e).
    return (Path(__file__).parent / "prompts" / f"{name}.md").read_text("utf-8")


# (name, route, description, temperature, max_tokens, fallback, long_route)
_BUILTIN = [
    (
        "dump",
        "brain_dump",
        "Sort a brain dump into to-dos, ideas and notes.",
        0.2,
        1024,
        LOCAL,
        None,
    ),
    (
        "digest",
        "daily_digest",
        "Digest notes, logs or files (piped, named, or gathered from your sources) into a daily summary.",
        0.2,
        2048,
        LOCAL,
        "long_context_summary",
    ),
    ("draft", "draft", "Draft a letter, email, page or handout.", 0.7, 2048, LOCAL, None),
    ("code", "code", "Review a diff, explain or write code.", 0.1, 4096, LOCAL, None),
    (
        "premium",
        PREMIUM_ROUTE,
        "Ask paid Claude a hard question (never a fallback; costs money).",
        0.3,
        4096,
        NONE,
        None,
    ),
    ("ask", "default", "Ask anything.", 0.5, 2048, LOCAL, None),
]

BUILTIN_NAMES = tuple(row[0] for row in _BUILTIN)


def builtin_tasks() -> dict[str, Task]:
    return {
        name: Task(name, route, _prompt(name), desc, temp, max_tokens, fallback, long_route)
        for name, route, desc, temp, max_tokens, fallback, long_route in _BUILTIN
    }


# Names a user task may not take: they are brain's own commands.
RESERVED = frozenset(
    {
        "status",
        "keys",
        "config",
        "routes",
        "history",
        "queue",
        "bench",
        "mcp",
        "claude",
        "apex",
        "completion",
        "repl",
        "voice",
        "help",
    }
)


def all_tasks(
    user: dict[str, dict[str, Any]] | None = None, config_dir: Path | None = None
) -> dict[str, Task]:
    """Built-in tasks merged with the user's `[tasks.NAME]` tables (already type-checked)."""
    tasks = builtin_tasks()
    for name, fields in (user or {}).items():
        if name in RESERVED:
            raise ConfigError(
                f"[tasks.{name}]: `{name}` is one of brain's own commands",
                "Give the task another name.",
            )
        base = tasks.get(name)
        if base is None and "route" not in fields:
            raise ConfigError(
                f"[tasks.{name}] needs a `route`",
                'Add route = "..." naming a route on Apex (see `brain routes`).',
            )
        prompt = fields.get("prompt")
        if prompt is not None:
            prompt = _user_prompt(prompt, config_dir)
        changes = {k: v for k, v in fields.items() if k != "prompt"}
        if prompt is not None:
            changes["prompt"] = prompt
        if base is None:
            task = Task(
                name=name,
                route=changes.pop("route"),
                prompt=changes.pop("prompt", _prompt("ask")),
                description=changes.pop(
                    "description", f"Your task `{name}` (route {fields['route']})."
                ),
                builtin=False,
                **changes,
            )
        else:
            task = replace(base, builtin=False, **changes)
        tasks[name] = task
    check_premium(tasks)
    return tasks


def from_settings(conf: Any) -> dict[str, Task]:
    """The task table for a loaded config; errors name the config file."""
    try:
        return all_tasks(conf.tasks, conf.path.parent)
    except ConfigError as exc:
        if str(conf.path) not in exc.message:
            exc.message = f"{conf.path}: {exc.message}"
        raise


def _user_prompt(value: str, config_dir: Path | None) -> str:
    if value.endswith((".md", ".txt")) and "\n" not in value:
        from brain.files import expand

        path = expand(value)
        if not path.is_absolute() and config_dir is not None:
            path = config_dir / path
        try:
            return path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot read the prompt file {path}: {exc.strerror}",
                "Fix the path in [tasks.NAME] prompt, or put the prompt text there instead.",
            ) from exc
    return value


# ----- the premium lane's rule for the table (brain.premium holds the rest) ---------------


def premium_routes(
    tasks: dict[str, Task] | None = None, user: dict[str, Any] | None = None
) -> set[str]:
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


def check_premium(tasks: dict[str, Task]) -> None:
    """Refuse a task table where a task that may fall back could reach a premium route.

    Refused rather than quietly changed: the user wrote the task, and a quiet change of
    its fallback would surprise them later (docs/premium.md).
    """
    premium = premium_routes(tasks)
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
