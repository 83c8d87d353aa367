"""A REPL conversation: its turns, the context sent with each question, and the slash commands.

Owns what a conversation remembers (every turn, partial answers included), which turns fit
the answering backend's context budget (the oldest are left out first), the table of slash
commands and the
parsing of a typed line, and the conversation as Markdown (`/save`).

Imports no prompt_toolkit, rich or click: brain.repl draws, this decides.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from brain.app import AUTO, OFFLINE, ONLINE
from brain.backends import estimate_tokens
from brain.client import Message
from brain.settings import Settings
from brain.tasks import Task

# name -> (argument, what it does). Task names are slash commands too (`/digest TEXT`).
SLASH_COMMANDS: dict[str, tuple[str, str]] = {
    "task": ("NAME", "make NAME the current task (no NAME: list the tasks)"),
    "offline": ("", "answer on this laptop only (local model)"),
    "online": ("", "answer on Apex only; never fall back"),
    "auto": ("", "Apex first, this laptop when Apex is away (the default)"),
    "status": ("", "mode, task, who would answer, the conversation's size"),
    "history": ("", "the turns of this conversation"),
    "retry": ("", "ask the last question again (a failed one too)"),
    "record": ("[TEXT]", "record a memo until Enter; its transcript is the question"),
    "save": ("FILE", "write this conversation to FILE as Markdown (-f replaces FILE)"),
    "clear": ("", "start a new conversation"),
    "help": ("", "this list"),
    "exit": ("", "leave (Ctrl-D does too)"),
}
ALIASES = {"quit": "exit", "q": "exit", "?": "help", "h": "help", "new": "clear"}

# What a turn reserves for the answer, at least, when the task's max_tokens is larger.
MIN_INPUT_SHARE = 0.25
LOCAL_WINDOW = 8192


@dataclass
class Turn:
    task: str
    user: str  # the text as typed: what the history stores as input
    sent: str  # the user message as sent (files named in the line are read in)
    answer: str
    partial: bool = False
    partial_reason: str = ""
    backend: str = ""
    model: str = ""
    completion_tokens: int | None = None
    row: int | None = None  # the exchange's id in the history
    at: float = field(default_factory=time.time)


@dataclass
class Context:
    """The messages for one question, and how many of the oldest turns were left out."""

    messages: list[Message]
    dropped: int
    tokens: int
    budget: int


@dataclass
class Line:
    """A typed line: a question, a REPL command, a task command, or an unknown /word."""

    kind: str  # "ask" | "command" | "task" | "unknown" | "empty"
    name: str = ""
    arg: str = ""


def parse(text: str, task_names: list[str] | tuple[str, ...]) -> Line:
    """What a typed line asks for. `//text` sends `/text` as a question."""
    if not text.strip():
        return Line("empty")
    stripped = text.lstrip()
    if not stripped.startswith("/"):
        return Line("ask", arg=text.strip())
    if stripped.startswith("//"):
        return Line("ask", arg=stripped[1:].strip())
    head, _, rest = stripped[1:].partition(" ")
    if "\n" in head:  # "/digest\nlines…": the command ends at the first line break
        head, _, more = head.partition("\n")
        rest = more + (" " + rest if rest else "")
    name = ALIASES.get(head, head)
    if name in SLASH_COMMANDS:
        return Line("command", name, rest.strip())
    if head in task_names:
        return Line("task", head, rest.strip())
    return Line("unknown", head, rest.strip())


def budget_for(settings: Settings, backend: str, task: Task, holds: int | None = None) -> int:
    """Input tokens a question may use on `backend`, leaving room for the task's answer.
    `holds`: the context the backend itself says it reads (a llama-server slot, an Ollama
    model), when it says one; the window is never larger."""
    section = "local" if backend == "local" else "apex"
    # local.context_tokens 0 means "as the model holds"; a conversation keeps to 8,192 then,
    # which a laptop reads quickly (a single long question still goes whole).
    window = int(settings.get(section, "context_tokens")) or LOCAL_WINDOW
    if holds:
        window = min(window, holds)
    return max(window - task.max_tokens, int(window * MIN_INPUT_SHARE))


class Conversation:
    """The turns so far. All are kept (for /save and /history); the context is a suffix."""

    def __init__(self) -> None:
        self.turns: list[Turn] = []
        self.started = time.time()

    def __len__(self) -> int:
        return len(self.turns)

    def add(self, turn: Turn) -> None:
        self.turns.append(turn)

    def pop(self) -> Turn | None:
        return self.turns.pop() if self.turns else None

    def clear(self) -> None:
        self.turns.clear()
        self.started = time.time()

    def context(self, task: Task, message: str, budget: int) -> Context:
        """The system prompt of `task`, the newest turns that fit `budget`, then `message`.

        The new message and the system prompt are always sent, even alone past the budget
        (the ladder then chooses the task's long-input route, or warns on the local model).
        """
        head: list[Message] = [{"role": "system", "content": task.prompt.strip()}]
        tail: list[Message] = [{"role": "user", "content": message}]
        used = estimate_tokens(head + tail)
        kept: list[Message] = []
        dropped = len(self.turns)
        for turn in reversed(self.turns):
            pair = _pair(turn)
            cost = estimate_tokens(pair)
            if used + cost > budget:
                break
            kept[:0] = pair
            used += cost
            dropped -= 1
        return Context(head + kept + tail, dropped, used, budget)

    def to_markdown(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.started))
        lines = [f"# brain conversation, {when}", ""]
        for turn in self.turns:
            lines += [f"## You ({turn.task})", "", demote(turn.sent.rstrip()), ""]
            who = ", ".join(p for p in (turn.backend, turn.model) if p) or "unknown"
            lines += [f"## brain ({who})", "", demote(turn.answer.rstrip()), ""]
            if turn.partial:
                lines += [f"*(partial answer: {turn.partial_reason or 'stopped'})*", ""]
        return "\n".join(lines).rstrip() + "\n"


_FENCE = re.compile(r"^ *(`{3,}|~{3,})")
_ATX = re.compile(r"^( {0,3})(#{1,6})(?=[ \t]|$)")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_NOT_PARAGRAPH = re.compile(r"^\s*([-*+>#|]|\d+[.)]|$)")


def demote(text: str, by: int = 2) -> str:
    """`text`'s own Markdown headings `by` levels down (at most 6), outside code fences, so
    they sit under the turn headings of a saved conversation (# title, ## turns)."""
    out: list[str] = []
    fence = ""
    for line in text.split("\n"):
        opened = _FENCE.match(line)
        if fence:
            fence = "" if opened and opened.group(1).startswith(fence) else fence
        elif opened:
            fence = opened.group(1)
        elif heading := _ATX.match(line):
            level = min(6, len(heading.group(2)) + by)
            line = heading.group(1) + "#" * level + line[heading.end() :]
        elif _SETEXT.match(line) and out and not _NOT_PARAGRAPH.match(out[-1]):
            level = min(6, (1 if line.strip()[0] == "=" else 2) + by)
            out[-1] = "#" * level + " " + out[-1].strip()
            continue
        out.append(line)
    return "\n".join(out)


def _pair(turn: Turn) -> list[Message]:
    return [
        {"role": "user", "content": turn.sent},
        {"role": "assistant", "content": turn.answer},
    ]


MODES = (AUTO, ONLINE, OFFLINE)
