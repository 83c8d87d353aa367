"""`brain queue list|run|drop`: inputs nothing could answer yet, kept so nothing is lost."""

from __future__ import annotations

import time

import click

from brain.cli import global_options, opts


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def queue() -> None:
    """Inputs nothing could answer yet (Apex and the local model were both away)."""


@queue.command("list")
@global_options
@click.pass_context
def list_(ctx: click.Context) -> int:
    """Show queued inputs."""
    from brain.render import Output
    from brain.store import opened

    out = Output(json_mode=opts(ctx).json)
    with opened() as store:
        rows = store.queued()
    if out.json_mode:
        out.json({"queued": [r.as_dict() for r in rows]})
        return 0
    if not rows:
        out.notice("the queue is empty: every input has been answered.")
        return 0
    table = []
    for r in rows:
        first = r.input.strip().splitlines()[0] if r.input.strip() else ""
        when = time.strftime("%m-%d %H:%M", time.localtime(r.time))
        table.append([str(r.id), when, r.task, first[:60], (r.error or "")[:80]])
    out.table("queued inputs", ["id", "when", "task", "input", "why not answered"], table)
    out.notice("`brain queue run` sends them; `brain queue drop ID` forgets one.")
    return 0


@queue.command("run")
@click.argument("ids", nargs=-1, type=int)
@global_options
@click.pass_context
def run(ctx: click.Context, ids: tuple[int, ...]) -> int:
    """Send queued inputs (all, or the IDS given); answers land in the history."""
    from brain import exchange
    from brain.commands.ask import context, mode_of, report
    from brain.errors import BrainError, Interrupted, PipeClosed
    from brain.render import Output
    from brain.store import opened

    o = opts(ctx)
    conf, tasks = context(ctx)
    mode = mode_of(ctx, conf)
    out = Output(json_mode=o.json, verbose=o.verbose)
    results = []
    pending_notice = False
    failed = 0
    last_error: BrainError | None = None
    with opened() as store:
        rows = [r for r in store.queued() if not ids or r.id in ids]
        if not rows:
            out.notice("nothing queued" + (" with those ids." if ids else "."))
            return 0
        for r in rows:
            task = tasks.get(r.task)
            if task is None:
                out.notice(f"#{r.id}: task `{r.task}` no longer exists; left in the queue.")
                failed += 1
                continue
            if not o.json:
                out.notice(f"#{r.id} ({r.task}): {r.input.strip()[:60]}")
            try:
                result = exchange.ask(
                    conf,
                    store,
                    task,
                    r.messages,
                    r.input,
                    mode=mode,
                    route=o.route,
                    model=o.model,
                    on_delta=out.delta,
                    notice=out.notice,
                    row=r.id,
                )
            except (Interrupted, PipeClosed):
                raise  # Ctrl-C stops the whole run; what arrived is kept by exchange.ask
            except BrainError as exc:
                out.stop()
                out.error(exc)
                failed += 1
                last_error = exc
                continue
            finally:
                out.stop()
            results.append(result.as_json())
            pending_notice = pending_notice or result.notify_pending
            if not o.json:
                report(out, result)  # partial, Apex-side fallback, premium cost: as one-shot
    if pending_notice:
        from brain import notify

        notify.spawn_sender()
    if o.json:
        out.json({"answered": results, "still_queued": failed})
    if failed:
        with opened() as store:
            left = len(store.queued())
        out.notice(f"{left} input(s) still queued (`brain queue list`).")
        return last_error.exit_code if last_error else 69
    return 0


@queue.command("drop")
@click.argument("ids", nargs=-1, type=int, required=True)
@global_options
def drop(ids: tuple[int, ...]) -> int:
    """Forget queued inputs by ID (see `brain queue list`)."""
    from brain.errors import UsageError
    from brain.render import Output
    from brain.store import opened

    out = Output()
    missing = []
    with opened() as store:
        for row in ids:
            if store.drop(row):
                out.notice(f"dropped #{row}.")
            else:
                missing.append(str(row))
    if missing:
        raise UsageError(f"no queued input with id {', '.join(missing)}", "See `brain queue list`.")
    return 0
