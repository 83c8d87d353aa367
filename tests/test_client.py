"""brain.client against FakeApex / FakeOllama: SSE, headers, usage and every error shape."""

from __future__ import annotations

import pytest
from fakes import FakeApex, FakeOllama, HangingListener, refused_url

from brain.client import Endpoint, chat
from brain.errors import BackendError, ConfigError, KeyProblem, TemporaryFailure

MSGS = [{"role": "user", "content": "hi"}]


def ep(url: str, name: str = "apex", key: str | None = None, first: float = 5.0) -> Endpoint:
    return Endpoint(name, url, key, 1.0, first)


def test_stream_reads_text_usage_and_litellm_headers(apex: FakeApex) -> None:
    apex.answer("brain_dump", ["Hel", "lo"], model_id="gemma27b-q4", cost=0.00012)
    got: list[str] = []
    a = chat(ep(apex.url), "brain_dump", MSGS, on_delta=got.append)
    assert a.text == "Hello" and got == ["Hel", "lo"]
    assert a.model == "gemma27b-q4"
    assert a.cost == pytest.approx(0.00012)
    assert a.usage == {"prompt_tokens": 12, "completion_tokens": 7}
    assert a.first_token_ms is not None and not a.partial
    body = apex.requests[-1]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["model"] == "brain_dump" and body["include_fallback_errors"] is True


def test_apex_side_fallback_is_reported_and_metadata_chunk_skipped(apex: FakeApex) -> None:
    apex.answer(
        "brain_dump",
        ["from cerebras"],
        model_id="cerebras-llama70b",
        group="brain_dump_cloud",
        fallbacks=1,
        fallback_errors="gemma27b: Connection refused",
    )
    a = chat(ep(apex.url), "brain_dump", MSGS)
    assert a.text == "from cerebras"
    assert a.apex_fallbacks and a.apex_fallbacks[0]["backend"] == "apex"
    assert "Connection refused" in a.apex_fallbacks[0]["reason"]
    assert a.apex_fallbacks[0]["answered_by"] == "brain_dump_cloud"


def test_non_streaming(apex: FakeApex) -> None:
    apex.answer("draft", ["whole answer"], model_id="g31b")
    a = chat(ep(apex.url), "draft", MSGS, stream=False)
    assert a.text == "whole answer" and a.model == "g31b" and a.usage["completion_tokens"] == 7


def test_key_rejected_no_db_connection(apex: FakeApex) -> None:
    apex.key = "sk-right"
    apex.answer("brain_dump", ["x"])
    with pytest.raises(KeyProblem) as err:
        chat(ep(apex.url, key="sk-wrong"), "brain_dump", MSGS)
    assert "brain keys set apex" in err.value.fix
    assert "sk-wrong" not in str(err.value)


@pytest.mark.parametrize("status", [401, 403])
def test_key_rejected_401_403(apex: FakeApex, status: int) -> None:
    apex.error("brain_dump", status, {"error": {"message": "Unauthorized", "type": "auth_error"}})
    with pytest.raises(KeyProblem):
        chat(ep(apex.url), "brain_dump", MSGS)


def test_unknown_route_names_the_route_and_brain_routes(apex: FakeApex) -> None:
    with pytest.raises(ConfigError) as err:
        chat(ep(apex.url), "no_such_route", MSGS)
    assert "no_such_route" in err.value.message and "brain routes" in err.value.fix
    assert err.value.exit_code == 78


def test_rate_limited_uses_litellm_retry_after(apex: FakeApex) -> None:
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
        chat(ep(apex.url), "brain_dump", MSGS)
    assert err.value.exit_code == 75 and "17 s" in err.value.fix


def test_upstream_500_may_fall_back(apex: FakeApex) -> None:
    apex.error(
        "code", 500, {"error": {"message": "litellm.APIConnectionError: boom", "type": None}}
    )
    with pytest.raises(BackendError) as err:
        chat(ep(apex.url), "code", MSGS)
    assert err.value.fallback_ok and "500" in err.value.reason


def test_garbled_stream_before_first_token(apex_server) -> None:
    apex_server.expect_request("/v1/chat/completions").respond_with_data(
        "data: {not json\n\n", content_type="text/event-stream"
    )
    with pytest.raises(BackendError) as err:
        chat(ep(apex_server.url_for("")), "x", MSGS)
    assert "not JSON" in err.value.reason and err.value.fallback_ok


def test_garbled_json_body(apex_server) -> None:
    apex_server.expect_request("/v1/chat/completions").respond_with_data(
        "<html>proxy error</html>", content_type="text/html"
    )
    with pytest.raises(BackendError) as err:
        chat(ep(apex_server.url_for("")), "x", MSGS, stream=False)
    assert "not a chat completion" in err.value.reason


def test_stream_cut_after_first_token_is_partial(apex: FakeApex) -> None:
    apex.answer("brain_dump", ["one ", "two ", "three"], cut_after=2)
    a = chat(ep(apex.url), "brain_dump", MSGS)
    assert a.partial and a.text == "one two "
    assert a.partial_reason


def test_in_band_error_after_first_token_is_partial(apex_server) -> None:
    from fakes import chunk

    body = chunk("start ") + 'data: {"error": {"message": "upstream died"}}\n\n'
    apex_server.expect_request("/v1/chat/completions").respond_with_data(
        body, content_type="text/event-stream"
    )
    a = chat(ep(apex_server.url_for("")), "x", MSGS)
    assert a.partial and a.text == "start " and "upstream died" in a.partial_reason


def test_refused_is_a_fallback_error() -> None:
    with pytest.raises(BackendError) as err:
        chat(ep(refused_url()), "x", MSGS)
    assert "refused" in err.value.reason and err.value.fallback_ok


def test_hanging_listener_times_out_at_first_token_deadline() -> None:
    hang = HangingListener()
    try:
        with pytest.raises(BackendError) as err:
            chat(ep(hang.url, first=0.5), "x", MSGS)
        assert "timed out" in err.value.reason
    finally:
        hang.close()


def test_ollama_model_not_pulled(ollama: FakeOllama) -> None:
    with pytest.raises(BackendError) as err:
        chat(ep(ollama.url, name="local"), "gemma4:e4b-missing", MSGS)
    assert "ollama pull gemma4:e4b-missing" in err.value.fix


def test_local_answer_reports_model(ollama: FakeOllama) -> None:
    a = chat(ep(ollama.url, name="local"), "gemma4:e4b", MSGS)
    assert a.text == "local answer" and a.model == "gemma4:e4b" and a.backend == "local"


def test_apex_side_fallback_reason_from_header_when_not_streaming(apex: FakeApex) -> None:
    apex.answer(
        "draft", ["cloud"], group="draft_cloud", fallbacks=1, fallback_errors="gemma31b: 500 boom"
    )
    a = chat(ep(apex.url), "draft", MSGS, stream=False)
    assert a.apex_fallbacks == [
        {"backend": "apex", "reason": "gemma31b: 500 boom", "answered_by": "draft_cloud"}
    ]
