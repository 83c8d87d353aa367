"""Transcribing on this laptop: faster-whisper (CTranslate2) with the model `[voice]
local_model` (or BRAIN_WHISPER_MODEL) names: a size name (`base.en`) or a directory holding a
CTranslate2 Whisper model. Needs the optional extra `voice` (brain.install names the command for
how brain was installed), imported only when a recording is transcribed here.

Owns finding the model on disk (a directory; brain's own copy in the data dir, where `brain
voice fetch` puts it; the Hugging Face cache, read without the network), fetching it while
online (`fetch`, bounded), and transcribing segment by segment with progress. What must stay
true: transcribing never downloads anything (`local_files_only`): a model that is not on disk
is a message saying how to get it, at once, never a wait on a network the patio does not have.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from brain.errors import BackendError, BadInput, NotInstalled, TemporaryFailure
from brain.voice.base import Transcriber, Transcript, clock, progress

if TYPE_CHECKING:
    from brain.app import App
    from brain.backends.base import Check, Sink
    from brain.voice import Audio

MODELS_DIR = "whisper"  # in the data dir: models `brain voice fetch` fetched
# Greedy decoding: on a laptop's CPU it takes about half the time of beam search (bench/voice.md)
# for the same words on a clear memo.
BEAM_SIZE = 1
STALL_SECONDS = 60.0  # a fetch that receives nothing for this long gives up

_loaded: dict[str, Any] = {}  # path -> WhisperModel: a REPL or MCP server loads it once
_lock = threading.Lock()


def installed() -> bool:
    try:
        import faster_whisper  # noqa: F401
    except ImportError:
        return False
    return True


def models_dir(app: App) -> Path:
    return app.data_dir / MODELS_DIR


def spec(app: App) -> str:
    return str(app.settings.get("voice", "local_model")).strip()


def is_path(name: str) -> bool:
    return name.startswith(("/", "~", ".")) or os.sep in name or (os.altsep or "/") in name


def short_name(name: str) -> str:
    """How messages name a model: its size name, or the last parts of its directory."""
    if not is_path(name):
        return name
    parts = Path(name).expanduser().parts
    return "/".join(parts[-2:]) if len(parts) > 1 else name


def sizes() -> list[str]:
    from faster_whisper.utils import available_models

    return list(available_models())


class Missing(Exception):
    """The model is not on this laptop: `why`, and `fix`."""

    def __init__(self, why: str, fix: str) -> None:
        super().__init__(why)
        self.why, self.fix = why, fix


def locate(app: App, name: str | None = None) -> Path:
    """The directory of the Whisper model `name` (default: the configured one) on this
    laptop, without the network; Missing says why not and what to do."""
    name = name or spec(app)
    if is_path(name):
        path = Path(name).expanduser()
        if (path / "model.bin").is_file():
            return path
        why = f"{path} does not exist" if not path.exists() else f"{path} holds no model.bin"
        raise Missing(
            f"no Whisper model there: {why}",
            "Point [voice] local_model at a directory holding a CTranslate2 Whisper model "
            "(model.bin, config.json, tokenizer.json), or name a size such as base.en.",
        )
    own = models_dir(app) / name
    if (own / "model.bin").is_file():
        return own
    if installed():
        if name not in sizes() and "/" not in name:
            raise Missing(
                f"there is no Whisper model called `{name}`",
                f"Name one of {', '.join(sizes())}, or a directory holding a CTranslate2 "
                "Whisper model ([voice] local_model or BRAIN_WHISPER_MODEL).",
            )
        found = _hub_cache(name)
        if found is not None:
            return found
    raise Missing(
        f"the Whisper model {name} is not on this laptop",
        f"While online, `brain voice fetch` fetches it (into {models_dir(app)}).",
    )


def _hub_cache(name: str) -> Path | None:
    """The model in the Hugging Face cache (another tool may have fetched it), read with
    `local_files_only`: no request leaves this laptop."""
    from faster_whisper.utils import download_model

    try:
        path = Path(download_model(name, local_files_only=True))
    except Exception:  # not cached (huggingface_hub's errors vary by version)
        return None
    return path if (path / "model.bin").is_file() else None


def install_hint() -> str:
    """How to install faster-whisper where brain runs (the `voice` extra's transcriber)."""
    from brain import install

    return f"Install it with {install.add('faster-whisper>=1.1')}."


def _import() -> Any:
    try:
        import faster_whisper
    except ImportError:
        reason = "faster-whisper is not installed (the `voice` extra)"
        raise BackendError(reason, install_hint(), reason=reason) from None
    return faster_whisper


def load(path: Path) -> Any:
    """The model at `path`, loaded once per process (int8 on the CPU: what a laptop has)."""
    fw = _import()
    key = str(path.resolve())
    with _lock:
        model = _loaded.get(key)
        if model is None:
            try:
                model = fw.WhisperModel(key, device="cpu", compute_type="int8")
            except (RuntimeError, ValueError, OSError) as exc:
                reason = f"the Whisper model at {path} could not be loaded: {exc}"
                raise BackendError(
                    reason,
                    "Fetch it again (`brain voice fetch --force`), or point [voice] "
                    "local_model at another model.",
                    reason=reason,
                ) from None
            _loaded[key] = model
    return model


class LocalWhisper(Transcriber):
    name = "local"

    def label(self) -> str:
        return f"Whisper {short_name(spec(self.app))} on this laptop"

    def taking_over(self, audio: Audio) -> str:
        return f"transcribing {audio.name} on this laptop with Whisper {short_name(spec(self.app))}"

    def transcribe(self, audio: Audio, sink: Sink) -> Transcript:

        _import()
        name = spec(self.app)
        try:
            path = locate(self.app, name)
        except Missing as missing:
            raise BackendError(missing.why, missing.fix, reason=missing.why) from None
        label = short_name(name)
        sink.waiting(f"loading Whisper {label} on this laptop…")
        model = load(path)
        start = time.monotonic()
        english = label.endswith(".en") or _english_only(path)
        try:
            segments, info = model.transcribe(
                str(audio.path),
                language="en" if english else None,
                beam_size=BEAM_SIZE,
                vad_filter=True,  # silence is skipped, not decoded (a memo has pauses)
                condition_on_previous_text=False,  # no runaway repetition on long memos
            )
        except Exception as exc:  # PyAV's decode errors have many types
            raise _unreadable(audio, exc) from None
        total = float(getattr(info, "duration", 0.0) or 0.0)
        pieces: list[str] = []
        try:
            for segment in segments:  # decoded one by one, as they are asked for
                text = segment.text.strip()
                if text:
                    pieces.append(text)
                progress(
                    sink,
                    f"transcribing {audio.name} on this laptop ({label}): "
                    f"{clock(min(segment.end, total) if total else segment.end)} of {clock(total)}"
                    + (f" · {_tail(text)}" if text else ""),
                )
        except (RuntimeError, ValueError, MemoryError) as exc:  # CTranslate2 or the decoder
            from brain.client import one_line

            reason = f"Whisper failed on this laptop: {one_line(str(exc) or type(exc).__name__)}"
            raise BackendError(reason, reason=reason) from None
        ms = int((time.monotonic() - start) * 1000)
        sink.notice(
            f"transcribed {audio.name} ({clock(total)}) on this laptop with Whisper {label} "
            f"in {ms / 1000:.1f} s."
        )
        return Transcript(" ".join(pieces), "local", label, total or None, ms)

    def checks(self) -> list[Check]:
        return [check(self.app)]


def _english_only(path: Path) -> bool:
    """A model directory whose tokenizer has no language tokens is English-only."""
    try:
        import json

        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return False
    lang = config.get("lang_ids") if isinstance(config, dict) else None
    return isinstance(lang, list) and len(lang) == 0


def _tail(text: str, width: int = 48) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1) :]


def _unreadable(audio: Audio, exc: Exception) -> BadInput:
    from brain.client import one_line

    return BadInput(
        f"{audio.name} could not be read as audio: {one_line(str(exc) or type(exc).__name__, 200)}",
        "Check that it plays; brain reads wav, mp3, m4a, ogg, opus, flac and webm.",
    )


def check(app: App) -> Check:
    """One `brain status` line: can this laptop transcribe, and with which model."""
    from brain.backends.base import Check

    name = spec(app)
    if not installed():
        return Check(
            "whisper",
            None,
            "not installed (optional: transcribes voice memos on this laptop)",
            install_hint(),
        )
    try:
        path = locate(app, name)
    except Missing as missing:
        return Check("whisper", False, missing.why, missing.fix)
    return Check("whisper", True, f"{name} is on this laptop ({path})")


# ----- fetching, while online -----------------------------------------------------------------


def fetch(
    app: App,
    name: str | None = None,
    *,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Download the Whisper model `name` (a size name) into brain's data dir, from Hugging
    Face (huggingface_hub, as faster-whisper does). Bounded by content, as brain's own
    requests are: the download runs in a child process that is ended when no byte has arrived
    for stall_seconds() (a hub that accepts and never answers must not hang the command).
    `progress` is told the bytes fetched so far. Only a model that loads takes its place."""
    name = name or spec(app)
    if is_path(name):
        raise BadInput(
            f"{name} is a directory, not a model to fetch.",
            "`brain voice fetch` takes a size name such as base.en; a directory is used as it is.",
        )
    if not installed():
        raise NotInstalled(
            "fetching a Whisper model needs faster-whisper (the `voice` extra).", install_hint()
        )
    if name not in sizes():
        raise BadInput(
            f"there is no Whisper model called `{name}`", f"Sizes: {', '.join(sizes())}."
        )
    target = models_dir(app) / name
    if (target / "model.bin").is_file() and not force:
        return target
    import shutil

    partial = target.with_name(name + ".part")
    shutil.rmtree(partial, ignore_errors=True)  # what a stopped fetch left
    partial.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        _download(name, partial, progress)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if not (partial / "model.bin").is_file():
        raise _not_fetched(name, "it arrived without its model.bin")
    shutil.rmtree(partial / ".cache", ignore_errors=True)  # huggingface_hub's bookkeeping
    try:  # a model that does not load is no model: better told now than on the patio
        load(partial)
    except BackendError as exc:
        raise _not_fetched(name, f"what arrived does not load ({exc.reason})") from None
    finally:
        _loaded.pop(str(partial.resolve()), None)
    if target.exists():
        shutil.rmtree(target)
    partial.rename(target)
    return target


# The download runs in a child process: huggingface_hub retries in threads of its own that a
# Python process waits for at exit, so only a process brain can end is sure to stop.
_DOWNLOAD = (
    "import sys, warnings\n"
    "warnings.simplefilter('ignore')\n"  # faster-whisper passes an argument hf_hub retired
    "from faster_whisper.utils import download_model\n"
    "download_model(sys.argv[1], output_dir=sys.argv[2])\n"
)


def _download(name: str, folder: Path, progress: Callable[[int], None] | None) -> None:
    """faster-whisper's download_model into `folder`, in a child process watched for bytes:
    ended when nothing arrives for stall_seconds() (or on Ctrl-C)."""
    import subprocess
    import sys
    import tempfile

    stall = stall_seconds()
    with tempfile.TemporaryFile() as log:
        child = subprocess.Popen(
            [sys.executable, "-c", _DOWNLOAD, name, str(folder)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        try:
            seen, still = -1, time.monotonic()
            while child.poll() is None:
                try:
                    child.wait(0.5)
                except subprocess.TimeoutExpired:
                    pass
                size = _bytes_under(folder)
                if size != seen:
                    seen, still = size, time.monotonic()
                    if progress is not None:
                        progress(size)
                elif time.monotonic() - still > stall:
                    raise _not_fetched(
                        name, f"nothing arrived for {stall:.0f} s (the connection stalled)"
                    )
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        if child.returncode != 0:
            log.seek(0)
            raise _not_fetched(name, _last_error(log.read().decode("utf-8", "replace")))


def _last_error(text: str) -> str:
    """The cause in a child's traceback: its last line, without the exception's module path."""
    from brain.client import one_line

    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else "the download ended without saying why"
    head, sep, rest = last.partition(": ")
    if sep and "Error" in head and " " not in head:
        last = rest
    return one_line(last, 240)


def stall_seconds() -> float:
    """How long a fetch may go without a byte: STALL_SECONDS, or three times
    HF_HUB_DOWNLOAD_TIMEOUT when that is set (huggingface_hub's own knob, respected)."""
    try:
        return max(3 * float(os.environ["HF_HUB_DOWNLOAD_TIMEOUT"]), 1.0)
    except (KeyError, ValueError):
        return STALL_SECONDS


def _bytes_under(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file():
                total += path.stat().st_size
        except OSError:
            pass
    return total


def _not_fetched(name: str, why: str) -> TemporaryFailure:
    return TemporaryFailure(
        f"could not fetch the Whisper model {name}: {why}",
        "Fetch it where there is internet (it comes from Hugging Face); then `brain status` "
        "says it is there. Or point [voice] local_model at a directory holding one.",
    )
