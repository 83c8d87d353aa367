"""Voice: a recording among a task's material, transcribed into its input (DESIGN.md, "Voice
brain dumps").

Owns which files are audio (AUDIO_ENDINGS), the recordings an input holds until they are
transcribed (each has a slot in the input's text, filled by its transcript), the transcription
ladder (Apex's `[voice] route` first, then Whisper on this laptop: brain.voice.apex,
brain.voice.local; `--offline` and `--online` as for questions), and keeping a recording that
nothing could transcribe (copied into brain's data dir, its input queued for `brain queue run`).

What must stay true:
- A recording is never lost: an input with a recording is kept (brain.exchange) before it is
  transcribed; when nothing can transcribe it, the file is copied into the data dir and the
  input waits in the queue with its path.
- Nothing here downloads a model. The laptop's Whisper model is fetched only by `brain voice
  fetch` (brain.voice.local.fetch); transcribing uses what is on disk, or says how to get it,
  at once (the patio has no internet, and a download must never hang a command).
No click, rich or prompt_toolkit; prints nothing (progress and notices go to the Sink).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from brain.errors import BackendError, BadInput, BrainError, ConfigError, Unreachable
from brain.voice.base import Transcript, clock

__all__ = ["Transcript", "clock"]  # defined with the transcribers' shape; named here too

if TYPE_CHECKING:
    from brain.app import App
    from brain.backends.base import Sink
    from brain.voice.base import Transcriber

AUDIO_ENDINGS = (".wav", ".mp3", ".m4a", ".ogg", ".oga", ".flac", ".webm", ".opus")
MAX_AUDIO_BYTES = 1 << 30  # a 1 GiB recording is hours of speech; past that it is a mistake
QUEUED_DIR = "audio"  # in the data dir: recordings waiting in the queue
RECORDINGS_DIR = "recordings"  # in the data dir: what `--record` recorded


def is_audio(name: str) -> bool:
    return name.lower().endswith(AUDIO_ENDINGS)


@dataclass
class Audio:
    """One recording of an input: as the user named it, where it is, and its slot in the
    input's text until its transcript takes its place."""

    name: str
    path: Path
    slot: str

    @classmethod
    def of(cls, name: str, path: Path) -> Audio:
        # The token keeps a slot from matching text the user typed.
        import secrets

        slot = f"[recording {Path(name).name}: not transcribed yet ({secrets.token_hex(3)})]"
        return cls(name, path.expanduser().absolute(), slot)

    def as_row(self) -> dict[str, str]:
        return {"name": self.name, "path": str(self.path), "slot": self.slot}


@dataclass
class Recordings:
    """The recordings of one input, and what was heard of them so far."""

    files: list[Audio]
    transcript: Transcript | None = None
    heard: list[Transcript] = field(default_factory=list)

    def pending(self, text: str) -> list[Audio]:
        """Recordings whose slot is still in `text` (not transcribed yet)."""
        return [a for a in self.files if a.slot in text]

    def as_row(self) -> dict[str, Any]:
        return {
            "files": [a.as_row() for a in self.files],
            "transcript": self.transcript.as_json() if self.transcript else None,
        }

    @classmethod
    def from_row(cls, data: dict[str, Any] | None) -> Recordings | None:
        if not data:
            return None
        files = []
        for f in data.get("files") or []:
            if isinstance(f, dict) and f.get("path") and f.get("slot"):
                files.append(Audio(str(f.get("name") or f["path"]), Path(f["path"]), f["slot"]))
        if not files:
            return None
        kept = cls(files)
        heard = data.get("transcript")
        if isinstance(heard, dict) and isinstance(heard.get("text"), str):
            seconds = heard.get("audio_seconds")
            kept.transcript = Transcript(
                heard["text"],
                str(heard.get("backend") or ""),
                str(heard.get("model") or ""),
                float(seconds) if isinstance(seconds, int | float) else None,
                int(heard.get("ms") or 0),
            )
            kept.heard.append(kept.transcript)
        return kept


def check_file(path: Path, name: str) -> None:
    """A recording brain can send: readable, not empty, not absurdly large (BadInput)."""
    try:
        size = path.stat().st_size
        with path.open("rb"):
            pass
    except OSError as exc:
        raise BadInput(f"cannot read {name}: {exc.strerror}") from exc
    if size == 0:
        raise BadInput(f"{name} is empty: there is no recording in it.")
    if size > MAX_AUDIO_BYTES:
        raise BadInput(
            f"{name} is more than {MAX_AUDIO_BYTES >> 30} GiB; brain transcribes recordings "
            "up to that size.",
            "Cut it into parts (e.g. `ffmpeg -i IN -f segment -segment_time 1800 part%d.m4a`).",
        )


# ----- the ladder ---------------------------------------------------------------------------


def order(app: App) -> list[str]:
    """Who may transcribe, in order: Apex, then this laptop (by the mode, as for questions)."""
    from brain.app import OFFLINE, ONLINE

    names = []
    if app.mode != OFFLINE and app.settings.apex_url:
        names.append("apex")
    if app.mode != ONLINE:
        names.append("local")
    if not names:
        raise ConfigError(
            "Apex is not configured, and --online allows nothing else to transcribe.",
            "To use Apex: `brain config init` asks its URL and key; then `brain status`.",
        )
    return names


def transcriber(app: App, name: str) -> Transcriber:
    if name == "apex":
        from brain.voice.apex import ApexTranscriber

        return ApexTranscriber(app)
    from brain.voice.local import LocalWhisper

    return LocalWhisper(app)


def transcribe(app: App, audio: Audio, sink: Sink) -> Transcript:
    """The transcript of one recording from the first transcriber that can make it."""
    check_file(audio.path, audio.name)
    tried: list[tuple[Transcriber, BackendError]] = []
    for name in order(app):
        worker = transcriber(app, name)
        if tried:
            from brain.client import one_line

            sink.notice(f"{one_line(tried[-1][1].reason, 200)} — {worker.taking_over(audio)}.")
        try:
            heard = worker.transcribe(audio, sink)
        except BackendError as exc:
            if not exc.fallback_ok:
                raise
            tried.append((worker, exc))
            continue
        if not heard.text.strip():
            raise BadInput(
                f"no speech was heard in {audio.name}"
                + (f" ({clock(heard.audio_seconds)} of audio)." if heard.audio_seconds else "."),
                "Check the recording plays, and that the microphone was on.",
            )
        return heard
    raise _nothing_transcribed(audio, tried, app)


def _nothing_transcribed(
    audio: Audio, tried: list[tuple[Transcriber, BackendError]], app: App
) -> Unreachable:
    lines = [f"Nothing could transcribe {audio.name}; it is kept in the queue."]
    fixes: list[str] = []
    if app.mode != "offline" and not app.settings.apex_url:
        lines.append("Apex: not configured (apex.url is empty)")
    for worker, error in tried:
        reason, fix = worker.explain(error)
        lines.append(
            reason if reason.lower().startswith(worker.name) else f"{worker.name}: {reason}"
        )
        if fix:
            fixes.append(fix)
    fixes.append("Then `brain queue run` transcribes and answers it (`brain queue list` shows it).")
    return Unreachable("\n".join(lines), "\n".join(dict.fromkeys(fixes)))


def fill(app: App, recordings: Recordings, text: str, messages: list[Any], sink: Sink) -> tuple:
    """Transcribe the recordings still pending in `text`; (text, messages) with each slot
    filled by its transcript. `recordings.transcript` says what was heard (all of it)."""
    for audio in recordings.pending(text):
        heard = transcribe(app, audio, sink)
        recordings.heard.append(heard)
        text = text.replace(audio.slot, heard.text.strip(), 1)
        messages = [
            {**m, "content": str(m.get("content", "")).replace(audio.slot, heard.text.strip())}
            for m in messages
        ]
        recordings.transcript = merged(recordings.heard)
    return text, messages


def merged(heard: list[Transcript]) -> Transcript:
    """One transcript for several recordings (their texts in order, the times added)."""
    if len(heard) == 1:
        return heard[0]
    seconds = [h.audio_seconds for h in heard]
    return Transcript(
        text="\n\n".join(h.text.strip() for h in heard),
        backend=heard[-1].backend,
        model=heard[-1].model,
        audio_seconds=None if None in seconds else sum(s or 0.0 for s in seconds),
        ms=sum(h.ms for h in heard),
    )


def park(app: App, recordings: Recordings, text: str, error: BrainError) -> None:
    """Nothing could transcribe: copy each pending recording into the data dir (the original
    may be deleted, or on a card), so the queued input keeps it. Says where in `error`."""
    folder = app.data_dir / QUEUED_DIR
    import secrets
    import shutil

    kept = []
    for audio in recordings.pending(text):
        if _inside(audio.path, app.data_dir):
            kept.append(audio.path)
            continue
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            stamp = time.strftime("%Y%m%d-%H%M%S")
            target = folder / f"{stamp}-{secrets.token_hex(2)}-{audio.path.name}"
            shutil.copy2(audio.path, target)
            target.chmod(0o600)
        except OSError as exc:
            error.message += f"\n(could not copy {audio.name} into {folder}: {exc.strerror})"
            continue
        audio.path = target
        kept.append(target)
    if kept:
        error.message += "\nThe recording is kept: " + ", ".join(str(p) for p in kept)


def forget(audio: dict[str, Any] | None) -> str:
    """Delete the copies `park` made for a queued input that is dropped (only those: a
    recording elsewhere is the user's); their names, or ""."""
    from brain.settings import data_dir

    recordings = Recordings.from_row(audio)
    folder = data_dir() / QUEUED_DIR
    gone = []
    for a in recordings.files if recordings else []:
        if _inside(a.path, folder):
            try:
                a.path.unlink()
            except OSError:
                continue
            gone.append(a.name)
    return ", ".join(gone)


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except (ValueError, OSError):
        return False
    return True


def recording_path(app: App) -> Path:
    """Where `--record` writes the next recording (in the data dir: kept whatever happens)."""
    folder = app.data_dir / RECORDINGS_DIR
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder / time.strftime("memo-%Y%m%d-%H%M%S.wav")
