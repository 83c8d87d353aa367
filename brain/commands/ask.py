"""The task commands (`brain dump|digest|draft|code|premium|ask` and user tasks): arguments and
stdin in (a recording among them, or `--record`: brain.voice), one brain.exchange.ask, the
answer out."""

from __future__ import annotations

import sys

import click

from brain.commands.common import CONTEXT, app, global_options, report, require_stdout
from brain.commands.complete import files
from brain.errors import BrainError


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
    from brain.files import utf8_size
    from brain.render import Output

    the_app = app(ctx)
    task = the_app.task(name)
    require_stdout()
    out = Output(json_mode=the_app.json, verbose=the_app.verbose)
    if record:
        from brain.commands.voice import record_material

        instruction, given = material.split_args(words)
        given.append(record_material(the_app, out))
    else:
        piped = material.read_stdin(sys.stdin.buffer if sys.stdin else None, _isatty(sys.stdin))
        if piped is None and name != "digest" and _empty_pipe(sys.stdin):
            _refuse_empty_pipe(name, words)
        used = utf8_size(piped) if piped else 0
        instruction, given = material.split_args(words, used)
        if piped is not None:
            given.insert(0, material.Material("stdin", piped))
        del piped  # 4 MiB of input is held once (in `text` below), not three times
    text, messages = material.compose(task, instruction, given)
    question = exchange.Question(task, text, messages, audio=material.recordings(given))
    del given
    try:
        result = exchange.ask(the_app, question, out)
    except BrainError as exc:
        _say_kept(the_app, exc)
        raise
    finally:
        out.stop()
    return report(out, result)


def _say_kept(the_app: object, exc: BrainError) -> None:
    """An input refused for a reason the user must fix (a route Apex lacks, a rejected key)
    is kept in the queue: the error says so, and how to send or forget it."""
    from brain.errors import StorageError

    row = getattr(exc, "row", None)
    if row is None or "queue" in f"{exc.message} {exc.fix or ''}":
        return
    try:
        found = the_app.store().get(row)  # type: ignore[attr-defined]
    except StorageError:
        return  # the error itself says what could not be kept
    if found is None or found.status != "queued":
        return
    kept = (
        f"Your input is kept in the queue (#{row}): `brain queue run` sends it once this is "
        f"fixed; `brain queue drop {row}` forgets it."
    )
    exc.fix = f"{exc.fix}\n{kept}" if exc.fix else kept


def _empty_pipe(stream: object) -> bool:
    """stdin is a pipe or a file, and it was empty (`git diff | brain code …` with no changes).
    (/dev/null is neither; `brain digest` decides for itself what no material means.)"""
    import os
    import stat

    try:
        mode = os.fstat(stream.fileno()).st_mode  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISREG(mode)


def _refuse_empty_pipe(name: str, words: tuple[str, ...]) -> None:
    """At a terminal an empty pipe is a mistake to say (exit 2, nothing sent); in a script or
    under cron (no terminal; cron's stdin is an empty pipe) the words go alone, said once."""
    from brain.errors import UsageError
    from brain.render import Output

    if _isatty(sys.stderr):
        raise UsageError(
            "nothing came through the pipe: stdin is empty (the command before | printed "
            "nothing, e.g. `git diff` with no changes, or the file after < is empty). "
            "Nothing was sent.",
            f"Check that command's output; to ask without material, drop the pipe: "
            f'`brain {name} "..."`.',
        )
    if words:
        Output().notice("stdin was empty; the instruction is sent alone.")


def _isatty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):
        return False
