"""How the backends exchange a streamed chat: one POST under a content deadline, and the two
stream formats brain reads (OpenAI's SSE chunks, Ollama's NDJSON lines).

`post_stream` owns what every streamed answer shares: the status check, the headers, a
failure before the first token (may fall back) versus after it (the answer is kept as
partial), a stall after the first token, and a cancel from the probe beside an Apex request.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from brain.backends.base import (
    MAX_TOKENS_REASON,
    Answer,
    Backend,
    ChatRequest,
    Collector,
    Sink,
    usage_from,
)
from brain.client import (
    Deadline,
    HTTPResponse,
    NetError,
    TooBig,
    describe,
    error_message,
    is_timeout,
    one_line,
    read_body,
    sse_events,
    stream,
    transport_error,
    watching,
)
from brain.errors import BackendError, BrainError

Reader = Callable[[HTTPResponse, Collector], None]
ErrorMap = Callable[[int, Any, dict[str, str]], BrainError]


def post_stream(
    backend: Backend,
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    sink: Sink,
    deadline: Deadline,
    *,
    read: Reader,
    on_error: ErrorMap,
    on_response: Callable[[HTTPResponse, Answer], None] | None = None,
    internet: bool = False,
) -> Answer:
    """POST `body` to `url` and read the streamed answer with `read`."""
    answer = Answer(backend=backend.name, route=str(body.get("model", "")))
    collector = Collector(answer, sink, deadline)
    try:
        with (
            watching(deadline),
            stream(
                "POST",
                url,
                connect=deadline.connect or 5.0,
                read=deadline.seconds,
                json_body=body,
                headers=headers,
                internet=internet,
            ) as response,
        ):
            if response.status_code != 200:
                raise on_error(response.status_code, _error_body(response), dict(response.headers))
            if on_response:
                on_response(response, answer)
            read(response, collector)
    except (NetError, TooBig) as exc:
        if collector.started:
            collector.stop(_why_cut(backend, deadline, exc))
        elif deadline.cancelled:
            error = BackendError(deadline.why, reason=deadline.why, transport=True)
            error.timeout = "timed out" in deadline.why
            raise error from None
        else:
            raise transport_error(backend.label().split(" (")[0], _base(url), exc) from None
    return collector.finish()


def _why_cut(backend: Backend, deadline: Deadline, exc: BaseException) -> str:
    if is_timeout(exc):
        return f"the stream from {backend.name} stalled: no new content for {deadline.seconds:g} s"
    return f"the stream from {backend.name} broke: {describe(exc)}"


def _base(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _error_body(response: HTTPResponse) -> Any:
    try:
        raw = read_body(response, 64 * 1024)
    except (TooBig, Exception):  # an endless or broken error body still is an error
        return ""
    text = raw.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


# ----- OpenAI's chat completion chunks (LiteLLM, llama-server, LM Studio, vLLM) -----------------


def openai_body(request: ChatRequest, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": request.model,
        "messages": request.messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    body.update(extra or {})
    return body


def read_openai(
    label: str,
    *,
    on_chunk: Callable[[dict[str, Any], Answer], None] | None = None,
    model_from_chunks: bool = False,
) -> Reader:
    """A reader for OpenAI-style answers: SSE chunks, or one JSON body when the server did
    not stream. `on_chunk` sees every chunk (LiteLLM's fallback metadata)."""

    def read(response: HTTPResponse, collector: Collector) -> None:
        if "text/event-stream" not in response.headers.get("content-type", ""):
            _read_openai_json(label, response, collector, model_from_chunks)
            return
        done, finish = False, None
        for data in sse_events(response):
            if data.strip() == "[DONE]":
                done = True
                break
            chunk = _chunk(label, data, collector)
            if chunk is None:
                return
            if on_chunk:
                on_chunk(chunk, collector.answer)
            usage_from(collector.answer, chunk.get("usage"), ("prompt_tokens", "completion_tokens"))
            if model_from_chunks and not collector.answer.model and chunk.get("model"):
                collector.answer.model = str(chunk["model"])
            step = _choices(label, chunk, collector)
            if step is False:
                return
            finish = step or finish
        _ended(label, collector, done or finish is not None, finish == "length")

    return read


def _chunk(label: str, data: str, collector: Collector) -> dict[str, Any] | None:
    try:
        chunk = json.loads(data)
    except ValueError:
        collector.stop(f"{label} sent a line that is not JSON: {data[:80]!r}")
        return None
    if not isinstance(chunk, dict):
        collector.stop(f"{label} sent an unexpected chunk: {data[:80]!r}")
        return None
    if "error" in chunk:  # in-band errors: Ollama, LiteLLM after the stream started
        collector.stop(f"{label} reported: {one_line(error_message(chunk))}")
        return None
    return chunk


def _choices(label: str, chunk: dict[str, Any], collector: Collector) -> str | bool | None:
    """Feed a chunk's content to the collector. False: stop reading; else its finish_reason."""
    choices = chunk.get("choices") or []  # empty: LiteLLM's fallback metadata chunk
    if not isinstance(choices, list):
        collector.stop(f"{label} sent a chunk of an unexpected shape (choices is not a list)")
        return False
    finish = None
    for choice in choices:
        delta = (choice.get("delta") or {}) if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            collector.stop(f"{label} sent a chunk of an unexpected shape")
            return False
        content = delta.get("content")
        if isinstance(content, str) and not collector.add(content):
            return False
        if delta.get("reasoning_content") or delta.get("reasoning"):
            collector.progress()
        finish = choice.get("finish_reason") or finish
    return finish


def _ended(label: str, collector: Collector, complete: bool, hit_limit: bool) -> None:
    if not complete:
        collector.stop(f"the stream from {label} ended before the answer was complete")
    elif hit_limit:
        collector.answer.partial = True
        collector.answer.partial_reason = MAX_TOKENS_REASON


def _read_openai_json(
    label: str, response: HTTPResponse, collector: Collector, model_from_body: bool
) -> None:
    raw = read_body(response)
    try:
        body = json.loads(raw)
        choice = body["choices"][0]
        text = choice["message"].get("content") or ""
        if not isinstance(text, str):
            raise TypeError
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        reason = f"{label} answered with something that is not a chat completion: {raw[:80]!r}"
        raise BackendError(reason, reason=reason) from None
    collector.add(text) if text else collector.progress()
    usage_from(collector.answer, body.get("usage"), ("prompt_tokens", "completion_tokens"))
    if model_from_body and not collector.answer.model:
        collector.answer.model = str(body.get("model") or "")
    if choice.get("finish_reason") == "length":
        collector.answer.partial = True
        collector.answer.partial_reason = MAX_TOKENS_REASON


# ----- Ollama's native NDJSON (/api/chat) ------------------------------------------------------


def read_ollama(label: str) -> Reader:
    def read(response: HTTPResponse, collector: Collector) -> None:
        from brain.client import iter_lines

        done, reason = False, None
        for line in iter_lines(response):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                collector.stop(f"{label} sent a line that is not JSON: {line[:80]!r}")
                return
            if not isinstance(obj, dict):
                collector.stop(f"{label} sent an unexpected line: {line[:80]!r}")
                return
            if "error" in obj:
                collector.stop(f"{label} reported: {one_line(error_message(obj))}")
                return
            message = obj.get("message") if isinstance(obj.get("message"), dict) else {}
            content = message.get("content")
            if isinstance(content, str) and not collector.add(content):
                return
            if message.get("thinking"):
                collector.progress()
            if obj.get("done"):
                done, reason = True, obj.get("done_reason")
                usage_from(collector.answer, obj, ("prompt_eval_count", "eval_count"))
                break
        _ended(label, collector, done, reason == "length")

    return read
