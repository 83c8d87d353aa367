"""Shell-completion helpers for click parameters: task names, key names, config keys, files.

Each function has click's `shell_complete` signature `(ctx, param, incomplete)` and returns
CompletionItems; attach them with `click.argument(..., shell_complete=FUNC)`. They run on
every Tab press, so they read only the task table, brain.secrets.KEYS and
brain.settings.SCHEMA: no network, no keyring, and a broken config never breaks completion.
"""

from __future__ import annotations

from typing import Any

import click
from click.shell_completion import CompletionItem


def task_names(ctx: click.Context, _param: Any, incomplete: str) -> list[CompletionItem]:
    """Built-in tasks and the user's `[tasks.NAME]` from config.toml."""
    from brain.tasks import builtin_tasks

    items = {n: t.description for n, t in builtin_tasks().items()}
    for name in _user_tasks(ctx):
        items.setdefault(name, "Your task from config.toml.")
    return [CompletionItem(n, help=h) for n, h in items.items() if n.startswith(incomplete)]


def key_names(_ctx: click.Context, _param: Any, incomplete: str) -> list[CompletionItem]:
    """The key names `brain keys set|delete` accept (brain.secrets.KEYS)."""
    from brain.secrets import KEYS

    return [
        CompletionItem(name, help=what)
        for name, (_env, what) in KEYS.items()
        if name.startswith(incomplete)
    ]


def config_keys(_ctx: click.Context, _param: Any, incomplete: str) -> list[CompletionItem]:
    """`section.key` for every key in brain.settings.SCHEMA, e.g. `apex.url`."""
    from brain.settings import SCHEMA

    return [
        CompletionItem(f"{section}.{key}", help=what)
        for section, keys in SCHEMA.items()
        for key, (_typ, _default, what) in keys.items()
        if f"{section}.{key}".startswith(incomplete)
    ]


def config_values(ctx: click.Context, _param: Any, incomplete: str) -> list[CompletionItem]:
    """Values for the key already typed: true/false for switches, nothing to guess otherwise."""
    from brain.settings import SCHEMA

    section, _, key = str(ctx.params.get("key") or "").partition(".")
    spec = SCHEMA.get(section, {}).get(key)
    if spec is None or spec[0] is not bool:
        return []
    return [CompletionItem(v) for v in ("true", "false") if v.startswith(incomplete)]


def files(_ctx: click.Context, _param: Any, incomplete: str) -> list[CompletionItem]:
    """Let the shell complete file names (the task commands read named files as material)."""
    return [CompletionItem(incomplete, type="file")]


def _user_tasks(ctx: click.Context) -> list[str]:
    try:
        from brain import settings
        from brain.commands.common import opts

        return list(settings.load(opts(ctx).config).tasks)
    except Exception:  # a broken config.toml is reported when a command runs, not on Tab
        return []
