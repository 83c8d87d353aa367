"""The interactive REPL: one conversation, its questions, and what the terminal shows of them.

Owns a session's state (the current task, the mode, the conversation, the last answer, a
question nothing answered) and asking: every question goes through brain.exchange.ask like a
one-shot command, so it lands in the same history and takes the same ladder. The slash
commands are brain.repl_commands; the prompt (keys, completion, toolbar) brain.repl_prompt;
what a conversation keeps and sends brain.conversation. prompt_toolkit and rich are imported
when the REPL opens.
"""

from __future__ import annotations

import shlex
import threading
from typing import TYPE_CHECKING, Any

from brain import conversation as conv
from brain.conversation import Conversation, Turn
from brain.errors import BrainError, Interrupted, Terminated
from brain.offline import probe

if TYPE_CHECKING:
    from brain.app import App
    from brain.tasks import Task

HISTORY_FILE = "repl-history"
WATCH_EVERY = 5.0  # seconds between liveness probes while the REPL is open (for the toolbar)


class ApexWatch:
    """Apex's reachability for the toolbar, probed by a thread so the prompt never waits; the
    toolbar reads the remembered verdict (the Apex backend's `state()`). Paused while a
    question is being answered (the request's own probe then speaks)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.url = app.settings.apex_url
        self.on_change: Any = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._paused = threading.Event()
        self._thread: threading.Thread | None = None
        self.state = "unknown"

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
        timeout = float(self.app.settings.get("apex", "connect_timeout"))
        while not self._stop.is_set():
            if not self._paused.is_set():
                try:
                    verdict = probe.check(self.app.cache_dir, self.url, timeout)
                    state = "ok" if verdict.ok else "away"
                except Exception:  # the toolbar must not die with one bad look
                    state = "unknown"
                if state != self.state:
                    self.state = state
                    if self.on_change:
                        self.on_change()
            self._wake.wait(WATCH_EVERY)
            self._wake.clear()


class ReplSink:
    """The answer to the terminal (brain.render.Output), its text kept for the conversation."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.pieces: list[str] = []

    def delta(self, text: str) -> None:
        self.pieces.append(text)
        self.out.delta(text)

    def notice(self, text: str) -> None:
        self.out.notice(text)

    def waiting(self, text: str) -> None:
        self.out.waiting(text)


class Repl:
    """One interactive session: a current task, a mode, a conversation."""

    def __init__(self, app: App, task: str) -> None:
        self.app = app
        self.tasks = app.tasks
        self.task = app.task(task)
        self.history_path = app.data_dir / HISTORY_FILE
        self.conversation = Conversation()
        self.last: Turn | None = None  # the last answer, for the toolbar
        # A question nothing answered: its task, its text, its entry in the queue (if kept).
        self.failed: tuple[Task, str, int | None] | None = None
        self.apex_models: dict[str, str] = {}  # route -> the deployment Apex last named
        self.dropped_said = 0
        self.prefill = ""
        self.watch = ApexWatch(app)
        self._console: Any = None

    @property
    def mode(self) -> str:
        return self.app.mode

    @property
    def store(self) -> Any:
        return self.app.store()

    # ----- the loop -----------------------------------------------------------------------
    def run(self) -> int:
        """Prompt until Ctrl-D or /exit; both end the session with status 0."""
        from brain.repl_prompt import invalidate, session

        prompt = session(self)
        self.watch.on_change = lambda: invalidate(prompt)
        self.watch.start()
        self._banner()
        try:
            while True:
                try:
                    text = prompt.prompt(self.prompt_message, default=self.prefill)
                except Terminated:  # SIGTERM, or SIGHUP: the terminal is gone
                    raise
                except KeyboardInterrupt:  # Ctrl-C at the prompt clears the line
                    self.prefill = ""
                    continue
                except EOFError:  # Ctrl-D on an empty line
                    return 0
                self.prefill = ""
                try:
                    if self.handle(text) == "exit":
                        return 0
                except Terminated:
                    raise
                except KeyboardInterrupt:
                    self.say("[dim]interrupted.[/]")
        finally:
            self.watch.stop()

    def handle(self, text: str) -> str | None:
        """Act on one typed line; "exit" ends the session."""
        from brain import repl_commands

        line = conv.parse(text, tuple(self.tasks))
        if line.kind == "empty":
            return None
        if line.kind == "ask":
            self.ask(self.task, line.arg)
        elif line.kind == "task" and line.arg:
            self.ask(self.tasks[line.name], line.arg)
        elif line.kind == "task":
            repl_commands.task(self, line.name)
        elif line.kind == "command":
            return repl_commands.COMMANDS[line.name](self, line.arg)
        else:
            repl_commands.unknown(self, line.name)
        return None

    # ----- asking -------------------------------------------------------------------------
    def ask(self, task: Task, text: str, replaces: int | None = None) -> None:
        """One question in this conversation; the answer streams; Ctrl-C keeps what came.

        `replaces`: the queued entry of a question nothing answered, sent again by /retry.
        """
        from brain import exchange
        from brain.render import Output

        out = Output(verbose=self.app.verbose)
        try:
            sent, recordings = self._material(task, text)
        except BrainError as exc:
            out.error(exc)
            return
        backend, _ = self.next_backend(task)
        budget = self.budget(task, backend)
        context = self.conversation.context(task, sent, budget)
        if task.name == "digest" and recordings is None and not self._fits(task, context):
            self._digest_in_parts(task, text, sent, out, replaces)
            return
        self._say_dropped(context, backend)
        if replaces is not None:  # the same question again: one entry, not two
            self.store.drop(replaces)
        self.failed = None  # another question makes this one the last
        sink = ReplSink(out)
        self.watch.pause()
        try:
            question = exchange.Question(task, sent, context.messages, audio=recordings)
            result = exchange.ask(self.app, question, sink)
        except Interrupted as stopped:
            out.stop()
            self._interrupted(task, text, sent, sink, stopped)
            if stopped.exit_code != 130:  # SIGTERM or SIGHUP: kept, and the session ends
                raise
            return
        except BrainError as exc:
            out.stop()
            if task.name == "digest" and recordings is None and _too_long_everywhere(exc):
                self._digest_in_parts(task, text, sent, out, replaces)  # denser than thought
                return
            out.error(exc)
            self.failed = (task, text, getattr(exc, "row", None))
            out.notice("/retry asks it again here.")
            return
        finally:
            out.stop()
            self.watch.resume()
        self._answered(task, text, result.text or sent, result, out)

    def _fits(self, task: Task, context: conv.Context) -> bool:
        """Whether every model this question may go to reads it whole (brain.digest.parts
        decides so between one question and parts). Any other trouble (no Apex configured
        with /online) is for the ordinary path to say: True."""
        from brain.digest.parts import fits_whole

        try:
            return fits_whole(self.app, task, context.messages)
        except BrainError:
            return True

    def _digest_in_parts(
        self, task: Task, text: str, sent: str, out: Any, replaces: int | None
    ) -> None:
        """A digest longer than a model it may go to reads at once, in parts, as `brain
        digest` does (docs/digest.md); the conversation before it is not sent along. A failure
        says what it kept in the queue; /retry is not offered (it would keep the parts twice)."""
        from brain.digest import parts

        if replaces is not None:
            self.store.drop(replaces)
        self.failed = None
        instruction, units = self._digest_material(text, sent)
        sink = ReplSink(out)
        self.watch.pause()
        try:
            done = parts.answer(self.app, task, instruction, units, sink)
            if done.line:
                sink.delta(f"\n\n{done.line}\n")
        except BrainError as exc:
            out.stop()
            if isinstance(exc, Interrupted):  # what the CLI says of the sources does not hold
                exc.fix = "The parts not read yet are kept in the queue (`brain queue list`)."
            out.error(exc)
            if isinstance(exc, Interrupted) and exc.exit_code != 130:
                raise  # SIGTERM or SIGHUP: the session ends
            return
        finally:
            out.stop()
            self.watch.resume()
        for cut in done.incomplete:
            out.notice(f"cut short: {cut}")
        done.result.notify_pending = done.notify_pending or done.result.notify_pending
        self._answered(task, text, sent, done.result, out)

    def _digest_material(self, text: str, sent: str) -> tuple[str, list[Any]]:
        """(instruction, units) of a digest question: a line naming files keeps its words as
        the instruction, which then goes along with every part; anything else is material."""
        from brain import material
        from brain.digest.sources import Unit

        if "\n" not in text:
            try:
                words = shlex.split(text)
            except ValueError:
                words = []
            if any(_is_file(w) for w in words):
                instruction, given = material.split_args(words)
                return instruction, [Unit(m.name, m.name, m.text) for m in given]
        return "", [Unit("stdin", "", sent)]

    def _interrupted(
        self, task: Task, text: str, sent: str, sink: ReplSink, stopped: Interrupted
    ) -> None:
        if not stopped.started:
            row = getattr(stopped, "row", None)
            if row is not None:
                self.store.drop(row)
            self.prefill = text
            sink.notice("stopped before the answer began; your question is back at the prompt.")
            return
        turn = Turn(task.name, text, sent, "".join(sink.pieces), True, "stopped with Ctrl-C")
        turn.row = getattr(stopped, "row", None)
        self.conversation.add(turn)
        self.last = turn
        sink.notice(
            "stopped. The partial answer stays in this conversation and in the history "
            "(marked partial); /retry asks again."
        )

    def _answered(self, task: Task, text: str, sent: str, result: Any, out: Any) -> None:
        answer = result.answer
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

    def _material(self, task: Task, text: str) -> tuple[str, Any]:
        """A one-line question that names files sends them, as on the command line; a
        recording among them is transcribed (its brain.voice.Recordings, or None)."""
        from brain import material

        if "\n" in text:
            return text, None
        try:
            words = shlex.split(text)
        except ValueError:
            return text, None
        if not any(_is_file(w) for w in words):
            return text, None
        instruction, given = material.split_args(words)
        sent, _ = material.compose(task, instruction, given)
        return sent, material.recordings(given)

    def next_backend(self, task: Task | None = None) -> tuple[str, str]:
        from brain.offline import ladder

        return ladder.next_backend(self.app, task or self.task, self.mode, self.app.route)

    def budget(self, task: Task, backend: str) -> int:
        """Tokens of conversation the next question may carry to `backend` (as next_backend
        names it): within what that backend says it reads, as the ladder checks it."""
        name = backend.rstrip("?") if backend != "none" else "apex"
        holds = None
        if name == "local":  # asked with a window's worth, so it says what it holds
            local = self.app.backend("local")
            holds = local.context_tokens(self.app.settings.local_model, conv.LOCAL_WINDOW)
        return conv.budget_for(self.app.settings, name, task, holds)

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

    # ----- drawing ------------------------------------------------------------------------
    def console(self) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(highlight=False, soft_wrap=True)
        return self._console

    def say(self, markup: str) -> None:
        """A line for the person at the terminal (not an answer); no control sequence in it
        reaches the terminal (it may quote a model's answer)."""
        from brain.render import clean

        self.console().print(clean(markup))

    def _banner(self) -> None:
        self.say(
            f"[bold]brain[/] · task [bold]{self.task.name}[/] · mode {self.mode} · "
            "[dim]Enter sends, Alt-Enter adds a line, /help lists commands, Ctrl-D leaves.[/]"
        )

    def prompt_message(self) -> Any:
        mode = "" if self.mode == "auto" else f" [{self.mode}]"
        return [("class:prompt.task", self.task.name), ("class:prompt.mode", mode), ("", "> ")]

    def model_text(self, backend: str) -> str:
        if backend == "local":  # the model that last answered here (a server may serve its own)
            last = self.last
            if last and last.backend == "local" and last.model:
                return last.model
            return self.app.local_model
        if backend == "none":
            return "none"
        if backend == "anthropic":
            return "Anthropic, direct"
        route = self.app.route or self.task.route
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
            ("class:tb.value", self.model_text(backend)),
            ("class:tb", "  last: "),
            ("class:tb.value", last_text),
            ("class:tb", "  mode: "),
            ("class:tb.value", self.mode + " "),
        ]


def _too_long_everywhere(exc: BrainError) -> bool:
    """Every backend refused the question as too long for it (brain's estimate was low)."""
    from brain.digest.parts import refused_as_too_long

    return bool(refused_as_too_long(exc, 0))


def _is_file(word: str) -> bool:
    from brain.files import expand

    try:
        return bool(word) and len(word) < 4096 and expand(word).is_file()
    except OSError:
        return False
