"""No exit 70 on anything a user or a server can send (issue 31): a property-based sweep with
hypothesis over the contract's inputs. Arguments and flags, stdin bytes, config.toml (random
TOML over the schema, and random text), the environment brain reads, and what a server
answers (status, LiteLLM headers, SSE and NDJSON bodies of any JSON shape). Exit 70 means
"a bug in brain"; each of these inputs must end as an answer or as one of the contract's
codes, and `--json` must stay strict JSON.

Runs in-process (the `brain` fixture: brain.cli.run, the one place errors become exit codes),
so a few hundred examples take seconds. Hypothesis keeps failing examples in .hypothesis/."""

from __future__ import annotations

import json
import math
import os
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug import Request, Response

CODES = {0, 2, 65, 69, 74, 75, 77, 78}  # the contract's, plus 74 (brain's own files)
SWEEP = settings(
    # BRAIN_SWEEP_EXAMPLES=2000 for a deeper run; 120 keeps the suite at seconds.
    max_examples=int(os.environ.get("BRAIN_SWEEP_EXAMPLES", "120")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# Commands whose --json is an object on stdout (docs/json.md); `config path` and the like
# print what they print.
JSON_COMMANDS = {"dump", "digest", "draft", "code", "ask", "premium", "list", "history"}
JSON_COMMANDS |= {"status", "routes", "show", "check"}


TAKE_VALUE = {
    "--route",
    "--model",
    "--config",
    "--since",
    "--source",
    "--out",
    "-q",
    "-n",
    "--task",
}


def no_bug(r: Any, what: Any) -> None:
    assert r.code != 70, f"exit 70 for {what!r}:\n{r.stderr}"
    assert r.code in CODES, (r.code, what, r.stderr)
    args = getattr(r, "args", [])
    args = args[: args.index("--")] if "--" in args else args  # after --, words are text
    words = [a for a in args if not a.startswith("-")][:2]
    # `--out --json` writes to a file named "--json": a value, not the flag
    flagged = any(
        a == "--json" and (i == 0 or args[i - 1] not in TAKE_VALUE) for i, a in enumerate(args)
    )
    if flagged and r.code == 0 and r.stdout.strip() and JSON_COMMANDS & set(words):
        strict = {"parse_constant": lambda c: pytest.fail(f"{c} in --json")}
        if "history" in words:  # one object per line (DESIGN.md, History)
            for line in r.stdout.splitlines():
                json.loads(line, **strict)
        else:
            json.loads(r.stdout, **strict)


# ----- what a user types ------------------------------------------------------------------------

words = st.one_of(
    st.text(min_size=0, max_size=40),
    st.sampled_from(
        [
            "--json",
            "--offline",
            "--online",
            "-v",
            "--",
            "-",
            "--route",
            "--model",
            "--config",
            "/dev/zero",
            "/dev/null",
            "/",
            "notes.md",
            "./x",
            "~/y.txt",
            "0",
            "-1",
            "99999999999999999999999",
            "nan",
            "inf",
            "\x1b]52;c;aGk=\x07",
            "é",
            "caf\udce9",  # what Python makes of undecodable bytes in argv (surrogateescape)
            "\ud800",  # a lone surrogate, as a Windows argument can hold
            "memo.m4a",
            "24h",
            "2026-13-45",
            "7d",
        ]
    ),
)
commands = st.sampled_from(
    [
        ["dump"],
        ["digest"],
        ["draft"],
        ["code"],
        ["ask"],
        ["premium"],
        ["queue", "list"],
        ["queue", "run"],
        ["queue", "drop"],
        ["history"],
        ["status"],
        ["routes"],
        ["config", "show"],
        ["config", "path"],
        ["config", "set"],
        ["keys", "list"],
        ["keys", "set", "--stdin"],
        ["keys", "delete"],
        ["apex", "check"],
        ["completion"],
        ["digest", "--since"],
        ["digest", "--source"],
        ["digest", "--out"],
        ["history", "-q"],
        ["history", "-n"],
        ["history", "--task"],
        ["history"],
    ]
)
# Never drawn: what changes the machine (a scheduler entry, the microphone, a model download).
UNSAFE = ("--schedule", "--scheduler", "--record", "fetch")


@pytest.fixture
def answering(apex: Any) -> Any:
    for route in ("brain_dump", "daily_digest", "draft", "code", "default", "premium_reasoning"):
        apex.answer(route, ["fine"])
    return apex


@SWEEP
@given(command=commands, args=st.lists(words, max_size=5), stdin=st.binary(max_size=300))
def test_any_arguments_and_stdin(answering: Any, brain: Any, command, args, stdin) -> None:
    argv = [*command, *(a for a in args if not a.startswith(UNSAFE))]
    r = brain(*argv, input=stdin)
    r.args = argv
    no_bug(r, (argv, stdin))


# ----- config.toml and the environment --------------------------------------------------------

scalars = st.one_of(
    st.text(max_size=30),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.sampled_from(["http://127.0.0.1:1", "https://x", "http://a:b@h:99999", "ftp://x"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
keys_by_section = {
    "apex": ["url", "connect_timeout", "first_token_timeout", "probe_ttl", "context_tokens"],
    "local": ["url", "model", "keep_alive", "kind", "context_tokens", "first_token_timeout"],
    "notify": ["slack", "events"],
    "premium": ["daily_usd", "direct", "model", "anthropic_url"],
}
task_keys = ["route", "prompt", "fallback", "temperature", "max_tokens", "long_route"]


@st.composite
def configs(draw: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for section, keys in keys_by_section.items():
        if draw(st.booleans()):
            chosen = draw(st.lists(st.sampled_from([*keys, "other"]), max_size=3, unique=True))
            doc[section] = {k: draw(values) for k in chosen}
    if draw(st.booleans()):
        name = draw(st.sampled_from(["lesson", "dump", "ask", "x-y", "é", "1", ""]))
        fields = draw(st.lists(st.sampled_from(task_keys), max_size=3, unique=True))
        doc["tasks"] = {name: {k: draw(values) for k in fields}}
    if draw(st.booleans()):
        doc[draw(st.text(max_size=6))] = draw(values)
    return doc


@SWEEP
@given(doc=configs(), args=st.sampled_from([["dump", "x"], ["status"], ["--json", "ask", "y"]]))
def test_any_config_toml(answering: Any, brain: Any, write_config: Any, doc, args) -> None:
    import tomli_w

    try:
        text = tomli_w.dumps(doc)
    except (TypeError, ValueError):
        return  # not expressible as TOML at all
    write_config(text)
    r = brain(*args)
    r.args = args
    no_bug(r, text)


@SWEEP
@given(text=st.text(max_size=200))
def test_any_config_text(answering: Any, brain: Any, write_config: Any, text: str) -> None:
    write_config(text)
    r = brain("dump", "x")
    no_bug(r, text)


env_text = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=40
)


@SWEEP
@given(
    var=st.sampled_from(
        [
            "BRAIN_APEX_URL",
            "BRAIN_LOCAL_URL",
            "BRAIN_LOCAL_MODEL",
            "BRAIN_OFFLINE",
            "BRAIN_APEX_KEY",
            "BRAIN_CONFIG",
            "BRAIN_SLACK_WEBHOOK",
        ]
    ),
    value=env_text,
)
def test_any_environment(answering: Any, brain: Any, var: str, value: str) -> None:
    r = brain("--json", "dump", "x", env={var: value})
    r.args = ["--json", "dump"]
    no_bug(r, (var, value))


# ----- what a server answers -------------------------------------------------------------------

json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False),
        st.text(max_size=20),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)


@st.composite
def chunks(draw: Any) -> Any:
    """An OpenAI chunk that is nearly right, or any JSON at all."""
    content = draw(st.one_of(st.text(max_size=20), json_values))
    finish = draw(st.sampled_from([None, "stop", "length", 7, ""]))
    shaped = {"choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]}
    if draw(st.booleans()):
        shaped["usage"] = draw(json_values)
    return draw(st.sampled_from([shaped, {"error": draw(json_values)}, draw(json_values)]))


header_values = st.one_of(
    st.sampled_from(["nan", "inf", "-1", "1e999", "", "0", "x", "[]", "[{}]", '"s"']),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
)


@st.composite
def replies(draw: Any) -> tuple[int, dict[str, str], bytes]:
    status = draw(st.sampled_from([200, 200, 200, 400, 401, 404, 408, 429, 500, 502, 503]))
    headers = {
        name: draw(header_values)
        for name in draw(
            st.lists(
                st.sampled_from(
                    [
                        "x-litellm-response-cost",
                        "x-litellm-response-cost-original",
                        "x-litellm-attempted-fallbacks",
                        "x-litellm-model-id",
                        "x-litellm-fallback-errors",
                        "retry-after",
                        "llm_provider-retry-after",
                    ]
                ),
                unique=True,
                max_size=4,
            )
        )
    }
    kind = draw(st.sampled_from(["sse", "json", "text", "gzip-ish"]))
    if kind == "sse":
        events = draw(st.lists(chunks(), max_size=5))
        body = "".join(f"data: {json.dumps(e)}\n\n" for e in events)
        if draw(st.booleans()):
            body += "data: [DONE]\n\n"
        headers["Content-Type"] = "text/event-stream"
        return status, headers, body.encode()
    if kind == "json":
        headers["Content-Type"] = "application/json"
        return status, headers, json.dumps(draw(json_values)).encode()
    if kind == "gzip-ish":
        headers["Content-Encoding"] = draw(st.sampled_from(["gzip", "br", "deflate", "zstd"]))
    return status, headers, draw(st.binary(max_size=200))


class Scripted:
    """A fake server answering every request with the reply the current example chose."""

    def __init__(self) -> None:
        self.reply: tuple[int, dict[str, str], bytes] = (200, {}, b"")
        self.lock = threading.Lock()

    def __call__(self, _request: Request) -> Response:
        with self.lock:
            status, headers, body = self.reply
        return Response(body, status=status, headers=headers)


@SWEEP
@given(reply=replies())
def test_any_apex_answer(apex_server: Any, brain: Any, monkeypatch: Any, reply) -> None:
    scripted = Scripted()
    scripted.reply = reply
    apex_server.clear()
    apex_server.expect_request("/health/liveliness").respond_with_data('"ok"')
    apex_server.expect_request("/v1/chat/completions").respond_with_handler(scripted)
    monkeypatch.setenv("BRAIN_APEX_URL", apex_server.url_for("").rstrip("/"))
    r = brain("--json", "dump", "x")
    r.args = ["--json", "dump"]
    no_bug(r, reply)
    if r.code == 0:
        cost = json.loads(r.stdout)["cost"]
        assert cost is None or (math.isfinite(cost) and cost >= 0)


@st.composite
def ndjson(draw: Any) -> tuple[int, dict[str, str], bytes]:
    lines = []
    for _ in range(draw(st.integers(0, 4))):
        content = draw(st.one_of(st.text(max_size=10), json_values))
        lines.append(
            draw(
                st.sampled_from(
                    [
                        {"message": {"role": "assistant", "content": content}, "done": False},
                        {"done": True, "done_reason": content, "eval_count": content},
                        {"error": content},
                        content,
                    ]
                )
            )
        )
    body = "".join(json.dumps(line) + "\n" for line in lines).encode()
    status = draw(st.sampled_from([200, 200, 404, 500, 503]))
    return status, {"Content-Type": "application/x-ndjson"}, body


@SWEEP
@given(reply=ndjson(), ps=json_values, show=json_values)
def test_any_ollama_answer(ollama_server: Any, brain: Any, monkeypatch: Any, reply, ps, show):
    scripted = Scripted()
    scripted.reply = reply
    ollama_server.clear()
    ollama_server.expect_request("/api/version").respond_with_json({"version": "0.12.0"})
    ollama_server.expect_request("/api/ps").respond_with_json(ps)
    ollama_server.expect_request("/api/show").respond_with_json(show)
    ollama_server.expect_request("/api/tags").respond_with_json(ps)
    ollama_server.expect_request("/api/chat").respond_with_handler(scripted)
    monkeypatch.setenv("BRAIN_LOCAL_URL", ollama_server.url_for("").rstrip("/"))
    r = brain("--offline", "--json", "dump", "x")
    r.args = ["--json", "dump"]
    no_bug(r, (reply, ps, show))


# ----- what an MCP client sends ---------------------------------------------------------------


@pytest.fixture
def mcp_server(home: Any) -> Any:
    """One `brain mcp` for the whole sweep, initialized; Apex and the local model refused."""
    import subprocess

    pytest.importorskip("mcp")
    from conftest import SUPPORT, brain_executable
    from fakes import refused_url
    from mcp_wire import INITIALIZED, initialize

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SUPPORT), env.get("PYTHONPATH", "")])
    env["BRAIN_APEX_URL"] = refused_url()
    proc = subprocess.Popen(
        [brain_executable(), "mcp"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    hello = initialize(0, "sweep")
    proc.stdin.write((json.dumps(hello) + "\n").encode())
    proc.stdin.write((json.dumps(INITIALIZED) + "\n").encode())
    proc.stdin.flush()
    assert json.loads(proc.stdout.readline())["id"] == 0
    proc.next_id = 1  # type: ignore[attr-defined]
    yield proc
    proc.kill()
    proc.wait()


@st.composite
def mcp_requests(draw: Any) -> tuple[int, str]:
    """(its id, one line): a request nearly right, or of any shape, sometimes not JSON."""
    method = draw(st.sampled_from(["ping", "tools/list", "tools/call", "no/such", 7, None]))
    params: Any = draw(
        st.one_of(
            json_values,
            st.fixed_dictionaries(
                {
                    "name": st.sampled_from(["dump", "ask", "status", "nope", 3]),
                    "arguments": st.one_of(
                        json_values,
                        st.fixed_dictionaries({"text": st.text(max_size=30)}),
                    ),
                }
            ),
        )
    )
    request: dict[str, Any] = {"jsonrpc": draw(st.sampled_from(["2.0", "2.0", "1.0"]))}
    request["method"] = method
    request["params"] = params
    line = json.dumps(request)
    damage = draw(st.sampled_from(["none", "none", "surrogate", "garbage"]))
    if damage == "surrogate":
        line = line.replace('"jsonrpc"', '"\\udc80": 1, "jsonrpc"', 1)
    return draw(st.sampled_from(["plain", "float id"])), line if damage != "garbage" else line[:-1]


@settings(
    max_examples=int(os.environ.get("BRAIN_SWEEP_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=mcp_requests())
def test_every_mcp_request_gets_an_answer(mcp_server: Any, request) -> None:
    """Item 14, swept: whatever a client sends with an id, it gets an answer for that id (the
    SDK drops what pydantic cannot read without a word; brain answers those itself)."""
    import select

    kind, line = request
    rid: Any = mcp_server.next_id
    mcp_server.next_id += 1
    if kind == "float id":
        rid += 0.5
    line = line.replace("{", f'{{"id": {json.dumps(rid)}, ', 1)
    mcp_server.stdin.write((line + "\n").encode())
    mcp_server.stdin.flush()
    while True:
        ready, _, _ = select.select([mcp_server.stdout], [], [], 10.0)
        assert ready, f"no answer for id {rid} to {line!r}"
        raw = mcp_server.stdout.readline()
        assert raw, f"the server ended on {line!r}"
        if json.loads(raw).get("id") == rid:
            return
