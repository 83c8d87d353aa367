"""One question, start to finish: build the messages, keep the input, run the ladder, record.

Owns the input rules (piped stdin and files are material, arguments the instruction; empty is
a usage error, binary is refused), the write-before-send of the store, and the `--json`
result object (version 1, documented in docs/json.md). Prints nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brain import premium, secrets
from brain import settings as settings_mod
from brain.client import Message, OnDelta
from brain.errors import BadInput, BrainError, Interrupted, PipeClosed, UsageError
from brain.offline import ladder
from brain.settings import Settings
from brain.store import Store
from brain.tasks import Task

JSON_VERSION = 1
MAX_INPUT_BYTES = 4 * 1024 * 1024


@dataclass
class Material:
    name: str  # "stdin" or a file path
    text: str


@dataclass
class Result:
    outcome: ladder.Outcome
    row: int
    extra: dict[str, Any] = field(default_factory=dict)
    notify_pending: bool = False  # the Slack outbox has something to send

    def notes(self) -> list[str]:
        """What to tell the user after the answer, one line each: a fallback on Apex's side,
        the premium spend, an incomplete answer. Every front end (command, REPL, MCP) shows
        these the same way."""
        a = self.outcome.answer
        lines = [
            f"Apex fell back on its side: {fb['answered_by']} answered ({fb['reason'][:200]})."
            for fb in self.outcome.fallbacks
            if fb.get("answered_by")
        ]
        spent = self.extra.get("premium")
        if spent is not None:
            lines.append(spent.line())
        if a.partial:
            lines.append(
                f"the answer is incomplete: {a.partial_reason}. It is kept in the history, "
                "marked partial."
            )
        return lines

    def as_json(self) -> dict[str, Any]:
        a = self.outcome.answer
        return {
            "version": JSON_VERSION,
            "id": self.row,
            "answer": a.text,
            "task": self.outcome.task,
            "route": self.outcome.route,
            "backend": a.backend,
            "model": a.model,
            "fallbacks": self.outcome.fallbacks,
            "usage": {
                "prompt_tokens": a.usage.get("prompt_tokens"),
                "completion_tokens": a.usage.get("completion_tokens"),
            },
            "latency_ms": {"first_token": a.first_token_ms, "total": a.total_ms},
            "cost": a.cost,
            "partial": a.partial,
            "partial_reason": a.partial_reason or None,
            **({"premium": self.extra["premium"].as_json()} if "premium" in self.extra else {}),
        }


def why_not_answered(exc: BrainError) -> str:
    """The reason kept with a queued input: one line, the specifics, no key."""
    lines = [line.strip() for line in exc.message.splitlines() if line.strip()]
    # "Nothing could answer; ..." heads a list of what each backend said: keep the list.
    text = "; ".join(lines[1:] if len(lines) > 1 else lines)
    return secrets.redact(text)


def decode(data: bytes, name: str) -> str:
    """Text from bytes, or BadInput for anything that is not text."""
    if len(data) > MAX_INPUT_BYTES:
        raise BadInput(
            f"{name} is {len(data) // 1024} KiB; brain sends at most {MAX_INPUT_BYTES // 1024} KiB.",
            "Send a smaller part, or split it over several questions.",
        )
    if b"\x00" in data[:8192]:
        raise BadInput(f"{name} looks binary (it contains NUL bytes); brain sends text only.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise BadInput(
                f"{name} is not UTF-8 text; brain sends text only.",
                "Convert it first, e.g. `iconv -f latin1 -t utf-8 FILE | brain digest`.",
            ) from None


# Endings that make a single word look like a file the user meant to send.
_FILE_ENDINGS = (
    ".md",
    ".txt",
    ".log",
    ".csv",
    ".json",
    ".yaml",
    ".yml",
    ".toml",
    ".diff",
    ".patch",
    ".py",
    ".js",
    ".ts",
    ".rs",
    ".go",
    ".html",
    ".tex",
    ".rst",
)


def split_args(words: tuple[str, ...] | list[str]) -> tuple[str, list[Material]]:
    """Arguments that name existing files are material; the rest is the instruction.

    A single word that looks like a file name but names nothing is refused (a typo must not
    silently become the instruction with no material).
    """
    instruction: list[str] = []
    material: list[Material] = []
    for word in words:
        try:
            word.encode("utf-8")
        except UnicodeEncodeError:
            raise BadInput(
                "an argument is not valid UTF-8 text (the terminal sent other bytes).",
                "Set the terminal to UTF-8, or pipe the text in: `iconv -t utf-8 FILE | brain ...`.",
            ) from None
        path = Path(word).expanduser()
        plain = bool(word) and not any(c.isspace() for c in word) and len(word) < 4096
        if word and "\n" not in word and len(word) < 4096 and _exists(path.is_file):
            try:
                material.append(Material(word, decode(path.read_bytes(), word)))
            except OSError as exc:
                raise BadInput(f"cannot read {word}: {exc.strerror}") from exc
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
    """The user's input as stored, and the messages sent for it."""
    if not instruction and not any(m.text.strip() for m in material):
        raise UsageError(
            "nothing to send: give an instruction, pipe text in, or name files.",
            f'For example: brain {task.name} "..."   or   cat notes.md | brain {task.name}',
        )
    parts: list[str] = []
    if instruction:
        parts.append(instruction)
    several = len(material) > 1
    for m in material:
        if not m.text.strip():
            continue
        if several or m.name != "stdin":
            parts.append(f"--- {m.name} ---\n{m.text.rstrip()}")
        else:
            parts.append(m.text.rstrip())
    text = "\n\n".join(parts)
    return text, [
        {"role": "system", "content": task.prompt.strip()},
        {"role": "user", "content": text},
    ]


def ask(
    settings: Settings,
    store: Store,
    task: Task,
    messages: list[Message],
    user_input: str,
    *,
    mode: str,
    cache_dir: Path | None = None,
    get_key: Callable[[], str | None] | None = None,
    route: str | None = None,
    model: str | None = None,
    on_delta: OnDelta | None = None,
    notice: Callable[[str], None] = lambda _m: None,
    on_local_start: Callable[[str], None] | None = None,
    row: int | None = None,
) -> Result:
    """Keep the input, run the ladder, record the answer. The input survives any failure."""
    the_plan = ladder.plan(settings, task, messages, mode, route, model)
    # Before the input is kept: a refused premium question leaves nothing to send later.
    premium.check_plan(settings, task, the_plan.route)
    premium.check_cap(settings, store, the_plan.route)
    if row is None:
        row = store.add(task.name, the_plan.route, user_input, messages)
    seen: list[str] = []
    backend = ["apex" if mode != ladder.OFFLINE else "local"]

    def collect(delta: str) -> None:
        seen.append(delta)
        if on_delta:
            on_delta(delta)

    def local_start(text: str) -> None:
        backend[0] = "local"
        if on_local_start:
            on_local_start(text)

    try:
        outcome = ladder.run(
            settings,
            the_plan,
            messages,
            cache_dir=cache_dir or settings_mod.cache_dir(),
            get_key=get_key or (lambda: secrets.get("apex")),
            on_delta=collect,
            notice=notice,
            on_local_start=local_start,
        )
    except (KeyboardInterrupt, PipeClosed) as exc:
        if not seen:
            store.fail(row, "interrupted before the answer began")
            if isinstance(exc, PipeClosed):
                raise
            stopped = Interrupted(
                "Interrupted before the answer began; your input is kept in the queue.",
                "`brain queue run` sends it later; `brain queue drop ID` forgets it "
                "(`brain queue list` shows the ID).",
            )
            stopped.started = False
            raise stopped from None
        # Stopped mid-answer (Ctrl-C, or the reader closed the pipe): what arrived is kept as
        # a partial answer, never thrown away, and never sent again by `brain queue run`.
        store.finish(
            row,
            route=the_plan.route,
            backend=backend[0],
            model="",
            fallbacks=[],
            usage={},
            first_token_ms=None,
            total_ms=0,
            cost=None,
            answer="".join(seen),
            partial=True,
        )
        if isinstance(exc, PipeClosed):
            raise
        raise Interrupted(
            "Interrupted; the partial answer is kept in the history (marked partial).",
            "See it with `brain history -n 1`.",
        ) from None
    except BrainError as exc:
        store.fail(row, why_not_answered(exc))
        raise
    a = outcome.answer
    store.finish(
        row,
        route=outcome.route,
        backend=a.backend,
        model=a.model,
        fallbacks=outcome.fallbacks,
        usage=a.usage,
        first_token_ms=a.first_token_ms,
        total_ms=a.total_ms,
        cost=a.cost,
        answer=a.text,
        partial=a.partial,
    )
    result = Result(outcome, row)
    spent = premium.spending(settings, store, outcome.route, a)
    if spent is not None:
        result.extra["premium"] = spent
    try:
        from brain import notify

        result.notify_pending = notify.record(store, settings, outcome)
    except Exception:  # a notice must never fail an answer
        result.notify_pending = False
    return result
