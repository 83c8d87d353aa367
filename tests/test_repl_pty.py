"""The REPL as a person meets it: `brain` in a real pseudo-terminal, read off an emulated screen.

Apex and Ollama are the fakes from tests/fakes.py; `[apex] probe_ttl = 0` makes every look at
Apex a fresh probe, so the toolbar follows the fake Apex as it stops.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Iterator
from typing import Any

import pexpect
import pytest
from conftest import SUPPORT, brain_executable
from fakes import FakeApex
from pytest_httpserver import HTTPServer
from terminal import Terminal

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pty")

CONFIG = """\
[apex]
probe_ttl = 0

[tasks.daily]
route = "daily_route"
description = "Plan the day."
"""


@pytest.fixture
def term(home: Any, write_config: Any) -> Iterator[Any]:
    """start(*args) runs `brain *args` in a pty with this test's HOME, XDG dirs and config."""
    write_config(CONFIG)
    opened: list[Terminal] = []

    def start(*args: str) -> Terminal:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(SUPPORT), env.get("PYTHONPATH", "")])
        env.pop("NO_COLOR", None)
        t = Terminal([brain_executable(), *args], env, str(home.root))
        opened.append(t)
        return t

    yield start
    for t in opened:
        t.close()


def exchanges(home: Any) -> list[dict[str, Any]]:
    path = home.data / "brain" / "brain.db"
    if not path.exists():  # the store is opened on the first question
        return []
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM exchanges ORDER BY id")]
    finally:
        db.close()


def test_ask_stream_digest_and_ctrl_d(apex, term, home):
    apex.answer("default", ["Soil ", "pH is ", "**acidity**."], delay=0.05, model_id="gemma27b")
    apex.answer("daily_digest", ["- lab on ", "Tuesday"], model_id="gemma26b-moe")
    t = term()
    t.wait_for(r"task: ask\s+backend: apex\s+model: route default\s+last: none yet")
    t.line("what is soil pH?")
    t.wait_for(r"Soil pH is acidity\.")  # rendered Markdown: the ** are gone
    t.wait_for(r"backend: apex\s+model: gemma27b\s+last: 7 tokens")

    t.line("/digest what did I plan?")
    t.wait_for(r"• lab on Tuesday")
    sent = apex.requests[-1]
    assert sent["model"] == "daily_digest"
    # The conversation is the context: the first turn goes along, under digest's own prompt.
    roles = [m["role"] for m in sent["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert "digest" in sent["messages"][0]["content"].lower()
    assert sent["messages"][1]["content"] == "what is soil pH?"
    assert sent["messages"][2]["content"] == "Soil pH is **acidity**."
    assert sent["messages"][3]["content"] == "what did I plan?"
    # /digest TEXT asks once; the current task stays ask.
    t.wait_for(r"task: ask\s+backend: apex")

    assert t.quit() == 0
    rows = exchanges(home)
    assert [(r["task"], r["status"], r["backend"], r["model"]) for r in rows] == [
        ("ask", "answered", "apex", "gemma27b"),
        ("digest", "answered", "apex", "gemma26b-moe"),
    ]
    assert rows[1]["input"] == "what did I plan?"


def test_ctrl_c_mid_answer_keeps_the_partial(apex, term, home):
    pieces = ["First ", "part ", "arrives. "] + [f"word{i} " for i in range(60)]
    apex.answer("default", pieces, delay=0.15)
    t = term()
    t.wait_for(r"backend: apex")
    t.line("tell me a long story")
    t.wait_for(r"First part arrives\.")
    t.send("\x03")
    t.wait_for(r"stopped\. The partial answer stays in this conversation")
    t.wait_for(r"last: partial")

    rows = exchanges(home)
    assert len(rows) == 1
    row = rows[0]
    assert row["status"] == "partial" and row["partial"] == 1
    assert row["answer"].startswith("First part arrives. ")
    assert not row["answer"].startswith("".join(pieces))  # it really was cut

    apex.answer("default", ["Go", "t it."])
    t.line("go on")
    t.wait_for(r"Got it\.")
    messages = apex.requests[-1]["messages"]
    assert messages[1]["content"] == "tell me a long story"
    assert messages[2]["role"] == "assistant"
    assert messages[2]["content"] == row["answer"]
    assert t.quit() == 0


@pytest.fixture
def own_apex(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApex]:
    """A fake Apex on a server of its own, which the test may stop (the `apex` fixture's
    server is shared by the whole session)."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    fake = FakeApex(server)
    monkeypatch.setenv("BRAIN_APEX_URL", fake.url)
    yield fake
    if server.is_running():
        server.stop()


def test_toolbar_flips_to_local_when_apex_stops(own_apex, ollama, term, home):
    apex = own_apex
    apex.answer("default", ["from apex"])
    t = term()
    t.wait_for(r"backend: apex\s+model: route default")
    apex.server.stop()
    t.wait_for(r"backend: local\s+model: gemma4:e4b", timeout=30)
    t.line("anyone there?")
    t.wait_for(r"local answer")
    assert t.quit() == 0
    [row] = exchanges(home)
    assert row["backend"] == "local" and row["status"] == "answered"
    assert apex.requests == []


def test_modes_switch_and_the_conversation_goes_on(apex, ollama, term):
    apex.answer("default", ["apex says hi"])
    t = term()
    t.wait_for(r"backend: apex")
    t.line("hello")
    t.wait_for(r"apex says hi")
    t.ready()
    t.line("/offline")
    t.wait_for(r"Mode offline")
    t.wait_for(r"backend: local\s+model: gemma4:e4b.*mode: offline")
    t.line("and now?")
    t.wait_for(r"local answer")
    # The local model got the conversation so far.
    messages = ollama.requests[-1]["messages"]
    assert [m["content"] for m in messages[1:]] == ["hello", "apex says hi", "and now?"]
    t.line("/task premium")
    t.wait_for(r"backend: none.*mode: offline")  # premium never answers on this laptop
    t.line("/online")
    t.wait_for(r"backend: apex.*mode: online")
    assert t.quit() == 0


def test_ctrl_c_at_the_prompt_clears_the_line(apex, term, home):
    apex.answer("default", ["ok"])
    t = term()
    t.wait_for(r"backend: apex")
    t.send("half a thought")
    t.wait_for(r"ask> half a thought")
    t.send("\x03")
    t.wait_for(r"ask> half a thought\s*\nask>\s*$|ask>\s*\n", timeout=10)
    t.send("\r")  # an empty line sends nothing
    t.ready()
    t.line("/history")
    t.wait_for(r"No turns yet")
    assert apex.requests == []
    assert t.quit() == 0
    assert exchanges(home) == []


def test_alt_enter_and_a_pasted_block_make_one_question(apex, term):
    apex.answer("default", ["noted"])
    t = term()
    t.wait_for(r"backend: apex")
    t.send("line one")
    t.send("\x1b\r")  # Alt-Enter: a new line, not send
    t.send("line two")
    t.send("\r")
    t.wait_for(r"noted")
    assert apex.requests[-1]["messages"][-1]["content"] == "line one\nline two"
    t.ready()
    # A bracketed paste with line breaks stays one question until Enter.
    t.send("\x1b[200~para one\npara two\npara three\x1b[201~")
    t.wait_for(r"para three")
    assert len(apex.requests) == 1
    t.send("\r")
    t.wait_for(r"noted(.|\n)*noted")
    assert apex.requests[-1]["messages"][-1]["content"] == "para one\npara two\npara three"
    assert len(apex.requests) == 2
    assert t.quit() == 0


def test_ctrl_c_before_the_answer_puts_the_question_back(apex, term, home):
    apex.answer("default", ["late"], first_delay=30)
    t = term()
    t.wait_for(r"backend: apex")
    t.line("a question")
    t.wait_for(r"asking Apex")
    t.send("\x03")
    t.wait_for(r"stopped before the answer began")
    t.wait_for(r"ask> a question")  # back at the prompt, ready to edit or send again
    t.send("\x15")  # Ctrl-U clears it
    assert t.quit() == 0
    assert exchanges(home) == []  # not left in the queue: the person took it back


def test_long_conversation_drops_the_oldest_turns(apex, term, write_config):
    # A budget of about 200 tokens for what is sent; each turn below costs about 90.
    write_config(
        CONFIG.replace("probe_ttl = 0", "probe_ttl = 0\ncontext_tokens = 216")
        + '\n[tasks.terse]\nroute = "default"\nmax_tokens = 16\nprompt = "Be brief."\n'
    )
    apex.answer("default", ["ok " * 20])
    t = term("repl", "terse")
    t.wait_for(r"task: terse\s+backend: apex")
    for i in range(3):
        t.line(f"question {i} " + "x" * 240)
        t.until(lambda n=i + 1: len(apex.requests) == n, f"request {i + 1} reaching Apex")
        t.wait_for(r"last: 7 tokens")
    first, second, third = ([m["content"] for m in r["messages"]] for r in apex.requests)
    assert len(first) == 2 and len(second) == 4  # two turns fit
    assert not any(c.startswith("question 0") for c in third)  # the oldest is left out
    assert third[1].startswith("question 1") and third[-1].startswith("question 2")
    t.wait_for(r"the oldest 1 turn is left out of what is sent")
    assert t.quit() == 0


def test_tab_completes_slash_commands(apex, ollama, term):
    apex.answer("daily_digest", ["digested"])
    t = term()
    t.wait_for(r"backend: apex")
    t.send("/d")
    t.wait_for(r"/digest +Digest notes")  # the menu, with the tasks' descriptions
    t.send("\t")  # the first of the menu
    t.send("\t")  # the second: /digest
    t.wait_for(r"ask> /digest")
    t.send("\r")  # Enter takes `/digest `: the question is still to type, nothing is sent
    t.wait_for(r"ask> /digest\s*\n")
    assert apex.requests == []
    t.line("what happened")
    t.wait_for(r"digested")
    assert apex.requests[-1]["model"] == "daily_digest"
    assert apex.requests[-1]["messages"][-1]["content"] == "what happened"
    t.wait_for(r"task: ask")  # /digest TEXT asked once; the task stays
    t.send("/offl")
    t.wait_for(r"/offline +answer on this laptop only")
    t.send("\t")
    t.wait_for(r"ask> /offline")
    t.send("\r")
    t.wait_for(r"Mode offline")
    assert t.quit() == 0


def test_input_history_persists_and_ctrl_r_finds_it(apex, term, home):
    apex.answer("default", ["ok"])
    t = term()
    t.wait_for(r"backend: apex")
    t.line("remember the soil lab")
    t.wait_for(r"last: 7 tokens")
    assert t.quit() == 0
    assert "remember the soil lab" in (home.data / "brain" / "repl-history").read_text()

    t = term()
    t.wait_for(r"backend: apex")
    t.send("\x1b[A")  # Up: the last session's question
    t.wait_for(r"ask> remember the soil lab")
    t.send("\x1b[B")  # Down: back to the new, empty line
    t.wait_for(r"ask>\s*\n")
    t.send("\x12")  # Ctrl-R
    t.send("soil")
    t.wait_for(r"ask> remember the soil lab\n[\s\S]*I-search backward: soil")
    t.send("\r")  # accept the search result into the line
    t.wait_for(r"^(?![\s\S]*I-search)[\s\S]*ask> remember the soil lab")
    t.send("\r")  # and send it
    t.until(lambda: len(apex.requests) == 2, "the found question reaching Apex")
    assert apex.requests[-1]["messages"][-1]["content"] == "remember the soil lab"
    assert t.quit() == 0


def test_brain_alone_with_output_redirected_prints_help(home):
    # stdin is the terminal, stdout a file: no REPL to draw, so the help goes to the file.
    child = pexpect.spawn(
        "/bin/sh",
        ["-c", f"{brain_executable()} > out.txt; echo EXIT=$?"],
        cwd=str(home.root),
        env=dict(os.environ),
        encoding="utf-8",
    )
    child.expect(r"EXIT=(\d+)", timeout=30)
    assert child.match.group(1) == "0"
    assert "Usage: brain" in (home.root / "out.txt").read_text()


def test_repl_without_a_terminal_is_a_usage_error(brain):
    r = brain("repl")
    assert r.code == 2
    assert "the REPL needs a terminal" in r.stderr and "brain ask" in r.stderr


def test_brain_alone_with_piped_stdin_answers_with_ask(apex, brain):
    apex.answer("default", ["piped answer"])
    r = brain(input="what is this?")
    assert r.code == 0, r.stderr
    assert r.stdout == "piped answer\n"
    assert apex.requests[-1]["messages"][-1]["content"] == "what is this?"
