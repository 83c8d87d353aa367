"""The interactive REPL: the prompt, the slash commands, streamed answers, the bottom toolbar.

Owns the terminal side of a conversation: the prompt (history file in the data dir, Ctrl-R
search, auto-suggest, Enter sends and Alt-Enter adds a line, a pasted block stays one
question, completion of slash commands, task names and files), the toolbar (task, who would
answer, model, tokens of the last answer), and what Ctrl-C and Ctrl-D do. What a
conversation keeps and sends is brain.conversation; every question goes through
brain.exchange.ask like a one-shot command, so it lands in the same history and takes the
same ladder (apex, then local). prompt_toolkit and rich are imported when the REPL opens.
"""

from __future__ import annotations

import shlex
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brain import conversation as conv
from brain.conversation import Conversation, Line, Turn
from brain.errors import BrainError, Interrupted
from brain.offline import ladder, probe
from brain.settings import Settings
from brain.tasks import Task

HISTORY_FILE = "repl-history"
WATCH_INTERVAL = 1.0  # seconds between looks at the cached verdict
# While the REPL is open it probes at least this often (a GET on the tailnet), so the toolbar
# notices Apex leaving or coming back within seconds even when apex.probe_ttl is longer.
WATCH_TTL = 5.0


@dataclass
class Options:
    """What the global flags ask of every question in this session."""

    route: str | None = None
    model: str | None = None
    verbose: bool = False


class ApexWatch:
    """Apex's reachability for the toolbar, kept fresh by a thread so the prompt never waits.

    It asks `probe.check`, the same cached verdict the ladder uses, so the toolbar says what
    the next question will find. Paused while a question is being answered.
    """

    def __init__(self, cache_dir: Path, url: str, ttl: float, timeout: float) -> None:
        self.cache_dir, self.url, self.ttl, self.timeout = cache_dir, url, ttl, timeout
        self.verdict: probe.Verdict | None = probe.cached(cache_dir, url, ttl) if url else None
        self.on_change: Any = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._paused = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.url and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="apex-watch", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def pause(self) -> None:
        self._paused.set()

    def resume(self) -> None:
        """Look again now: a question may just have found Apex gone, or back."""
        self._paused.clear()
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self._paused.is_set():
                try:
                    verdict = probe.check(self.cache_dir, self.url, self.ttl, self.timeout)
                except Exception as exc:  # the toolbar must not die with one bad look
                    verdict = probe.Verdict(self.url, False, type(exc).__name__, time.time())
                before = self.verdict
                self.verdict = verdict
                if (before is None or before.ok != verdict.ok) and self.on_change:
                    self.on_change()
            self._wake.wait(WATCH_INTERVAL)
            self._wake.clear()


class Repl:
    """One interactive session: a current task, a mode, a conversation."""

    def __init__(
        self,
        settings: Settings,
        tasks: dict[str, Task],
        task: str,
        mode: str,
        options: Options,
        cache_dir: Path,
        data_dir: Path,
    ) -> None:
        self.conf = settings
        self.tasks = tasks
        self.task = tasks[task]
        self.mode = mode
        self.options = options
        self.cache_dir = cache_dir
        self.history_path = data_dir / HISTORY_FILE
        self.conversation = Conversation()
        self.last: Turn | None = None  # the last answer, for the toolbar
        # A question nothing answered: its task, its text, its entry in the queue (if kept).
        self.failed: tuple[Task, str, int | None] | None = None
        self.apex_models: dict[str, str] = {}  # route -> the deployment Apex last named
        self.dropped_said = 0
        self.prefill = ""
        self.watch = ApexWatch(
            cache_dir,
            settings.apex_url,
            min(float(settings.get("apex", "probe_ttl")), WATCH_TTL),
            float(settings.get("apex", "connect_timeout")),
        )
        self.store: Any = None
        self._console: Any = None

    # ----- the loop -----------------------------------------------------------------------
    def run(self) -> int:
        """Prompt until Ctrl-D or /exit; both end the session with status 0."""
        from brain.store import Store

        session = self._session()
        self.watch.on_change = lambda: _invalidate(session)
        self.store = Store.open_default()
        self.watch.start()
        self._banner()
        try:
            while True:
                try:
                    text = session.prompt(self._prompt_message, default=self.prefill)
                except KeyboardInterrupt:  # Ctrl-C at the prompt clears the line
                    self.prefill = ""
                    continue
                except EOFError:  # Ctrl-D on an empty line
                    return 0
                self.prefill = ""
                try:
                    if self.handle(text) == "exit":
                        return 0
                except KeyboardInterrupt:
                    self.say("[dim]interrupted.[/]")
        finally:
            self.watch.stop()
            self.store.close()

    def handle(self, text: str) -> str | None:
        """Act on one typed line; "exit" ends the session."""
        line = conv.parse(text, tuple(self.tasks))
        if line.kind == "empty":
            return None
        if line.kind == "ask":
            self.ask(self.task, line.arg)
        elif line.kind == "task":
            if line.arg:
                self.ask(self.tasks[line.name], line.arg)
            else:
                self.cmd_task(line.name)
        elif line.kind == "command":
            return getattr(self, f"cmd_{line.name}")(line.arg)
        else:
            self.unknown(line)
        return None

    # ----- asking -------------------------------------------------------------------------
    def ask(self, task: Task, text: str, replaces: int | None = None) -> None:
        """One question in this conversation; the answer streams; Ctrl-C keeps what came.

        `replaces`: the queued entry of a question nothing answered, sent again by /retry.
        """
        from brain import exchange, secrets
        from brain.render import Output

        out = Output(verbose=self.options.verbose)
        try:
            sent = self._material(task, text)
        except BrainError as exc:
            out.error(exc)
            return
        backend, _ = self.next_backend(task)
        context = self.conversation.context(
            task, sent, conv.budget_for(self.conf, backend.rstrip("?"), task)
        )
        self._say_dropped(context, backend)
        plan = ladder.plan(
            self.conf, task, context.messages, self.mode, self.options.route, self.options.model
        )
        if replaces is not None:  # the same question again: one entry, not two
            self.store.drop(replaces)
        # Another question makes this one the last; a failed one stays in `brain queue`.
        self.failed = None
        row = self.store.add(task.name, plan.route, sent, context.messages)
        pieces: list[str] = []
        answering = ["apex" if self.mode != ladder.OFFLINE and self.conf.apex_url else "local"]

        def on_delta(delta: str) -> None:
            pieces.append(delta)
            out.delta(delta)

        def on_local_start(text: str) -> None:
            answering[0] = "local"
            out.waiting(text)

        self.watch.pause()
        try:
            if answering[0] == "apex":
                out.waiting(f"asking Apex ({plan.route})…")
            result = exchange.ask(
                self.conf,
                self.store,
                task,
                context.messages,
                sent,
                mode=self.mode,
                cache_dir=self.cache_dir,
                get_key=lambda: secrets.get("apex"),
                route=self.options.route,
                model=self.options.model,
                on_delta=on_delta,
                notice=out.notice,
                on_local_start=on_local_start,
                row=row,
            )
        except Interrupted as stopped:
            out.stop()
            if not stopped.started:
                self.store.drop(row)
                self.prefill = text
                out.notice("stopped before the answer began; your question is back at the prompt.")
                return
            turn = Turn(task.name, text, sent, "".join(pieces), True, "stopped with Ctrl-C")
            turn.backend, turn.row = answering[0], row
            self.conversation.add(turn)
            self.last = turn
            out.notice(
                "stopped. The partial answer stays in this conversation and in the history "
                "(marked partial); /retry asks again."
            )
            return
        except KeyboardInterrupt:  # between the store and the ladder: nothing was sent
            out.stop()
            self.store.drop(row)
            self.prefill = text
            out.notice("stopped before the answer began; your question is back at the prompt.")
            return
        except BrainError as exc:
            out.error(exc)
            entry = self.store.get(row)
            if entry is not None and entry.status == "queued" and entry.error is None:
                # Refused before anything was sent (the premium cap, say): nothing to keep.
                self.store.drop(row)
                row_kept = None
            else:
                row_kept = row
            self.failed = (task, text, row_kept)
            out.notice("/retry asks it again here.")
            return
        finally:
            out.stop()
            self.watch.resume()
        answer = result.outcome.answer
        out.info(
            f"answered by {answer.backend} {answer.model} (route {result.outcome.route}); "
            f"first token {answer.first_token_ms} ms, total {answer.total_ms} ms"
        )
        if answer.backend == "apex" and answer.model:
            self.apex_models[result.outcome.route] = answer.model
        turn = Turn(
            task.name,
            text,
            sent,
            answer.text,
            answer.partial,
            answer.partial_reason,
            answer.backend,
            answer.model,
            answer.usage.get("completion_tokens"),
            result.row,
        )
        self.last = turn
        if answer.text:
            self.conversation.add(turn)
        else:
            out.notice("the model answered with no text; nothing was added to the conversation.")
        for note in result.notes():
            out.notice(note)
        if answer.partial:
            out.notice("/retry asks again.")
        if result.notify_pending:
            from brain import notify

            notify.spawn_sender()

    def _material(self, task: Task, text: str) -> str:
        """A one-line question that names files sends them, as on the command line."""
        from brain import exchange

        if "\n" in text:
            return text
        try:
            words = shlex.split(text)
        except ValueError:
            return text
        if not any(_is_file(w) for w in words):
            return text
        instruction, material = exchange.split_args(words)
        sent, _ = exchange.compose(task, instruction, material)
        return sent

    def next_backend(self, task: Task | None = None) -> tuple[str, str]:
        from brain import premium

        task = task or self.task
        route = self.options.route or task.route
        direct = premium.direct_allowed(self.conf, task, route, self.mode)
        return conv.which_backend(
            self.mode, task, self.conf.apex_url, self.watch.verdict, direct=direct
        )

    def _say_dropped(self, context: conv.Context, backend: str) -> None:
        if context.dropped > self.dropped_said:
            n = context.dropped
            self.say(
                f"[yellow]The conversation is longer than {backend.rstrip('?')} takes "
                f"(~{context.budget} tokens): the oldest {n} turn{'s' if n > 1 else ''} "
                f"{'are' if n > 1 else 'is'} left out of what is sent.[/] [dim]/save keeps "
                "all of it; /clear starts afresh.[/]"
            )
        self.dropped_said = context.dropped

    # ----- slash commands -----------------------------------------------------------------
    def cmd_task(self, arg: str) -> None:
        name = arg.strip()
        if not name:
            for task in self.tasks.values():
                mark = "→" if task.name == self.task.name else " "
                self.say(f"{mark} [bold]{task.name}[/]  [dim]{_esc(task.description)}[/]")
            self.say("[dim]/task NAME switches; /NAME TEXT asks one question with NAME.[/]")
            return
        if name not in self.tasks:
            self.say(
                f"[red]No task `{_esc(name)}`.[/] Tasks: {', '.join(self.tasks)} "
                "[dim](add your own as [tasks.NAME] in config.toml).[/]"
            )
            return
        self.task = self.tasks[name]
        extra = "" if self.task.may_fall_back else " It answers only on Apex (no fallback)."
        self.say(f"Task [bold]{name}[/] (route {self.task.route}).{extra}")

    def cmd_offline(self, _arg: str) -> None:
        self._mode(ladder.OFFLINE)

    def cmd_online(self, _arg: str) -> None:
        self._mode(ladder.ONLINE)

    def cmd_auto(self, _arg: str) -> None:
        self._mode(ladder.AUTO)

    def _mode(self, mode: str) -> None:
        self.mode = mode
        model = self.options.model or self.conf.local_model
        what = {
            ladder.OFFLINE: f"answers come from {model} on this laptop only.",
            ladder.ONLINE: "answers come from Apex only; no fallback.",
            ladder.AUTO: f"Apex first; {model} on this laptop when Apex is away.",
        }[mode]
        self.say(f"Mode [bold]{mode}[/]: {what} [dim]The conversation goes on.[/]")
        self.watch.resume()

    def cmd_status(self, _arg: str) -> None:
        from brain.settings import data_dir

        backend, why = self.next_backend()
        task = self.task
        policy = "falls back to this laptop" if task.may_fall_back else "Apex only"
        backend_of_budget = backend.rstrip("?") if backend != "none" else "apex"
        budget = conv.budget_for(self.conf, backend_of_budget, task)
        sample = self.conversation.context(task, "", budget)
        rows = [
            ("mode", self.mode),
            ("task", f"{task.name} (route {self.options.route or task.route}; {policy})"),
            ("next answer", f"{backend} ({why})"),
            ("model", self._model_text(backend)),
            ("Apex", self.conf.apex_url or "not configured (apex.url)"),
            ("local", f"{self.options.model or self.conf.local_model} at {self.conf.local_url}"),
            (
                "conversation",
                f"{len(self.conversation)} turns, ~{sample.tokens} of {budget} tokens sent"
                + (f" ({sample.dropped} oldest left out)" if sample.dropped else ""),
            ),
            ("history", f"{data_dir() / 'brain.db'} (`brain history`)"),
        ]
        for key, value in rows:
            self.say(f"[bold]{key:<13}[/]{_esc(value)}")

    def cmd_history(self, _arg: str) -> None:
        if not self.conversation.turns:
            self.say(
                "[dim]No turns yet in this conversation. `brain history` shows earlier ones.[/]"
            )
            return
        for i, turn in enumerate(self.conversation.turns, 1):
            who = " ".join(p for p in (turn.backend, turn.model) if p)
            tokens = f", {turn.completion_tokens} tokens" if turn.completion_tokens else ""
            mark = " [yellow](partial)[/]" if turn.partial else ""
            self.say(f"[bold]{i}.[/] [{turn.task}] {_esc(_first_line(turn.user))}")
            self.say(f"   → {_esc(_first_line(turn.answer))}{mark} [dim]({who}{tokens})[/]")

    def cmd_retry(self, _arg: str) -> None:
        if self.failed is not None:
            task, text, row = self.failed
            self.ask(task, text, replaces=row)
            return
        turn = self.conversation.pop()
        if turn is None:
            self.say("[dim]Nothing to retry yet.[/]")
            return
        self.ask(self.tasks.get(turn.task, self.task), turn.user)

    def cmd_save(self, arg: str) -> None:
        force = False
        words = arg.split(maxsplit=1)
        if words and words[0] in ("-f", "--force"):
            force, arg = True, (words[1] if len(words) > 1 else "")
        if not self.conversation.turns:
            self.say("[dim]Nothing to save yet.[/]")
            return
        name = arg.strip() or time.strftime("brain-%Y%m%d-%H%M.md")
        path = Path(name).expanduser()
        if path.exists() and not force:
            self.say(f"[red]{_esc(str(path))} exists.[/] `/save -f {_esc(name)}` replaces it.")
            return
        try:
            path.write_text(self.conversation.to_markdown(), encoding="utf-8")
        except OSError as exc:
            self.say(f"[red]Cannot write {_esc(str(path))}: {_esc(exc.strerror or str(exc))}.[/]")
            return
        n = len(self.conversation)
        self.say(f"Saved {n} turn{'s' if n != 1 else ''} to {_esc(str(path))}.")

    def cmd_clear(self, _arg: str) -> None:
        self.conversation.clear()
        self.dropped_said = 0
        self.failed = None
        self.say("New conversation. [dim]Earlier turns stay in `brain history`.[/]")

    def cmd_help(self, _arg: str) -> None:
        self.say("[bold]Type a question and press Enter.[/] Alt-Enter (or Esc Enter) adds a line.")
        self.say("[bold]Tasks[/] [dim](/NAME TEXT asks once with NAME; /NAME alone switches)[/]")
        for task in self.tasks.values():
            self.say(f"  /{task.name:<12}[dim]{_esc(task.description)}[/]")
        self.say("[bold]Commands[/]")
        for name, (arg, what) in conv.SLASH_COMMANDS.items():
            self.say(f"  /{(name + ' ' + arg).strip():<12}[dim]{_esc(what)}[/]")
        self.say(
            "[dim]Up/Down and Ctrl-R search earlier input; Tab completes commands and files; "
            "Ctrl-C stops an answer (what came is kept) or clears the line; Ctrl-D leaves. "
            "Start a line with // to send text that begins with /.[/]"
        )

    def cmd_exit(self, _arg: str) -> str:
        return "exit"

    def unknown(self, line: Line) -> None:
        self.say(
            f"[red]No command /{_esc(line.name)}.[/] /help lists them. "
            f"[dim]To send text that begins with /, start it with //.[/]"
        )

    # ----- drawing ------------------------------------------------------------------------
    def console(self) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(highlight=False, soft_wrap=True)
        return self._console

    def say(self, markup: str) -> None:
        """A line for the person at the terminal (not an answer)."""
        self.console().print(markup)

    def _banner(self) -> None:
        self.say(
            f"[bold]brain[/] · task [bold]{self.task.name}[/] · mode {self.mode} · "
            "[dim]Enter sends, Alt-Enter adds a line, /help lists commands, Ctrl-D leaves.[/]"
        )

    def _prompt_message(self) -> Any:
        mode = "" if self.mode == ladder.AUTO else f" [{self.mode}]"
        return [("class:prompt.task", self.task.name), ("class:prompt.mode", mode), ("", "> ")]

    def _model_text(self, backend: str) -> str:
        if backend == "local":
            return self.options.model or self.conf.local_model
        if backend == "none":
            return "none"
        if backend == "anthropic":
            return "Anthropic, direct"
        route = self.options.route or self.task.route
        return self.apex_models.get(route, f"route {route}")

    def toolbar(self) -> Any:
        backend, _ = self.next_backend()
        last = self.last
        if last is None:
            last_text = "none yet"
        elif last.completion_tokens is None:
            last_text = "partial" if last.partial else "? tokens"
        else:
            last_text = f"{last.completion_tokens} tokens" + (" (partial)" if last.partial else "")
        style = {"apex": "apex", "apex?": "apex", "local": "local", "anthropic": "local"}.get(
            backend, "none"
        )
        return [
            ("class:tb", " task: "),
            ("class:tb.value", self.task.name),
            ("class:tb", "  backend: "),
            (f"class:tb.{style}", backend),
            ("class:tb", "  model: "),
            ("class:tb.value", self._model_text(backend)),
            ("class:tb", "  last: "),
            ("class:tb.value", last_text),
            ("class:tb", "  mode: "),
            ("class:tb.value", self.mode + " "),
        ]

    def _session(self) -> Any:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
        from prompt_toolkit.filters import has_focus
        from prompt_toolkit.history import FileHistory
        from prompt_toolkit.key_binding import KeyBindings
        from prompt_toolkit.styles import Style

        if not self.history_path.exists():
            # Everything typed lands here: readable by its owner only, like the history db.
            import os

            os.close(os.open(self.history_path, os.O_CREAT | os.O_WRONLY, 0o600))
        kb = KeyBindings()
        default_focused = has_focus("DEFAULT_BUFFER")

        @kb.add("enter", filter=default_focused)
        def _send(event: Any) -> None:
            buffer = event.current_buffer
            state = buffer.complete_state
            if state is not None and state.current_completion is not None:
                chosen = state.current_completion.text
                buffer.apply_completion(state.current_completion)
                if chosen.endswith(" "):  # `/digest `, `/task `: the rest is still to type
                    return
            buffer.validate_and_handle()

        @kb.add("escape", "enter", filter=default_focused)
        def _newline(event: Any) -> None:
            event.current_buffer.insert_text("\n")

        style = Style.from_dict(
            {
                "prompt.task": "bold ansicyan",
                "prompt.mode": "ansiyellow",
                "bottom-toolbar": "noreverse bg:#262626 #bcbcbc",
                "tb.value": "bold",
                "tb.apex": "bold ansigreen",
                "tb.local": "bold ansiyellow",
                "tb.none": "bold ansired",
            }
        )
        return PromptSession(
            history=FileHistory(str(self.history_path)),
            auto_suggest=AutoSuggestFromHistory(),
            completer=_completer(self),
            complete_while_typing=True,
            key_bindings=kb,
            bottom_toolbar=self.toolbar,
            refresh_interval=WATCH_INTERVAL,
            multiline=True,
            prompt_continuation=lambda width, _n, _soft: "." * max(width - 1, 0) + " ",
            enable_open_in_editor=True,
            style=style,
            reserve_space_for_menu=6,
        )


def _completer(repl: Repl) -> Any:
    """Slash commands and task names after `/`, task names after `/task`, files on Tab."""
    from prompt_toolkit.completion import Completer, Completion, PathCompleter
    from prompt_toolkit.document import Document

    paths = PathCompleter(expanduser=True)

    def files(word: str, event: Any) -> Any:
        yield from paths.get_completions(Document(word, len(word)), event)

    class SlashCompleter(Completer):
        def get_completions(self, document: Any, complete_event: Any) -> Any:
            text = document.text_before_cursor
            if text.startswith("/") and not any(c.isspace() for c in text):
                word = text[1:]
                # What takes an argument completes with a space after it; Enter on the
                # others sends them at once.
                for name, task in repl.tasks.items():
                    if name.startswith(word):
                        yield Completion(
                            f"/{name} ", -len(text), f"/{name}", display_meta=task.description
                        )
                for name, (arg, what) in conv.SLASH_COMMANDS.items():
                    if name.startswith(word):
                        text_ = f"/{name} " if arg else f"/{name}"
                        yield Completion(text_, -len(text), f"/{name}", display_meta=what)
                return
            if text.startswith("/task ") and "\n" not in text:
                word = text[len("/task ") :].lstrip()
                for name, task in repl.tasks.items():
                    if name.startswith(word):
                        yield Completion(name, -len(word), display_meta=task.description)
                return
            if text.startswith("/save ") and "\n" not in text:
                yield from files(text[len("/save ") :].split(" ")[-1], complete_event)
                return
            if complete_event.completion_requested:  # Tab in a question: file names
                yield from files(document.get_word_before_cursor(WORD=True), complete_event)

    return SlashCompleter()


def _invalidate(session: Any) -> None:
    app = getattr(session, "app", None)
    if app is not None and app.is_running:
        app.invalidate()


def _is_file(word: str) -> bool:
    try:
        return bool(word) and len(word) < 4096 and Path(word).expanduser().is_file()
    except OSError:
        return False


def _first_line(text: str, width: int = 70) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def _esc(text: str) -> str:
    return text.replace("[", "\\[")
