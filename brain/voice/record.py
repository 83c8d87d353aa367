"""Recording from the microphone (`brain dump --record`, the REPL's `/record`): mono 16-bit WAV
written to brain's data dir as it is recorded, until Enter (or the end of stdin), with the
elapsed time and the level drawn by the caller's `meter`.

Uses sounddevice (PortAudio), the optional extra `voice`, imported only here. Where it, the
PortAudio library or a microphone is missing, the error says what to install or check, before
anything is recorded. What must stay true: the recording is on disk before anything is sent
(Ctrl-C keeps it, too, and says how to send it), and a recording is never left half-written:
the WAV file is closed whatever stops it.
"""

from __future__ import annotations

import math
import queue
import threading
import wave
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from brain import install
from brain.errors import BadInput, BrainError, Interrupted, NotInstalled, Unreachable

RATE = 16000  # Whisper's own rate; the device's rate when it cannot record at this one
MAX_SECONDS = 3 * 3600  # a recording left running stops by itself after this long
OR_PHONE = "Or record on your phone and give brain the file: `brain dump memo.m4a`."


class NoMicrophone(Unreachable):
    """PortAudio is there, but no device records sound."""


@dataclass
class Recording:
    path: Path
    seconds: float


def sounddevice() -> Any:
    """The sounddevice module, or NotInstalled naming what to install."""
    try:
        import sounddevice as sd
    except ImportError:
        raise NotInstalled(
            "recording needs the `sounddevice` package (the `voice` extra), which is not "
            "installed.",
            f"Install it with {install.add('sounddevice>=0.5')}. {OR_PHONE}",
        ) from None
    except OSError as exc:  # sounddevice's own words: "PortAudio library not found"
        raise NotInstalled(
            f"recording needs the PortAudio library, which is not installed ({exc}).",
            "On Debian or Ubuntu: `sudo apt install libportaudio2`; on Fedora: `sudo dnf "
            "install portaudio` (macOS and Windows get it with sounddevice). " + OR_PHONE,
        ) from None
    return sd


def microphone(sd: Any) -> dict[str, Any]:
    """The default input device, or NoMicrophone."""
    try:
        device = sd.query_devices(kind="input")
    except Exception as exc:  # sd.PortAudioError or ValueError: no input device
        raise NoMicrophone(
            f"no microphone found: PortAudio sees no device that records ({exc}).",
            "Plug in or turn on a microphone, and check that this user may use it (the "
            f"system's sound settings; on Linux, the `audio` group). {OR_PHONE}",
        ) from None
    if not isinstance(device, dict) or int(device.get("max_input_channels", 0)) < 1:
        raise NoMicrophone("no microphone found: the default device records nothing.", OR_PHONE)
    return device


def level(data: bytes) -> float:
    """How loud a block of 16-bit samples is, from 0 (silence, -60 dB) to 1 (full scale)."""
    samples = array("h")
    samples.frombytes(data[: len(data) - len(data) % 2])
    if not samples:
        return 0.0
    rms = math.sqrt(sum(s * s for s in samples) / len(samples)) / 32768.0
    if rms <= 0.001:
        return 0.0
    return max(0.0, min(1.0, 1.0 + 20 * math.log10(rms) / 60))


def record(
    path: Path,
    stop: threading.Event,
    meter: Callable[[float, float], None],
    max_seconds: float = MAX_SECONDS,
) -> Recording:
    """Record into `path` until `stop` is set (or max_seconds). Ctrl-C ends the recording
    too (KeyboardInterrupt, raised after the file is closed)."""
    sd = sounddevice()
    device = microphone(sd)
    blocks: queue.Queue[bytes] = queue.Queue()

    def callback(indata: Any, _frames: int, _time: Any, _status: Any) -> None:
        blocks.put(bytes(indata))

    rate = RATE
    try:
        stream = sd.RawInputStream(
            samplerate=rate, channels=1, dtype="int16", blocksize=rate // 10, callback=callback
        )
    except Exception:  # the device cannot record at 16 kHz: use its own rate
        rate = int(device.get("default_samplerate") or 48000)
        try:
            stream = sd.RawInputStream(
                samplerate=rate, channels=1, dtype="int16", blocksize=rate // 10, callback=callback
            )
        except Exception as exc:
            raise NoMicrophone(f"the microphone could not be opened: {exc}", OR_PHONE) from None
    frames = 0
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        try:
            with stream:
                while not stop.is_set() and frames < max_seconds * rate:
                    try:
                        data = blocks.get(timeout=0.1)
                    except queue.Empty:
                        meter(frames / rate, 0.0)
                        continue
                    out.writeframes(data)
                    frames += len(data) // 2
                    meter(frames / rate, level(data))
        finally:
            while not blocks.empty():  # what arrived before the stream closed
                data = blocks.get_nowait()
                out.writeframes(data)
                frames += len(data) // 2
    return Recording(path, frames / rate)


def until_enter(stream: TextIO, stop: threading.Event) -> threading.Thread:
    """A thread that sets `stop` when a line (Enter) or the end of `stream` arrives."""

    def wait() -> None:
        try:
            stream.readline()
        except (OSError, ValueError):
            pass
        stop.set()

    thread = threading.Thread(target=wait, name="record-until-enter", daemon=True)
    thread.start()
    return thread


def capture(app: Any, out: Any, stdin: TextIO) -> Recording:
    """Record a memo as a person at the terminal does: checks first (nothing to install, a
    microphone), then until Enter, the meter on `out` (brain.render.Output.meter)."""
    from brain import voice

    sd = sounddevice()
    microphone(sd)
    path = voice.recording_path(app)
    stop = threading.Event()
    out.notice(
        "recording from the microphone: press Enter to stop (Ctrl-C stops and sends nothing)."
    )
    until_enter(stdin, stop)
    try:
        made = record(path, stop, out.meter)
    except KeyboardInterrupt:
        out.meter_end()
        stopped = Interrupted(
            f"Recording stopped; nothing was sent. The recording is kept: {path}",
            f"Send it with `brain dump {path}`.",
        )
        stopped.started = False
        raise stopped from None
    except BrainError:
        out.meter_end()
        _forget(path)
        raise
    out.meter_end()
    if made.seconds < 0.3:
        _forget(path)
        raise BadInput(
            "nothing was recorded (Enter came at once); nothing was sent.",
            "Run it again, and speak before pressing Enter.",
        )
    out.notice(f"recorded {voice.clock(made.seconds)}: {path}")
    return made


def _forget(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
