"""A digest of any length on any model: material longer than the answering backend's context
is digested in parts (DESIGN.md, "Nothing is silently truncated").

How: the ladder's order of backends (brain.offline.ladder.order) is walked here, one backend
at a time, because the parts are sized for the backend that answers them. On each backend:
the material not yet read is packed into parts that each fit its context (with room for the
answer), each part's notes are asked for, then the notes are digested together (in rounds
when they do not fit one request) by one last request, whose answer is the digest.

What must stay true:
- Every request goes through brain.exchange.ask (kept before it is sent, recorded, partial
  answers kept), on an App pinned to one backend (mode online = Apex only, offline = local
  only), so that the ladder's own check (`_fit`) refuses any request longer than that
  backend's context: no request exceeds the context of the backend that answers it.
- When a backend fails (before its answer began), the notes already made are kept and the
  material not yet read is packed again for the next backend (Apex to the laptop), which
  takes over; one notice line says so. Nothing that could not be answered is lost: what is
  left is kept in the queue (`brain queue list`), and the error says so.
- No source is dropped: every unit of material is in exactly one part (a unit longer than a
  part is cut at line ends into pieces, each labelled), and every part's notes reach the end.
- Parts run one after another on the laptop, and at most `[digest] parallel` at once on Apex.
Prints nothing itself: notices and progress go to the sink it is given.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from brain import exchange
from brain.app import OFFLINE, ONLINE
from brain.backends import estimate_tokens
from brain.client import Message, one_line
from brain.digest.sources import Unit, size
from brain.errors import BackendError, BadInput, BrainError, Interrupted, Unreachable
from brain.offline import ladder

if TYPE_CHECKING:
    from brain.app import App
    from brain.backends.base import Sink
    from brain.exchange import Result
    from brain.tasks import Task

NUM_CTX_MARGIN = 64  # tokens Ollama's num_ctx adds past input + answer (brain.backends.ollama)
MIN_BUDGET = 1024  # input tokens a part needs at least, past its prompt, to be worth asking
MAX_ROUNDS = 12
MAX_REPACK = 3  # times the parts are packed again, smaller, on a backend that said "too long"
LONG_INSTRUCTION = 400  # tokens: an instruction longer than this is read as material
_PROMPTS = Path(__file__).parent / "prompts"


@dataclass
class Room:
    """What one backend can read in one request of a digest."""

    name: str  # apex | local
    route: str
    model: str
    limit: int | None  # its context in tokens; None: not known, taken to hold anything
    answer: int  # max_tokens of each request
    label: str  # "Apex (route long_context_summary)", "gemma4:e4b on this laptop"
    taking_over: str
    # How many of the model's tokens one of brain's estimated tokens turned out to be, when
    # the model refused a request as too long (code, tables, base64: denser than prose).
    scale: float = 1.0

    @property
    def budget(self) -> int | None:
        """Input tokens (brain's estimate) one request may carry."""
        if self.limit is None:
            return None
        if self.name == "apex":  # LiteLLM's max_input_tokens is for input alone
            room = self.limit - NUM_CTX_MARGIN
        else:
            room = self.limit - self.answer - NUM_CTX_MARGIN
        return int(room / self.scale)


@dataclass
class Note:
    label: str  # "part 2 of 6: notes: ~/a.md, tp3"
    text: str
    partial: str = ""  # why the notes were cut short, when they were


@dataclass
class Part:
    units: list[Unit]
    text: str  # the input as kept
    messages: list[Message]
    label: str
    row: int | None = None


@dataclass
class Done:
    """A digest answered: the last request's Result and how it was made."""

    result: Result
    parts: int = 1  # parts the material was read in (1: whole)
    rounds: int = 0  # rounds that combined notes before the last request
    line: str = ""  # what the answer says about the parts ("" when whole)
    notify_pending: bool = False
    incomplete: list[str] = field(default_factory=list)  # parts whose notes were cut short
    transcript: Any = None  # what was heard in recordings given as material (--json)

    @property
    def exit_code(self) -> int:
        if self.incomplete:
            return 75
        return self.result.exit_code


class _MoveOn(Exception):
    """This backend could not answer (before its answer began): the next one takes over."""

    def __init__(
        self, name: str, reason: str, rows: list[int], too_long: bool = False, estimate: int = 0
    ) -> None:
        super().__init__(reason)
        self.name = name
        self.reason = reason
        self.rows = rows  # inputs exchange kept in the queue, now carried on (dropped)
        self.too_long = too_long  # the backend said the request was too long for it
        self.estimate = estimate  # brain's estimate of that request, in tokens
        self.room: Room | None = None  # the room last tried (smaller than at first, perhaps)


@dataclass
class _State:
    pending: list[Unit]  # material not yet read by any part
    notes: list[Note] = field(default_factory=list)
    parts: int = 0  # parts answered
    rounds: int = 0
    fallbacks: list[dict[str, str]] = field(default_factory=list)
    notify: bool = False
    incomplete: list[str] = field(default_factory=list)
    too_long: list[bool] = field(default_factory=list)  # per backend left: it said "too long"


# ----- the one entry point ----------------------------------------------------------------------


def answer(
    app: App, task: Task, instruction: str, units: list[Unit], sink: Sink, intro: str = ""
) -> Done:
    """The digest of `units`: one request when every backend it may use can read it all (the
    ladder then falls back as for any question), else in parts sized backend by backend."""
    text, messages = whole(task, instruction, intro, units)
    names, _left = ladder.order(app, task, app.mode, app.route or task.route)
    learned: dict[str, _MoveOn] = {}
    if fits_whole(app, task, messages):
        try:
            result = exchange.ask(app, exchange.Question(task, text, messages), sink)
            return Done(result, notify_pending=result.notify_pending)
        except BrainError as exc:
            learned = refused_as_too_long(exc, estimate_tokens(messages))
            if not learned:
                raise
            sink.notice(
                f"{one_line(exc.message, 200)} — it counts this material as more tokens than "
                "brain estimated: digesting it in parts."
            )
    if cost(instruction) > LONG_INSTRUCTION:
        # Words too long to go along with every part are material like the rest.
        units, instruction = [Unit("words", "the text given", instruction), *units], ""
    state = _State(pending=list(units))
    tokens = estimate_tokens(messages)
    for i, name in enumerate(names):
        room = room_for(app, task, name, tokens, names)
        shrunk = _smaller(room, learned[name]) if name in learned else None
        if shrunk is not None:  # it refused the whole: parts sized by what it said
            room = shrunk
        try:
            return _on_shrinking(
                app, task, room, state, instruction, intro, sink, shrunk is not None
            )
        except _MoveOn as moved:
            store = app.store()
            for row in moved.rows:
                store.drop(row)  # its material goes on in the next backend's parts
            state.fallbacks.append({"backend": name, "reason": moved.reason})
            state.too_long.append(moved.too_long)
            if i + 1 == len(names):
                last = moved.room or room  # the parts kept fit what it last said it reads
                raise _nothing_answered(app, task, last, state, moved, instruction) from None
            after = room_for(app, task, names[i + 1], tokens, names)
            what = "the rest" if state.parts else "it"
            how = (
                f"digesting {what} in parts that fit its context ({after.limit:,} tokens)"
                if after.limit
                else f"digesting {what} there"
            )
            sink.notice(f"{one_line(moved.reason, 200)} — {after.taking_over}: {how}.")
    raise AssertionError("unreachable")  # pragma: no cover


def fits_whole(app: App, task: Task, messages: list[Message]) -> bool:
    """Whether every backend the ladder may ask reads `messages` whole (by brain's estimate):
    then a digest is one question, with the usual fallback; else it is read in parts."""
    names, _left = ladder.order(app, task, app.mode, app.route or task.route)
    try:
        the_plan = ladder.plan(app, task, messages, mode=app.mode, route=app.route, model=app.model)
    except BadInput:
        return False  # longer than every backend's context
    return the_plan.backends == names


def refused_as_too_long(exc: BrainError, estimate: int) -> dict[str, _MoveOn]:
    """Per backend, what it said when every backend the whole went to refused it as too long
    (its tokenizer counts the material denser than brain's estimate); {} for any other
    failure."""
    tried = getattr(exc, "tried", None) or []
    if not tried or not all(getattr(e, "too_long", False) for _, e in tried):
        return {}
    return {
        name: _MoveOn(name, e.reason, [], too_long=True, estimate=estimate) for name, e in tried
    }


def whole(task: Task, instruction: str, intro: str, units: list[Unit]) -> tuple[str, list]:
    from brain.material import messages_for

    text = "\n\n".join(p for p in (instruction, intro, *(u.labelled() for u in units)) if p)
    return text, messages_for(task, text)


def room_for(app: App, task: Task, name: str, tokens: int, names: list[str]) -> Room:
    backend = app.backend(name)
    route = app.route or task.route
    if name == "apex" and not app.route and task.long_route and _past_local(app, names, tokens):
        route = task.long_route  # as ladder.plan chooses for input past the laptop's context
    model = backend.model_for(route, app.local_model)
    limit = backend.context_tokens(model, max(tokens, 1 << 20))
    if name == "apex":
        return Room(
            name,
            route,
            model,
            limit,
            task.max_tokens,
            f"Apex (route {route})",
            f"asking Apex ({route})",
        )
    answer_room = min(task.max_tokens, limit // 4) if limit else task.max_tokens
    return Room(
        name,
        route,
        model,
        limit,
        answer_room,
        f"{model} on this laptop",
        backend.taking_over(model),
    )


def _past_local(app: App, names: list[str], tokens: int) -> bool:
    limit = None
    if "local" in names:
        limit = app.backend("local").context_tokens(app.local_model, tokens)
    if limit is None:
        limit = int(app.settings.get("local", "context_tokens")) or 8192
    return tokens > limit


# ----- on one backend ---------------------------------------------------------------------------


def _on(
    app: App, task: Task, room: Room, state: _State, instruction: str, intro: str, sink: Sink
) -> Done:
    pinned = _pinned(app, room)
    # On the laptop every request keeps room for its answer inside the context (Ollama would
    # otherwise drop the start of the input to make room as it writes).
    part_task = replace(task, max_tokens=room.answer)
    if not state.notes:
        text, messages = whole(task, instruction, intro, state.pending)
        if _fits(room, messages):
            the_task = task if room.name == "apex" else part_task
            question = exchange.Question(the_task, text, messages, fallbacks=state.fallbacks)
            result = _ask(pinned, room, question, sink)
            return Done(result, notify_pending=result.notify_pending)
    if state.pending:
        parts = _parts(part_task, room, state.pending, instruction)
        # The units as the parts hold them (a long one cut into pieces): what is not read yet.
        state.pending = [u for p in parts for u in p.units]
        before = state.parts
        if room.limit is not None:
            sink.notice(
                f"the material ({size(_bytes(state.pending))}, ~{_tokens(state.pending):,} "
                f"tokens) is longer than {room.label} reads at once ({room.limit:,} tokens): "
                f"digesting it in {len(parts)} parts"
                + (", then their notes together." if len(parts) > 1 else ".")
            )
        if room.name == "apex" and len(parts) > 1:
            _concurrently(app, room, part_task, parts, state, sink)
        else:
            _one_by_one(pinned, room, part_task, parts, state, sink)
        if state.parts - before != len(parts):  # pragma: no cover - _MoveOn raised instead
            raise AssertionError("a part was neither answered nor carried on")
    return _combine(pinned, task, part_task, room, state, instruction, intro, sink)


def _on_shrinking(
    app: App,
    task: Task,
    room: Room,
    state: _State,
    instruction: str,
    intro: str,
    sink: Sink,
    shrunk: bool = False,
) -> Done:
    """`_on`; and when the backend refuses a request as too long for it (its tokenizer counts
    the material denser than brain's estimate: code, tables, base64, or its real context is
    smaller than it was said to be), `_on` again with the rest packed in parts sized by what
    it said, at most MAX_REPACK times. Then, or when no smaller part is worth asking, the next
    backend takes over (`answer`)."""
    for attempt in range(MAX_REPACK + 1):
        try:
            return _on(app, task, room, state, instruction, intro, sink)
        except _MoveOn as moved:
            smaller = _smaller(room, moved) if attempt < MAX_REPACK else None
            if smaller is None:
                moved.room = room
                raise
            store = app.store()
            for row in moved.rows:
                store.drop(row)  # its material goes on in the smaller parts
            sink.notice(
                f"{one_line(moved.reason, 200)} — {room.label} counts this material as more "
                "tokens than brain estimated: packing the rest in smaller parts for it."
            )
            room = smaller
        except BadInput as exc:
            if attempt == 0 and not shrunk:
                raise
            # The parts it could read would be too small to be worth asking: the next backend.
            raise _MoveOn(room.name, exc.message, [], too_long=True) from None
    raise AssertionError("unreachable")  # pragma: no cover


_TOKENS = re.compile(r"(\d[\d,]*)\s*tokens", re.I)
# What the servers say (tests/test_digest_parts.py has each): the input counted, the context.
_COUNTED = (
    re.compile(r"(\d[\d,]*) in the messages", re.I),  # vLLM: "... (2000 in the messages, ..."
    re.compile(r"resulted in (\d[\d,]*) tokens", re.I),  # OpenAI
    re.compile(r"request \((\d[\d,]*) tokens\)", re.I),  # llama.cpp
    re.compile(r"too long: (\d[\d,]*) tokens", re.I),  # Anthropic
)
_CONTEXT = (
    re.compile(r"context (?:length|size|window)[^\d]{0,20}(\d[\d,]*) tokens", re.I),
    re.compile(r"(\d[\d,]*) maximum", re.I),  # Anthropic: "210000 tokens > 200000 maximum"
)


def _said(reason: str) -> tuple[int | None, int | None]:
    """(the input tokens the server counted, the context it says it holds), either None."""

    def first(patterns: tuple[re.Pattern[str], ...]) -> int | None:
        for pattern in patterns:
            found = pattern.search(reason)
            if found:
                return int(found.group(1).replace(",", ""))
        return None

    counted, context = first(_COUNTED), first(_CONTEXT)
    numbers = [int(n.replace(",", "")) for n in _TOKENS.findall(reason)]
    if counted is None and numbers:
        counted = max(numbers)
    if context is None and len(numbers) >= 2:
        context = min(numbers)
    return counted, context


def _smaller(room: Room, moved: _MoveOn) -> Room | None:
    """The room with what a "too long" refusal taught: the context the server says it holds,
    and how many of its tokens one of brain's estimated ones is. None when the refusal
    teaches nothing to size parts by."""
    if not moved.too_long:
        return None
    counted, context = _said(moved.reason)
    limit = room.limit
    if context and room.name == "apex":
        context -= room.answer  # the server's context holds the answer too; Apex's is input
    if context and 0 < context < (limit or 1 << 62):
        limit = context
    if limit is None:
        return None  # a context not known, and not said: nothing to size parts by
    scale = room.scale * 2  # no count said: half the size
    if counted and moved.estimate > 0:
        scale = max(room.scale, counted / moved.estimate * 1.1)
    if limit == room.limit and scale <= room.scale:
        return None
    answer = room.answer
    if room.name != "apex" and limit != room.limit:  # a quarter of the real context answers
        answer = min(room.answer, max(limit // 4, 1))
    return replace(room, limit=limit, scale=scale, answer=answer)


def _pinned(app: App, room: Room) -> App:
    """The App this backend alone answers for (its store and backends shared: same thread)."""
    if room.name == "apex":
        return replace(app, mode=ONLINE, route=room.route)
    return replace(app, mode=OFFLINE)


def _fits(room: Room, messages: list[Message]) -> bool:
    return room.budget is None or estimate_tokens(messages) <= room.budget


def _ask(pinned: App, room: Room, question: exchange.Question, sink: Sink) -> Result:
    try:
        return exchange.ask(pinned, question, sink)
    except (Unreachable, BackendError) as exc:
        if isinstance(exc, BackendError) and not exc.too_long:
            raise
        tried = getattr(exc, "tried", None)
        reason = tried[-1][1].reason if tried else exc.message.splitlines()[-1]
        row = getattr(exc, "row", None)
        too_long = bool(getattr(exc, "too_long", False)) or bool(
            tried and getattr(tried[-1][1], "too_long", False)
        )
        raise _MoveOn(
            room.name,
            reason,
            [row] if row is not None else [],
            too_long=too_long,
            estimate=estimate_tokens(question.messages),
        ) from exc


# ----- the parts --------------------------------------------------------------------------------


def _prompt(name: str, words: int) -> str:
    return (_PROMPTS / f"{name}.md").read_text("utf-8").replace("{words}", str(words))


def _words(room: Room, budget: int, count: int) -> int:
    """How long each part's notes may be: short enough that all of them fit one last request
    when that is possible, never more than the answer room, never uselessly short."""
    share = budget * 0.7 / max(count, 1)
    return int(max(80, min(room.answer * 0.6, share)) * 0.75)


def _parts(task: Task, room: Room, units: list[Unit], instruction: str) -> list[Part]:
    if room.budget is None:  # a context not known holds anything: one part
        return _make_parts(room, [units], instruction, 1 << 30)
    budget = room.budget
    # The prompt's own size with the longest header a part can have.
    head = _part_head(instruction, 999, 999)
    system = _prompt("part", 9999)
    capacity = budget - estimate_tokens([{"content": system}, {"content": head}]) - 4
    if capacity * room.scale < MIN_BUDGET:  # in the model's own tokens
        raise BadInput(
            f"{room.label} reads at most {room.limit:,} tokens at once: too little to digest "
            "in parts (each part needs about "
            f"{MIN_BUDGET + room.answer + NUM_CTX_MARGIN + 300:,}).",
            "Use a model with a longer context (local.context_tokens, or `ollama show` for "
            "what it holds), or send less at a time.",
        )
    return _make_parts(room, pack(units, capacity), instruction, budget)


def _make_parts(room: Room, groups: list[list[Unit]], instruction: str, budget: int) -> list[Part]:
    words = _words(room, min(budget, 1 << 16), len(groups))
    parts: list[Part] = []
    for i, group in enumerate(groups, 1):
        head = _part_head(instruction, i, len(groups))
        text = "\n\n".join([head, *(u.labelled() for u in group)])
        messages = [
            {"role": "system", "content": _prompt("part", words)},
            {"role": "user", "content": text},
        ]
        label = f"part {i} of {len(groups)}: {_labels(group)}"
        parts.append(Part(group, text, messages, label))
        if estimate_tokens(messages) > budget:  # pragma: no cover - pack() is built to fit
            raise AssertionError(f"{label} does not fit {room.label}")
    return parts


def _part_head(instruction: str, i: int, n: int) -> str:
    head = f"Part {i} of {n} of the material for a digest."
    if instruction:
        head += f" The digest's instruction (for what to keep): {instruction}"
    return head


def _labels(units: list[Unit]) -> str:
    names = list(dict.fromkeys(u.label for u in units))
    return ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")


def _one_by_one(
    pinned: App, room: Room, task: Task, parts: list[Part], state: _State, sink: Sink
) -> None:
    for number, part in enumerate(parts):
        try:
            note = _read_part(pinned, room, task, part, state, _Prefixed(sink, part.label))
        except _MoveOn:
            state.pending = [u for p in parts[number:] for u in p.units]
            raise
        except (BrainError, KeyboardInterrupt) as exc:
            _keep(pinned, room, parts[number + 1 :], "the digest stopped before this part")
            raise _stopped(exc, parts[number + 1 :]) from None
        _taken(state, part, note)


def _read_part(pinned: App, room: Room, task: Task, part: Part, state: _State, sink: Sink) -> Note:
    question = exchange.Question(task, part.text, part.messages, fallbacks=list(state.fallbacks))
    result = _ask(pinned, room, question, sink)
    state.notify = state.notify or result.notify_pending
    a = result.answer
    note = Note(part.label, a.text.strip() or "(no notes: the model answered with no text)")
    if a.partial and not a.hit_max_tokens:
        note.partial = a.partial_reason
    for line in result.notes():
        sink.notice(line)
    return note


def _taken(state: _State, part: Part, note: Note) -> None:
    state.notes.append(note)
    state.parts += 1
    taken = {id(u) for u in part.units}
    state.pending = [u for u in state.pending if id(u) not in taken]
    if note.partial:
        state.incomplete.append(f"{part.label}: {note.partial}")


def _concurrently(
    app: App, room: Room, task: Task, parts: list[Part], state: _State, sink: Sink
) -> None:
    """Apex answers several parts at once (at most [digest] parallel); each worker has its own
    App (an SQLite connection belongs to its thread). Notes keep the parts' order."""
    # long: the pool's whole life: submit, collect in order, stop the rest on a failure.
    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

    heard: list[str] = []
    lock = threading.Lock()

    def work(part: Part) -> Note:
        worker = app.fork()
        worker.mode, worker.route = ONLINE, room.route
        try:
            return _read_part(worker, room, task, part, state, _Heard(heard, lock, part.label))
        finally:
            worker.close()

    parallel = int(app.settings.get("digest", "parallel"))
    notes: dict[int, Note] = {}
    failure: BaseException | None = None
    with ThreadPoolExecutor(max_workers=min(parallel, len(parts))) as pool:
        futures = {pool.submit(work, p): i for i, p in enumerate(parts)}
        pending = set(futures)
        sink.waiting(f"reading {len(parts)} parts on Apex, {parallel} at a time…")
        try:
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
                for future in done:
                    try:
                        notes[futures[future]] = future.result()
                    except BaseException as exc:
                        failure = failure or exc
                if failure is not None:
                    for future in pending:
                        future.cancel()  # not started: carried on or kept below
                    done, _ = wait(pending)
                    for future in done:
                        if not future.cancelled() and future.exception() is None:
                            notes[futures[future]] = future.result()
                    pending = set()
                _say(sink, heard, lock)
                if not failure and pending:
                    sink.waiting(f"parts on Apex: {len(notes)} of {len(parts)} read…")
        except KeyboardInterrupt as stopped:  # Ctrl-C, or SIGTERM/SIGHUP (Terminated)
            failure = stopped
            for future in pending:
                future.cancel()
    _say(sink, heard, lock)
    for i in sorted(notes):
        _taken(state, parts[i], notes[i])
    if failure is None:
        return
    _failed(app, room, parts, notes, futures, failure, state)


def _failed(
    app: App,
    room: Room,
    parts: list[Part],
    notes: dict[int, Note],
    futures: dict[Any, int],
    failure: BaseException,
    state: _State,
) -> None:
    """After a part failed on Apex: the rest goes on to the next backend (a _MoveOn), or the
    digest stops with what is kept said."""
    if isinstance(failure, _MoveOn):
        # Every part Apex did not answer goes on to the next backend; the inputs exchange kept
        # for the ones that failed are carried on with them.
        left = [p for i, p in enumerate(parts) if i not in notes]
        state.pending = [u for p in left for u in p.units]
        rows = [r for f in futures for r in _rows(f)]
        raise _MoveOn(failure.name, failure.reason, rows, failure.too_long, failure.estimate)
    # Kept for later, once each: the parts not asked, and those that failed in a way the next
    # backend would have taken over (their own inputs, queued or given up, are replaced by
    # the part); a part that failed otherwise is in the queue already.
    moved = [i for i in range(len(parts)) if i not in notes and _moved_on(futures, i)]
    store = app.store()
    for i in moved:
        for row in _rows(next(f for f, j in futures.items() if j == i)):
            store.drop(row)
    unsent = [
        p
        for i, p in enumerate(parts)
        if i not in notes and (not _was_asked(futures, i) or i in moved)
    ]
    _keep(app, room, unsent, "the digest stopped before this part")
    raise _stopped(failure, unsent) from None


def _rows(future: Any) -> list[int]:
    """The inputs exchange kept in the queue for a part that failed: its material goes on
    elsewhere, so they are dropped (a 429 beside a refusal would otherwise be read twice)."""
    exc = future.exception() if not future.cancelled() else None
    if isinstance(exc, _MoveOn):
        return list(exc.rows)
    row = getattr(exc, "row", None) if isinstance(exc, BrainError) else None
    return [row] if row is not None else []


def _moved_on(futures: dict[Any, int], index: int) -> bool:
    future = next(f for f, i in futures.items() if i == index)
    return not future.cancelled() and isinstance(future.exception(), _MoveOn)


def _was_asked(futures: dict[Any, int], index: int) -> bool:
    future = next(f for f, i in futures.items() if i == index)
    return not future.cancelled()


class _Prefixed:
    """A part's sink: its answer is not shown (the notes are for the last request); notices and
    the spinner name the part."""

    def __init__(self, sink: Sink, label: str) -> None:
        self.sink = sink
        self.label = label.split(":")[0]

    def delta(self, text: str) -> None:
        pass

    def notice(self, text: str) -> None:
        self.sink.notice(f"{self.label}: {text}")

    def waiting(self, text: str) -> None:
        self.sink.waiting(f"{self.label}: {text}")


class _Heard:
    """A worker thread's sink: notices wait for the main thread to print them."""

    def __init__(self, heard: list[str], lock: threading.Lock, label: str) -> None:
        self.heard, self.lock, self.label = heard, lock, label.split(":")[0]

    def delta(self, text: str) -> None:
        pass

    def notice(self, text: str) -> None:
        with self.lock:
            self.heard.append(f"{self.label}: {text}")

    def waiting(self, text: str) -> None:
        pass


def _say(sink: Sink, heard: list[str], lock: threading.Lock) -> None:
    with lock:
        lines, heard[:] = list(heard), []
    for line in lines:
        sink.notice(line)


# ----- the notes together -----------------------------------------------------------------------


def _combine(
    pinned: App,
    task: Task,
    part_task: Task,
    room: Room,
    state: _State,
    instruction: str,
    intro: str,
    sink: Sink,
) -> Done:
    """The last request: every note in one request; rounds of merging first when they do not
    fit. Its answer (streamed to the sink) is the digest."""
    final_task = part_task if room.name != "apex" else task
    if not state.notes:  # pragma: no cover - only material is read in parts
        raise BadInput(f"the input is longer than {room.label} reads at once ({room.limit:,}).")
    while True:
        text, messages = _final(task, state, instruction, intro)
        if _fits(room, messages):
            break
        if state.rounds >= MAX_ROUNDS:
            raise BadInput(
                f"the notes of {state.parts} parts did not fit {room.label} after "
                f"{state.rounds} rounds of combining them.",
                "Digest less at a time (`--since`, `--source`), or use a model with a longer "
                "context.",
            )
        _merge_round(pinned, room, part_task, state, instruction, sink)
    sink.waiting(f"writing the digest from the notes of {state.parts} parts…")
    question = exchange.Question(final_task, text, messages, fallbacks=list(state.fallbacks))
    try:
        result = _ask(pinned, room, question, sink)
    except _MoveOn:
        raise  # the notes are kept in state: the next backend combines them
    line = (
        f"_Digested in {state.parts} parts"
        + (f" and {state.rounds} rounds of combining notes" if state.rounds else "")
        + f": the material was longer than {room.label} reads at once "
        f"({room.limit:,} tokens)._"
    )
    return Done(
        result,
        parts=state.parts,
        rounds=state.rounds,
        line=line,
        notify_pending=state.notify or result.notify_pending,
        incomplete=state.incomplete,
    )


def _final(
    task: Task, state: _State, instruction: str, intro: str = ""
) -> tuple[str, list[Message]]:
    from brain.material import messages_for

    head = (
        f"The material was too long to read at once, so it was read in {state.parts} parts. "
        "Below are the notes made on each part, in order; write the digest from them."
    )
    body = "\n\n".join(f"--- notes on {n.label} ---\n{n.text}" for n in state.notes)
    text = "\n\n".join(p for p in (instruction, intro, head, body) if p)
    return text, messages_for(task, text)


def _merge_round(
    pinned: App, room: Room, task: Task, state: _State, instruction: str, sink: Sink
) -> None:
    """Merge neighbouring notes into fewer; each merge request fits. A note too long to share
    a request with another is shortened alone, so every round leaves fewer notes."""
    budget = room.budget or 0
    system = _prompt("merge", 9999)
    capacity = budget - estimate_tokens([{"content": system}, {"content": instruction}]) - 16
    units = [Unit("notes", f"notes on {n.label}", n.text) for n in state.notes]
    # A note too long to share a request is merged alone (shortened); one longer than a
    # request is cut into pieces like any material.
    groups = pack(units, capacity)
    state.rounds += 1
    words = _words(room, budget, max(2, len(groups)))
    merged: list[Note] = []
    for i, group in enumerate(groups, 1):
        text = "\n\n".join(
            p
            for p in (
                instruction and f"The digest's instruction: {instruction}",
                *(u.labelled() for u in group),
            )
            if p
        )
        messages = [
            {"role": "system", "content": _prompt("merge", words)},
            {"role": "user", "content": text},
        ]
        label = f"round {state.rounds}, group {i} of {len(groups)}"
        sink.waiting(f"combining notes: {label}…")
        question = exchange.Question(task, text, messages, fallbacks=list(state.fallbacks))
        result = _ask(pinned, room, question, _Prefixed(sink, label))
        state.notify = state.notify or result.notify_pending
        covered = _span(group)
        merged.append(Note(covered, result.answer.text.strip() or "(no notes)"))
    state.notes = merged


def _span(group: list[Unit]) -> str:
    labels = [u.label.removeprefix("notes on ") for u in group]
    first, last = labels[0].split(":")[0], labels[-1].split(":")[0]
    return first if first == last else f"{first} to {last}"


# ----- packing ----------------------------------------------------------------------------------


def cost(text: str) -> int:
    """Tokens `text` adds to brain's estimate (brain.backends.estimate_tokens), rounded up:
    the sum over pieces is never below the estimate of the pieces joined."""
    ascii_count = len(text.encode("ascii", "ignore"))
    return math.ceil(ascii_count / 3.5) + (len(text) - ascii_count) + 1


def pack(units: list[Unit], capacity: int, *, keep_whole: bool = False) -> list[list[Unit]]:
    """Units in order, in groups whose labelled text costs at most `capacity` tokens; a unit
    longer than that is cut at line ends into labelled pieces (unless `keep_whole`)."""
    pieces: list[Unit] = []
    for unit in units:
        if keep_whole or cost(unit.labelled()) <= capacity:
            pieces.append(unit)
        else:
            pieces.extend(split(unit, capacity))
    groups: list[list[Unit]] = []
    current: list[Unit] = []
    used = 0
    for piece in pieces:
        c = cost(piece.labelled()) + 1  # the blank line between two
        if current and used + c > capacity:
            groups.append(current)
            current, used = [], 0
        current.append(piece)
        used += c
    if current:
        groups.append(current)
    return groups


def split(unit: Unit, capacity: int) -> list[Unit]:
    """`unit` cut at line ends (a line longer than a piece: between characters) into pieces
    whose labelled text costs at most `capacity`; nothing is lost or repeated."""
    label = unit.label or unit.source
    room = capacity - cost(f"--- {label} (piece 9999 of 9999) ---\n") - 1
    chunks: list[str] = []
    current: list[str] = []
    used = 0
    for line in unit.text.splitlines(keepends=True):
        pieces = [line] if cost(line) <= room else _cut(line, room)
        for piece in pieces:
            c = cost(piece)
            if current and used + c > room:
                chunks.append("".join(current))
                current, used = [], 0
            current.append(piece)
            used += c
    if current:
        chunks.append("".join(current))
    total = len(chunks)
    return [
        Unit(unit.source, f"{label} (piece {i} of {total})", chunk)
        for i, chunk in enumerate(chunks, 1)
    ]


def _cut(line: str, room: int) -> list[str]:
    pieces: list[str] = []
    while line:
        n = max(1, int((room - 1) * 3.5))
        while n > 1 and cost(line[:n]) > room:
            n = max(1, int(n * 0.8))
        pieces.append(line[:n])
        line = line[n:]
    return pieces


def _bytes(units: list[Unit]) -> int:
    return sum(len(u.text.encode("utf-8")) for u in units)


def _tokens(units: list[Unit]) -> int:
    return sum(cost(u.labelled()) for u in units)


# ----- when it cannot finish --------------------------------------------------------------------


def _keep(app: App, room: Room, parts: list[Part], why: str) -> None:
    """Parts never sent: kept in the queue, as any input nothing answered."""
    if not parts:
        return
    store = app.store()
    for part in parts:
        row = store.add("digest", room.route, part.text, part.messages)
        store.release(row, why)


def _stopped(exc: BaseException, unsent: list[Part]) -> BaseException:
    """The error to raise when the digest stops part-way; it says what is kept."""
    kept = (
        f" The {len(unsent)} part{'s' if len(unsent) != 1 else ''} not yet sent "
        f"{'are' if len(unsent) != 1 else 'is'} kept in the queue too (`brain queue list`)."
        if unsent
        else ""
    )
    if isinstance(exc, KeyboardInterrupt):
        stopped = Interrupted(
            "Interrupted; the parts read so far are in the history." + kept,
            "The next `brain digest` gathers the same material again.",
        )
        stopped.exit_code = 128 + getattr(exc, "signum", 2)  # 130 Ctrl-C, 143 SIGTERM, 129 HUP
        return stopped
    if isinstance(exc, BrainError):
        exc.fix = ((exc.fix or "") + kept).strip()
        return exc
    return exc


def _nothing_answered(
    app: App, task: Task, room: Room, state: _State, moved: _MoveOn, instruction: str
) -> BrainError:
    """Every backend failed: what each said, and what is kept (the material not yet read,
    in parts that fit the last backend tried; or, when only the notes were left to combine,
    that last request). When every one said "too long", even for parts sized by what it
    said, nothing is kept in the queue: input too long for every model is bad input (65)."""
    if state.too_long and all(state.too_long):
        said = "; ".join(
            f"{f['backend']}: {one_line(f['reason'], 200).rstrip('.')}" for f in state.fallbacks
        )
        notes = (
            f" The notes on the {state.parts} parts read are in the history." if state.parts else ""
        )
        return BadInput(
            f"the material is too dense for every model it may go to, even in parts ({said}).",
            "Send less at a time, or use a model with a longer context (local.context_tokens, "
            "`ollama show` for what a model holds); nothing was put in the queue." + notes,
        )
    parts: list[Part] = []
    if state.pending:
        try:
            parts = _parts(replace(task, max_tokens=room.answer), room, state.pending, instruction)
        except BadInput:
            text, messages = whole(task, instruction, "", state.pending)
            parts = [Part(state.pending, text, messages, "the material")]
    elif state.notes:
        text, messages = _final(task, state, instruction)
        parts = [Part([], text, messages, "the notes")]
    _keep(app, room, parts, one_line(moved.reason, 300))
    lines = ["Nothing could finish the digest; what it gathered is kept."]
    lines += [f"{f['backend']}: {one_line(f['reason'], 300)}" for f in state.fallbacks]
    kept = []
    if parts:
        kept.append(f"{len(parts)} input{'s' if len(parts) != 1 else ''} in the queue")
    if state.parts:
        kept.append(f"the notes on {state.parts} parts in the history")
    fix = (
        f"Kept: {' and '.join(kept) or 'nothing was left to keep'} "
        "(`brain queue list`, `brain history`). Start Apex or the local model, then run "
        "`brain digest` again: it gathers the same material again."
    )
    return Unreachable("\n".join(lines), fix)
