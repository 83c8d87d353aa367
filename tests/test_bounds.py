"""Every read has a bound, every wait a deadline that counts content (issue 31, items 1 and 2),
tried for real: `yes` and /dev/zero on stdin, a 3 GB file, 30 files, hostile servers (an SSE
line without end, an endless JSON or error body, a gzip bomb, pings, headers a byte at a time,
a stall after the first token), an endless /api/ps, a health check that never stops
downloading, a Slack webhook that answers forever, `apex check` against a server that never
sends content, and MCP requests past the cap. brain runs as a process under a 512 MiB address
space cap (tests/support/capped.py), so a failure here cannot take the machine down; its peak
resident memory must stay under PEAK_MIB (bench/memory.py measures and reports the figures).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import hostile
import pytest
from capped import run_capped
from conftest import SUPPORT, brain_executable
from fakes import refused_url
from hostile import Hostile
from mcp_wire import INITIALIZED, initialize

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX rlimits")

PEAK_MIB = 64  # issue 31: peak memory of brain under 64 MiB in every hostile case


def env(extra: dict[str, str] | None = None) -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(SUPPORT), e.get("PYTHONPATH", "")])
    e["BRAIN_APEX_KEY"] = "sk-bounds-test-key"  # a keyless 500 means "set a key" (77)
    e.update(extra or {})
    return e


def brain_capped(*args: str, extra: dict[str, str] | None = None, **kw: Any) -> Any:
    result = run_capped([brain_executable(), *args], env(extra), **kw)
    assert result.code != 70, result.stderr
    assert result.peak_mib < PEAK_MIB, f"peak {result.peak_mib:.1f} MiB\n{result.stderr}"
    return result


@pytest.fixture
def fast(write_config: Any) -> None:
    write_config("[apex]\nfirst_token_timeout = 1\n[local]\nfirst_token_timeout = 1\n")


# ----- input ---------------------------------------------------------------------------------


def test_yes_piped_forever_is_refused_at_the_cap() -> None:
    yes = subprocess.Popen(["yes"], stdout=subprocess.PIPE)
    try:
        r = brain_capped("digest", stdin=yes.stdout)
    finally:
        yes.kill()
        yes.wait()
    assert r.code == 65 and "more than 4096 KiB" in r.stderr


def test_dev_zero_on_stdin_is_refused_at_the_cap() -> None:
    with open("/dev/zero", "rb") as zero:
        r = brain_capped("digest", stdin=zero)
    assert r.code == 65


def test_a_3_gb_file_is_refused_before_it_is_read(home: Any) -> None:
    big = home.root / "big.txt"
    with open(big, "wb") as fh:
        fh.truncate(3 << 30)  # sparse: 3 GB that take no disk
    r = brain_capped("digest", str(big))
    assert r.code == 65 and "more than 4096 KiB" in r.stderr


def test_thirty_files_are_capped_together(home: Any) -> None:
    names = []
    for i in range(30):
        path = home.root / f"part{i}.md"
        path.write_text(f"notes {i} " * 20_000)  # ~200 KB each, 6 MB in all
        names.append(str(path))
    r = brain_capped("digest", *names)
    assert r.code == 65 and "the files together" in r.stderr


def test_the_instruction_counts_against_the_cap_too(home: Any) -> None:
    words = ["word " * 20_000] * 12  # 1.2 MB of instruction, within ARG_MAX
    r = brain_capped("dump", *words, input=b"material " * 400_000)  # + 3.6 MB
    assert r.code == 65 and "instruction and material together" in r.stderr


# ----- hostile Apex: every body and line has a bound, every wait counts content ----------------


@pytest.mark.parametrize(
    ("script", "said"),
    [
        (hostile.endless_line, "1024 KiB"),
        (hostile.endless_json, "KiB"),
        (hostile.endless_error, "HTTP 500"),
        (hostile.gzip_bomb, "expands past 1 MiB"),
        (hostile.pings, "timed out"),
        (hostile.empty_chunks, "timed out"),
        (hostile.dribble, "timed out"),
    ],
)
@pytest.mark.parametrize("client", ["plainhttp", "httpx"])
def test_a_hostile_apex_is_left_with_bounded_memory(
    fast: None, script: Any, said: str, client: str
) -> None:
    extra = {"BRAIN_HTTP": client}  # brain's light client by default; httpx when asked
    with Hostile({"/v1/chat/completions": script}) as apex:
        r = brain_capped("dump", "x", extra={"BRAIN_APEX_URL": apex.url, **extra})
    assert r.code == 69, r.stderr  # nothing else could answer: the input is kept
    assert said in r.stderr and "Nothing could answer" in r.stderr


@pytest.mark.parametrize("script", [hostile.stall_after_first, hostile.trickle_after_first])
def test_a_stall_after_the_first_token_is_partial_75(fast: None, script: Any) -> None:
    with Hostile({"/v1/chat/completions": script}) as apex:
        r = brain_capped("dump", "x", extra={"BRAIN_APEX_URL": apex.url})
    assert r.code == 75 and r.stdout == "begun \n"
    assert "stalled" in r.stderr and "partial" in r.stderr


def test_a_health_check_that_never_stops_downloading(fast: None) -> None:
    with Hostile(
        {"/health/liveliness": hostile.endless_text, "/v1/chat/completions": hostile.pings},
        alive=False,
    ) as apex:
        r = brain_capped("dump", "x", extra={"BRAIN_APEX_URL": apex.url})
    assert r.code == 69, r.stderr


def _ollama_with(ps: Any) -> Hostile:
    def version(conn: Any, request: Any, stopped: Any) -> None:
        hostile.reply(200, b'{"version": "0.12.0"}')(conn, request, stopped)

    def chat(conn: Any, request: Any, stopped: Any) -> None:
        lines = [
            {"message": {"role": "assistant", "content": "local "}, "done": False},
            {"message": {"role": "assistant", "content": "answer"}, "done": False},
            {"done": True, "done_reason": "stop", "prompt_eval_count": 3, "eval_count": 2},
        ]
        body = "".join(json.dumps(line) + "\n" for line in lines).encode()
        hostile.reply(200, body, "application/x-ndjson")(conn, request, stopped)

    return Hostile({"/api/version": version, "/api/ps": ps, "/api/chat": chat}, alive=False)


@pytest.mark.parametrize("ps", [hostile.endless_json, hostile.dribble, hostile.dribble_body])
def test_an_endless_api_ps_does_not_hold_the_local_answer(fast: None, ps: Any) -> None:
    with _ollama_with(ps) as ollama:
        r = brain_capped("--offline", "dump", "x", extra={"BRAIN_LOCAL_URL": ollama.url})
    assert r.code == 0 and r.stdout == "local answer\n", r.stderr


# ----- the Slack sender ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "said"),
    [
        (hostile.endless_text, "KiB"),
        (hostile.dribble_body, "timed out"),
        (hostile.dribble, "timed out"),
    ],
)
def test_the_slack_sender_ends_with_bounded_memory(home: Any, script: Any, said: str) -> None:
    from brain.store import Store

    (home.data / "brain").mkdir(parents=True, exist_ok=True)
    store = Store(home.data / "brain" / "brain.db")
    store.outbox_add("slack", "brain fallback fired")
    store.close()
    with Hostile({"/hook": script}, alive=False) as slack:
        r = run_capped(
            [sys.executable, "-m", "brain.notify"],
            env({"BRAIN_SLACK_WEBHOOK": slack.url + "/hook"}),
            timeout=60,
            cwd=str(home.root),
        )
    assert r.code == 0 and r.peak_mib < PEAK_MIB, (r.peak_mib, r.stderr)
    store = Store(home.data / "brain" / "brain.db")
    [(_row, _text, attempts)] = store.outbox("slack")
    error = store.db.execute("SELECT last_error FROM outbox").fetchone()[0]
    store.close()
    assert attempts == 1 and said in error  # kept for the next run, with why


def test_the_slack_sender_never_follows_the_webhook_elsewhere(home: Any) -> None:
    from brain.store import Store

    (home.data / "brain").mkdir(parents=True, exist_ok=True)
    store = Store(home.data / "brain" / "brain.db")
    store.outbox_add("slack", "notice")
    store.close()

    def redirect(conn: Any, request: Any, stopped: Any) -> None:
        conn.sendall(
            b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/elsewhere\r\n"
            b"Content-Length: 0\r\nConnection: close\r\n\r\n"
        )

    with Hostile({"/hook": redirect}, alive=False) as slack:
        r = run_capped(
            [sys.executable, "-m", "brain.notify"],
            env({"BRAIN_SLACK_WEBHOOK": slack.url + "/hook"}),
            cwd=str(home.root),
        )
    assert r.code == 0
    store = Store(home.data / "brain" / "brain.db")
    assert store.outbox("slack")[0][2] == 1  # not sent; kept
    store.close()


# ----- apex check ------------------------------------------------------------------------------


@pytest.mark.parametrize("script", [hostile.pings, hostile.endless_line])
def test_apex_check_against_a_server_that_sends_no_content(fast: None, script: Any) -> None:
    with Hostile({"/v1/chat/completions": script}) as apex:
        r = brain_capped("apex", "check", "--json", extra={"BRAIN_APEX_URL": apex.url})
    assert r.code == 69, r.stderr
    routes = json.loads(r.stdout)["routes"]
    assert routes and all(not x["ok"] for x in routes if not x["skipped"])


# ----- MCP -------------------------------------------------------------------------------------


@pytest.fixture
def mcp_server() -> Iterator[Any]:
    pytest.importorskip("mcp")
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    proc = subprocess.Popen(
        [brain_executable(), "mcp"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env({"BRAIN_APEX_URL": refused_url()}),
        preexec_fn=limit,
    )
    hello = initialize()
    proc.stdin.write((json.dumps(hello) + "\n").encode())
    proc.stdin.write((json.dumps(INITIALIZED) + "\n").encode())
    proc.stdin.flush()
    assert json.loads(proc.stdout.readline())["id"] == 1
    yield proc
    proc.kill()
    proc.wait()


def _reply(proc: Any, want: int) -> dict[str, Any]:
    while True:
        line = proc.stdout.readline()
        assert line, proc.stderr.read().decode()
        message = json.loads(line)
        if message.get("id") == want:
            return message


def test_mcp_a_request_past_the_cap_gets_an_error_result(mcp_server: Any) -> None:
    call = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "dump", "arguments": {"text": "x", "material": "y" * (20 << 20)}},
    }
    mcp_server.stdin.write((json.dumps(call) + "\n").encode())
    mcp_server.stdin.write(b'{"jsonrpc": "2.0", "id": 3, "method": "tools/list"}\n')
    mcp_server.stdin.flush()
    reply = _reply(mcp_server, 2)
    assert reply["result"]["isError"] is True
    assert "larger than 8 MiB" in reply["result"]["content"][0]["text"]
    assert "tools" in _reply(mcp_server, 3)["result"]  # the server goes on


def test_mcp_material_past_4_mib_is_refused_before_sending(mcp_server: Any) -> None:
    call = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "dump", "arguments": {"text": "x", "material": "y" * (5 << 20)}},
    }
    mcp_server.stdin.write((json.dumps(call) + "\n").encode())
    mcp_server.stdin.flush()
    reply = _reply(mcp_server, 2)
    assert reply["result"]["isError"] is True
    assert "more than 4096 KiB" in reply["result"]["content"][0]["text"]
