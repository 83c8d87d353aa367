"""`brain history`: past exchanges from the SQLite store, readable, searchable, or as JSON."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import click

from brain.commands.common import global_options, opts

if TYPE_CHECKING:
    from brain.store import Exchange

JSON_VERSION = 1


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("entry", required=False, type=int, metavar="[ID]")
@click.option(
    "-n", "count", default=10, show_default=True, type=click.IntRange(1, 100_000), help="How many."
)
@click.option("-q", "query", metavar="TEXT", help="Only those whose input or answer holds TEXT.")
@click.option("--task", metavar="NAME", help="Only this task's.")
@global_options("json")
@click.pass_context
def history(
    ctx: click.Context, entry: int | None, count: int, query: str | None, task: str | None
) -> int:
    """The last questions and answers, oldest first; `brain history ID` shows one in full.

    --json prints one object per line: the fields of an answer's --json object plus id, time,
    input and status (answered, partial, queued, failed).
    """
    from brain.errors import UsageError
    from brain.render import Output
    from brain.store import opened

    out = Output(json_mode=opts(ctx).json)
    with opened() as store:
        if entry is not None:
            found = store.get(entry)
            if found is None:
                raise UsageError(f"no exchange #{entry}.", "`brain history` lists the last ones.")
            rows = [found]
        else:
            rows = store.search(count, text=query, task=task)
    if out.json_mode:
        for r in rows:
            out.json(as_json(r), indent=None)
        return 0
    if not rows:
        _say_none(out, query, task)
        return 0
    if entry is not None:
        show_one(out, rows[0])
        return 0
    for r in rows:
        out.header(title(r))
        out.write(_quote(r.input, 3))
        _answer(out, r)
    return 0


def as_json(r: Exchange) -> dict[str, Any]:
    """An answer's --json fields, plus id, time (ISO 8601), input, status and error; for a
    spoken input, `audio` (the recordings) and `transcript`."""
    d = r.as_dict()
    return {
        "version": JSON_VERSION,
        "id": r.id,
        "time": iso_time(r.time),
        "status": d["status"],
        "task": r.task,
        "input": r.input,
        "answer": r.answer,
        "route": r.route,
        "backend": r.backend,
        "model": r.model,
        "fallbacks": r.fallbacks,
        "usage": d["usage"],
        "latency_ms": d["latency_ms"],
        "cost": r.cost,
        "partial": r.partial,
        "partial_reason": r.partial_reason,
        "error": r.error,
        **{k: d[k] for k in ("audio", "transcript") if k in d},  # a spoken input (brain.voice)
    }


def iso_time(t: float) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(t).astimezone().isoformat(timespec="seconds")


def title(r: Exchange) -> str:
    """The header line of one exchange: id, time, task, who answered (or why nobody did)."""
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.time))
    status = r.as_dict()["status"]
    if status in ("answered", "partial"):
        who = f"{r.backend or '?'} {r.model or ''}".strip()
        if status == "partial":
            who += " · partial"
    else:
        who = f"{status} (not answered)"
    if r.audio and r.audio.get("files"):  # brain.voice: the input was spoken
        names = ", ".join(str(f.get("name")) for f in r.audio["files"] if isinstance(f, dict))
        who += f" · spoken: {names}"
    return f"#{r.id} · {when} · {r.task} · {who}"


def show_one(out: Any, r: Exchange) -> None:
    """One exchange in full: how it was answered, the whole input, the whole answer."""
    from brain.render import money

    out.header(title(r))
    facts = [("route", r.route or "–")]
    if r.backend:
        facts.append(("answered by", f"{r.backend} {r.model or ''}".strip()))
    for fb in r.fallbacks:
        facts.append(("fell back", f"{fb.get('backend', '?')}: {fb.get('reason', '')}"))
    if r.prompt_tokens is not None or r.completion_tokens is not None:
        facts.append(("tokens in/out", f"{r.prompt_tokens or '?'}/{r.completion_tokens or '?'}"))
    if r.first_token_ms is not None:
        facts.append(("first token", f"{r.first_token_ms} ms, total {r.total_ms} ms"))
    if r.cost is not None:
        facts.append(("cost", money(r.cost)))
    if r.partial_reason:
        facts.append(("partial", r.partial_reason))
    if r.error:
        facts.append(("not answered", r.error))
    out.write("\n".join(f"{k}: {v}" for k, v in facts))
    out.write("\nInput:\n" + _quote(r.input, None))
    out.write("\nAnswer:")
    _answer(out, r)


def _answer(out: Any, r: Exchange) -> None:
    if r.answer:
        out.markdown(r.answer)
    elif r.status in ("queued", "sending"):
        out.write("(not answered yet: `brain queue run` sends it)")
    elif r.status == "failed":
        out.write("(never answered: it is too long for every model)")
    else:
        out.write("(no text)")
    out.write("")


def _quote(text: str, lines: int | None) -> str:
    """The input as a quote; the first `lines` lines only (None: all), saying what was left."""
    rows = text.strip().splitlines() or [""]
    shown = rows if lines is None else rows[:lines]
    from brain.render import cut

    quoted = [f"> {cut(line, 300) if lines is not None else line}" for line in shown]
    if len(rows) > len(shown):
        quoted.append(f"> … (+{len(rows) - len(shown)} lines; `brain history ID` shows all)")
    return "\n".join(quoted)


def _say_none(out: Any, query: str | None, task: str | None) -> None:
    if query or task:
        what = " and ".join(
            x
            for x in (f'holding "{query}"' if query else "", f"of task {task}" if task else "")
            if x
        )
        out.notice(f"no exchange {what}.")
    else:
        out.notice('no history yet. Ask something: brain dump "..."')
