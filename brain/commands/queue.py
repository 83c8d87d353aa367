"""`brain queue list|run|drop`: inputs nothing could answer yet, kept so nothing is lost."""

from __future__ import annotations

import time
from typing import Any

import click

from brain.commands.common import Group, global_options, opts


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
def queue() -> None:
    """Inputs nothing could answer yet (Apex and the local model were both away)."""


@queue.command("list")
@global_options("json")
@click.pass_context
def list_(ctx: click.Context) -> int:
    """Show queued inputs."""
    from brain.client import one_line
    from brain.commands.common import app
    from brain.render import Output

    out = Output(json_mode=opts(ctx).json)
    rows = app(ctx).store().queued()
    if out.json_mode:
        out.json({"queued": [r.as_dict() for r in rows]})
        return 0
    if not rows:
        out.notice("the queue is empty.")
        return 0
    from brain.render import cut

    table = []
    for r in rows:
        first, why = _first_line(r), r.error or ""
        if out.stdout_tty:  # piped, every line whole (tab-separated, for other programs)
            # Cut at a word (a cut mid-word, "Connection er", reads as a different error).
            first, why = cut(first, 60), one_line(why, 300)
        when = time.strftime("%m-%d %H:%M", time.localtime(r.time))
        table.append([str(r.id), when, r.task, first.replace("\t", " "), why.replace("\t", " ")])
    out.table("queued inputs", ["id", "when", "task", "input", "why not answered"], table)
    out.notice("`brain queue run` sends them; `brain queue drop ID` forgets one.")
    return 0


# A row id is an SQLite integer: a larger number names no row (and must not crash the lookup).
ROW_ID = click.IntRange(1, (1 << 63) - 1)


def _first_line(r: Any) -> str:
    """An input's first line, and the recordings it holds (brain.voice) by name."""
    from brain.voice import Recordings

    recordings = Recordings.from_row(r.audio)
    text = r.input
    if recordings is not None:
        for audio in recordings.pending(text):
            text = text.replace(audio.slot, "")
    first = text.strip().splitlines()[0] if text.strip() else ""
    if recordings is not None:
        names = ", ".join(a.name for a in recordings.pending(r.input))
        first = f"{first} [recording {names}]".strip() if names else first
    return first


@queue.command("run")
@click.argument("ids", nargs=-1, type=ROW_ID)
@global_options
@click.pass_context
def run(ctx: click.Context, ids: tuple[int, ...]) -> int:
    """Send queued inputs (all, or the IDS given); answers land in the history."""
    from brain.commands.common import app, require_stdout
    from brain.render import Output

    the_app = app(ctx)
    out = Output(json_mode=the_app.json, verbose=the_app.verbose)
    require_stdout()
    rows = [r for r in the_app.store().queued() if not ids or r.id in ids]
    if not rows:
        out.notice("nothing queued" + (" with those ids." if ids else "."))
        return 0
    sent = _Run(the_app, out)
    for r in rows:
        sent.one(r)
    if the_app.json:
        out.json({"answered": sent.results, "still_queued": sent.failed})
    return sent.finish()


class _Run:
    """One `queue run`: each queued input through brain.exchange.ask, as a one-shot would."""

    def __init__(self, the_app: Any, out: Any) -> None:
        self.app, self.out = the_app, out
        self.results: list[dict[str, Any]] = []
        self.failed = 0
        self.code = 0

    def one(self, r: Any) -> None:
        from brain import exchange
        from brain.commands.common import report
        from brain.errors import BrainError

        task = self.app.tasks.get(r.task)
        if task is None:
            self.out.notice(f"#{r.id}: task `{r.task}` no longer exists; left in the queue.")
            self.failed += 1
            return
        if not self.app.json:  # on stdout, above its answer, terminal or piped
            from brain.render import cut

            self.out.header(f"#{r.id} · {r.task} · {cut(_first_line(r), 60)}")
        question = exchange.Question(task, r.input, r.messages, row=r.id)
        try:
            result = exchange.ask(self.app, question, self.out)
        except exchange.AlreadySending as exc:
            self.out.stop()
            self.out.notice(exc.message)
            return
        except BrainError as exc:
            from brain.errors import Interrupted, OutputError, PipeClosed, StorageError

            self.out.stop()
            # Ctrl-C, a signal, a stdout or a disk that cannot be written stop the whole run
            # (what arrived is kept by exchange.ask): the next inputs would only fail the same
            # way, some after being sent.
            if isinstance(exc, (Interrupted, PipeClosed, OutputError, StorageError)):
                raise
            self.out.error(exc)
            self.failed += 1
            self.code = self.code or exc.exit_code
            return
        self.out.stop()
        self.results.append(result.as_json())
        code = report(self.out, result) if not self.app.json else result.exit_code
        self.code = self.code or code

    def finish(self) -> int:
        if self.failed:
            left = len(self.app.store().queued())
            self.out.notice(f"{left} input(s) still queued (`brain queue list`).")
        return self.code


@queue.command("drop")
@click.argument("ids", nargs=-1, type=ROW_ID, required=True)
@global_options()
def drop(ids: tuple[int, ...]) -> int:
    """Forget queued inputs by ID (see `brain queue list`)."""
    from brain import voice
    from brain.errors import UsageError
    from brain.render import Output
    from brain.store import opened

    out = Output()
    missing = []
    with opened() as store:
        dropped = []
        for row in ids:
            kept = store.get(row)
            if store.drop(row):
                gone = voice.forget(kept.audio if kept else None)
                dropped.append(f"#{row}" + (f" and its recording ({gone})" if gone else ""))
            else:
                missing.append(str(row))
        left = len(store.queued())
    if dropped:
        rest = f"{left} still queued." if left else "the queue is now empty."
        out.notice(f"dropped {', '.join(dropped)} (not sent, gone for good); {rest}")
    if missing:
        raise UsageError(f"no queued input with id {', '.join(missing)}", "See `brain queue list`.")
    return 0
