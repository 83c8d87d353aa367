"""`brain routes`: the task table as brain will use it (built-in and user tasks)."""

from __future__ import annotations

import click

from brain.commands.common import CONTEXT, app, global_options


@click.command(context_settings=CONTEXT)
@global_options("json", "config", "model")
@click.pass_context
def routes(ctx: click.Context) -> int:
    """Which route on Apex each task asks, its long-input route, and its fallback."""
    from brain.render import Output

    the_app = app(ctx)
    local = the_app.local_model
    out = Output(json_mode=the_app.json)
    tasks = the_app.tasks.values()
    if the_app.json:
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
                    for t in tasks
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
        for t in tasks
    ]
    out.table("tasks → routes", ["task", "route on Apex", "long input", "fallback", "from"], rows)
    return 0
