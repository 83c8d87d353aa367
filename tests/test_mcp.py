"""`brain mcp`, driven by the MCP SDK's own stdio client (and once by hand, line by line, to
see that stdout carries nothing but the protocol).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import SUPPORT, brain_executable
from fakes import FakeApex, FakeOllama, refused_url
from mcp_wire import INITIALIZED, initialize

pytest.importorskip("mcp", reason="brain mcp needs the extra: pip install -e '.[mcp]'")

import anyio  # after the skip: anyio comes with mcp


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)  # the test's HOME, XDG dirs, keyring and BRAIN_* from fixtures
    env["PYTHONPATH"] = os.pathsep.join([str(SUPPORT), env.get("PYTHONPATH", "")])
    env.update(extra or {})
    return env


def session(args: list[str], calls, extra_env: dict[str, str] | None = None) -> Any:
    """Start `brain mcp ARGS` with the SDK's stdio client; run `calls(session)`; its result."""
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(
        command=brain_executable(), args=["mcp", *args], env=server_env(extra_env)
    )

    async def main() -> Any:
        with open(os.devnull, "w") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write):
                async with ClientSession(read, write) as s:
                    await s.initialize()
                    return await calls(s)

    return anyio.run(main)


def texts(result: Any) -> list[str]:
    return [c.text for c in result.content]


def test_lists_one_tool_per_task_and_status(apex: FakeApex, write_config) -> None:
    write_config('[tasks.notes]\nroute = "notes_route"\n')

    async def calls(s):
        return await s.list_tools()

    listed = session([], calls)
    tools = {t.name: t for t in listed.tools}
    assert set(tools) == {"dump", "digest", "draft", "code", "ask", "notes", "status"}
    dump = tools["dump"]
    assert dump.input_schema["required"] == ["text"]
    assert set(dump.input_schema["properties"]) == {"text", "material", "audio"}
    assert "brain_dump" in dump.description and "local model" in dump.description


def test_premium_only_with_allow_premium(apex: FakeApex, write_config) -> None:
    write_config('[tasks.deep]\nroute = "premium_reasoning"\nfallback = "none"\n')

    async def names(s):
        return {t.name for t in (await s.list_tools()).tools}

    assert not {"premium", "deep"} & session([], names)
    allowed = session(["--allow-premium"], names)
    assert {"premium", "deep"} <= allowed


def test_call_dump_answers_from_apex_and_lands_in_history(apex: FakeApex, home) -> None:
    apex.answer("brain_dump", ["- [ ] call ", "Sam"], model_id="gemma27b")

    async def calls(s):
        return await s.call_tool("dump", {"text": "call Sam", "material": "fri: field trip"})

    result = session([], calls)
    assert not result.is_error
    assert texts(result) == ["- [ ] call Sam"]
    sent = apex.requests[0]
    assert sent["model"] == "brain_dump"
    assert sent["messages"][-1]["content"] == "call Sam\n\nfri: field trip"

    import sqlite3

    db = sqlite3.connect(home.data / "brain" / "brain.db")
    row = db.execute("SELECT task, route, backend, model, answer, status FROM exchanges").fetchone()
    db.close()
    assert row == ("dump", "brain_dump", "apex", "gemma27b", "- [ ] call Sam", "answered")


def test_fallback_to_local_is_said_in_the_result(ollama: FakeOllama, monkeypatch) -> None:
    monkeypatch.setenv("BRAIN_APEX_URL", refused_url())

    async def calls(s):
        return await s.call_tool("ask", {"text": "hi"})

    result = session([], calls)
    assert not result.is_error
    answer, note = texts(result)
    assert answer == "local answer"
    assert note.startswith("brain: answered by local gemma4:e4b") and "refused" in note


def test_nothing_reachable_is_a_tool_error_with_the_fix(monkeypatch) -> None:
    monkeypatch.setenv("BRAIN_APEX_URL", refused_url())

    async def calls(s):
        return await s.call_tool("dump", {"text": "x"})

    result = session([], calls)
    assert result.is_error
    (message,) = texts(result)
    assert "Nothing could answer" in message and "brain queue run" in message


def test_status_tool(apex: FakeApex) -> None:
    async def calls(s):
        return await s.call_tool("status", {})

    result = session([], calls)
    data = json.loads(texts(result)[0])
    assert data["apex"] == {"url": apex.url, "reachable": True, "reason": None,
                            "latency_ms": data["apex"]["latency_ms"]}  # fmt: skip
    assert data["local"]["ready"] is False and "ollama" in data["local"]["fix"]
    assert {"name": "dump", "route": "brain_dump", "fallback": "local"} in data["tools"]
    assert data["premium"]["enabled"] is False
    assert apex.requests == []  # status asks no model


def test_stdout_is_protocol_only(ollama: FakeOllama, monkeypatch) -> None:
    """By hand: the fallback notices (stderr) never reach stdout, where every line is JSON-RPC."""
    monkeypatch.setenv("BRAIN_APEX_URL", refused_url())
    lines = [
        initialize(),
        INITIALIZED,
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "dump", "arguments": {"text": "x"}},
        },
    ]
    proc = subprocess.Popen(
        [brain_executable(), "mcp"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=server_env(),
    )
    assert proc.stdin is not None and proc.stdout is not None
    for line in lines:
        proc.stdin.write((json.dumps(line) + "\n").encode())
    proc.stdin.flush()
    replies: dict[int, Any] = {}
    out: list[bytes] = []
    while 2 not in replies:
        raw = proc.stdout.readline()
        assert raw, "the server closed stdout before answering"
        out.append(raw)
        message = json.loads(raw)
        assert message["jsonrpc"] == "2.0"
        if "id" in message:
            replies[message["id"]] = message
    proc.stdin.close()  # end of input: the server finishes
    assert proc.wait(timeout=30) == 0
    rest, err = proc.stdout.read(), proc.stderr.read()
    assert all(json.loads(line)["jsonrpc"] == "2.0" for line in rest.splitlines() if line)
    assert replies[2]["result"]["content"][0]["text"] == "local answer"
    assert b"answering on this laptop" in err  # the notice went where it belongs


def test_without_the_sdk_the_message_names_the_extra(brain_proc, tmp_path: Path) -> None:
    # A directory early on sys.path whose `mcp` package fails to import, like a missing one.
    fake = tmp_path / "no-mcp" / "mcp"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no mcp here')\n")
    r = brain_proc(
        "mcp",
        env={"PYTHONPATH": os.pathsep.join([str(fake.parent), str(SUPPORT)])},
    )
    assert r.code == 69, r.stderr
    # brain runs in this virtual environment: the hint is its own pip, which works as printed
    # (the system pip may refuse, and `brain-cli` on the package index is someone else's).
    import re

    found = re.search(r"`(\S+) -m pip install mcp==2\.3\.0`", r.stderr)
    assert found, r.stderr
    assert Path(found.group(1)).parent == Path(brain_executable()).parent
    pip = subprocess.run([found.group(1), "-m", "pip", "--version"], capture_output=True, text=True)
    assert str(Path(brain_executable()).parent.parent) in pip.stdout  # this venv's own pip
    assert "brain-cli" not in r.stderr
    assert r.stdout == ""


def test_install_hints_follow_how_brain_was_installed(monkeypatch) -> None:
    import sys

    from brain import install

    monkeypatch.setattr(sys, "prefix", "/home/u/.local/share/pipx/venvs/brain-apex")
    assert install.add("mcp==2.3.0") == "`pipx inject brain-apex mcp==2.3.0`"
    monkeypatch.setattr(sys, "prefix", "/home/u/brain/.venv")
    monkeypatch.setattr(sys, "executable", "/home/u/brain/.venv/bin/python")
    assert install.add("keyrings.alt").startswith(
        "`/home/u/brain/.venv/bin/python -m pip install keyrings.alt`"
    )
    monkeypatch.setattr(sys, "prefix", sys.base_prefix)
    assert "pipx inject brain-apex keyrings.alt" in install.add("keyrings.alt")


@pytest.mark.parametrize("text", [r"x\ud800y", r"\udfff", r"pair ok \ud83d\ude00 then lone \ud83d"])
def test_a_lone_surrogate_gets_an_error_result_not_silence(apex: FakeApex, text: str) -> None:
    """Issue 31, item 14: pydantic (the SDK's JSON parser) refuses a lone UTF-16 surrogate
    escape as invalid JSON, and the SDK's dispatcher drops what it cannot parse with a debug
    log: the client waited forever. brain answers that request with an error result."""
    hello = initialize()
    call = (
        '{"jsonrpc": "2.0", "id": 2, "method": "tools/call", '
        f'"params": {{"name": "dump", "arguments": {{"text": "{text}"}}}}}}'
    )
    proc = subprocess.Popen(
        [brain_executable(), "mcp"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=server_env(),
    )
    lines = [
        json.dumps(hello),
        json.dumps(INITIALIZED),
        call,
        '{"jsonrpc": "2.0", "id": 3, "method": "ping"}',
    ]
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(("\n".join(lines) + "\n").encode())
    proc.stdin.flush()
    replies: dict[int, Any] = {}
    while not {2, 3} <= set(replies):  # wait for both before closing stdin (which ends it)
        raw = proc.stdout.readline()
        assert raw, proc.stderr.read().decode() if proc.stderr else ""
        message = json.loads(raw)
        if "id" in message:
            replies[message["id"]] = message
    proc.stdin.close()
    proc.wait(timeout=30)
    assert replies[2]["result"]["isError"] is True
    assert "lone UTF-16 surrogate" in replies[2]["result"]["content"][0]["text"]
    assert replies[3]["result"] == {}  # and the server goes on
    assert apex.requests == []  # nothing was asked


def test_a_surrogate_pair_is_a_character_and_is_asked(apex: FakeApex) -> None:
    apex.answer("brain_dump", ["noted"])

    async def calls(s):
        return await s.call_tool("dump", {"text": "smile \U0001f600"})

    result = session([], calls)
    assert not result.is_error and texts(result) == ["noted"]
    assert apex.requests[0]["messages"][-1]["content"] == "smile \U0001f600"


@pytest.mark.parametrize(
    ("line", "rid"),
    [
        ('{"jsonrpc": "2.0", "id": 10, "method": 7}', 10),
        ('{"jsonrpc": "2.0", "id": 11, "method": "tools/call", "params": [1, 2]}', 11),
        ('{"jsonrpc": "1.0", "id": 12, "method": "ping"}', 12),
        ('{"jsonrpc": "2.0", "id": 13.5, "method": "ping"}', 13.5),
        ('[{"jsonrpc": "2.0", "id": 14, "method": "ping"}]', 14),
        ('{"jsonrpc": "2.0", "id": 15, "method": "ping" garbage', 15),
    ],
)
def test_a_request_the_sdk_cannot_read_gets_an_error_not_silence(line: str, rid: Any) -> None:
    hello = initialize()
    proc = subprocess.Popen(
        [brain_executable(), "mcp"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=server_env(),
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write((json.dumps(hello) + "\n" + line + "\n").encode())
    proc.stdin.flush()
    try:
        while True:
            raw = proc.stdout.readline()
            assert raw, "the server ended without answering"
            message = json.loads(raw)
            if message.get("id") == rid:
                break
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    error = message.get("error") or message["result"]["content"][0]
    assert "brain: the request" in json.dumps(error)


def test_digest_of_material_longer_than_the_model_reads_in_parts(
    ollama: FakeOllama, monkeypatch
) -> None:
    # As `brain digest`: 60 KB on a 4,096-token laptop model is read in parts, not refused.
    ollama.model_ctx = 4096
    monkeypatch.setenv("BRAIN_APEX_URL", refused_url())
    material = "".join(
        f"line {n}: the soil pH lab needs strips, rubric v{n % 7}\n" for n in range(1200)
    )

    async def calls(s):
        return await s.call_tool("digest", {"text": "what to do", "material": material})

    result = session([], calls)
    assert not result.is_error, texts(result)
    answer = texts(result)[0]
    assert "_Digested in " in answer and "parts" in answer
    sent = "\n".join(str(m["content"]) for r in ollama.requests for m in r["messages"])
    assert all(f"line {n}:" in sent for n in range(1200))  # every line reached a part
