"""`brain history` (DESIGN.md, "History…"): readable entries with a header line per exchange,
-n, -q, --task, --json (one object per line), `brain history ID`; fast with many rows; and a
stored answer never reaches the terminal as control sequences."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from typing import Any

import pexpect
from conftest import SUPPORT, brain_executable
from fakes import FakeApex, refused_url

from brain.backends.base import Answer
from brain.store import Store


def store(home: Any) -> Store:
    (home.data / "brain").mkdir(parents=True, exist_ok=True)
    return Store(home.data / "brain" / "brain.db")


def keep(s: Store, task: str, text: str, answer: str | None, **kw: Any) -> int:
    row = s.add(task, task, text, [{"role": "user", "content": text}])
    if answer is None:
        s.release(row, kw.get("why", "Apex: connection refused"))
    else:
        s.finish(row, task, Answer(text=answer, backend="apex", model="gemma27b", **kw), [])
    return row


def lines_of(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_entries_have_a_header_apart_from_the_answers_own_markdown(brain, home) -> None:
    s = store(home)
    keep(s, "dump", "call Sam\nand order strips\nand more\nand more still", "## To do\n- call")
    keep(s, "ask", "what is pH?", None)
    s.close()
    out = brain("history").stdout
    headers = [line for line in out.splitlines() if line.startswith("── #")]
    assert len(headers) == 2
    assert "· dump · apex gemma27b ──" in headers[0]
    assert "· ask · queued (not answered) ──" in headers[1]
    assert "## To do" in out  # piped: the answer as it was, under its header
    assert "> call Sam" in out and "(+1 lines; `brain history ID` shows all)" in out
    assert "`brain queue run` sends it" in out


def test_q_task_n_and_json(brain, home) -> None:
    s = store(home)
    for i in range(5):
        keep(s, "dump" if i % 2 else "draft", f"note {i}", f"Answer about Blueberries {i}")
    keep(s, "ask", "ÄPFEL oder Birnen?", "Äpfel.")
    s.close()
    assert [e["input"] for e in lines_of(brain("history", "-n", "2", "--json").stdout)] == [
        "note 4",
        "ÄPFEL oder Birnen?",
    ]
    found = lines_of(brain("history", "-q", "blueBERRIES 3", "--json").stdout)
    assert [e["input"] for e in found] == ["note 3"]
    assert [e["input"] for e in lines_of(brain("history", "--task", "dump", "--json").stdout)] == [
        "note 1",
        "note 3",
    ]
    assert [e["answer"] for e in lines_of(brain("history", "-q", "äpfel", "--json").stdout)] == [
        "Äpfel."
    ]
    assert lines_of(brain("history", "-q", "100%_", "--json").stdout) == []  # literal, not LIKE
    r = brain("history", "-q", "nothing like this")
    assert r.code == 0 and 'no exchange holding "nothing like this"' in r.stderr
    one = lines_of(brain("history", "-n", "1", "--json").stdout)[0]
    assert set(one) >= {
        "version", "id", "time", "input", "status", "answer", "task", "route", "backend",
        "model", "fallbacks", "usage", "latency_ms", "cost", "partial", "partial_reason",
    }  # fmt: skip
    assert one["status"] == "answered" and one["time"][10] == "T" and one["time"][-3] == ":"


def test_history_id_shows_one_exchange_in_full(brain, home) -> None:
    s = store(home)
    long_input = "\n".join(f"line {i}" for i in range(12))
    row = keep(s, "digest", long_input, "All of it.", cost=0.00000042)
    s.close()
    r = brain("history", str(row))
    assert r.code == 0
    assert all(f"> line {i}" in r.stdout for i in range(12))
    assert "answered by: apex gemma27b" in r.stdout and "cost: $0.00000042" in r.stdout
    assert "All of it." in r.stdout
    assert lines_of(brain("history", str(row), "--json").stdout)[0]["input"] == long_input
    missing = brain("history", "999")
    assert missing.code == 2 and "no exchange #999" in missing.stderr


def test_many_rows_stay_quick_to_search(brain, home) -> None:
    # 20,000 exchanges: the newest ones come off the time index without reading the rest.
    s = store(home)
    now = time.time()
    s.db.executemany(
        "INSERT INTO exchanges (time, status, task, input, messages, answer) VALUES (?,?,?,?,?,?)",
        [(now - 20_000 + i, "answered", "dump", f"q{i}", "[]", f"a{i}") for i in range(20_000)],
    )
    plan = s.db.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM exchanges INDEXED BY exchanges_time"
        " WHERE task=? ORDER BY time DESC, id DESC LIMIT 5",
        ("dump",),
    ).fetchall()
    s.close()
    assert any("exchanges_time" in str(tuple(p)) for p in plan)
    assert not any("TEMP B-TREE" in str(tuple(p)) for p in plan)  # no sort of every row
    assert [e["input"] for e in lines_of(brain("history", "-n", "2", "--json").stdout)] == [
        "q19998",
        "q19999",
    ]


def test_queue_run_labels_each_answer_on_stdout_when_piped(apex: FakeApex, brain) -> None:
    down = {"BRAIN_APEX_URL": refused_url()}
    assert brain("dump", "first thought", env=down).code == 69
    assert brain("draft", "second letter", env=down).code == 69
    apex.answer("brain_dump", ["answer one"])
    apex.answer("draft", ["answer two"])
    r = brain("queue", "run")
    assert r.code == 0, r.stderr
    out = r.stdout.splitlines()
    assert out[0].startswith("── #1 · dump · first thought")
    assert out[1] == "answer one"
    assert out[2].startswith("── #2 · draft · second letter")
    assert out[3] == "answer two"
    assert r.stdout.count("answer one") == 1


def test_queue_list_cuts_with_an_ellipsis_on_a_terminal_only(brain) -> None:
    long = "word " * 40 + "end"
    assert brain("dump", long, env={"BRAIN_APEX_URL": refused_url()}).code == 69
    piped = brain("queue", "list").stdout
    assert long.strip() in piped  # piped: whole, for other programs
    child = _spawn("queue", "list")
    child.expect(pexpect.EOF)
    assert "word word…" in child.before and "word end" not in child.before
    child.close()


def test_dropping_the_last_input_says_the_queue_is_empty(brain) -> None:
    assert brain("dump", "forget me", env={"BRAIN_APEX_URL": refused_url()}).code == 69
    r = brain("queue", "drop", "1")
    assert r.code == 0 and "the queue is now empty" in r.stderr
    r = brain("queue", "list")
    assert "the queue is empty." in r.stderr and "answered" not in r.stderr


def _spawn(*args: str) -> pexpect.spawn:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SUPPORT)
    env["TERM"] = "xterm-256color"
    return pexpect.spawn(
        brain_executable(), list(args), env=env, dimensions=(40, 100), encoding="utf-8", timeout=20
    )


HOSTILE = "Fine.\x1b]0;pwned-title\x07 \x1b]52;c;cm0gLXJmIH4=\x07 \x1b[2J\x9b1;1H done"


def _no_sequences_from(text: str) -> None:
    # rich's own colours are CSI sequences; what the model sent must not pass through.
    assert "\x1b]" not in text and "\x07" not in text and "\x9b" not in text
    assert "\x1b[2J" not in text
    assert "␛]0;pwned-title␇" in text  # shown, not obeyed


def test_no_escape_sequence_from_a_model_reaches_the_terminal(apex: FakeApex, home) -> None:
    apex.answer("brain_dump", [HOSTILE[:9], HOSTILE[9:]])  # split inside a sequence, too
    child = _spawn("dump", "x")
    child.expect(pexpect.EOF)
    _no_sequences_from(child.before)
    child.close()
    child = _spawn("history")
    child.expect(pexpect.EOF)
    _no_sequences_from(child.before)
    child.close()
    db = sqlite3.connect(home.data / "brain" / "brain.db")
    [(stored,)] = db.execute("SELECT answer FROM exchanges").fetchall()
    assert stored == HOSTILE  # kept as it came; only the terminal is protected


def test_every_writer_cleans_what_it_shows_on_a_terminal(monkeypatch) -> None:
    import io
    import sys

    from brain.errors import BackendError
    from brain.render import Output

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out_, err_ = Tty(), Tty()
    monkeypatch.setattr(sys, "stdout", out_)
    monkeypatch.setattr(sys, "stderr", err_)
    monkeypatch.setenv("TERM", "dumb")  # plain text on a terminal: cleaned all the same
    o = Output()
    o.notice(HOSTILE)
    o.error(BackendError(HOSTILE, HOSTILE))
    o.write(HOSTILE)
    o.table("t", ["a"], [[HOSTILE]])
    o.delta(HOSTILE)
    o.stop()
    for text in (out_.getvalue(), err_.getvalue()):
        assert "\x1b]" not in text and "\x07" not in text and "\x9b" not in text
    out_.seek(0)
    out_.truncate()
    o.json({"answer": HOSTILE})  # escaped by JSON, C1 too; the same text when read back
    assert "\x1b" not in out_.getvalue() and "\x9b" not in out_.getvalue()
    assert json.loads(out_.getvalue())["answer"] == HOSTILE
