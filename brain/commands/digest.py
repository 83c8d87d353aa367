"""`brain digest`: the digest task, plus gathering its own material from `[[digest.sources]]`,
digesting any length in parts, and landing where it is read (`--out`, `--post`), and
`--schedule` for every morning without typing (docs/digest.md).

Thin: arguments in; brain.digest.sources gathers, brain.digest.parts answers,
brain.digest.schedule writes the scheduler entry; the result out.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from brain import install
from brain.commands.common import CONTEXT, SafePath, app, global_options, opts, report
from brain.commands.complete import files

if TYPE_CHECKING:
    from brain.app import App
    from brain.digest.parts import Done
    from brain.digest.sources import Gathered
    from brain.render import Output


def _source_names(ctx: click.Context, _param: Any, incomplete: str) -> list[Any]:
    from click.shell_completion import CompletionItem

    try:
        from brain import settings

        sources = settings.load(opts(ctx).config).digest_sources
    except Exception:  # a broken config.toml is reported when a command runs, not on Tab
        return []
    return [
        CompletionItem(
            s["name"], help=next(f"{k} {s[k]}" for k in ("glob", "command", "url") if k in s)
        )
        for s in sources
        if s["name"].startswith(incomplete)
    ]


HELP = """{description}

Route on Apex: {route}; the laptop's local model answers when Apex is away.

Words are the instruction; arguments that name files, and piped stdin, are the material. With
no material, brain gathers it from the [[digest.sources]] in config.toml: files changed, a
command's output, a URL's text, since the last digest (the first looks back 24 h). Material
longer than the model's context is digested in parts. The answer streams to stdout.

\b
Examples:
  brain digest                               gather every source, since the last digest
  brain digest --since 7d --source tp3       one source, the last week
  brain digest --post --out ~/digest.md      also to Slack and a file
  brain digest --post --schedule 07:30       every morning at 07:30 (cron/systemd/launchd/Windows)
  cat notes/*.md | brain digest "what needs me today?"
"""


def digest_command() -> click.Command:
    from brain.tasks import builtin_tasks

    task = builtin_tasks()["digest"]

    @click.command(
        name="digest",
        context_settings=CONTEXT,
        help=HELP.format(description=task.description, route=task.route),
    )
    @click.argument("words", nargs=-1, metavar="[INSTRUCTION|FILE]...", shell_complete=files)
    @click.option(
        "--since",
        metavar="WHEN",
        help="Gather what changed since WHEN: 24h, 7d, YYYY-MM-DD[THH:MM] (default: since the "
        "last digest).",
    )
    @click.option(
        "--source",
        "source_names",
        multiple=True,
        metavar="NAME",
        shell_complete=_source_names,
        help="Gather only this source (repeat, or NAME,NAME).",
    )
    @click.option(
        "--out",
        type=SafePath(dir_okay=False),
        metavar="FILE",
        help="Also write the digest to FILE (replaced).",
    )
    @click.option("--post", is_flag=True, help="Also send the digest to Slack (the slack key).")
    @click.option(
        "--schedule",
        metavar="HH:MM|off",
        help="Do not digest now: write the scheduler entry that runs this digest (with its "
        "other flags) every day at HH:MM; `off` removes it.",
    )
    @click.option(
        "--scheduler",
        type=click.Choice(["auto", "systemd", "cron", "launchd", "windows"]),
        default="auto",
        show_default=True,
        help="Which scheduler --schedule writes for.",
    )
    @global_options
    @click.pass_context
    def command(ctx: click.Context, **kw: Any) -> int:
        return run_digest(ctx, **kw)

    return command


def run_digest(
    ctx: click.Context,
    words: tuple[str, ...],
    since: str | None,
    source_names: tuple[str, ...],
    out: str | None,
    post: bool,
    schedule: str | None,
    scheduler: str,
) -> int:
    from brain import material
    from brain.digest import sources as src
    from brain.errors import UsageError
    from brain.render import Output

    the_app = app(ctx)
    names = [n.strip() for part in source_names for n in part.split(",") if n.strip()]
    configured = src.configured(the_app)
    chosen = src.select(configured, names)
    now = time.time()
    override = (src.parse_since(since, now), f"--since {since}") if since else None
    if schedule is not None:
        return _schedule(ctx, the_app, schedule, scheduler, words, since, names, out, post)
    out_path = _out_path(out)
    if post:
        _need_webhook()
    piped = material.read_stdin(sys.stdin.buffer if sys.stdin else None, _isatty(sys.stdin))
    used = len(piped.encode("utf-8")) if piped else 0
    instruction, given = material.split_args(words, used)
    if piped is not None:
        given.insert(0, material.Material("stdin", piped))
    given = [m for m in given if m.text.strip() or m.audio is not None]
    gather = bool(names or since or (not given and configured))
    if gather and not configured:
        raise UsageError(
            "--since and --source gather from [[digest.sources]], and config.toml has none.",
            f"Add sources to config.toml ({install.doc('digest.md')}), or pipe the material in.",
        )
    if not gather and not given and not instruction:
        raise UsageError(
            "nothing to digest: pipe text in, name files, or add [[digest.sources]] to "
            "config.toml so that `brain digest` gathers its own material "
            f"({install.doc('digest.md')}).",
            "For example: cat notes/*.md | brain digest",
        )
    output = Output(json_mode=the_app.json, verbose=the_app.verbose)
    given, heard = _transcribed(the_app, given, output)
    units = _units(given, alone=not gather)
    gathered: list[Gathered] = []
    intro = ""
    if gather:
        gathered, intro = _gather(the_app, output, chosen, override, now)
        units += [u for g in gathered for u in g.units]
    if gather and not units:
        return _nothing_new(output, the_app, gathered)
    done = _digest(the_app, output, instruction, units, intro, gathered)
    done.transcript = heard
    return _land(output, the_app, done, gathered, out_path, post)


def _transcribed(the_app: App, given: list[Any], output: Any) -> tuple[list[Any], Any]:
    """Recordings among the material, turned into their transcripts (labelled as the other
    tasks label them), before the material is cut into parts; and what was heard in all."""
    from brain import voice
    from brain.material import Material

    heard = []
    texts = []
    for m in given:
        if m.audio is None:
            texts.append(m)
            continue
        transcript = voice.transcribe(the_app, m.audio, output)
        heard.append(transcript)
        texts.append(Material(f"{m.name} (transcript)", transcript.text.strip()))
    return texts, (voice.merged(heard) if heard else None)


def _gather(
    the_app: App, output: Any, chosen: list[Any], override: Any, now: float
) -> tuple[list[Gathered], str]:
    """Every chosen source read (what was found said on stderr), and the line that tells the
    model where the material came from."""
    from brain.digest import sources as src

    output.waiting(f"gathering from {len(chosen)} source{'s' if len(chosen) != 1 else ''}…")
    gathered = src.gather(the_app, chosen, override, now)
    _tell_gathered(output, gathered)
    found = [f"{g.source.name} (new since {src.when(g.since)})" for g in gathered if g.units]
    intro = f"Material gathered for the digest: {'; '.join(found)}." if found else ""
    return gathered, intro


def _digest(
    the_app: App,
    output: Any,
    instruction: str,
    units: list[Any],
    intro: str,
    gathered: list[Gathered],
) -> Any:
    """The digest, in parts when it must be; a failure says the sources' marks did not move."""
    from brain.digest import parts
    from brain.errors import BrainError

    try:
        done = parts.answer(the_app, the_app.task("digest"), instruction, units, output, intro)
        if done.line and not output.json_mode:
            output.delta(f"\n\n{done.line}\n")
    except BrainError as exc:
        if gathered and exc.exit_code:
            again = (
                'The sources\' "last digest" marks did not move: the next `brain digest` '
                "gathers this material again."
            )
            exc.fix = f"{exc.fix}\n{again}" if exc.fix else again
        raise
    finally:
        output.stop()
    return done


def _units(given: list[Any], *, alone: bool) -> list[Any]:
    from brain.digest.sources import Unit

    # A lone stdin is the material as it came (no label), as `brain digest` always sent it.
    if alone and len(given) == 1 and given[0].name == "stdin":
        return [Unit("stdin", "", given[0].text)]
    return [Unit(m.name, m.name, m.text) for m in given]


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _tell_gathered(output: Output, gathered: list[Gathered]) -> None:
    """What was gathered, before the answer: sources, files, bytes; failures named."""
    from brain.digest.sources import size

    total = sum(g.size for g in gathered)
    files_read = sum(g.files for g in gathered)
    with_material = [g for g in gathered if g.units]
    windows = {g.window for g in gathered if not g.failed}
    one_window = len(windows) == 1
    count = f"{len(gathered)} source{'s' if len(gathered) != 1 else ''}"
    since = f" {next(iter(windows))}" if one_window else ""
    if with_material:
        files = f" ({files_read} file{'s' if files_read != 1 else ''})" if files_read else ""
        head = f"gathered {size(total)}{files} from {len(with_material)} of {count}, new{since}:"
    else:
        head = f"nothing new in {count}{since}:"
    output.notice(head)
    for got in gathered:
        line = "  " + got.summary(with_since=not one_window)
        if got.failed:
            line += "; the others go on, and the next digest reads it from the same time"
        output.notice(line)
        for warning in got.warnings:
            output.notice(f"    {warning}")


def _nothing_new(output: Output, the_app: App, gathered: list[Gathered]) -> int:
    from brain.digest import sources as src
    from brain.errors import TemporaryFailure

    output.stop()
    if all(g.failed for g in gathered):
        raise TemporaryFailure(
            "every source failed: nothing was gathered, and no model was asked.",
            "Fix the sources named above (`brain digest --source NAME` tries one); the next "
            "digest reads them from the same time again.",
        )
    src.commit(the_app.store(), gathered)
    output.notice("nothing new to digest: no model was asked.")
    if output.json_mode:
        output.json({"version": 1, "task": "digest", "answer": None, "digest": _info(gathered)})
    return 0


def _info(gathered: list[Gathered], done: Done | None = None) -> dict[str, Any]:
    from datetime import datetime

    info: dict[str, Any] = {}
    if done is not None:
        info["parts"] = done.parts
        info["rounds"] = done.rounds
    if not gathered:
        return info
    info |= {
        "sources": [
            {
                "name": g.source.name,
                "kind": g.source.kind,
                "since": datetime.fromtimestamp(g.since).astimezone().isoformat(),
                "files": g.files,
                "bytes": g.size,
                "new": bool(g.units),
                "error": g.error or None,
            }
            for g in gathered
        ]
    }
    return info


class _Report:
    """The final request's Result as `report` shows it, with what the digest adds."""

    def __init__(self, done: Done, text: str, info: dict[str, Any]) -> None:
        self.done, self.text, self.info = done, text, info
        self.answer = done.result.answer
        self.outcome = done.result.outcome
        self.notify_pending = done.notify_pending
        self.exit_code = done.exit_code

    def notes(self) -> list[str]:
        lines = self.done.result.notes()
        lines += [f"cut short, the notes on {p}" for p in self.done.incomplete]
        return lines

    def as_json(self) -> dict[str, Any]:
        heard = self.done.transcript
        extra = {"transcript": heard.as_json()} if heard is not None else {}
        return {**self.done.result.as_json(), "answer": self.text, "digest": self.info, **extra}


def _land(
    output: Output,
    the_app: App,
    done: Done,
    gathered: list[Gathered],
    out_path: Path | None,
    post: bool,
) -> int:
    """--out, --post, the report, and moving the sources' marks once the digest is made."""
    from brain.digest import sources as src

    answer = done.result.answer
    text = answer.text.rstrip() + (f"\n\n{done.line}" if done.line else "") + "\n"
    complete = done.exit_code == 0
    as_json = answer.text + (f"\n\n{done.line}" if done.line else "")
    code = report(output, _Report(done, as_json, _info(gathered, done)))
    if not complete:
        held = [
            *(["not written to the file"] if out_path else []),
            *(["not posted"] if post else []),
            *(["the next digest gathers the same material again"] if gathered else []),
        ]
        if held:
            output.notice(f"the digest is incomplete: {'; '.join(held)}.")
        return code
    if gathered:
        src.commit(the_app.store(), gathered)
    if out_path is not None:
        _write(out_path, text)
        output.notice(f"wrote the digest to {out_path}")
    if post:
        code = _post(output, the_app, text, gathered) or code
    return code


def _out_path(out: str | None) -> Path | None:
    from brain.errors import UsageError

    if out is None:
        return None
    try:
        path = Path(out).expanduser()
        folder_there = path.parent.is_dir()
    except (ValueError, OSError, RuntimeError):  # a NUL byte, an unknown ~user, a name too long
        raise UsageError(f"--out {out!r} is not a file name brain can write.") from None
    if not folder_there:
        raise UsageError(
            f"--out {out}: the folder {path.parent} does not exist.",
            "Create it first, or name a file in a folder that exists.",
        )
    if path.is_dir():
        raise UsageError(f"--out {out} is a folder; name a file.")
    return path


def _write(path: Path, text: str) -> None:
    """Replace the file whole (a reader never sees half a digest)."""
    tmp = path.with_name(f".{path.name}.brain-tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _need_webhook() -> None:
    from brain import secrets
    from brain.errors import KeyProblem

    if not secrets.get("slack"):
        raise KeyProblem(
            "--post sends the digest to Slack, and no Slack webhook is set.",
            "Set it with `brain keys set slack` (an incoming-webhook URL), or export "
            "BRAIN_SLACK_WEBHOOK.",
        )


def _heading(gathered: list[Gathered]) -> str:
    """The Slack message's first line: what it is, when, from what."""
    import socket
    from datetime import datetime

    names = [g.source.name for g in gathered if g.units]
    origin = f" from {', '.join(names)}" if names else ""
    stamp = datetime.now().strftime("%a %d %b %H:%M")
    return f"*Digest* — {stamp}{origin} (brain on {socket.gethostname()})"


def _post(output: Output, the_app: App, text: str, gathered: list[Gathered]) -> int:
    """Through the outbox and its one sender, in this process: the post is the point of the
    run, so whether Slack took it is said now. 0, or 75 when it waits in the outbox."""
    from brain import notify

    reason = notify.post_now(the_app.store(), f"{_heading(gathered)}\n{text}")
    if reason is None:
        output.notice("posted the digest to Slack.")
        return 0
    output.notice(
        f"Slack did not take the digest yet ({reason}); it waits in the outbox, and the next "
        "`brain digest --post` (or any answer) sends it."
    )
    return 75


# ----- --schedule -------------------------------------------------------------------------------


def _schedule(
    ctx: click.Context,
    the_app: App,
    schedule: str,
    scheduler: str,
    words: tuple[str, ...],
    since: str | None,
    names: list[str],
    out: str | None,
    post: bool,
) -> int:
    from brain.digest import schedule as sched
    from brain.errors import NotInstalled, UsageError
    from brain.render import Output

    output = Output()
    system = sched.default_system() if scheduler == "auto" else scheduler
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    log = the_app.data_dir / "digest.log"
    if schedule.strip().lower() == "off":
        return _unschedule(output, system, scheduler, config_home, log)
    hour, minute = sched.parse_time(schedule)
    if since and not since.strip()[-1:].isalpha():
        raise UsageError(
            f"--since {since} with --schedule would digest from the same date every day.",
            "Leave --since out (each run digests since the one before), or give a length "
            "such as 24h.",
        )
    if not the_app.settings.digest_sources and not words:
        raise UsageError(
            "config.toml has no [[digest.sources]]: a scheduled digest would have nothing to read.",
            f"Add sources first ({install.doc('digest.md')}), and try them with `brain digest`.",
        )
    if post:
        _need_webhook()
    if not system:
        raise NotInstalled(
            "no scheduler brain can use here: no systemd user session answers, and crontab is "
            "not installed.",
            "Install cron (Debian/Ubuntu: `sudo apt-get install cron`) and run this again, or "
            "start the digest from any scheduler with: "
            + " ".join(_argv(ctx, words, since, names, out, post)),
        )
    env, left_out = sched.environment(system)
    argv = [*sched.program(), *_argv(ctx, words, since, names, out, post)]
    entry = sched.build(
        system, hour, minute, argv, env, config_home=config_home, home=Path.home(), log=log
    )
    done = sched.install(entry)
    _tell_scheduled(output, entry, argv, done, left_out)
    return 0


def _tell_scheduled(
    output: Any, entry: Any, argv: list[str], done: list[str], left: list[str]
) -> None:
    from brain.digest import schedule as sched

    shown = " ".join(["brain", *argv[len(sched.program()) :]])
    output.write(f"scheduled `{shown}` every day at {entry.when}, with {entry.describe()}:")
    for line in done:
        output.write(f"  {line}")
    output.write(f"  see it:      {entry.see}")
    output.write(f"  its output:  {entry.log}")
    output.write(f"  run it now:  {entry.now}")
    output.write("  remove it:   brain digest --schedule off")
    for note in entry.notes:
        output.notice(note)
    if left:
        output.notice(
            f"{', '.join(left)} is set in this shell but not written into the entry (keys "
            "never go in a file): the scheduled run reads the keyring (`brain keys list`)."
        )


def _unschedule(output: Any, system: str, scheduler: str, config_home: Path, log: Path) -> int:
    """`--schedule off`: remove the entry from the chosen scheduler, or from every one here."""
    from brain.digest import schedule as sched

    systems = [system] if scheduler != "auto" else sched.installed_here()
    removed = [
        line
        for s in systems
        for line in sched.remove(s, config_home=config_home, home=Path.home(), log=log)
    ]
    for line in removed:
        output.write(line)
    if not removed:
        where = ", ".join(systems) or "no scheduler here"
        output.notice(f"no digest was scheduled ({where}); nothing to remove.")
    return 0


def _argv(
    ctx: click.Context,
    words: tuple[str, ...],
    since: str | None,
    names: list[str],
    out: str | None,
    post: bool,
) -> list[str]:
    """The digest command the scheduler runs: this one's flags, paths made absolute."""
    o = opts(ctx)
    argv: list[str] = []
    if o.config:
        argv += ["--config", str(Path(o.config).expanduser().resolve())]
    if o.offline:
        argv.append("--offline")
    if o.online:
        argv.append("--online")
    if o.route:
        argv += ["--route", o.route]
    if o.model:
        argv += ["--model", o.model]
    if o.verbose:
        argv.append("-v")
    argv.append("digest")
    if since:
        argv += ["--since", since]
    for name in names:
        argv += ["--source", name]
    if out:
        argv += ["--out", str(Path(out).expanduser().resolve())]
    if post:
        argv.append("--post")
    if words:
        argv.append("--")  # the words as given, even one that starts with "-"
    for word in words:
        path = Path(word).expanduser()
        argv.append(str(path.resolve()) if path.is_file() else word)
    return argv
