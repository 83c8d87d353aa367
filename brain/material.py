"""What the user gives a task, turned into the input that is kept and the messages sent.

The rules (DESIGN.md, "Conventions of the command line"): piped stdin and files named as
arguments are the material, the other words the instruction; empty input is a usage error;
binary or non-UTF-8 input is refused; a word that looks like a file but names nothing is
refused (a typo must not silently become the instruction). A recording (brain.voice.AUDIO_ENDINGS)
is material too: it is not read here but holds a slot in the input that its transcript fills
(brain.voice, brain.exchange). Every read is bounded: the whole
input is at most MAX_INPUT_BYTES, and nothing past that is read (an endless pipe is refused
after MAX_INPUT_BYTES + 1 bytes, not read to the end). The cap is on the whole request as
composed (instruction, stdin and every file, from the command line, the REPL or MCP alike),
with MAX_LABELS bytes allowed for the file labels brain adds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from brain import voice
from brain.client import Message
from brain.errors import BadInput, UsageError
from brain.files import expand, utf8_size
from brain.tasks import Task

MAX_INPUT_BYTES = 4 * 1024 * 1024
MAX_LABELS = 64 * 1024  # the "--- name ---" lines brain puts between files

# Endings that make a single word look like a file the user meant to send.
_FILE_ENDINGS = (
    *(".md", ".txt", ".log", ".csv", ".json", ".yaml", ".yml", ".toml", ".diff", ".patch"),
    *(".py", ".js", ".ts", ".rs", ".go", ".html", ".tex", ".rst"),
    *voice.AUDIO_ENDINGS,
)


@dataclass
class Material:
    name: str  # "stdin" or a file path
    text: str
    audio: voice.Audio | None = None  # a recording: its transcript becomes the text


def too_big(name: str, limit: int = MAX_INPUT_BYTES) -> BadInput:
    return BadInput(
        f"{name} is more than {limit // 1024} KiB; brain sends at most {limit // 1024} KiB "
        "in one question.",
        "Send a smaller part, or split it over several questions.",
    )


def read_bounded(stream: BinaryIO, name: str, limit: int = MAX_INPUT_BYTES) -> bytes:
    """At most `limit` bytes of `stream`; BadInput (without reading on) past that. (A
    bytearray: what `decode` reads, without a copy of up to 4 MiB.)"""
    data = bytearray()
    while True:
        chunk = stream.read(min(1 << 16, limit + 1 - len(data)))
        if not chunk:
            return data  # type: ignore[return-value]
        data += chunk
        if len(data) > limit:
            raise too_big(name, limit)


def decode(data: bytes, name: str, limit: int | None = MAX_INPUT_BYTES) -> str:
    """Text from bytes, or BadInput for anything that is not text (or longer than `limit`
    bytes; None: no limit here, as for a digest's sources, which are capped as a whole)."""
    if limit is not None and len(data) > limit:
        raise too_big(name, limit)
    if b"\x00" in data[:8192]:
        raise BadInput(f"{name} looks binary (it contains NUL bytes); brain sends text only.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadInput(
            f"{name} is not UTF-8 text; brain sends text only.",
            "Convert it first, e.g. `iconv -f latin1 -t utf-8 FILE > FILE.txt`.",
        ) from None


def read_stdin(stream: BinaryIO | None, is_tty: bool) -> str | None:
    """Piped stdin as material, or None when stdin is a terminal or empty."""
    if stream is None or is_tty:
        return None
    data = read_bounded(stream, "stdin")
    return decode(data, "stdin") if data else None


def read_file(path: Path, name: str, budget: int = MAX_INPUT_BYTES) -> str:
    try:
        if path.stat().st_size > budget:
            raise too_big(name, budget) if budget == MAX_INPUT_BYTES else _over_total()
        with path.open("rb") as fh:
            data = read_bounded(fh, name, budget)
    except OSError as exc:
        raise BadInput(f"cannot read {name}: {exc.strerror}") from exc
    return decode(data, name)


def _over_total() -> BadInput:
    return BadInput(
        f"the files together are more than {MAX_INPUT_BYTES // 1024} KiB; brain sends at most "
        f"{MAX_INPUT_BYTES // 1024} KiB in one question.",
        "Name fewer files, or split them over several questions.",
    )


def split_args(words: tuple[str, ...] | list[str], used: int = 0) -> tuple[str, list[Material]]:
    """Arguments that name existing files are material; the rest is the instruction.
    `used`: bytes of material already taken (stdin), counted against the one cap."""
    instruction: list[str] = []
    material: list[Material] = []
    for word in words:
        _check_utf8(word)
        path = expand(word)
        plain = bool(word) and not any(c.isspace() for c in word) and len(word) < 4096
        if word and "\n" not in word and len(word) < 4096 and _exists(path.is_file):
            if voice.is_audio(word):
                voice.check_file(path, word)
                material.append(Material(word, "", voice.Audio.of(word, path)))
                continue
            text = read_file(path, word, MAX_INPUT_BYTES - used)
            used += utf8_size(text)
            material.append(Material(word, text))
        elif "/" in word and len(word) < 4096 and _exists(path.is_dir):
            raise BadInput(
                f"{word} is a directory", f"Name the files, e.g. `{word.rstrip('/')}/*.md`."
            )
        elif plain and _looks_like_a_file(word) and not _exists(path.exists):
            raise BadInput(
                f"no such file: {word}",
                "Check the name. To send it as words, put it inside a quoted instruction.",
            )
        else:
            instruction.append(word)
    return " ".join(instruction).strip(), material


def _check_utf8(word: str) -> None:
    try:
        word.encode("utf-8")
    except UnicodeEncodeError:
        raise BadInput(
            "an argument is not valid UTF-8 text (the terminal sent other bytes).",
            "Set the terminal to UTF-8, or pipe the text in: `iconv -t utf-8 FILE | brain ...`.",
        ) from None


def _looks_like_a_file(word: str) -> bool:
    # "notes/monday.md", "./draft", "~/x" look like files; "and/or", "v1.2", "e.g." do not.
    return word.startswith(("./", "../", "~/")) or word.lower().endswith(_FILE_ENDINGS)


def _exists(check: Callable[[], bool]) -> bool:
    # A long instruction is not a path: stat() raises ENAMETOOLONG past 255 bytes a name.
    try:
        return check()
    except OSError:
        return False


def compose(task: Task, instruction: str, material: list[Material]) -> tuple[str, list[Message]]:
    """The user's input as stored, and the messages sent for it. Each material's text is
    right-stripped in place."""
    if not instruction and not any(_has_text(m.text) or m.audio for m in material):
        raise UsageError(
            "nothing to send: give an instruction, pipe text in, or name files.",
            f'For example: brain {task.name} "..."   or   cat notes.md | brain {task.name}',
        )
    parts: list[str] = []
    if instruction:
        parts.append(instruction)
    several = len(material) > 1
    for m in material:
        if m.audio is not None:  # the transcript comes in its slot (brain.voice.fill)
            parts.append(
                f"--- {m.name} (transcript) ---\n{m.audio.slot}" if several else m.audio.slot
            )
            continue
        # Stripped in place: the unstripped text is let go before the join, so a 4 MiB input
        # is held twice at most while composing, not three times (issue 32).
        m.text = m.text.rstrip()
        if not m.text:
            continue
        if several or m.name != "stdin":
            parts.append(f"--- {m.name} ---\n{m.text}")
        else:
            parts.append(m.text)
    text = "\n\n".join(parts)
    if len(text) > MAX_INPUT_BYTES // 4 and utf8_size(text) > MAX_INPUT_BYTES + MAX_LABELS:
        raise too_big("the input (instruction and material together)")
    return text, messages_for(task, text)


def _has_text(text: str) -> bool:
    return bool(text) and not text.isspace()  # no stripped copy of a 4 MiB text to ask


def recordings(material: list[Material]) -> voice.Recordings | None:
    """The recordings among `material` (for brain.exchange.Question.audio), or None."""
    files = [m.audio for m in material if m.audio is not None]
    return voice.Recordings(files) if files else None


def messages_for(task: Task, text: str) -> list[Message]:
    return [
        {"role": "system", "content": task.prompt.strip()},
        {"role": "user", "content": text},
    ]
