"""`brain status`: what is reachable, which routes, which keys (brain.status does the checks)."""

from __future__ import annotations

import click

from brain.commands.common import CONTEXT, app, global_options


@click.command(context_settings=CONTEXT)
@global_options("offline", "online", "json", "config", "model")
@click.pass_context
def status(ctx: click.Context) -> int:
    """Apex reachable and how fast, key accepted, routes, local model, keyring, config.

    Exit status: 0 when a question would be answered as configured; 77 when Apex rejects the
    key (or needs one); 69 when nothing can answer.
    """
    from brain.render import Output
    from brain.status import gather

    the_app = app(ctx)
    report = gather(the_app)
    out = Output(json_mode=the_app.json)
    if the_app.json:
        out.json(report.as_json())
        return report.exit_code
    mark = {True: "ok", False: "NO", None: "–"}
    rows = [[c.name, mark[c.ok], c.detail, c.fix] for c in report.checks]
    out.table(
        "brain status",
        ["check", "", "detail", "what to do"],
        rows,
        styles={"ok": "bold green", "NO": "bold red"},
    )
    if report.key_ok is False:
        out.notice(
            "Apex answers but does not take the key: every question to it fails (77) until "
            "`brain keys set apex` stores the right one."
        )
    elif report.answering == "apex":
        out.notice("questions go to Apex.")
    elif report.answering == "local":
        if report.offline:
            why = "--offline (or BRAIN_OFFLINE)"
        elif not the_app.settings.apex_url:
            why = "Apex is not configured"
        else:
            why = "Apex is away"
        out.notice(f"{why}: questions are answered on this laptop.")
    else:
        out.notice("nothing can answer now; inputs are kept in `brain queue` until something can.")
    return report.exit_code
