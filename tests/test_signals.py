"""SIGTERM and SIGHUP (a closed terminal) mid-answer are Ctrl-C (issue 31, item 9): what was
shown is kept as a partial answer, the input is never sent again, the exit status is 128 + the
signal. Before the first token the input stays queued. A real brain process, real signals."""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
import time
from typing import Any

import pytest
from conftest import SUPPORT, brain_executable, spawn_brain
from fakes import FakeApex

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")


def rows(home: Any) -> list[dict[str, Any]]:
    db = sqlite3.connect(home.data / "brain" / "brain.db")
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM exchanges ORDER BY id")]
    finally:
        db.close()


def chat_requests(apex: FakeApex) -> int:
    return len(apex.requests)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_mid_answer_keeps_the_partial_and_never_resends(
    apex: FakeApex, brain, home, sig: int, code: int
) -> None:
    apex.answer("brain_dump", [f"w{i} " for i in range(200)], delay=0.05)
    proc = spawn_brain("dump", "the thought")
    assert proc.stdout.read(6) == b"w0 w1 "
    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode == code, err.decode()
    assert "partial answer is kept" in err.decode()
    [row] = rows(home)
    assert row["status"] == "partial" and row["answer"].startswith("w0 w1 ")
    assert brain("queue", "run").code == 0
    assert chat_requests(apex) == 1  # never sent again


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_before_the_answer_keeps_the_input_queued(
    apex: FakeApex, home, sig: int, code: int
) -> None:
    apex.answer("brain_dump", ["late"], first_delay=30)
    proc = spawn_brain("dump", "the thought")
    deadline = time.monotonic() + 20
    while not apex.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode == code, err.decode()
    assert "kept in the queue" in err.decode()
    assert [r["status"] for r in rows(home)] == ["queued"]


def test_sigterm_stops_the_whole_queue_run(apex: FakeApex, brain, home) -> None:
    from fakes import refused_url

    down = {"BRAIN_APEX_URL": refused_url()}
    assert brain("dump", "first kept", env=down).code == 69
    assert brain("dump", "second kept", env=down).code == 69
    apex.answer("brain_dump", [f"piece{i} " for i in range(200)], delay=0.05)
    proc = spawn_brain("queue", "run")
    seen = b""
    while b"piece0" not in seen:  # the entry's header, then the answer
        more = proc.stdout.read1(4096)
        assert more, "queue run ended before the answer began"
        seen += more
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 143, err.decode()
    assert chat_requests(apex) == 1
    by_input = {r["input"]: r["status"] for r in rows(home)}
    assert by_input == {"first kept": "partial", "second kept": "queued"}


def test_nohup_keeps_sighup_ignored(apex: FakeApex, home) -> None:
    import subprocess

    apex.answer("brain_dump", [f"w{i} " for i in range(40)], delay=0.05)
    proc = subprocess.Popen(
        ["nohup", brain_executable(), "dump", "the thought"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
    )
    assert proc.stdout.read(3) == b"w0 "
    proc.send_signal(signal.SIGHUP)
    out, _err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert out.decode().rstrip().endswith("w39")


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pty")
def test_closing_the_terminal_mid_answer_in_the_repl_keeps_the_partial(
    apex: FakeApex, home
) -> None:
    from terminal import Terminal

    apex.answer("default", [f"w{i} " for i in range(400)], delay=0.05)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SUPPORT), env.get("PYTHONPATH", "")])
    t = Terminal([brain_executable()], env, str(home.root))
    t.ready()
    t.line("tell me a long story")
    t.wait_for(r"w3 ")
    pty = t.child.ptyproc
    # The terminal window closes: its master side is closed, the kernel sends SIGHUP. Through
    # the file object, so that nothing closes that descriptor number again later (it would be
    # another file's by then: once, SQLite's brain.db in a later test).
    pty.fileobj.close()
    deadline = time.monotonic() + 20
    while pty.isalive() and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = pty.isalive()
    pty.closed = t.child.closed = True  # closed and reaped here
    if alive:
        os.kill(pty.pid, signal.SIGKILL)
        raise AssertionError("brain kept running after its terminal closed")
    [row] = rows(home)
    assert row["status"] == "partial" and row["answer"].startswith("w0 w1 w2 w3")
    assert len(apex.requests) == 1


def test_sigterm_while_reading_stdin_is_143_and_keeps_nothing(home) -> None:
    import subprocess

    reader, writer = os.pipe()  # a pipe that stays open and silent
    proc = subprocess.Popen(
        [brain_executable(), "digest"],
        stdin=reader,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
    )
    os.close(reader)
    _wait_reading_stdin(proc.pid)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=20)
    os.close(writer)
    assert proc.returncode == 143, err.decode()
    assert "stopped by SIGTERM" in err.decode()
    assert not (home.data / "brain" / "brain.db").exists()  # nothing had been kept


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pty")
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_at_the_repl_prompt_ends_it(home, sig: int, code: int) -> None:
    from terminal import Terminal

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SUPPORT), env.get("PYTHONPATH", "")])
    t = Terminal([brain_executable()], env, str(home.root))
    t.ready()
    t.child.kill(sig)
    assert t.wait_exit() == code


def _wait_reading_stdin(pid: int, timeout: float = 20.0) -> None:
    """Until `pid` is blocked in read(0, ...) (Linux: /proc/PID/syscall)."""
    path = f"/proc/{pid}/syscall"
    if not os.path.exists(path):
        pytest.skip("no /proc/PID/syscall to see the process block on its stdin")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path) as fh:
                fields = fh.read().split()
        except OSError:
            fields = []
        if fields[:2] == ["0", "0x0"]:  # x86-64 read(fd 0, ...)
            return
        time.sleep(0.05)
    pytest.skip("brain never blocked reading its stdin (not x86-64?)")
