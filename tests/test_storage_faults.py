"""Storage faults (issue 31, items 5 and 6): a full disk (a real tmpfs filled up), brain.db
locked by another program for more than 5 s, a read-only data dir, a damaged brain.db, a
closed or full stdout. Each gets its own message and exit code (74, or 75 for the lock), says
what was and was not kept, and nothing answered is ever asked again: the worst case (the
answer shown, storing it fails) leaves a partial entry, never a queued one.

The disk tests mount a tmpfs (root); they are skipped where mounting is not allowed."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import SUPPORT, brain_executable
from fakes import FakeApex
from hostile import SSE_HEAD, Hostile, Request, chunk

from brain.store import NOT_STORED


# ----- a tiny disk ---------------------------------------------------------------------------
class TinyDisk:
    """A tmpfs of `size` bytes mounted at `path`; `fill()` takes every byte that is left."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        path.mkdir(parents=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
            capture_output=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        self.filler = path / "filler"

    def fill(self) -> None:
        with open(self.filler, "ab", buffering=0) as fh:
            for size in (1 << 16, 4096, 1):
                try:
                    while True:
                        fh.write(b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC

    def free(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.filler.unlink()

    def read_only(self) -> None:
        subprocess.run(["mount", "-o", "remount,ro", str(self.path)], check=True)

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Any]:
    made: list[TinyDisk] = []

    def make(size: int = 2 << 20) -> TinyDisk:
        made.append(TinyDisk(tmp_path / f"disk{len(made)}", size))
        return made[-1]

    yield make
    for d in made:
        d.unmount()


def run_brain(*args: str, env: dict[str, str], stdout: Any = subprocess.PIPE) -> Any:
    path = os.pathsep.join(p for p in (str(SUPPORT), os.environ.get("PYTHONPATH", "")) if p)
    full = {**os.environ, "PYTHONPATH": path, **env}
    return subprocess.run(
        [brain_executable(), *args], env=full, stdout=stdout, stderr=subprocess.PIPE, timeout=60
    )


def rows(data: Path) -> list[dict[str, Any]]:
    db = sqlite3.connect(data / "brain" / "brain.db")
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM exchanges ORDER BY id")]
    finally:
        db.close()


# ----- a full disk -------------------------------------------------------------------------


def test_a_full_disk_before_sending_sends_nothing(apex: FakeApex, disk, brain) -> None:
    apex.answer("brain_dump", ["fine"])
    d = disk()
    env = {"XDG_DATA_HOME": str(d.path)}
    assert run_brain("dump", "first", env=env).returncode == 0
    d.fill()
    r = run_brain("dump", "second thought", env=env)
    err = r.stderr.decode()
    assert r.returncode == 74, err
    assert "the disk is full" in err and "Nothing was sent" in err
    assert [q["messages"][-1]["content"] for q in apex.requests] == ["first"]


def _fill_then_answer(disk: TinyDisk, *, shown_first: bool, rest: int = 400):
    """An Apex that fills the disk as it answers: before its first token, or after it."""

    def script(conn: Any, _request: Request, _stopped: threading.Event) -> None:
        conn.sendall(SSE_HEAD)
        if shown_first:
            conn.sendall(chunk("the answer begins. "))
            time.sleep(1.0)  # brain shows it (and has marked the row as begun)
        disk.fill()
        for i in range(rest):  # enough text that storing it needs new pages
            conn.sendall(chunk(f"more words, line {i}, " * 20))
        conn.sendall(b"data: [DONE]\n\n")

    return script


def test_answer_shown_then_the_disk_fills_is_never_asked_again(disk, home) -> None:
    d = disk()
    env = {"XDG_DATA_HOME": str(d.path)}
    with Hostile({"/v1/chat/completions": _fill_then_answer(d, shown_first=True)}) as apex:
        env["BRAIN_APEX_URL"] = apex.url
        r = run_brain("dump", "the thought", env=env)
        err = r.stderr.decode()
        assert r.returncode == 74, err
        assert r.stdout.decode().startswith("the answer begins. more words")
        assert "The answer was shown" in err and "never asked again" in err
        assert "the disk is full" in err
        d.free()
        again = run_brain("queue", "run", env=env)
        assert again.returncode == 0 and "nothing queued" in again.stderr.decode()
        asked = [q for q in apex.requests if q.path == "/v1/chat/completions"]
        assert len(asked) == 1  # the answered question was not sent again
    listed = run_brain("history", "--json", env=env)
    assert "the thought" in listed.stdout.decode()
    [row] = rows(d.path)
    assert row["status"] == "partial" and row["partial_reason"] == NOT_STORED


def test_the_disk_fills_before_the_first_token_shows_nothing_and_keeps_it_queued(
    disk, home
) -> None:
    d = disk()
    env = {"XDG_DATA_HOME": str(d.path)}
    with Hostile({"/v1/chat/completions": _fill_then_answer(d, shown_first=False)}) as apex:
        env["BRAIN_APEX_URL"] = apex.url
        r = run_brain("dump", "the thought", env=env)
        err = r.stderr.decode()
        assert r.returncode == 74, err
        assert r.stdout == b""  # nothing was shown that would not be remembered
        assert "stopped before showing it" in err and "stays in the queue" in err
        d.free()
    listed = json.loads(run_brain("queue", "list", "--json", env=env).stdout)
    assert [q["input"] for q in listed["queued"]] == ["the thought"]


# ----- locked, read-only, damaged --------------------------------------------------------------


def test_a_database_locked_over_5_s_is_75_and_sends_nothing(apex: FakeApex, brain, home) -> None:
    apex.answer("brain_dump", ["fine"])
    assert brain("dump", "first").code == 0
    holder = sqlite3.connect(home.data / "brain" / "brain.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        r = brain("dump", "second")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert r.code == 75, r.stderr
    assert "locked by another program" in r.stderr and "Nothing was sent" in r.stderr
    assert len(apex.requests) == 1


def test_a_read_only_data_dir_is_74_and_sends_nothing(apex: FakeApex, disk, brain) -> None:
    apex.answer("brain_dump", ["fine"])
    d = disk()
    env = {"XDG_DATA_HOME": str(d.path)}
    assert run_brain("dump", "first", env=env).returncode == 0
    d.read_only()
    r = run_brain("dump", "second", env=env)
    err = r.stderr.decode()
    assert r.returncode == 74, err
    assert "read-only" in err and "Nothing was sent" in err
    assert len(apex.requests) == 1
    # Reading still works on a read-only disk.
    listed = run_brain("history", env=env)
    assert listed.returncode == 0, listed.stderr.decode()


def test_a_read_only_home_where_the_data_dir_cannot_be_made_is_74(disk, brain) -> None:
    d = disk()
    d.read_only()
    r = run_brain("dump", "x", env={"XDG_DATA_HOME": str(d.path / "nested")})
    assert r.returncode == 74, r.stderr.decode()
    assert "read-only" in r.stderr.decode()


@pytest.mark.parametrize(
    "damage", [b"this is not a database at all" * 100, b"SQLite format 3\x00" + b"\xff" * 4000]
)
def test_a_damaged_brain_db_is_74_naming_the_fix(
    apex: FakeApex, brain, home, damage: bytes
) -> None:
    apex.answer("brain_dump", ["fine"])
    db = home.data / "brain" / "brain.db"
    db.parent.mkdir(parents=True)
    db.write_bytes(damage)
    for args in (("dump", "x"), ("history",), ("queue", "list")):
        r = brain(*args)
        assert r.code == 74, (args, r.stderr)
        assert "damaged" in r.stderr and "brain.db.damaged" in r.stderr
    assert apex.requests == []
    assert db.read_bytes() == damage  # brain never "repairs" the user's history by itself


# ----- stdout ----------------------------------------------------------------------------------


def test_a_closed_stdout_sends_nothing_and_never_writes_into_brain_db(
    apex: FakeApex, brain, home
) -> None:
    apex.answer("brain_dump", ["fine"])
    assert brain("dump", "first").code == 0
    proc = subprocess.run(
        ["sh", "-c", f'exec "{brain_executable()}" dump second >&-'],
        capture_output=False,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
        timeout=60,
    )
    err = proc.stderr.decode()
    assert proc.returncode == 74, err
    assert "stdout is closed" in err and "nothing was sent" in err
    assert len(apex.requests) == 1
    assert [r["status"] for r in rows(home.data)] == ["answered"]  # brain.db is whole


def test_a_stdout_that_cannot_encode_the_answer_gets_it_with_replacements(
    apex: FakeApex, brain, home
) -> None:
    # A legacy code page, or a file redirected on Windows (cp1252): no arrow, no check mark.
    apex.answer("brain_dump", ["soil pH \u2192 5.5 ", "\u2713 caf\u00e9"])
    r = run_brain("dump", "the thought", env={"PYTHONIOENCODING": "latin-1"})
    assert r.returncode == 0, r.stderr.decode("latin-1")
    assert r.stdout.decode("latin-1") == "soil pH ? 5.5 ? caf\u00e9\n"
    [row] = rows(home.data)
    assert row["answer"] == "soil pH \u2192 5.5 \u2713 caf\u00e9"  # kept as it came


def test_json_on_a_stdout_that_cannot_encode_the_answer_is_escaped_not_replaced(
    apex: FakeApex, brain, home
) -> None:
    apex.answer("brain_dump", ["soil pH \u2192 5.5 ", "\u2713"])
    r = run_brain("--json", "dump", "the thought", env={"PYTHONIOENCODING": "latin-1"})
    assert r.returncode == 0, r.stderr.decode("latin-1")
    assert r.stdout.isascii()
    assert json.loads(r.stdout)["answer"] == "soil pH \u2192 5.5 \u2713"


def test_a_full_stdout_keeps_the_answer_as_partial(apex: FakeApex, brain, home) -> None:
    apex.answer("brain_dump", [f"w{i} " for i in range(50)])
    with open("/dev/full", "w") as full:
        r = run_brain("dump", "the thought", env={}, stdout=full)
    err = r.stderr.decode()
    assert r.returncode == 74, err
    assert "No space left on device" in err and "kept in the history" in err
    [row] = rows(home.data)
    assert row["status"] == "partial" and row["answer"].startswith("w0")
    assert brain("queue", "list", "--json").json == {"queued": []}


def test_a_full_stdout_with_json_says_where_the_answer_is(apex: FakeApex, brain, home) -> None:
    apex.answer("brain_dump", ["fine"])
    with open("/dev/full", "w") as full:
        r = run_brain("--json", "dump", "x", env={}, stdout=full)
    err = r.stderr.decode()
    assert r.returncode == 74, err
    assert "brain history 1" in err
    assert [row["status"] for row in rows(home.data)] == ["answered"]


# ----- item 6: valid JSON of the wrong shape ----------------------------------------------------


def _shaped(body: bytes) -> Any:
    def script(conn: Any, _request: Request, _stopped: threading.Event) -> None:
        conn.sendall(SSE_HEAD + body)

    return script


@pytest.mark.parametrize(
    "body", [b'data: {"choices": 7}\n\n', b"data: [1, 2]\n\n", b'data: {"choices": ["x"]}\n\n']
)
def test_wrong_shape_before_the_first_token_falls_back(
    ollama: Any, brain, monkeypatch: pytest.MonkeyPatch, body: bytes
) -> None:
    with Hostile({"/v1/chat/completions": _shaped(body)}) as apex:
        monkeypatch.setenv("BRAIN_APEX_URL", apex.url)
        r = brain("--json", "dump", "x")
    assert r.code == 0, r.stderr
    assert r.json["backend"] == "local" and "unexpected" in r.json["fallbacks"][0]["reason"]


def test_wrong_shape_after_the_first_token_keeps_what_was_shown(
    brain, home, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = chunk("start ") + b'data: {"choices": 7}\n\n'
    with Hostile({"/v1/chat/completions": _shaped(body)}) as apex:
        monkeypatch.setenv("BRAIN_APEX_URL", apex.url)
        r = brain("dump", "the thought")
        assert r.code == 75 and r.stdout == "start \n", r.stderr
        assert "unexpected shape" in r.stderr
        assert brain("queue", "run").code == 0
        assert len([q for q in apex.requests if q.path == "/v1/chat/completions"]) == 1
    [row] = rows(home.data)
    assert row["status"] == "partial" and row["answer"] == "start "


def test_queue_run_into_a_full_stdout_stops_at_the_first_answer(
    apex: FakeApex, brain, home
) -> None:
    from fakes import refused_url

    for text in ("first kept", "second kept", "third kept"):
        assert brain("dump", text, env={"BRAIN_APEX_URL": refused_url()}).code == 69
    apex.answer("brain_dump", ["an answer"])
    with open("/dev/full", "w") as full:
        r = run_brain("queue", "run", env={}, stdout=full)
    assert r.returncode == 74, r.stderr.decode()
    # It stops at the first thing it cannot write (the first entry's header, or its answer):
    # the rest are not sent into nowhere, and nothing is lost.
    assert len(apex.requests) <= 1
    by_input = {row["input"]: row["status"] for row in rows(home.data)}
    assert by_input["first kept"] in ("partial", "queued")
    assert by_input["second kept"] == by_input["third kept"] == "queued"
