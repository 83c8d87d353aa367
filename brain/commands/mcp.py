"""`brain mcp`: brain's tasks as tools for MCP clients (Claude Desktop, Claude Code, …)."""

from __future__ import annotations

import click

from brain import install
from brain.commands.common import global_options


@click.command(
    name="mcp",
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="\b\nRegister it with Claude Code:\n"
    "  claude mcp add brain -- brain mcp\n"
    f"\nClaude Desktop, Cursor and others: {install.doc('mcp.md')}",
)
@click.option(
    "--allow-premium",
    is_flag=True,
    help="Also offer the premium task(s) as tools (paid Claude; off by default).",
)
@global_options("offline", "online", "config", "model")
@click.pass_context
def mcp(ctx: click.Context, allow_premium: bool) -> int:
    """Serve brain's tasks as MCP tools over stdin/stdout (an MCP client starts this).

    One tool per task (dump, digest, draft, code, ask and your own) plus `status`. Answers
    go through the same Apex → local ladder and land in the same history. Stdout carries the
    protocol only; notices go to stderr.
    """
    from brain import mcp_server
    from brain.commands.common import app

    mcp_server.require_sdk()
    server = mcp_server.build(app(ctx), allow_premium=allow_premium)
    mcp_server.serve(server)
    return 0
