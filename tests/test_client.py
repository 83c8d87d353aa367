"""The backends over brain.client against FakeApex / FakeOllama and hostile servers: SSE,
NDJSON, LiteLLM's headers, usage, every error shape, deadlines that count content, bounds."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from typing import Any

import pytest
from fakes import FakeApex, FakeOllama, HangingListener, chunk, refused_url
from werkzeug import Response

from brain import backends
from brain.client import MAX_LINE, one_line
from brain.errors import BackendError, ConfigError, KeyProblem, TemporaryFailure

MSGS = [{"role": "user", "content": "hi"}]


@pytest.fixture(autouse=True, params=["plainhttp", "httpx"])
def http_client(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every case here against both clients: brain.plainhttp (plain http on brain's own
    network, the default) and httpx (BRAIN_HTTP=httpx; https and the internet always)."""
    if request.param == "httpx":
        monkeypatch.setenv("BRAIN_HTTP", "httpx")
    else:
        monkeypatch.delenv("BRAIN_HTTP", raising=False)
    return request.param


@pytest.fixture
def chat(make_app: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """chat(url, model, name="apex", key=None, first=5.0, on_delta=None): one streamed question
    to the apex (or local) backend at `url`, outside the ladder."""

    def ask(
        url: str,
        model: str,
        *,
        name: str = "apex",
        key: str | None = None,
        first: float = 5.0,
        on_delta: Any = None,
        messages: list[dict[str, str]] = MSGS,
        kind: str = "auto",
    ) -> Any:
        monkeypatch.setenv("BRAIN_APEX_URL" if name == "apex" else "BRAIN_LOCAL_URL", url)
        if key:
            monkeypatch.setenv("BRAIN_APEX_KEY", key)
        else:
            monkeypatch.delenv("BRAIN_APEX_KEY", raising=False)
        section = "apex" if name == "apex" else "local"
        app = make_app(**{f"{section}_first_token_timeout": first, "local_kind": kind})
        return backends.chat(app.backend(name), model, messages, on_delta=on_delta)

    return ask


def test_stream_reads_text_usage_and_litellm_headers(apex: FakeApex, chat) -> None:
    apex.answer("brain_dump", ["Hel", "lo"], model_id="gemma27b-q4", cost=0.00012)
    got: list[str] = []
    a = chat(apex.url, "brain_dump", on_delta=got.append)
    assert a.text == "Hello" and got == ["Hel", "lo"]
    assert a.model == "gemma27b-q4"
    assert a.cost == pytest.approx(0.00012)
    assert a.usage == {"prompt_tokens": 12, "completion_tokens": 7}
    assert a.first_token_ms is not None and not a.partial
    body = apex.requests[-1]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["model"] == "brain_dump" and body["include_fallback_errors"] is True
    # brain asks for no compression: a body it cannot bound must not be sent to it.
    assert apex.headers_seen[-1]["Accept-Encoding"] == "identity"


def test_zero_cost_comes_from_the_original_cost_header(apex_server, chat) -> None:
    # LiteLLM 1.106.12 leaves x-litellm-response-cost out when it is zero (research/real-chain.md).
    from fakes import litellm_headers, sse_body

    headers = litellm_headers(cost=None)
    headers["x-litellm-response-cost-original"] = "0.0"
    apex_server.expect_request("/v1/chat/completions").respond_with_handler(
        lambda _r: Response(sse_body(["free"]), headers=headers, mimetype="text/event-stream")
    )
    assert chat(apex_server.url_for("").rstrip("/"), "x").cost == 0.0


@pytest.mark.parametrize("value", ["nan", "-1", "inf", "lots"])
def test_a_cost_that_is_no_number_is_no_cost(apex: FakeApex, chat, value: str) -> None:
    apex.answer("brain_dump", ["ok"], cost=None)
    apex.routes["brain_dump"]["cost_header"] = value
    from fakes import litellm_headers, sse_body

    headers = litellm_headers(cost=None)
    headers["x-litellm-response-cost"] = value
    apex.server.clear()
    apex.server.expect_request("/health/liveliness").respond_with_data('"ok"')
    apex.server.expect_request("/v1/chat/completions").respond_with_handler(
        lambda _r: Response(sse_body(["ok"]), headers=headers, mimetype="text/event-stream")
    )
    assert chat(apex.url, "brain_dump").cost is None


def test_apex_side_fallback_is_reported_and_metadata_chunk_skipped(apex: FakeApex, chat) -> None:
    apex.answer(
        "brain_dump",
        ["from cerebras"],
        model_id="cerebras-llama70b",
        group="brain_dump_cloud",
        fallbacks=1,
        fallback_errors="gemma27b: Connection refused",
    )
    a = chat(apex.url, "brain_dump")
    assert a.text == "from cerebras"
    assert a.apex_fallbacks and a.apex_fallbacks[0]["backend"] == "apex"
    assert "Connection refused" in a.apex_fallbacks[0]["reason"]
    assert a.apex_fallbacks[0]["answered_by"] == "brain_dump_cloud"


def test_a_server_that_answers_json_to_a_stream_request(apex_server, chat) -> None:
    from fakes import completion_json, litellm_headers

    apex_server.expect_request("/v1/chat/completions").respond_with_handler(
        lambda _r: Response(
            json.dumps(completion_json("whole answer")),
            headers=litellm_headers(model_id="g31b"),
            content_type="application/json",
        )
    )
    a = chat(apex_server.url_for("").rstrip("/"), "draft")
    assert a.text == "whole answer" and a.model == "g31b" and a.usage["completion_tokens"] == 7


def test_key_rejected_no_db_connection(apex: FakeApex, chat) -> None:
    apex.key = "sk-right"
    apex.answer("brain_dump", ["x"])
    with pytest.raises(KeyProblem) as err:
        chat(apex.url, "brain_dump", key="sk-wrong")
    assert "brain keys set apex" in err.value.fix
    assert "sk-wrong" not in str(err.value)


@pytest.mark.parametrize("status", [401, 403])
def test_key_rejected_401_403(apex: FakeApex, chat, status: int) -> None:
    apex.error("brain_dump", status, {"error": {"message": "Unauthorized", "type": "auth_error"}})
    with pytest.raises(KeyProblem):
        chat(apex.url, "brain_dump")


def test_unknown_route_names_the_route_and_brain_routes(apex: FakeApex, chat) -> None:
    with pytest.raises(ConfigError) as err:
        chat(apex.url, "no_such_route")
    assert "no_such_route" in err.value.message and "brain routes" in err.value.fix
    assert err.value.exit_code == 78


def test_rate_limited_uses_litellm_retry_after(apex: FakeApex, chat) -> None:
    apex.error(
        "brain_dump",
        429,
        {
            "error": {
                "message": "RateLimitError: too many",
                "type": "throttling_error",
                "code": "429",
            }
        },
        headers={"llm_provider-retry-after": "17"},
    )
    with pytest.raises(TemporaryFailure) as err:
        chat(apex.url, "brain_dump")
    assert err.value.exit_code == 75 and "17 s" in err.value.fix


def test_upstream_500_may_fall_back(apex: FakeApex, chat) -> None:
    apex.error(
        "code", 500, {"error": {"message": "litellm.APIConnectionError: boom", "type": None}}
    )
    with pytest.raises(BackendError) as err:
        chat(apex.url, "code")
    assert err.value.fallback_ok and "500" in err.value.reason


def test_litellm_multi_line_error_is_one_line_with_its_cause(apex: FakeApex, chat) -> None:
    # The shape LiteLLM 1.106.12 sends when a group's only deployment is down.
    message = (
        "litellm.APIConnectionError: APIConnectionError: OpenAIException - Connection error.\n"
        "Received Model Group=code\nAvailable Model Group Fallbacks=None\n\n"
        "LiteLLM Retried: 1 times, LiteLLM Max Retries: 2"
    )
    apex.error("code", 500, {"error": {"message": message, "type": None, "code": "500"}})
    with pytest.raises(BackendError) as err:
        chat(apex.url, "code")
    assert "\n" not in err.value.reason
    assert err.value.reason.endswith("Connection error.")
    assert "Received Model Group" not in err.value.reason


# What LiteLLM 1.106.12 really sent with the rendered config (tests/test_apex_proxy.py's stack,
# captured 2026-12-06): the error body's `message`, and a fallback-metadata error.
LITELLM_REAL = {
    "upstream down, no fallback": (
        "litellm.APIConnectionError: Ollama_chatException - Cannot connect to host "
        "REDACTED:35695 ssl:<ssl.SSLContext object at 0x7f8436802840> [Connect call failed "
        "('REDACTED', 35695)]\n\nLiteLLM: model group 'code' failed with the error above and "
        "no fallback model group was found for it, so the request was not retried on another "
        "model. Fallbacks are configured for: brain_dump, daily_digest, long_context_summary, "
        "draft, default. Add a fallbacks entry for that model group (Router fallbacks or proxy "
        "router_settings.fallbacks) to retry on another model.",
        "Cannot connect to host REDACTED:35695 [Connect call failed ('REDACTED', 35695)]",
    ),
    "500, no fallback": (
        'litellm.InternalServerError: Ollama_chatException - {"error": "fake ollama failure"}'
        "\n\nLiteLLM: model group 'code' failed with the error above and no fallback model "
        "group was found for it, so the request was not retried on another model.",
        "fake ollama failure",
    ),
    "every step failed": (
        'litellm.InternalServerError: Ollama_chatException - {"error": "fake ollama failure"}'
        "\n\nLiteLLM: model group 'default' failed with the error above. Fallback to "
        "cerebras-llama-3.3-70b, groq-llama-3.3-70b, gemini-flash-lite, "
        "cloudflare-llama-3.3-70b also failed: litellm.InternalServerError: "
        "InternalServerError: CerebrasException - fake cerebras failure",
        "fake ollama failure (then cerebras-llama-3.3-70b, groq-llama-3.3-70b, "
        "gemini-flash-lite, cloudflare-llama-3.3-70b failed too)",
    ),
    "context window": (
        "litellm.ContextWindowExceededError: litellm.BadRequestError: litellm._pre_call_checks: "
        "Context Window exceeded for given call. No models have context window large enough "
        "for this call.\nModel=ollama_chat/gemma3:27b-it-qat, Max Input Tokens=28672, "
        "Got=32173\nDebug Information:\nCooldown Deployments=[]",
        "Context Window exceeded for given call. No models have context window large enough "
        "for this call.",
    ),
}


@pytest.mark.parametrize("case", list(LITELLM_REAL))
def test_one_line_keeps_the_cause_of_real_litellm_errors(case: str) -> None:
    message, cause = LITELLM_REAL[case]
    assert one_line(message) == cause
    short = one_line(message, 60)
    assert len(short) <= 60 and "\n" not in short
    assert short.endswith("…") or short == cause
    assert cause.startswith(short.rstrip("…"))  # cut at a word, never mid-word


def test_a_real_litellm_500_is_one_notice_line_with_its_cause(
    apex: FakeApex, ollama: FakeOllama, brain
) -> None:
    message, cause = LITELLM_REAL["500, no fallback"]
    apex.error("brain_dump", 500, {"error": {"message": message, "type": None, "code": "500"}})
    r = brain("dump", "x", "--json")
    assert r.code == 0 and r.json["backend"] == "local"
    assert r.json["fallbacks"][0]["reason"] == f"Apex answered HTTP 500: {cause}"
    notice = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(notice) == 1 and cause in notice[0], r.stderr


def test_one_line_cuts_at_a_word_with_an_ellipsis() -> None:
    text = "the upstream connection failed because the remote end hung up unexpectedly " * 3
    cut = one_line(text, 60)
    assert len(cut) <= 60 and cut.endswith("…") and not cut[:-1].endswith(" ")
    assert text.startswith(cut[:-1])


def test_garbled_stream_before_first_token(apex_server, chat) -> None:
    apex_server.expect_request("/v1/chat/completions").respond_with_data(
        "data: {not json\n\n", content_type="text/event-stream"
    )
    with pytest.raises(BackendError) as err:
        chat(apex_server.url_for("").rstrip("/"), "x")
    assert "not JSON" in err.value.reason and err.value.fallback_ok


@pytest.mark.parametrize(
    "body",
    [
        '{"choices": 7}',
        '{"choices": [{"delta": "text"}]}',
        '{"choices": ["x"]}',
        "[1, 2]",
    ],
)
def test_json_of_the_wrong_shape_falls_back_before_the_first_token(
    apex_server, chat, body: str
) -> None:
    apex_server.expect_request("/v1/chat/completions").respond_with_data(
        f"data: {body}\n\n", content_type="text/event-stream"
    )
    with pytest.raises(BackendError) as err:
        chat(apex_server.url_for("").rstrip("/"), "x")
    assert err.value.fallback_ok


def test_json_of_the_wrong_shape_after_the_first_token_is_partial(apex_server, chat) -> None:
    body = chunk("start ") + 'data: {"choices": 7}\n\n'
    apex_server.expect_request("/v1/chat/completions").respond_with_data(
        body, content_type="text/event-stream"
    )
    a = chat(apex_server.url_for("").rstrip("/"), "x")
    assert a.partial and a.text == "start " and "unexpected shape" in a.partial_reason


def test_garbled_json_body(apex_server, chat) -> None:
    apex_server.expect_request("/v1/chat/completions").respond_with_data(
        "<html>proxy error</html>", content_type="text/html"
    )
    with pytest.raises(BackendError) as err:
        chat(apex_server.url_for("").rstrip("/"), "x")
    assert "not a chat completion" in err.value.reason


def test_stream_cut_after_first_token_is_partial(apex: FakeApex, chat) -> None:
    apex.answer("brain_dump", ["one ", "two ", "three"], cut_after=2)
    a = chat(apex.url, "brain_dump")
    assert a.partial and a.text == "one two "
    assert a.partial_reason


def test_in_band_error_after_first_token_is_partial(apex_server, chat) -> None:
    body = chunk("start ") + 'data: {"error": {"message": "upstream died"}}\n\n'
    apex_server.expect_request("/v1/chat/completions").respond_with_data(
        body, content_type="text/event-stream"
    )
    a = chat(apex_server.url_for("").rstrip("/"), "x")
    assert a.partial and a.text == "start " and "upstream died" in a.partial_reason


def test_refused_is_a_fallback_error(chat) -> None:
    with pytest.raises(BackendError) as err:
        chat(refused_url(), "x")
    assert "refused" in err.value.reason and err.value.fallback_ok and err.value.transport


def test_hanging_listener_times_out_at_first_token_deadline(chat) -> None:
    hang = HangingListener()
    try:
        with pytest.raises(BackendError) as err:
            chat(hang.url, "x", first=0.5, name="local")
        assert "timed out" in err.value.reason
    finally:
        hang.close()


def test_ollama_model_not_pulled(ollama: FakeOllama, chat) -> None:
    with pytest.raises(BackendError) as err:
        chat(ollama.url, "gemma4:e4b-missing", name="local")
    assert "ollama pull gemma4:e4b-missing" in err.value.fix


def test_ollama_is_asked_natively_with_a_context_that_fits(ollama: FakeOllama, chat) -> None:
    a = chat(ollama.url, "gemma4:e4b", name="local")
    assert a.text == "local answer" and a.model == "gemma4:e4b" and a.backend == "local"
    body = ollama.requests[-1]
    assert "options" in body and body["options"]["num_ctx"] >= 4096
    assert body["keep_alive"] == "30m"  # kept warm by the request itself
    assert a.usage == {"prompt_tokens": 1, "completion_tokens": 2}


def test_ollama_long_input_gets_the_context_it_needs(ollama: FakeOllama, chat) -> None:
    text = "grading notes for tuesday. " * 1500  # ~40 KB: ~10,000 of the fake's tokens
    a = chat(ollama.url, "gemma4:e4b", name="local", messages=[{"role": "user", "content": text}])
    assert not a.partial
    assert ollama.num_ctx_seen[-1] >= 10_000
    assert ollama.kept[-1] == text  # the model read all of it


def test_apex_side_fallback_reason_from_header_when_not_streaming(apex_server, chat) -> None:
    from fakes import completion_json, litellm_headers

    headers = litellm_headers(group="draft_cloud", fallbacks=1)
    headers["x-litellm-fallback-errors"] = json.dumps([{"message": "gemma31b: 500 boom"}])
    apex_server.expect_request("/v1/chat/completions").respond_with_handler(
        lambda _r: Response(
            json.dumps(completion_json("cloud")), headers=headers, content_type="application/json"
        )
    )
    a = chat(apex_server.url_for("").rstrip("/"), "draft")
    assert a.apex_fallbacks == [
        {"backend": "apex", "reason": "gemma31b: 500 boom", "answered_by": "draft_cloud"}
    ]


def test_plain_http_loads_no_certificate_store_https_verifies() -> None:
    import ssl

    from brain.client import verify_for

    ctx = verify_for("http://apex:4000")
    assert isinstance(ctx, ssl.SSLContext) and ctx.cert_store_stats()["x509_ca"] == 0
    assert ctx.verify_mode == ssl.CERT_REQUIRED  # trusts nothing, should TLS ever happen
    assert verify_for("https://apex.example.ts.net") is True


def test_the_shared_client_reads_through_brains_network_backend() -> None:
    # brain sets the pool's network backend itself (httpx does not expose it): if an httpx or
    # httpcore upgrade renamed it, deadlines would silently stop counting content.
    from brain.client import http

    client = http("http://127.0.0.1:1")
    pool = client._transport._pool
    assert type(pool._network_backend).__name__ == "DeadlineBackend"
    assert pool._ssl_context.cert_store_stats()["x509_ca"] == 0  # verify_for: no certifi load


# ----- hostile servers: raw sockets, so every byte is ours --------------------------------------


class RawServer:
    """A TCP server that runs `script(conn)` for each connection, in a thread."""

    def __init__(self, script: Any) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.script = script
        self.stopped = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(30)
            conn.recv(65536)
            self.script(conn, self.stopped)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stopped.set()
        self.sock.close()


SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"


@pytest.fixture
def raw() -> Any:
    made: list[RawServer] = []

    def make(script: Any) -> RawServer:
        made.append(RawServer(script))
        return made[-1]

    yield make
    for server in made:
        server.close()


def _forever(conn: socket.socket, stopped: threading.Event, data: bytes, every: float) -> None:
    while not stopped.is_set():
        conn.sendall(data)
        time.sleep(every)


def test_keep_alive_pings_do_not_hold_the_first_token_deadline(raw, chat) -> None:
    server = raw(lambda c, s: (c.sendall(SSE_HEAD), _forever(c, s, b": ping\n\n", 0.05)))
    start = time.monotonic()
    with pytest.raises(BackendError) as err:
        chat(server.url, "x", name="local", kind="openai", first=1.0)
    assert err.value.fallback_ok and "timed out" in err.value.reason
    assert time.monotonic() - start < 10  # it ended; the deadline counted content, not bytes


def test_empty_chunks_do_not_hold_the_first_token_deadline(raw, chat) -> None:
    empty = chunk("").encode()
    server = raw(lambda c, s: (c.sendall(SSE_HEAD), _forever(c, s, empty, 0.05)))
    with pytest.raises(BackendError) as err:
        chat(server.url, "x", name="local", kind="openai", first=1.0)
    assert "timed out" in err.value.reason


def test_headers_dribbled_a_byte_at_a_time_do_not_hold_the_deadline(raw, chat) -> None:
    def dribble(conn: socket.socket, stopped: threading.Event) -> None:
        for byte in SSE_HEAD * 50:
            if stopped.is_set():
                return
            conn.sendall(bytes([byte]))
            time.sleep(0.05)

    server = raw(dribble)
    with pytest.raises(BackendError) as err:
        chat(server.url, "x", name="local", kind="openai", first=1.0)
    assert "timed out" in err.value.reason


def test_a_stall_after_the_first_token_ends_the_answer_as_partial(raw, chat) -> None:
    def stall(conn: socket.socket, stopped: threading.Event) -> None:
        conn.sendall(SSE_HEAD + chunk("begun ").encode())
        _forever(conn, stopped, b": ping\n\n", 0.05)  # alive, but no content

    server = raw(stall)
    a = chat(server.url, "x", name="local", kind="openai", first=1.0)
    assert a.partial and a.text == "begun " and "stalled" in a.partial_reason


def test_a_line_without_end_is_refused_at_its_bound(raw, chat) -> None:
    def endless(conn: socket.socket, stopped: threading.Event) -> None:
        conn.sendall(SSE_HEAD + b"data: ")
        _forever(conn, stopped, b"x" * 65536, 0)

    server = raw(endless)
    with pytest.raises(BackendError) as err:
        chat(server.url, "x", name="local", kind="openai", first=30.0)
    assert f"{MAX_LINE // 1024} KiB" in err.value.reason


def test_a_gzip_bomb_is_not_inflated(raw, chat) -> None:
    bomb = gzip.compress(b"data: " + b"x" * (64 << 20))  # 64 MiB that packs into ~64 KiB

    def send(conn: socket.socket, _stopped: threading.Event) -> None:
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\n"
            f"Content-Length: {len(bomb)}\r\nConnection: close\r\n\r\n"
        )
        conn.sendall(head.encode() + bomb)

    server = raw(send)
    with pytest.raises(BackendError) as err:
        chat(server.url, "x", name="local", kind="openai")
    assert "KiB" in err.value.reason or "MiB" in err.value.reason


def test_every_address_of_a_name_is_tried(apex: FakeApex, chat) -> None:
    # Each address is tried in turn (where `localhost` is ::1 first, the fake on 127.0.0.1 is
    # still reached; on this machine it resolves to 127.0.0.1 alone: the name path is checked).
    apex.answer("brain_dump", ["found"])
    url = apex.url.replace("127.0.0.1", "localhost")
    assert chat(url, "brain_dump").text == "found"


def test_a_question_apex_answers_never_touches_the_laptops_server(
    apex: FakeApex, ollama: FakeOllama, ollama_server, brain
) -> None:
    apex.answer("brain_dump", ["from apex"])
    ollama_server.clear_log()
    assert brain("dump", "x").stdout == "from apex\n"
    assert ollama_server.log == []  # no detection, no /api/ps: the happy path is Apex alone
