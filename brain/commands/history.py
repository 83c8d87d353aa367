"""`brain history`: past exchanges from the SQLite store."""

from __future__ import annotations

import time

import click

from brain.commands.common import global_options, opts


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-n", "count", default=10, show_default=True, type=click.IntRange(1, 10_000), help="How many."
)
@global_options
@click.pass_context
def history(ctx: click.Context, count: int) -> int:
    """The last questions and answers, oldest first."""
    from brain.render import Output
    from brain.store import opened

    out = Output(json_mode=opts(ctx).json)
    with opened() as store:
        rows = store.history(count)
    if out.json_mode:
        out.json({"exchanges": [r.as_dict() for r in rows]})
        return 0
    if not rows:
        out.notice('no history yet. Ask something: brain dump "..."')
        return 0
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.time))
        who = f"{r.backend} {r.model or ''}".strip()
        flag = " [partial]" if r.partial else ""
        if r.audio and r.audio.get("files"):
            names = ", ".join(str(f.get("name")) for f in r.audio["files"] if isinstance(f, dict))
            flag += f" [spoken: {names}]"
        out.write(f"#{r.id} {when}  {r.task} → {who}{flag}")
        first = r.input.strip().splitlines()[0] if r.input.strip() else ""
        out.write(f"> {first[:200]}")
        out.write((r.answer or "").rstrip() + "\n")
    return 0
