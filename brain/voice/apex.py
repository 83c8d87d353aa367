"""Transcribing on Apex: `POST {apex.url}/v1/audio/transcriptions` (multipart, as OpenAI's
API and LiteLLM take it), `model` = `[voice] route`, through the shared client.

Owns the upload (the recording streamed from disk; `.oga` and `.opus` named `.ogg`, the name
OpenAI-style servers accept for the same container), the wait for the transcript (bounded:
a deadline that grows with the recording's length, the liveness probe beside it as beside a
question, so a dead Apex is left within about a second), and reading LiteLLM's answer
(`verbose_json`: text and duration; `x-litellm-model-id`: who transcribed). Apex's key, its
probe verdicts and its error words are the chat backend's (brain.backends.apex).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from brain import install
from brain.client import (
    Deadline,
    NetError,
    TooBig,
    describe,
    error_message,
    http,
    read_body,
    transport_error,
    watching,
)
from brain.errors import BackendError, KeyProblem
from brain.offline import probe
from brain.voice.base import Transcriber, Transcript, clock, progress

if TYPE_CHECKING:
    from brain.app import App
    from brain.backends.base import Check, Sink
    from brain.voice import Audio

MIME = {
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/ogg",
    ".flac": "audio/flac",
    ".webm": "audio/webm",
}
# Apex's Whisper takes a minute of speech in seconds; Groq's in well under one. Allow for a
# slow GPU and the upload: this much to begin with, and this share of the recording's length.
BASE_WAIT = 60.0
WAIT_PER_AUDIO_SECOND = 0.5
BYTES_PER_SECOND_GUESS = 4000  # a 32 kbit/s memo, when the length is not known before sending


class ApexTranscriber(Transcriber):
    name = "apex"

    def __init__(self, app: App) -> None:
        super().__init__(app)
        self.chat = app.backend("apex")  # its URL, key, timeouts and probe verdicts
        self.url = app.settings.apex_url
        self.route = str(app.settings.get("voice", "route"))

    def label(self) -> str:
        return f"Apex ({self.url}, route {self.route})"

    def taking_over(self, audio: Audio) -> str:
        return f"transcribing {audio.name} on Apex"

    def transcribe(self, audio: Audio, sink: Sink) -> Transcript:

        chat: Any = self.chat
        cache = self.app.cache_dir
        seen = probe.away(cache, self.url, chat.fail_ttl)
        if seen is not None:
            reason = f"Apex ({self.url}): {seen.reason} (seen in the last few seconds)"
            error = BackendError(reason, reason=reason, transport=True)
            error.timeout = True
            raise error
        seconds = audio_seconds(audio)
        size = audio.path.stat().st_size
        wait = BASE_WAIT + WAIT_PER_AUDIO_SECOND * (seconds or size / BYTES_PER_SECOND_GUESS)
        length = f", {clock(seconds)}" if seconds else ""
        progress(sink, f"transcribing {audio.name} on Apex ({self.route}{length})…")
        start = time.monotonic()
        status, body, headers = self._post(audio, wait)
        ms = int((time.monotonic() - start) * 1000)
        if status != 200:
            raise self._refused(status, body, headers)
        try:
            text = body["text"]
            if not isinstance(text, str):
                raise TypeError
        except (KeyError, TypeError):
            reason = f"Apex ({self.url}) answered with something that is not a transcript"
            raise BackendError(reason, reason=reason) from None
        duration = body.get("duration")
        if isinstance(duration, int | float) and not isinstance(duration, bool) and duration > 0:
            seconds = float(duration)
        model = headers.get("x-litellm-model-id") or str(body.get("model") or self.route)
        probe.remember(cache, probe.Verdict(self.url, True, "", time.time(), ms))
        sink.notice(
            f"transcribed {audio.name}"
            + (f" ({clock(seconds)})" if seconds else "")
            + f" on Apex ({model}) in {ms / 1000:.1f} s."
        )
        return Transcript(text.strip(), "apex", model, seconds, ms)

    def _post(self, audio: Audio, wait: float) -> tuple[int, Any, dict[str, str]]:
        import httpx

        chat: Any = self.chat
        deadline = Deadline(wait, connect=chat.connect)
        beside = probe.Beside(self.url, deadline, chat.connect)
        url = self.url + "/v1/audio/transcriptions"
        suffix = audio.path.suffix.lower()
        upload_name = audio.path.stem + (".ogg" if suffix in (".oga", ".opus") else suffix)
        timeout = httpx.Timeout(connect=chat.connect, read=wait, write=wait, pool=5.0)
        try:
            with (
                watching(deadline),
                audio.path.open("rb") as fh,
                http(url).stream(
                    "POST",
                    url,
                    files={"file": (upload_name, fh, MIME.get(suffix, "application/octet-stream"))},
                    data={"model": self.route, "response_format": "verbose_json"},
                    headers=chat.headers(),
                    timeout=timeout,
                ) as response,
            ):
                deadline.start()  # Apex answered: the probe beside may no longer cancel
                raw = read_body(response)
                status, headers = response.status_code, dict(response.headers)
        except (httpx.HTTPError, NetError, TooBig) as exc:  # NetError: brain's own reads
            if deadline.cancelled:
                error = BackendError(deadline.why, reason=deadline.why, transport=True)
                error.timeout = "timed out" in deadline.why
            elif isinstance(exc, TooBig):
                reason = f"Apex ({self.url}) {describe(exc)}"
                error = BackendError(reason, reason=reason)
            else:
                error = transport_error("Apex", self.url, exc)
                if error.timeout and not error.transport:
                    error.reason = error.message = (
                        f"Apex ({self.url}): no transcript within {wait:.0f} s"
                    )
            chat._remember_failure(error, beside)
            if error.transport:
                error.reason = error.message = probe.with_tailscale(error.reason)
            raise error from None
        except OSError as exc:  # the recording itself could not be read
            from brain.errors import BadInput

            raise BadInput(f"cannot read {audio.name}: {exc.strerror}") from exc
        text = raw.decode("utf-8", "replace")
        try:
            body: Any = json.loads(text) if text.strip() else None
        except ValueError:
            body = text
        return status, body, headers

    def _refused(
        self, status: int, body: Any, headers: dict[str, str]
    ) -> BackendError | KeyProblem:
        """Apex did not transcribe. A key it refuses stops here (as for a question); anything
        else lets this laptop try: a missing route, a rate limit, a sick Whisper server."""
        from brain.backends.apex import key_problem, key_refused
        from brain.client import one_line

        chat: Any = self.chat
        if key_refused(status, body):
            return key_problem(status, bool(chat.key()))
        message = one_line(error_message(body))
        if status == 400 and "invalid model name" in message.lower():
            reason = f"Apex has no `{self.route}` route for speech"
            return BackendError(
                reason,
                "Add it to Apex: `brain apex render` writes the `transcribe` group "
                f"({install.doc('voice.md')}); "
                "or set [voice] route to the route Apex has.",
                reason=reason,
            )
        reason = f"Apex ({self.url}) could not transcribe (HTTP {status}): {message}"
        return BackendError(reason, "`brain status` shows what brain sees of Apex.", reason=reason)

    def explain(self, error: BackendError) -> tuple[str, str]:
        if error.transport:
            return self.chat.explain(error)
        return error.reason, error.fix or ""

    def checks(self) -> list[Check]:
        return []


def audio_seconds(audio: Audio) -> float | None:
    """The recording's length when it can be told cheaply: a WAV's header (the standard
    library), else PyAV when the `voice` extra is installed; None otherwise."""
    import wave

    try:
        with wave.open(str(audio.path), "rb") as w:
            rate = w.getframerate()
            return w.getnframes() / rate if rate else None
    except (wave.Error, EOFError, OSError):
        pass
    try:
        import av  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        with av.open(str(audio.path)) as container:
            if container.duration:
                return float(container.duration) / 1_000_000
    except Exception:  # a file PyAV cannot read: the length stays unknown
        return None
    return None
