"""The benchmark's prompts: the three shipped with brain, and the user's own from a TOML file.

A prompt names a task (its system prompt, and on Apex its route), an instruction, optional
material files and a rubric for `--judge`. The file format is documented in docs/bench.md.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from brain.errors import ConfigError

KEYS = {
    "task": "the task whose system prompt (and route) it uses, e.g. dump, digest, draft, ask",
    "title": "one line saying what it is",
    "text": "the instruction sent as the user's message",
    "material": "a list of files sent as material, relative to the prompts file",
    "rubric": "rubric lines for --judge, one criterion a line",
    "max_tokens": "a cap on the answer's length in tokens (default: the task's)",
}
DEFAULT_RUBRIC = """
- Faithful: nothing is invented; facts, names and dates match the input.
- Useful: the answer does what the instruction asks, in the form it asks for.
- Brevity: no padding and no preamble.
"""


@dataclass(frozen=True)
class BenchPrompt:
    name: str
    task: str
    title: str
    text: str
    material: tuple[tuple[str, str], ...] = ()  # (name shown to the model, text)
    rubric: str = DEFAULT_RUBRIC
    max_tokens: int | None = None
    source: str = "brain"  # "brain" for the shipped ones, else the file it came from


def shipped() -> list[BenchPrompt]:
    """The three prompts that ship with brain, their material read from package data."""
    root = resources.files("brain.bench")
    data = tomllib.loads(root.joinpath("prompts.toml").read_text("utf-8"))

    def read(rel: str) -> str:
        return root.joinpath(*rel.split("/")).read_text("utf-8")

    return _parse(data, "brain", read)


def from_file(path: Path) -> list[BenchPrompt]:
    """The user's prompts: `[prompts.NAME]` tables; errors name the file, key and the fix."""
    path = path.expanduser()
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"cannot read the prompts file {path}: {exc.strerror}",
            "Check the path given to --prompts.",
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{path} is not valid TOML: {exc}", "Fix the file; docs/bench.md shows the format."
        ) from exc
    base = path.parent

    def read(rel: str) -> str:
        file = Path(rel).expanduser()
        if not file.is_absolute():
            file = base / file
        try:
            return file.read_text("utf-8")
        except OSError as exc:
            raise ConfigError(
                f"{path}: cannot read the material file {file}: {exc.strerror}",
                "Paths in `material` are relative to the prompts file.",
            ) from exc
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: the material file {file} is not UTF-8 text.") from None

    found = _parse(data, str(path), read)
    if not found:
        raise ConfigError(
            f"{path} has no prompts.",
            'Add tables like [prompts.my-test] with task = "ask" and text = "..." (docs/bench.md).',
        )
    return found


def _parse(data: dict[str, Any], source: str, read: Any) -> list[BenchPrompt]:
    unknown = [k for k in data if k != "prompts"]
    if unknown:
        raise ConfigError(
            f"{source}: unknown top-level key `{unknown[0]}`",
            "Prompts go in tables named [prompts.NAME].",
        )
    tables = data.get("prompts", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"{source}: `prompts` must be tables like [prompts.NAME]")
    out = []
    for name, fields in tables.items():
        where = f"{source}: [prompts.{name}]"
        if not isinstance(fields, dict):
            raise ConfigError(f"{where} must be a table")
        for key in fields:
            if key not in KEYS:
                raise ConfigError(
                    f"{where}: unknown key `{key}`", f"Valid keys: {', '.join(KEYS)}."
                )
        for key in ("task", "title", "text", "rubric"):
            if key in fields and not isinstance(fields[key], str):
                raise ConfigError(f"{where}: `{key}` must be a string", f"Expected {KEYS[key]}.")
        material = fields.get("material", [])
        if not isinstance(material, list) or not all(isinstance(m, str) for m in material):
            raise ConfigError(
                f"{where}: `material` must be a list of file paths", f"Expected {KEYS['material']}."
            )
        max_tokens = fields.get("max_tokens")
        if max_tokens is not None and (
            not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens <= 0
        ):
            raise ConfigError(f"{where}: `max_tokens` must be a positive whole number")
        text = fields.get("text", "").strip()
        if not text and not material:
            raise ConfigError(
                f"{where} has neither `text` nor `material`", "Give it an instruction to send."
            )
        out.append(
            BenchPrompt(
                name=name,
                task=fields.get("task", "ask"),
                title=fields.get("title", name),
                text=text,
                material=tuple((Path(m).name, read(m)) for m in material),
                rubric=fields.get("rubric", DEFAULT_RUBRIC).strip(),
                max_tokens=max_tokens,
                source=source,
            )
        )
    return out


def judge_instructions() -> str:
    return resources.files("brain.bench").joinpath("judge.md").read_text("utf-8")
