"""The REPL's slash commands: `/task`, `/offline|online|auto`, `/status`, `/history`,
`/retry`, `/record`, `/save`, `/clear`, `/help`, `/exit` (the table is
brain.conversation.SLASH_COMMANDS).

Each is a function of the session (brain.repl.Repl) and the rest of the typed line; "exit"
ends the session. They write to the terminal through `repl.say` (rich markup).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from brain import conversation as conv

if TYPE_CHECKING:
    from brain.repl import Repl


def task(repl: Repl, arg: str) -> None:
    name = arg.strip()
    if not name:
        for t in repl.tasks.values():
            mark = "→" if t.name == repl.task.name else " "
            repl.say(f"{mark} [bold]{t.name}[/]  [dim]{esc(t.description)}[/]")
        repl.say("[dim]/task NAME switches; /NAME TEXT asks one question with NAME.[/]")
        return
    if name not in repl.tasks:
        repl.say(
            f"[red]No task `{esc(name)}`.[/] Tasks: {', '.join(repl.tasks)} "
            "[dim](add your own as [tasks.NAME] in config.toml).[/]"
        )
        return
    repl.task = repl.tasks[name]
    extra = "" if repl.task.may_fall_back else " It answers only on Apex (no fallback)."
    repl.say(f"Task [bold]{name}[/] (route {repl.task.route}).{extra}")


def _mode(repl: Repl, mode: str) -> None:
    repl.app.mode = mode
    # What the local server really answers with (llama-server serves one model, its alias)
    model = repl.app.backend("local").model_for(repl.task.route, repl.app.local_model)
    what = {
        "offline": f"answers come from {model} on this laptop only.",
        "online": "answers come from Apex only; no fallback.",
        "auto": f"Apex first; {model} on this laptop when Apex is away.",
    }[mode]
    repl.say(f"Mode [bold]{mode}[/]: {what} [dim]The conversation goes on.[/]")
    repl.watch.resume()


def status(repl: Repl, _arg: str) -> None:
    backend, why = repl.next_backend()
    t = repl.task
    policy = "falls back to this laptop" if t.may_fall_back else "Apex only"
    budget = repl.budget(t, backend)
    sample = repl.conversation.context(t, "", budget)
    conf = repl.app.settings
    rows = [
        ("mode", repl.mode),
        ("task", f"{t.name} (route {repl.app.route or t.route}; {policy})"),
        ("next answer", f"{backend} ({why})"),
        ("model", repl.model_text(backend)),
        ("Apex", conf.apex_url or "not configured (apex.url)"),
        ("local", f"{repl.app.local_model} at {conf.local_url}"),
        (
            "conversation",
            f"{len(repl.conversation)} turns, ~{sample.tokens} of {budget} tokens sent"
            + (f" ({sample.dropped} oldest left out)" if sample.dropped else ""),
        ),
        ("history", f"{repl.app.data_dir / 'brain.db'} (`brain history`)"),
    ]
    for key, value in rows:
        repl.say(f"[bold]{key:<13}[/]{esc(value)}")


def history(repl: Repl, _arg: str) -> None:
    if not repl.conversation.turns:
        repl.say("[dim]No turns yet in this conversation. `brain history` shows earlier ones.[/]")
        return
    for i, turn in enumerate(repl.conversation.turns, 1):
        who = " ".join(p for p in (turn.backend, turn.model) if p)
        tokens = f", {turn.completion_tokens} tokens" if turn.completion_tokens else ""
        mark = " [yellow](partial)[/]" if turn.partial else ""
        repl.say(f"[bold]{i}.[/] [{turn.task}] {esc(first_line(turn.user))}")
        repl.say(f"   → {esc(first_line(turn.answer))}{mark} [dim]({who}{tokens})[/]")


def retry(repl: Repl, _arg: str) -> None:
    if repl.failed is not None:
        t, text, row = repl.failed
        repl.ask(t, text, replaces=row)
        return
    turn = repl.conversation.pop()
    if turn is None:
        repl.say("[dim]Nothing to retry yet.[/]")
        return
    repl.ask(repl.tasks.get(turn.task, repl.task), turn.user)


def record(repl: Repl, arg: str) -> None:
    """A turn spoken into the microphone: recorded until Enter (kept in the data dir), then
    asked like a recording named in the line (brain.voice); `arg` is an instruction."""
    import shlex
    import sys

    from brain.errors import BrainError
    from brain.render import Output
    from brain.voice import record as recorder

    out = Output(verbose=repl.app.verbose)
    try:
        made = recorder.capture(repl.app, out, sys.stdin)
    except BrainError as exc:
        out.error(exc)
        return
    line = f"{arg.strip()} {shlex.quote(str(made.path))}".strip()
    repl.ask(repl.task, line)


def save(repl: Repl, arg: str) -> None:
    force = False
    words = arg.split(maxsplit=1)
    if words and words[0] in ("-f", "--force"):
        force, arg = True, (words[1] if len(words) > 1 else "")
    if not repl.conversation.turns:
        repl.say("[dim]Nothing to save yet.[/]")
        return
    name = arg.strip() or time.strftime("brain-%Y%m%d-%H%M.md")
    from brain.files import expand

    path = expand(name)
    if path.exists() and not force:
        repl.say(f"[red]{esc(str(path))} exists.[/] `/save -f {esc(name)}` replaces it.")
        return
    try:
        path.write_text(repl.conversation.to_markdown(), encoding="utf-8")
    except OSError as exc:
        repl.say(f"[red]Cannot write {esc(str(path))}: {esc(exc.strerror or str(exc))}.[/]")
        return
    n = len(repl.conversation)
    repl.say(f"Saved {n} turn{'s' if n != 1 else ''} to {esc(str(path))}.")


def clear(repl: Repl, _arg: str) -> None:
    repl.conversation.clear()
    repl.dropped_said = 0
    repl.failed = None
    repl.say("New conversation. [dim]Earlier turns stay in `brain history`.[/]")


def help_(repl: Repl, _arg: str) -> None:
    repl.say("[bold]Type a question and press Enter.[/] Alt-Enter (or Esc Enter) adds a line.")
    repl.say("[bold]Tasks[/] [dim](/NAME TEXT asks once with NAME; /NAME alone switches)[/]")
    for t in repl.tasks.values():
        repl.say(f"  /{t.name:<12}[dim]{esc(t.description)}[/]")
    repl.say("[bold]Commands[/]")
    for name, (arg, what) in conv.SLASH_COMMANDS.items():
        repl.say(f"  /{(name + ' ' + arg).strip():<12}[dim]{esc(what)}[/]")
    repl.say(
        "[dim]Up/Down and Ctrl-R search earlier input; Tab completes commands and files; "
        "Ctrl-C stops an answer (what came is kept) or clears the line; Ctrl-D leaves. "
        "Start a line with // to send text that begins with /.[/]"
    )


def unknown(repl: Repl, name: str) -> None:
    repl.say(
        f"[red]No command /{esc(name)}.[/] /help lists them. "
        "[dim]To send text that begins with /, start it with //.[/]"
    )


COMMANDS: dict[str, Callable[[Repl, str], str | None]] = {
    "task": task,
    "offline": lambda repl, _a: _mode(repl, "offline"),
    "online": lambda repl, _a: _mode(repl, "online"),
    "auto": lambda repl, _a: _mode(repl, "auto"),
    "status": status,
    "history": history,
    "retry": retry,
    "record": record,
    "save": save,
    "clear": clear,
    "help": help_,
    "exit": lambda _repl, _a: "exit",
}
assert set(COMMANDS) == set(conv.SLASH_COMMANDS), "every slash command has a function"


def esc(text: str) -> str:
    """Text for rich markup, shown as typed."""
    return text.replace("[", "\\[")


def first_line(text: str, width: int = 70) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"
