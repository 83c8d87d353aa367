"""OpenAI-compatible chat completions over httpx, as spoken by LiteLLM (Apex) and Ollama.

Owns: the request body, SSE parsing, usage, LiteLLM's response headers (research/litellm.md)
and the mapping of every failure to a brain error that says what to do. It decides nothing
about which backend to use (brain.offline does) and prints nothing: deltas go to a callback.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from brain.errors import BackendError, BrainError, ConfigError, KeyProblem, TemporaryFailure

if TYPE_CHECKING:
    import httpx

Message = dict[str, str]
OnDelta = Callable[[str], None]


@dataclass
class Answer:
    """What one backend returned; `partial` when the stream broke after the first token."""

    text: str = ""
    backend: str = ""
    route: str = ""
    model: str = ""
    usage: dict[str, int] = field(default_factory=dict)
    first_token_ms: int | None = None
    total_ms: int = 0
    cost: float | None = None
    partial: bool = False
    partial_reason: str = ""
    apex_fallbacks: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Endpoint:
    name: str  # "apex" or "local": used in messages and in the JSON `backend` field
    base_url: str
    key: str | None
    connect_timeout: float
    first_token_timeout: float


def verify_for(url: str) -> Any:
    """httpx's `verify` for `url`. A plain http:// URL (Apex over Tailscale, Ollama on
    loopback) needs no certificate store, and loading certifi's costs ~20 ms a client: give
    it an empty TLS context, which trusts nothing if TLS were ever attempted."""
    if url.startswith("http://"):
        import ssl

        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return True


def _headers(endpoint: Endpoint) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "User-Agent": "brain"}
    if endpoint.key:
        headers["Authorization"] = f"Bearer {endpoint.key}"
    return headers


def chat(
    endpoint: Endpoint,
    model: str,
    messages: list[Message],
    *,
    temperature: float | None = None,
    max_tokens: int | None = None,
    stream: bool = True,
    on_delta: OnDelta | None = None,
    extra: dict[str, Any] | None = None,
) -> Answer:
    """Send one chat completion; stream deltas to `on_delta`; return the Answer.

    Raises BackendError (with `fallback_ok`) for failures before the first token, and the
    specific errors (key, route, rate limit) that no fallback should hide.
    """
    import httpx

    body: dict[str, Any] = {"model": model, "messages": messages, "stream": stream}
    if temperature is not None:
        body["temperature"] = temperature
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if stream:
        body["stream_options"] = {"include_usage": True}
    if endpoint.name == "apex":
        body["include_fallback_errors"] = True
    if extra:
        body.update(extra)
    # The read timeout is the first-token deadline: LiteLLM and Ollama send their headers with
    # the first chunk, and a stall between chunks longer than that is a broken stream too.
    timeout = httpx.Timeout(
        connect=endpoint.connect_timeout,
        read=endpoint.first_token_timeout,
        write=10.0,
        pool=endpoint.connect_timeout,
    )
    url = endpoint.base_url.rstrip("/") + "/v1/chat/completions"
    answer = Answer(backend=endpoint.name, route=model)
    start = time.monotonic()
    try:
        with httpx.Client(timeout=timeout, trust_env=False, verify=verify_for(url)) as client:
            with client.stream("POST", url, json=body, headers=_headers(endpoint)) as response:
                if response.status_code != 200:
                    response.read()
                    raise error_from_response(endpoint, model, response)
                _read_headers(response, answer)
                ctype = response.headers.get("content-type", "")
                if stream and "text/event-stream" in ctype:
                    _read_sse(endpoint, response, answer, on_delta, start)
                else:
                    _read_json(endpoint, response, answer, on_delta, start)
    except httpx.TransportError as exc:
        if answer.first_token_ms is None:
            raise transport_error(endpoint, exc) from exc
        answer.partial = True
        answer.partial_reason = f"the stream from {endpoint.name} broke: {describe_transport(exc)}"
    answer.total_ms = int((time.monotonic() - start) * 1000)
    return answer


def _read_headers(response: httpx.Response, answer: Answer) -> None:
    h = response.headers
    answer.model = h.get("x-litellm-model-id") or ""
    cost = h.get("x-litellm-response-cost")
    if cost:
        try:
            answer.cost = float(cost)
        except ValueError:
            pass
    try:
        fallbacks = int(h.get("x-litellm-attempted-fallbacks") or 0)
    except ValueError:
        fallbacks = 0
    if fallbacks >= 1:
        group = h.get("x-litellm-model-group") or "another model group"
        reason = (
            _fallback_reason(h.get("x-litellm-fallback-errors")) or f"Apex fell back to {group}"
        )
        answer.apex_fallbacks.append({"backend": "apex", "reason": reason, "answered_by": group})


def _fallback_reason(errors: Any) -> str:
    """LiteLLM's fallback errors (a JSON list of {message, type, …}, as a header string or a
    list from the stream's litellm-fallback-metadata chunk) as one short line."""
    if isinstance(errors, str):
        try:
            errors = json.loads(errors)
        except ValueError:
            return errors[:500]
    if not isinstance(errors, list):
        return ""
    messages = [str(e.get("message") or e.get("type") or "") for e in errors if isinstance(e, dict)]
    return "; ".join(m for m in messages if m)[:500]


def _first(answer: Answer, start: float) -> None:
    if answer.first_token_ms is None:
        answer.first_token_ms = int((time.monotonic() - start) * 1000)


def _read_sse(
    endpoint: Endpoint,
    response: httpx.Response,
    answer: Answer,
    on_delta: OnDelta | None,
    start: float,
) -> None:
    done = False
    finish = None
    for line in response.iter_lines():
        if not line.startswith("data:"):
            continue  # comments (": ping"), event names, blank separators
        data = line[5:].strip()
        if data == "[DONE]":
            done = True
            break
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError:
            _broken(
                endpoint, answer, f"{endpoint.name} sent a line that is not JSON: {data[:80]!r}"
            )
            return
        if not isinstance(chunk, dict):
            _broken(endpoint, answer, f"{endpoint.name} sent an unexpected chunk: {data[:80]!r}")
            return
        if "error" in chunk:  # in-band errors (Ollama, LiteLLM after the stream started)
            _broken(endpoint, answer, f"{endpoint.name} reported: {_error_message(chunk)}")
            return
        meta = chunk.get("litellm_fallback")
        if isinstance(meta, dict):
            reason = _fallback_reason(meta.get("errors"))
            group = meta.get("fallback_model")
            if not answer.apex_fallbacks:
                answer.apex_fallbacks.append({"backend": "apex", "reason": "", "answered_by": ""})
            fb = answer.apex_fallbacks[0]
            fb["reason"] = reason or fb["reason"] or f"Apex fell back to {group or 'another group'}"
            fb["answered_by"] = str(group or fb["answered_by"] or "another model group")
        if chunk.get("usage"):
            _take_usage(answer, chunk["usage"])
        if not answer.model and chunk.get("model") and endpoint.name == "local":
            answer.model = str(chunk["model"])
        for choice in chunk.get("choices") or []:  # empty: LiteLLM's fallback metadata chunk
            delta = (choice.get("delta") or {}).get("content") or ""
            if delta:
                _first(answer, start)
                answer.text += delta
                if on_delta:
                    on_delta(delta)
            finish = choice.get("finish_reason") or finish
    if not done and finish is None:
        _broken(
            endpoint,
            answer,
            f"the stream from {endpoint.name} ended before the answer was complete",
        )
    elif finish == "length":
        answer.partial = True
        answer.partial_reason = "the answer hit the task's max_tokens limit"


def _broken(endpoint: Endpoint, answer: Answer, reason: str) -> None:
    if answer.first_token_ms is None:
        raise BackendError(reason, reason=reason, fallback_ok=True)
    answer.partial = True
    answer.partial_reason = reason


def _read_json(
    endpoint: Endpoint,
    response: httpx.Response,
    answer: Answer,
    on_delta: OnDelta | None,
    start: float,
) -> None:
    raw = response.read()
    try:
        body = json.loads(raw)
        message = body["choices"][0]["message"]
        text = message.get("content") or ""
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        reason = (
            f"{endpoint.name} answered with something that is not a chat completion: {raw[:80]!r}"
        )
        raise BackendError(reason, reason=reason) from None
    _first(answer, start)
    answer.text = text
    if body.get("usage"):
        _take_usage(answer, body["usage"])
    if not answer.model and endpoint.name == "local":
        answer.model = str(body.get("model") or "")
    if body["choices"][0].get("finish_reason") == "length":
        answer.partial = True
        answer.partial_reason = "the answer hit the task's max_tokens limit"
    if on_delta and text:
        on_delta(text)


def _take_usage(answer: Answer, usage: Any) -> None:
    if isinstance(usage, dict):
        for key in ("prompt_tokens", "completion_tokens"):
            if isinstance(usage.get(key), int):
                answer.usage[key] = usage[key]


def _error_message(body: Any) -> str:
    if isinstance(body, dict):
        err = body.get("error", body.get("detail", body))
        if isinstance(err, dict):
            return str(err.get("message") or err.get("detail") or err)[:300]
        return str(err)[:300]
    return str(body)[:300]


def _error_type(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("type") or "")
    return ""


def error_from_response(endpoint: Endpoint, model: str, response: httpx.Response) -> BrainError:
    """Map a non-200 answer to the error the user needs (research/litellm.md, "Errors")."""
    status = response.status_code
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:300]
    message = _error_message(body)
    etype = _error_type(body)
    name = "Apex" if endpoint.name == "apex" else "the local server"
    if endpoint.name == "apex":
        if (
            status in (401, 403)
            or etype == "no_db_connection"
            or (status == 400 and "api key" in message.lower())
        ):
            if not endpoint.key:
                return KeyProblem(
                    f"Apex needs a key, and none is set (HTTP {status}).",
                    "Set the LiteLLM key with `brain keys set apex`, or export BRAIN_APEX_KEY "
                    "(for scripts, or where no keyring works); then `brain queue run`.",
                )
            return KeyProblem(
                f"Apex rejected the key (HTTP {status}).",
                "Set the LiteLLM key with `brain keys set apex` (or BRAIN_APEX_KEY), then "
                "`brain queue run`.",
            )
        if status == 400 and "invalid model name" in message.lower():
            return ConfigError(
                f"Apex has no route named `{model}`.",
                f"Add `{model}` to Apex's LiteLLM config, or point the task at a route Apex has "
                "(`brain routes` lists what brain asks for; `brain status` what Apex offers).",
            )
    else:
        if status == 404 and "not found" in message.lower():
            return BackendError(
                f"the local server has no model `{model}`.",
                f"Pull it with `ollama pull {model}`, or choose another with --model / "
                "`brain config set local.model NAME`.",
                reason=f"local model {model} is not pulled",
                fallback_ok=False,
            )
    if status == 429:
        retry = response.headers.get("retry-after") or response.headers.get(
            "llm_provider-retry-after"
        )
        when = f" in {retry} s" if retry else " in a minute"
        return TemporaryFailure(
            f"{name} is rate limited (HTTP 429): {message}",
            f"Try again{when}; your input is kept (`brain queue run` replays it).",
        )
    if status == 408 or status >= 500:
        reason = f"{name} answered HTTP {status}: {message}"
        return BackendError(
            reason,
            "This is usually passing; try again, or see `brain status`.",
            reason=reason,
            exit_code=75 if status in (408, 503) else 69,
        )
    reason = f"{name} refused the request (HTTP {status}): {message}"
    return BackendError(
        reason,
        "Run with -v for details, or check `brain status`.",
        reason=reason,
        fallback_ok=False,
    )


def describe_transport(exc: Exception) -> str:
    """One short phrase for a connection failure: DNS, refused, or timed out."""
    import httpx

    text = str(exc) or type(exc).__name__
    low = text.lower()
    if isinstance(exc, httpx.ConnectTimeout):
        return "no answer to the connection attempt (timed out)"
    if isinstance(exc, httpx.ReadTimeout):
        return "connected, but no answer in time (timed out)"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if (
        "name or service not known" in low
        or "nodename nor servname" in low
        or "getaddrinfo" in low
        or "name resolution" in low
    ):
        return "the name does not resolve (DNS)"
    if "refused" in low:
        return "connection refused"
    if "unreachable" in low:
        return "network unreachable"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"the connection broke ({text})"
    return text


def transport_error(endpoint: Endpoint, exc: Exception) -> BackendError:
    import httpx

    label = "Apex" if endpoint.name == "apex" else endpoint.name
    phrase = describe_transport(exc)
    reason = f"{label} ({endpoint.base_url}): {phrase}"
    # Only a failure to reach the host says the host is away. A read timeout means it is
    # there but this route was slow (a cold 31B model): other routes may answer at once.
    away = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
    error = BackendError(reason, reason=reason, fallback_ok=True, transport=away)
    error.detail = phrase
    return error
