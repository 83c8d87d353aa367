"""`brain repl [TASK]`, and `brain` alone on a terminal: the interactive REPL.

Thin: checks that there is a terminal, loads settings and the task table, and hands over to
brain.repl, which owns the prompt and the conversation.
"""

from __future__ import annotations

import sys

import click

from brain import install
from brain.commands.common import global_options
from brain.commands.complete import task_names


@click.command(
    name="repl",
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=f"Inside: /help lists the commands. Docs: {install.doc('repl.md')}.",
)
@click.argument("task", required=False, shell_complete=task_names)
@global_options("offline", "online", "config", "route", "model")
@click.pass_context
def repl(ctx: click.Context, task: str | None) -> int:
    """Talk with brain: a conversation on TASK (default: ask), with /commands.

    `brain` with no arguments on a terminal opens the same thing.
    """
    return open_repl(ctx, task or "ask")


def open_repl(ctx: click.Context, task: str) -> int:
    from brain.commands.common import app
    from brain.errors import UsageError
    from brain.render import Output
    from brain.repl import Repl

    if not (_isatty(sys.stdin) and _isatty(sys.stdout)):
        raise UsageError(
            "the REPL needs a terminal, and stdin or stdout is not one.",
            'For one question without a terminal: brain ask "..."   or   ... | brain ask',
        )
    the_app = app(ctx)
    if the_app.json:
        Output().notice("--json is for one-shot commands; the REPL ignores it.")
    return Repl(the_app, task).run()


def _isatty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):
        return False
