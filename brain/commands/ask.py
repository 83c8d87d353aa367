"""The task commands (`brain dump|digest|draft|code|premium|ask` and user tasks): arguments and
stdin in (a recording among them, or `--record`: brain.voice), one brain.exchange.ask, the
answer out."""

from __future__ import annotations

import sys

import click

from brain.commands.common import CONTEXT, app, global_options, report
from brain.commands.complete import files


def task_command(name: str) -> click.Command:
    if name == "digest":  # the digest gathers its own material, and lands where it is read
        from brain.commands.digest import digest_command

        return digest_command()

    @click.command(name=name, context_settings=CONTEXT, help=_help(name))
    @click.argument("words", nargs=-1, metavar="[INSTRUCTION|FILE]...", shell_complete=files)
    @click.option(
        "--record",
        is_flag=True,
        help="Record from the microphone until Enter; the transcript is the input.",
    )
    @global_options
    @click.pass_context
    def command(ctx: click.Context, words: tuple[str, ...], record: bool) -> int:
        return run_task(ctx, name, words, record=record)

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
    "A recording (wav, mp3, m4a, ogg, opus, flac, webm) is transcribed, and its transcript is "
    "the material. The answer streams to stdout."
)


def run_task(ctx: click.Context, name: str, words: tuple[str, ...], record: bool = False) -> int:
    from brain import exchange, material
    from brain.render import Output

    the_app = app(ctx)
    task = the_app.task(name)
    out = Output(json_mode=the_app.json, verbose=the_app.verbose)
    if record:
        from brain.commands.voice import record_material

        instruction, given = material.split_args(words)
        given.append(record_material(the_app, out))
    else:
        piped = material.read_stdin(sys.stdin.buffer if sys.stdin else None, _isatty(sys.stdin))
        used = len(piped.encode("utf-8")) if piped else 0
        instruction, given = material.split_args(words, used)
        if piped is not None:
            given.insert(0, material.Material("stdin", piped))
    text, messages = material.compose(task, instruction, given)
    question = exchange.Question(task, text, messages, audio=material.recordings(given))
    try:
        result = exchange.ask(the_app, question, out)
    finally:
        out.stop()
    return report(out, result)


def _isatty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):
        return False
