"""One question, start to finish, for every front end (the task commands, `queue run`, the
REPL, MCP): a Question in, deltas and notices to a Sink, a Result out.

What must stay true:
- The input is kept (claimed by this process) before anything is sent, so a crash, kill -9 or
  "nothing reachable" never loses it; a question refused before sending (premium cap, input
  too long for every model) keeps nothing to fail again. An input that cannot be kept (a full
  disk, a read-only or damaged brain.db) is not sent.
- Before the first piece of an answer is shown, the row is marked as begun (store.started):
  an answer that was shown is never asked again, even when storing it fails afterwards. If
  the mark itself cannot be written, nothing is shown and the input stays queued.
- Stopped mid-answer (Ctrl-C, SIGTERM, SIGHUP, a reader closing the pipe, a stdout that
  cannot be written), what arrived is kept as a partial answer and never sent again; stopped
  before the first token, the input goes back to the queue.
- Keys are masked in what is shown and kept (brain.secrets): the answer as it streams, the
  fallbacks' reasons, the --json object.
- An input with recordings (brain.voice) is kept before they are transcribed, their slots in
  its text; each transcript then takes its slot (in the history too) before the question is
  planned again and sent. When nothing can transcribe them, the recordings are copied into the
  data dir and the input waits in the queue: `brain queue run` transcribes and answers it.
- The `--json` object (version 1, docs/json.md) comes from Result.as_json.
Prints nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from brain import premium, secrets, voice
from brain.backends.base import Answer, Sink
from brain.client import Message, one_line
from brain.errors import BrainError, Interrupted, OutputError, PipeClosed, StorageError
from brain.offline import ladder
from brain.offline.ladder import Outcome

if TYPE_CHECKING:
    from brain.app import App
    from brain.tasks import Task

JSON_VERSION = 1


@dataclass
class Question:
    task: Task
    text: str  # the input as kept in the history
    messages: list[Message]
    row: int | None = None  # an input kept earlier (queue run, /retry): sent again, not re-added
    # Backends that failed before this question was asked ({backend, reason}): a digest in parts
    # that moved down the ladder between parts reports them with the answer, as the ladder would.
    fallbacks: list[dict[str, str]] = field(default_factory=list)
    audio: voice.Recordings | None = None  # recordings whose transcripts fill slots in `text`


@dataclass
class Result:
    outcome: Outcome
    row: int
    premium: premium.Spending | None = None
    notify_pending: bool = False  # the Slack outbox has something to send
    text: str = ""  # the input as sent (with its recordings' transcripts)
    transcript: voice.Transcript | None = None  # what was heard, when the input was spoken

    @property
    def answer(self) -> Answer:
        return self.outcome.answer

    @property
    def exit_code(self) -> int:
        """0, or 75 for an answer cut short (a max_tokens cap is the task's own choice)."""
        a = self.answer
        return 75 if a.partial and not a.hit_max_tokens else 0

    def notes(self) -> list[str]:
        """What to tell the user after the answer, one line each: a fallback on Apex's side,
        the premium spend, an incomplete answer. Every front end shows these the same way."""
        a = self.answer
        lines = [
            f"Apex fell back on its side: {fb['answered_by']} answered ({one_line(fb['reason'], 200)})."
            for fb in self.outcome.fallbacks
            if fb.get("answered_by")
        ]
        lines += a.notes
        if self.premium is not None:
            lines.append(self.premium.line())
        if a.partial:
            lines.append(
                f"the answer is incomplete: {a.partial_reason}. It is kept in the history, "
                "marked partial."
            )
        return lines

    def as_json(self) -> dict[str, Any]:
        a = self.answer
        return {
            "version": JSON_VERSION,
            "id": self.row,
            "answer": secrets.redact(a.text, urls=False),
            "task": self.outcome.task,
            "route": self.outcome.route,
            "backend": a.backend,
            "model": a.model,
            "fallbacks": self.outcome.fallbacks,
            "usage": {
                "prompt_tokens": a.usage.get("prompt_tokens"),
                "completion_tokens": a.usage.get("completion_tokens"),
            },
            "latency_ms": {"first_token": a.first_token_ms, "total": a.total_ms},
            "cost": a.cost,
            "partial": a.partial,
            "partial_reason": a.partial_reason or None,
            **({"premium": self.premium.as_json()} if self.premium is not None else {}),
            **({"transcript": self.transcript.as_json()} if self.transcript is not None else {}),
        }


class AlreadySending(BrainError):
    """Another brain is sending this queued input right now."""

    exit_code = 0


class _Tap:
    """Passes the answer to the sink as it comes, keys masked, and remembers it. Before the
    first piece is shown, `on_start` marks the row as begun (it may raise StorageError: then
    nothing is shown). A stdout that cannot be written becomes OutputError."""

    def __init__(self, sink: Sink, on_start: Any) -> None:
        self.sink = sink
        self.on_start = on_start
        self.pieces: list[str] = []
        self.started = False
        self.masker = secrets.Masker()

    def delta(self, text: str) -> None:
        if not self.started:
            self.on_start()
            self.started = True
        self.pieces.append(text)
        self._show(self.masker.feed(text))

    def flush(self) -> None:
        """The end of the answer: what the masker held back."""
        self._show(self.masker.flush())

    def _show(self, text: str) -> None:
        if not text:
            return
        try:
            self.sink.delta(text)
        except OSError as exc:  # a full disk behind `>`, a terminal that went away
            raise OutputError(f"could not write the answer to stdout: {_why(exc)}") from None

    def notice(self, text: str) -> None:
        self.sink.notice(text)

    def waiting(self, text: str) -> None:
        self.sink.waiting(text)


def ask(app: App, question: Question, sink: Sink) -> Result:
    """Keep the input, run the ladder, record the answer. The input survives any failure."""
    task = question.task
    store = _before_sending(app.store)
    try:
        the_plan = ladder.plan(
            app, task, question.messages, mode=app.mode, route=app.route, model=app.model
        )
    except BrainError as exc:
        if question.row is not None and exc.exit_code == 65:
            _quietly(store.give_up, question.row, why_not_answered(exc))
        raise
    # Before the input is kept: a refused premium question leaves nothing to send later.
    premium.check_plan(app.settings, task, the_plan.route)
    _before_sending(lambda: premium.check_cap(app.settings, store, the_plan.route))
    row = _before_sending(lambda: _keep(store, question, the_plan.route))
    if question.audio is not None and question.audio.pending(question.text):
        the_plan = _transcribe(app, store, row, question, sink)
    tap = _Tap(sink, lambda: store.started(row))
    try:
        outcome = ladder.run(app, the_plan, tap)
        tap.flush()
    except (KeyboardInterrupt, PipeClosed, OutputError) as exc:
        stopped = _stopped(store, row, the_plan, tap, exc)
        stopped.row = row  # type: ignore[attr-defined]
        raise stopped from None
    except StorageError as exc:  # the answer's start could not be marked: nothing was shown
        _quietly(store.release, row, f"not answered: {exc.cause}")
        raise _unmarked(exc) from None
    except BrainError as exc:
        kept = store.give_up if exc.exit_code == 65 else store.release
        _quietly(kept, row, why_not_answered(exc))
        exc.row = row  # type: ignore[attr-defined]  # the entry it is kept under (REPL /retry)
        raise
    if question.fallbacks:
        outcome.fallbacks = [*question.fallbacks, *outcome.fallbacks]
    _masked(outcome)
    try:
        store.finish(row, outcome.route, outcome.answer, outcome.fallbacks)
    except StorageError as exc:
        raise _not_stored(exc, shown=tap.started) from None
    heard = question.audio.transcript if question.audio is not None else None
    result = Result(outcome, row, text=question.text, transcript=heard)
    try:
        result.premium = premium.spending(app.settings, store, outcome.route, outcome.answer)
    except StorageError:
        result.premium = None  # the answer is stored; only today's total could not be read
    try:
        from brain import notify

        result.notify_pending = notify.record(store, app.settings, outcome)
    except Exception:  # a notice must never fail an answer
        result.notify_pending = False
    return result


def _before_sending(step: Any) -> Any:
    """Run a step that comes before anything is sent; a storage fault says nothing was."""
    try:
        return step()
    except StorageError as exc:
        exc.message += " Nothing was sent: brain keeps an input before sending it."
        raise


def _quietly(step: Any, *args: Any) -> None:
    """A bookkeeping write that may fail without changing what happened: a row left
    `sending` by a process that ends counts as queued again (store._claimable)."""
    try:
        step(*args)
    except StorageError:
        pass


def _masked(outcome: Outcome) -> None:
    a = outcome.answer
    a.text = secrets.redact(a.text, urls=False)  # as the Masker showed it
    a.partial_reason = secrets.redact(a.partial_reason)
    outcome.fallbacks = [
        {k: secrets.redact(v) if isinstance(v, str) else v for k, v in fb.items()}
        for fb in outcome.fallbacks
    ]


def _unmarked(exc: StorageError) -> StorageError:
    error = StorageError(
        f"{exc.message} It happened as the answer began, so brain stopped before showing it; "
        "your input stays in the queue.",
        f"{exc.fix} Then `brain queue run` sends it again.",
        cause=exc.cause,
    )
    error.exit_code = exc.exit_code
    return error


def _not_stored(exc: StorageError, *, shown: bool) -> StorageError:
    if shown:
        message = (
            f"The answer was shown, but {exc.message[0].lower()}{exc.message[1:]} It is marked "
            "as answered, so it is never asked again (`brain history` lists it as partial, "
            "without its text)."
        )
    else:
        message = f"{exc.message} Nothing of the answer was shown; your input stays in the queue."
    error = StorageError(message, exc.fix, cause=exc.cause)
    error.exit_code = exc.exit_code
    return error


def _keep(store: Any, question: Question, route: str) -> int:
    if question.row is None:
        audio = question.audio.as_row() if question.audio is not None else None
        return store.add(question.task.name, route, question.text, question.messages, audio)
    if not store.claim(question.row):
        raise AlreadySending(
            f"#{question.row} was taken by another brain (being sent, or answered already); "
            "it is not sent twice."
        )
    if question.audio is None:  # a queued recording, perhaps, not transcribed yet
        kept = store.get(question.row)
        question.audio = voice.Recordings.from_row(kept.audio if kept else None)
    return question.row


def _transcribe(app: App, store: Any, row: int, question: Question, sink: Sink) -> ladder.Plan:
    """Fill the input's recording slots with their transcripts (kept in the history), and plan
    the question again for its real length. Nothing transcribed it: the recordings are copied
    into the data dir and the input goes back to the queue."""
    recordings = question.audio
    assert recordings is not None
    try:
        text, messages = voice.fill(app, recordings, question.text, question.messages, sink)
    except KeyboardInterrupt as exc:
        stopped = Interrupted(
            f"{_signal_name(exc)} while transcribing; the recording is kept in the queue.",
            "`brain queue run` transcribes and answers it later; `brain queue drop ID` forgets "
            "it (`brain queue list` shows the ID).",
        )
        stopped.started = False
        stopped.exit_code = 128 + getattr(exc, "signum", 2)
        _park(app, store, row, question, stopped)
        stopped.row = row  # type: ignore[attr-defined]
        raise stopped from None
    except BrainError as exc:
        if exc.exit_code == 65:
            store.give_up(row, why_not_answered(exc))
        else:
            _park(app, store, row, question, exc)
        exc.row = row  # type: ignore[attr-defined]
        raise
    question.text, question.messages = text, messages
    store.set_input(row, text, messages, recordings.as_row())
    try:
        return ladder.plan(
            app, question.task, messages, mode=app.mode, route=app.route, model=app.model
        )
    except BrainError as exc:
        (store.give_up if exc.exit_code == 65 else store.release)(row, why_not_answered(exc))
        raise


def _park(app: App, store: Any, row: int, question: Question, exc: BrainError) -> None:
    """Back to the queue with the recordings copied into the data dir (brain.voice.park)."""
    recordings = question.audio
    assert recordings is not None
    voice.park(app, recordings, question.text, exc)
    store.set_input(row, question.text, question.messages, recordings.as_row())
    store.release(row, why_not_answered(exc))


def _stopped(store: Any, row: int, the_plan: Any, tap: _Tap, exc: BaseException) -> BaseException:
    """Ctrl-C, SIGTERM, SIGHUP, a closed pipe or an unwritable stdout: keep what arrived; the
    error to raise instead."""
    signum = getattr(exc, "signum", 2)
    if not tap.pieces:
        _quietly(store.release, row, "interrupted before the answer began")
        if isinstance(exc, (PipeClosed, OutputError)):
            return exc
        stopped = Interrupted(
            f"{_signal_name(exc)} before the answer began; your input is kept in the queue.",
            "`brain queue run` sends it later; `brain queue drop ID` forgets it "
            "(`brain queue list` shows the ID).",
        )
        stopped.started = False
        stopped.exit_code = 128 + signum
        return stopped
    # Mid-answer: what arrived is kept as a partial answer, never thrown away, and never sent
    # again by `brain queue run` (the row was marked as begun before the first piece showed).
    reason = "stopped before the end"
    if isinstance(exc, OutputError):
        reason = exc.message
    partial = Answer(
        text=secrets.redact("".join(tap.pieces), urls=False),
        backend=the_plan.current,
        partial=True,
        partial_reason=reason,
    )
    _quietly(store.finish, row, the_plan.route, partial, [])
    if isinstance(exc, PipeClosed):
        return exc
    if isinstance(exc, OutputError):
        return OutputError(
            f"{exc.message}. What arrived is kept in the history, marked partial.",
            "See it with `brain history -n 1` once stdout can be written (a full disk behind "
            "`>`, or a closed terminal).",
        )
    stopped = Interrupted(
        f"{_signal_name(exc)}; the partial answer is kept in the history (marked partial).",
        "See it with `brain history -n 1`.",
    )
    stopped.exit_code = 128 + signum
    return stopped


def _signal_name(exc: BaseException) -> str:
    name = getattr(exc, "name", "")
    return f"Stopped by {name}" if name else "Interrupted"


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def why_not_answered(exc: BrainError) -> str:
    """The reason kept with a queued input: one line, the specifics, no key."""
    lines = [line.strip() for line in exc.message.splitlines() if line.strip()]
    # "Nothing could answer; ..." heads a list of what each backend said: keep the list.
    text = "; ".join(lines[1:] if len(lines) > 1 else lines)
    return secrets.redact(text)
