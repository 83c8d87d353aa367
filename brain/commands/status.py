"""`brain status`: what is reachable, which routes, which keys (brain.status does the checks)."""

from __future__ import annotations

import click

from brain.cli import global_options, opts


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@global_options
@click.pass_context
def status(ctx: click.Context) -> int:
    """Apex reachable and how fast, key accepted, routes, local model, keyring, config."""
    from brain import settings
    from brain.commands.ask import context
    from brain.render import Output
    from brain.status import gather

    o = opts(ctx)
    conf, tasks = context(ctx)
    report = gather(conf, tasks, settings.cache_dir(), o.model)
    out = Output(json_mode=o.json)
    if o.json:
        out.json(report.as_json())
    else:
        mark = {True: "ok", False: "NO", None: "–"}
        rows = [[c.name, mark[c.ok], c.detail, c.fix] for c in report.checks]
        out.table("brain status", ["check", "", "detail", "what to do"], rows)
        if report.apex_reachable:
            out.notice("questions go to Apex.")
        elif report.local_ready:
            out.notice("Apex is away: questions are answered on this laptop.")
        else:
            out.notice(
                "nothing can answer now; inputs are kept in `brain queue` until something can."
            )
    return 0 if (report.apex_reachable or report.local_ready) else 69
