"""`brain keys set|list|delete`: keys in the OS keyring (service `brain`), never shown."""

from __future__ import annotations

import sys

import click

from brain.commands.common import Group, global_options, opts
from brain.commands.complete import key_names


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
def keys() -> None:
    """Keys in the OS keyring: apex (LiteLLM key), slack (webhook URL), anthropic.

    Environment variables win over the keyring: BRAIN_APEX_KEY, BRAIN_SLACK_WEBHOOK,
    BRAIN_ANTHROPIC_KEY.
    """


@keys.command("set")
@click.argument("name", shell_complete=key_names)
@click.option("--stdin", "from_stdin", is_flag=True, help="Read the key from stdin (for scripts).")
@global_options()
def set_(name: str, from_stdin: bool) -> int:
    """Store key NAME in the keyring (asked for with hidden input)."""
    from brain import secrets
    from brain.errors import UsageError
    from brain.render import Output

    secrets.check_name(name)
    secrets.require_keyring()  # before anyone types a key that could not be kept
    if from_stdin:
        value = sys.stdin.readline().strip()
    elif sys.stdin.isatty():
        if secrets.plaintext():
            Output().notice(f"the keyring here is {secrets.backend_name()}.")
        value = click.prompt(f"{name} key ({secrets.KEYS[name][1]})", hide_input=True, err=True)
    else:
        raise UsageError(
            "no terminal to ask the key on.", f"Pipe it in: `... | brain keys set {name} --stdin`."
        )
    secrets.set_key(name, value)
    env_var = secrets.KEYS[name][0]
    out = Output()
    out.notice(f"stored `{name}` in the keyring: {secrets.backend_name()}.")
    import os

    if os.environ.get(env_var):
        out.notice(f"note: {env_var} is set in this shell and wins over the keyring.")
    return 0


@keys.command("list")
@global_options("json")
@click.pass_context
def list_(ctx: click.Context) -> int:
    """Which keys are set and where each comes from (never the values)."""
    from brain import secrets
    from brain.render import Output

    out = Output(json_mode=opts(ctx).json)
    infos = secrets.listing()
    if out.json_mode:
        out.json(
            {
                "backend": secrets.backend_name(),
                "keys": [
                    {"name": k.name, "set": bool(k.source), "source": k.source or None}
                    for k in infos
                ],
            }
        )
        return 0
    rows = [[k.name, k.source or "not set", k.description] for k in infos]
    out.table(f"keys (keyring: {secrets.backend_name()})", ["name", "from", "what"], rows)
    return 0


@keys.command("delete")
@click.argument("name", shell_complete=key_names)
@global_options()
def delete(name: str) -> int:
    """Remove key NAME from the keyring."""
    from brain import secrets
    from brain.render import Output

    if secrets.delete(name):
        Output().notice(f"deleted `{name}` from the keyring.")
        return 0
    Output().notice(f"`{name}` was not in the keyring; nothing to delete.")
    return 0
