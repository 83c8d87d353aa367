"""`brain routes`: the task table as brain will use it (built-in and user tasks)."""

from __future__ import annotations

import click

from brain.cli import global_options, opts


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@global_options
@click.pass_context
def routes(ctx: click.Context) -> int:
    """Which route on Apex each task asks, its long-input route, and its fallback."""
    from brain.commands.ask import context
    from brain.render import Output

    o = opts(ctx)
    conf, tasks = context(ctx)
    local = o.model or conf.local_model
    out = Output(json_mode=o.json)
    if o.json:
        out.json(
            {
                "tasks": [
                    {
                        "task": t.name,
                        "route": t.route,
                        "long_route": t.long_route,
                        "fallback": t.fallback,
                        "local_model": local if t.may_fall_back else None,
                        "source": "built-in" if t.builtin else "config",
                    }
                    for t in tasks.values()
                ]
            }
        )
        return 0
    rows = [
        [
            t.name,
            t.route,
            t.long_route or "—",
            f"local {local}" if t.may_fall_back else "none (Apex only)",
            "built-in" if t.builtin else "config",
        ]
        for t in tasks.values()
    ]
    out.table("tasks → routes", ["task", "route on Apex", "long input", "fallback", "from"], rows)
    return 0
