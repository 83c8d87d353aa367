"""The shape every transcriber has, as a chat backend has brain.backends.base.Backend's:

`name` (what `--json` calls it: apex | local), `label()` (how a message names it),
`transcribe(audio, sink)` (returns a Transcript, or raises BackendError when it cannot, with
`fallback_ok` saying whether the next one may try), `taking_over(audio)` (the end of the
one-line fallback notice), `explain(error)` (reason and fix for "nothing could transcribe")
and `checks()` (what `brain status` shows of it).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from brain.errors import BackendError

if TYPE_CHECKING:
    from brain.app import App
    from brain.backends.base import Check, Sink
    from brain.voice import Audio


class Transcriber(ABC):
    name = ""

    def __init__(self, app: App) -> None:
        self.app = app

    @abstractmethod
    def label(self) -> str: ...

    @abstractmethod
    def transcribe(self, audio: Audio, sink: Sink) -> Transcript: ...

    def taking_over(self, audio: Audio) -> str:
        return f"transcribing {audio.name} with {self.label()}"

    def explain(self, error: BackendError) -> tuple[str, str]:
        return error.reason, error.fix or ""

    def checks(self) -> list[Check]:
        return []


def progress(sink: Sink, text: str) -> None:
    """A progress line: the sink's own `progress` (brain.render.Output), else its spinner."""
    show = getattr(sink, "progress", None) or sink.waiting
    show(text)


@dataclass
class Transcript:
    """What a transcriber heard; `--json` prints it as `transcript`."""

    text: str
    backend: str  # apex | local
    model: str
    audio_seconds: float | None
    ms: int

    def as_json(self) -> dict[str, Any]:
        seconds = None if self.audio_seconds is None else round(self.audio_seconds, 1)
        return {
            "text": self.text,
            "backend": self.backend,
            "model": self.model,
            "audio_seconds": seconds,
            "ms": self.ms,
        }


def clock(seconds: float | None) -> str:
    """1:04, or 1:02:03 for an hour and more."""
    if seconds is None:
        return "?"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
