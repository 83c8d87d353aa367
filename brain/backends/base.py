"""The shape every backend has, and what they share: the Answer, the request, the sink that
receives the answer as it arrives, and the collector that turns content into deltas under a
deadline that counts content (brain.client.Deadline).

A backend is: `name` (what --json calls it), `label()` (how a message names it),
`chat(request, sink)` (streamed; returns an Answer or raises), `context_tokens(model, tokens)`
(how much input it can read, when known), `explain(error)` (reason and fix when it could not
answer), `checks()` (what `brain status` shows of it), and `state()` (what the REPL toolbar
shows without asking the network).
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from brain.client import MAX_ANSWER, Deadline, Message
from brain.errors import BackendError

if TYPE_CHECKING:
    from brain.app import App


class Sink(Protocol):
    """Where an answer goes while it arrives: the terminal, a pipe, an MCP log."""

    def delta(self, text: str) -> None: ...

    def notice(self, text: str) -> None: ...

    def waiting(self, text: str) -> None: ...


class NullSink:
    def delta(self, text: str) -> None:
        pass

    def notice(self, text: str) -> None:
        pass

    def waiting(self, text: str) -> None:
        pass


@dataclass
class Answer:
    """What one backend returned; `partial` when it stopped before its natural end."""

    text: str = ""
    backend: str = ""
    route: str = ""
    model: str = ""
    usage: dict[str, int] = field(default_factory=dict)
    first_token_ms: int | None = None
    total_ms: int = 0
    cost: float | None = None
    partial: bool = False
    partial_reason: str = ""
    apex_fallbacks: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # said after the answer (e.g. truncation)

    @property
    def hit_max_tokens(self) -> bool:
        return self.partial and self.partial_reason == MAX_TOKENS_REASON


MAX_TOKENS_REASON = "the answer hit the task's max_tokens limit"


@dataclass
class ChatRequest:
    """One question for one backend: the model (a route on Apex, a model name locally)."""

    model: str
    messages: list[Message]
    temperature: float | None = None
    max_tokens: int | None = None
    tokens: int = 0  # estimated input tokens (brain.backends.estimate_tokens)


@dataclass
class Check:
    """One line of `brain status`: ok True/False, or None for "not applicable / unknown"."""

    name: str
    ok: bool | None
    detail: str
    fix: str = ""


class Collector:
    """Gathers an answer's content: deltas to the sink, the first-token time, the deadline
    moved on content only, a bound on the answer's size, and why it stopped early."""

    def __init__(self, answer: Answer, sink: Sink, deadline: Deadline) -> None:
        self.answer = answer
        self.sink = sink
        self.deadline = deadline
        self.start = time.monotonic()
        self.pieces: list[str] = []
        self.size = 0
        self.started = False

    def add(self, text: str) -> bool:
        """Take a piece of the answer; False once the answer passed MAX_ANSWER (stop reading)."""
        if not text:
            return True
        if not self.started:
            self.started = True
            self.deadline.start()  # a probe beside the request may no longer cancel it
            self.answer.first_token_ms = int((time.monotonic() - self.start) * 1000)
        self.deadline.progress()
        self.size += len(text)
        if self.size > MAX_ANSWER:
            self.stop(f"the answer passed {MAX_ANSWER >> 20} MiB; brain stopped reading it")
            return False
        self.pieces.append(text)
        self.sink.delta(text)
        return True

    def progress(self) -> None:
        """Content that is not answer text (a model's reasoning): the model is alive."""
        self.deadline.progress()

    def stop(self, reason: str) -> None:
        """The answer ends here, cut short. Before the first token that is a failure."""
        if not self.started:
            raise BackendError(reason, reason=reason)
        self.answer.partial = True
        self.answer.partial_reason = self.answer.partial_reason or reason

    def finish(self) -> Answer:
        self.answer.text = "".join(self.pieces)
        self.answer.total_ms = int((time.monotonic() - self.start) * 1000)
        return self.answer


def usage_from(answer: Answer, usage: Any, names: tuple[str, str]) -> None:
    """Token counts from a usage object (`names`: its prompt and completion fields)."""
    if not isinstance(usage, dict):
        return
    for ours, theirs in zip(("prompt_tokens", "completion_tokens"), names, strict=True):
        value = usage.get(theirs)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            answer.usage[ours] = value


def money(value: Any) -> float | None:
    """A cost as a finite, non-negative number, or None (a `nan` header is not a cost)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


class Backend(ABC):
    """The common part of every backend; subclasses fill in the rest."""

    name = ""  # apex | local | anthropic: the --json `backend` field

    def __init__(self, app: App) -> None:
        self.app = app

    @abstractmethod
    def label(self) -> str: ...

    def model_for(self, route: str, local_model: str) -> str:
        """What this backend is asked for: Apex a route, a local server a model."""
        return local_model

    @abstractmethod
    def chat(self, request: ChatRequest, sink: Sink) -> Answer: ...

    def context_tokens(self, model: str, tokens: int) -> int | None:
        """Input tokens `model` can read here, when known (None: unknown, assume it fits).
        `tokens` is the request's estimated size: a backend may skip asking when it is small."""
        return None

    def explain(self, error: BackendError) -> tuple[str, str]:
        """(reason, fix) for "nothing could answer"."""
        return error.reason, error.fix or ""

    def taking_over(self, model: str) -> str:
        """The end of the one-line fallback notice: "— answering on this laptop with X"."""
        return f"asking {self.label()}"

    def checks(self, model: str) -> list[Check]:
        return []

    def state(self) -> tuple[str, str]:
        """For the REPL toolbar, without network: ("ok" | "away" | "unknown", why)."""
        return "unknown", ""


Factory = Callable[["App"], Backend]


class LocalServer(Backend):
    """What every kind of server on the laptop shares: its URL, the first-token deadline
    (a cold model loads slowly) and the context cap from `local.context_tokens`."""

    name = "local"

    def __init__(self, app: App) -> None:
        super().__init__(app)
        self.url = app.settings.local_url
        self.first_token = float(app.settings.get("local", "first_token_timeout"))
        self.cap = int(app.settings.get("local", "context_tokens"))

    def taking_over(self, model: str) -> str:
        return f"answering on this laptop with {model}"


# Below this, an input (with room for an answer) fits any model a local server runs.
SMALL_CONTEXT = 4096


class LazyLocal(Backend):
    """The laptop's backend, made (and its kind detected) on first real use. Answers "does a
    small input fit?" without asking: every model a local server runs holds SMALL_CONTEXT."""

    name = "local"

    def __init__(self, app: App, make: Callable[[], Backend]) -> None:
        super().__init__(app)
        self._make = make
        self._real: Backend | None = None
        self.cap = int(app.settings.get("local", "context_tokens"))

    @property
    def real(self) -> Backend:
        if self._real is None:
            self._real = self._make()
        return self._real

    def label(self) -> str:
        return self.real.label()

    def model_for(self, route: str, local_model: str) -> str:
        return self.real.model_for(route, local_model)

    def chat(self, request: ChatRequest, sink: Sink) -> Answer:
        return self.real.chat(request, sink)

    def context_tokens(self, model: str, tokens: int) -> int | None:
        if self.cap <= 0 and tokens + 2048 <= SMALL_CONTEXT:
            return None
        return self.real.context_tokens(self.real.model_for("", model), tokens)

    def explain(self, error: BackendError) -> tuple[str, str]:
        return self.real.explain(error)

    def taking_over(self, model: str) -> str:
        return self.real.taking_over(model)

    def checks(self, model: str) -> list[Check]:
        return self.real.checks(model)

    def state(self) -> tuple[str, str]:
        return self.real.state() if self._real is not None else ("unknown", "")

    def __getattr__(self, name: str) -> Any:
        # What only some kinds have (Ollama's `loaded`, `pulled`; a server's `served`).
        return getattr(self.real, name)
