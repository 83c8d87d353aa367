"""The task commands (`brain dump|digest|draft|code|premium|ask` and user tasks)."""

from __future__ import annotations

import sys
from typing import Any

import click

from brain.cli import global_options, opts
from brain.commands.complete import files


def context(ctx: click.Context) -> Any:
    """Settings and the task table for this run (shared by the other commands)."""
    from brain import settings
    from brain.tasks import from_settings

    conf = settings.load(opts(ctx).config)
    return conf, from_settings(conf)


def mode_of(ctx: click.Context, conf: Any) -> str:
    from brain.errors import UsageError
    from brain.offline import ladder

    o = opts(ctx)
    if o.offline and o.online:
        raise UsageError("--offline and --online contradict each other; give one.")
    if o.offline:
        return ladder.OFFLINE
    if o.online:
        return ladder.ONLINE
    return ladder.OFFLINE if conf.offline_env else ladder.AUTO


def task_command(name: str) -> click.Command:
    @click.command(
        name=name,
        context_settings={"help_option_names": ["-h", "--help"]},
        help=_help(name),
    )
    @click.argument("words", nargs=-1, metavar="[INSTRUCTION|FILE]...", shell_complete=files)
    @global_options
    @click.pass_context
    def command(ctx: click.Context, words: tuple[str, ...]) -> int:
        return run_task(ctx, name, words)

    return command


def _help(name: str) -> str:
    from brain.tasks import builtin_tasks

    task = builtin_tasks().get(name)
    if task is None:
        return f"Your task `{name}` from config.toml (`brain routes` shows its route).\n\n" + _HOW
    where = (
        "the laptop's local model answers when Apex is away"
        if task.may_fall_back
        else "never falls back: Apex only"
    )
    return f"{task.description}\n\nRoute on Apex: {task.route}; {where}.\n\n{_HOW}"


_HOW = (
    "Words are the instruction; arguments that name files, and piped stdin, are the material. "
    "The answer streams to stdout."
)


def read_stdin() -> str | None:
    from brain.exchange import decode

    if sys.stdin is None or sys.stdin.isatty():
        return None
    data = sys.stdin.buffer.read()
    return decode(data, "stdin") if data else None


def run_task(ctx: click.Context, name: str, words: tuple[str, ...]) -> int:
    from brain import exchange
    from brain.exchange import Material
    from brain.render import Output
    from brain.store import opened

    o = opts(ctx)
    conf, tasks = context(ctx)
    task = tasks[name]
    mode = mode_of(ctx, conf)
    instruction, material = exchange.split_args(words)
    piped = read_stdin()
    if piped is not None:
        material.insert(0, Material("stdin", piped))
    user_input, messages = exchange.compose(task, instruction, material)

    out = Output(json_mode=o.json, verbose=o.verbose)
    if mode != "offline" and conf.apex_url:
        out.waiting(f"asking Apex ({o.route or task.route})…")
    try:
        with opened() as store:
            result = exchange.ask(
                conf,
                store,
                task,
                messages,
                user_input,
                mode=mode,
                route=o.route,
                model=o.model,
                on_delta=out.delta,
                notice=out.notice,
                on_local_start=out.waiting,
            )
    finally:
        out.stop()
    code = report(out, result)
    if result.notify_pending:
        from brain import notify

        notify.spawn_sender()
    return code


def report(out: Any, result: Any) -> int:
    """Print the JSON object or the closing notices; the exit code for this answer."""
    a = result.outcome.answer
    if out.json_mode:
        out.json(result.as_json())
    elif not a.text:
        out.notice("the model answered with no text.")
    who = f"{a.backend} {a.model or ''}".strip()
    usage = a.usage
    out.info(
        f"answered by {who} (route {result.outcome.route}); first token "
        f"{a.first_token_ms} ms, total {a.total_ms} ms; tokens in/out "
        f"{usage.get('prompt_tokens', '?')}/{usage.get('completion_tokens', '?')}"
        + (f"; cost ${a.cost:.6f}" if a.cost is not None else "")
    )
    for note in result.notes():
        out.notice(note)
    if a.partial:
        return 0 if "max_tokens" in a.partial_reason else 75
    return 0
