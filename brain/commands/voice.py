"""`brain voice fetch`: the laptop's Whisper model onto disk while online (brain.voice.local);
and what the task commands and the REPL share to record a memo (`--record`, `/record`)."""

from __future__ import annotations

import sys
from typing import Any

import click

from brain import install
from brain.commands.common import CONTEXT, Group, app, global_options


@click.group(cls=Group, context_settings=CONTEXT, epilog=f"Docs: {install.doc('voice.md')}.")
def voice() -> None:
    """Voice memos: the Whisper model that transcribes them on this laptop.

    \b
    brain dump memo.m4a             a recording's transcript is the input
    brain dump --record             record from the microphone until Enter
    brain voice fetch               fetch the laptop's Whisper model while online
    """


@voice.command(context_settings=CONTEXT)
@click.argument("name", required=False, metavar="[MODEL]")
@click.option("--force", is_flag=True, help="Fetch it again even if it is there.")
@global_options("json", "config")
@click.pass_context
def fetch(ctx: click.Context, name: str | None, force: bool) -> int:
    """Fetch a Whisper model (default: [voice] local_model) for transcribing on this laptop.

    MODEL is a size name: tiny.en, base.en, small.en, base, small, … It goes into brain's data
    dir, where transcribing finds it with no network (the patio has none).
    """
    from brain.render import Output
    from brain.voice import local

    the_app = app(ctx)
    out = Output(json_mode=the_app.json)
    name = name or local.spec(the_app)
    if not force and not local.is_path(name):
        try:
            found = local.locate(the_app, name)
        except local.Missing:
            found = None
        if found is not None:
            out.notice(f"Whisper {name} is already on this laptop: {found}")
            return _done(out, name, found, fetched=False)
    out.notice(f"fetching Whisper {name} from Hugging Face…")
    path = local.fetch(
        the_app,
        name,
        force=force,
        progress=lambda size: out.progress(f"fetching Whisper {name}: {size / 1e6:.0f} MB"),
    )
    out.stop()
    out.notice(f"fetched Whisper {name}: {path}")
    if name != local.spec(the_app):
        out.notice(f"to use it: `brain config set voice.local_model {name}`")
    return _done(out, name, path, fetched=True)


def _done(out: Any, name: str, path: Any, *, fetched: bool) -> int:
    if out.json_mode:
        out.json({"model": name, "path": str(path), "fetched": fetched})
    return 0


def record_material(the_app: Any, out: Any) -> Any:
    """Record a memo at the terminal: the material that holds it (brain.material.Material)."""
    from brain import material, voice
    from brain.errors import UsageError
    from brain.voice import record

    record.microphone(record.sounddevice())  # first: what to install, or plug in
    if not _isatty(sys.stdin):
        raise UsageError(
            "--record needs a terminal: Enter on it stops the recording (stdin is not one).",
            "Record on a terminal, or give brain a recording: `brain dump memo.m4a`.",
        )
    made = record.capture(the_app, out, sys.stdin)
    return material.Material(made.path.name, "", voice.Audio.of(made.path.name, made.path))


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
