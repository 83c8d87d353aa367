"""An answer taller than the screen ends up in the terminal's scrollback exactly once.

A real pseudo-terminal read through pyte's HistoryScreen (what scrolled off the top is kept,
as a terminal's scrollback is): the one-shot command, the REPL and `queue run`, each at
80x24 with an answer of ~90 lines streamed in small pieces, so the live view redraws many
times while it arrives. Every line carries a marker; each marker must be on exactly one line,
in order. (rich's Live with vertical_overflow="visible" left 29 copies here.)
"""

from __future__ import annotations

import os
import re
import sqlite3
import sys
from typing import Any

import pytest
from conftest import SUPPORT, brain_executable
from fakes import FakeApex, refused_url
from terminal import Terminal

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pty")

ROWS, COLS = 24, 80


def long_answer(tag: str) -> str:
    """~90 lines of the Markdown a model writes: headings, paragraphs, lists, a code block,
    a quote; every line that shows carries a marker like A017."""
    n = iter(range(1, 1000))

    def m() -> str:
        return f"{tag}{next(n):03d}"

    parts = [f"## {m()} Plan for the week", "", f"{m()} A paragraph to start with.", ""]
    for day in range(3):
        parts += [f"### {m()} Day {day}", ""]
        parts += [f"- {m()} item with **bold** text" for _ in range(8)]
        parts += ["", f"{m()} Then a paragraph after the list.", ""]
    parts += ["```python"] + [f"x = {i}  # {m()}" for i in range(30)] + ["```", ""]
    parts += [f"1. {m()} numbered" for _ in range(12)]
    parts += ["", f"> {m()} a quote", "", f"{m()} The end."]
    return "\n".join(parts) + "\n"


def pieces(text: str, size: int = 9) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def markers(text: str, tag: str) -> list[str]:
    return re.findall(rf"{tag}\d{{3}}", text)


def assert_once(lines: list[str], tag: str, expected: list[str]) -> None:
    """Each marker on exactly one line of the scrollback, in the answer's order."""
    seen = [found for line in lines for found in markers(line, tag)]
    doubled = sorted({x for x in seen if seen.count(x) > 1})
    missing = [x for x in expected if x not in seen]
    shown = "\n".join(lines)
    assert not doubled, f"printed more than once: {doubled[:10]}\n--- scrollback ---\n{shown}"
    assert not missing, f"never shown: {missing[:10]}\n--- scrollback ---\n{shown}"
    assert seen == expected


@pytest.fixture
def tty(home: Any) -> Any:
    opened: list[Terminal] = []

    def start(*args: str, rows: int = ROWS, cols: int = COLS) -> Terminal:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(SUPPORT), env.get("PYTHONPATH", "")])
        env.pop("NO_COLOR", None)
        t = Terminal([brain_executable(), *args], env, str(home.root), rows, cols, scrollback=5000)
        opened.append(t)
        return t

    yield start
    for t in opened:
        t.close()


def test_one_shot_prints_a_long_answer_once(apex: FakeApex, tty: Any) -> None:
    text = long_answer("A")
    apex.answer("brain_dump", pieces(text), delay=0.004)
    t = tty("dump", "plan my week")
    assert t.wait_exit(60) == 0
    lines = t.scrollback()
    assert len(lines) > 2 * ROWS  # really taller than the screen
    assert_once(lines, "A", markers(text, "A"))
    assert not any("```" in line or "**" in line for line in lines)  # drawn, not raw


def test_one_shot_at_120x40_too(apex: FakeApex, tty: Any) -> None:
    text = long_answer("W")
    apex.answer("brain_dump", pieces(text, 5), delay=0.002)
    t = tty("dump", "plan my week", rows=40, cols=120)
    assert t.wait_exit(60) == 0
    assert_once(t.scrollback(), "W", markers(text, "W"))


def test_repl_prints_a_long_answer_once(apex: FakeApex, tty: Any) -> None:
    first, second = long_answer("R"), long_answer("S")
    apex.answer("default", pieces(first), delay=0.004)
    t = tty()
    t.wait_for(r"backend: apex")
    t.line("plan my week")
    t.wait_for(r"R\d{3} The end\.", timeout=60)
    t.ready()
    apex.answer("default", pieces(second), delay=0.004)
    t.line("and the next one")
    t.wait_for(r"S\d{3} The end\.", timeout=60)
    assert t.quit() == 0
    lines = t.scrollback()
    assert_once(lines, "R", markers(first, "R"))
    assert_once(lines, "S", markers(second, "S"))


def test_queue_run_prints_each_answer_once_under_its_input(
    apex: FakeApex, tty: Any, brain: Any, monkeypatch: pytest.MonkeyPatch, home: Any
) -> None:
    monkeypatch.setenv("BRAIN_APEX_URL", refused_url())
    assert brain("dump", "first queued thought").code == 69
    assert brain("draft", "second queued letter").code == 69
    monkeypatch.setenv("BRAIN_APEX_URL", apex.url)
    one, two = long_answer("Q"), long_answer("P")
    apex.answer("brain_dump", pieces(one), delay=0.003)
    apex.answer("draft", pieces(two), delay=0.003)
    t = tty("queue", "run")
    assert t.wait_exit(90) == 0
    lines = t.scrollback()
    assert_once(lines, "Q", markers(one, "Q"))
    assert_once(lines, "P", markers(two, "P"))
    labels = [
        i for i, line in enumerate(lines) if "queued thought" in line or "queued letter" in line
    ]
    assert len(labels) == 2, "\n".join(lines)
    first_q = next(i for i, line in enumerate(lines) if "Q001" in line)
    first_p = next(i for i, line in enumerate(lines) if "P001" in line)
    assert labels[0] < first_q < labels[1] < first_p  # each answer under its own label
    db = sqlite3.connect(home.data / "brain" / "brain.db")
    assert [r[0] for r in db.execute("SELECT status FROM exchanges ORDER BY id")] == [
        "answered",
        "answered",
    ]


def test_ctrl_c_mid_answer_leaves_each_line_once_and_is_no_error(
    apex: FakeApex, tty: Any, home: Any
) -> None:
    # A long list: rich pads every line it draws to the terminal's width, so an echoed key or
    # ^C wraps past the live view's last line and shifts it down a line; the view's first
    # line (an item) was then left behind, and drawn again.
    items = [f"- K{i:03d} item" for i in range(200)]
    apex.answer("brain_dump", [line + "\n" for line in items], delay=0.05)
    t = tty("dump", "a long one")
    t.wait_for(r"K02\d ", timeout=30)  # past the first cut: the view begins with an item
    t.send("typed ahead")  # keys typed while it streams are not echoed into the answer
    t.wait_for(r"K0([3-9]\d) ", timeout=30)
    t.send("\x03")
    assert t.wait_exit(30) == 130
    lines = t.scrollback()
    seen = [found for line in lines for found in re.findall(r"K\d{3}", line)]
    assert seen and len(seen) == len(set(seen)), "\n".join(lines)
    assert seen == [f"K{i:03d}" for i in range(len(seen))]
    said = "\n".join(lines)
    assert "^C" not in said and "typed" not in said
    assert "error" not in said.lower(), said
    assert "partial answer is kept" in said
    db = sqlite3.connect(home.data / "brain" / "brain.db")
    [(status,)] = db.execute("SELECT status FROM exchanges").fetchall()
    assert status == "partial"
