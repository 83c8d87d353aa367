"""`brain claude`: start Claude Code, with --local pointed at a route on Apex."""

from __future__ import annotations

import click

from brain import install
from brain.commands.common import global_options, opts


@click.command(
    name="claude",
    context_settings={
        "help_option_names": ["-h", "--help"],
        # Claude Code's own options pass through: `brain claude --local -p "say hi"`.
        "ignore_unknown_options": True,
        "allow_interspersed_args": False,
    },
    epilog="\b\nExamples:\n"
    "  brain claude --local               Claude Code, answered by the code route\n"
    '  brain claude --local -p "say hi"   one question, printed\n'
    "  brain claude --local --route draft -- --continue\n"
    "  brain claude                       plain Claude Code (your Anthropic account)\n"
    f"\nDocs: {install.doc('claude.md')}",
)
@click.option(
    "--local",
    is_flag=True,
    help="Send Claude Code to Apex: the `code` route (or --route NAME) answers every request.",
)
@click.argument("claude_args", nargs=-1, type=click.UNPROCESSED, metavar="[-- CLAUDE_ARGS]...")
@global_options("offline", "config", "route")
@click.pass_context
def claude(ctx: click.Context, local: bool, claude_args: tuple[str, ...]) -> int:
    """Start Claude Code; with --local, a model on Apex answers it instead of Anthropic.

    Arguments after `--` (or after the first one brain does not know) go to `claude`
    unchanged; the exit code is Claude Code's.
    """
    import os

    from brain import claude_code
    from brain.commands.common import app
    from brain.errors import UsageError
    from brain.render import Output

    o = opts(ctx)
    if local and o.offline:
        raise UsageError(
            "--offline keeps brain on this laptop, but Claude Code --local talks to Apex.",
            "Run `brain claude --local` without --offline, or `ollama launch claude` for "
            "Ollama on this laptop.",
        )
    if local:
        handoff = claude_code.prepare_local(
            app(ctx), route=o.route, args=list(claude_args), base_env=os.environ
        )
    elif o.route:
        raise UsageError(
            "--route only means something with --local (Claude Code on Apex).",
            f"brain claude --local --route {o.route}",
        )
    else:
        # Not even config.toml is read: a mistake there must not keep Claude Code from starting.
        handoff = claude_code.prepare_plain(list(claude_args), os.environ)
    out = Output(verbose=o.verbose)
    for note in handoff.notes:
        out.notice(note)
    if handoff.route:
        out.notice(
            f"Claude Code → Apex {handoff.apex_url}, route `{handoff.route}` for every model it "
            "asks for. Plain `claude` goes back to Anthropic."
        )
    return claude_code.run(handoff)
