"""Fake Apex (LiteLLM proxy) and fake Ollama on pytest-httpserver, speaking their real wire
formats: LiteLLM's x-litellm-* headers, SSE chunks (with the fallback-metadata chunk and the
usage chunk), its error bodies (research/litellm.md); Ollama's /api/tags and /v1 errors.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

STREAM_ID = "chatcmpl-fake"


def chunk(content: str | None = None, finish: str | None = None, model: str = "x") -> str:
    delta: dict[str, Any] = {}
    if content is not None:
        delta["content"] = content
    body = {
        "id": STREAM_ID,
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body)}\n\n"


def litellm_headers(
    model_id: str = "gemma27b-apex",
    group: str = "brain_dump",
    fallbacks: int = 0,
    cost: float | None = 0.0,
) -> dict[str, str]:
    headers = {
        "x-litellm-model-group": group,
        "x-litellm-model-id": model_id,
        "x-litellm-model-api-base": "http://127.0.0.1:11434",
        "x-litellm-attempted-fallbacks": str(fallbacks),
        "x-litellm-attempted-retries": "0",
        "x-litellm-version": "1.106.12",
    }
    if cost is not None:
        headers["x-litellm-response-cost"] = str(cost)
    return headers


def sse_body(
    pieces: list[str],
    *,
    model: str = "x",
    usage: tuple[int, int] | None = (12, 7),
    delay: float = 0.0,
    first_delay: float = 0.0,
    cut_after: int | None = None,
    fallback_metadata: bool = False,
    done: bool = True,
) -> Iterator[str]:
    if first_delay:
        time.sleep(first_delay)
    if fallback_metadata:
        meta = {"id": "litellm-fallback-metadata", "object": "chat.completion.chunk", "choices": []}
        yield f"data: {json.dumps(meta)}\n\n"
    yield chunk("", model=model)  # role-only first chunk, as OpenAI and LiteLLM send
    for i, piece in enumerate(pieces):
        if cut_after is not None and i >= cut_after:
            raise ConnectionResetError("fake: the stream is cut here")
        if delay:
            time.sleep(delay)
        yield chunk(piece, model=model)
    yield chunk(None, finish="stop", model=model)
    if usage is None:  # a server that sends no token counts
        if done:
            yield "data: [DONE]\n\n"
        return
    usage_chunk = {
        "id": STREAM_ID,
        "object": "chat.completion.chunk",
        "model": model,
        "choices": [{"index": 0, "delta": {}}],
        "usage": {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": sum(usage),
        },
    }
    yield f"data: {json.dumps(usage_chunk)}\n\n"
    if done:
        yield "data: [DONE]\n\n"


def completion_json(
    text: str, model: str = "x", usage: tuple[int, int] = (12, 7)
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": sum(usage),
        },
    }


class FakeApex:
    """A LiteLLM proxy stand-in: /health/liveliness plus /v1/chat/completions per route."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.routes: dict[str, dict[str, Any]] = {}
        self.key: str | None = None  # when set, requests must carry it (else no_db_connection)
        self.requests: list[dict[str, Any]] = []
        self.headers_seen: list[dict[str, str]] = []
        server.expect_request("/health/liveliness", method="GET").respond_with_data(
            '"I\'m alive!"', content_type="application/json"
        )
        server.expect_request("/v1/chat/completions", method="POST").respond_with_handler(
            self._chat
        )
        server.expect_request("/v1/models", method="GET").respond_with_handler(self._models)

    @property
    def url(self) -> str:
        return self.server.url_for("").rstrip("/")

    def answer(self, route: str, pieces: list[str] | str, **kw: Any) -> None:
        """Route `route` answers with `pieces` (streamed) or the joined text (non-streaming)."""
        self.routes[route] = {"pieces": [pieces] if isinstance(pieces, str) else pieces, **kw}

    def error(
        self, route: str, status: int, body: Any, headers: dict[str, str] | None = None
    ) -> None:
        self.routes[route] = {"status": status, "body": body, "headers": headers or {}}

    def _models(self, request: Request) -> Response:
        if self.key is not None and request.headers.get("Authorization") != f"Bearer {self.key}":
            return _litellm_auth_error()
        data = [{"id": r, "object": "model", "owned_by": "openai"} for r in self.routes]
        return Response(
            json.dumps({"data": data, "object": "list"}), content_type="application/json"
        )

    def _chat(self, request: Request) -> Response:
        body = request.get_json()
        self.requests.append(body)
        self.headers_seen.append(dict(request.headers))
        if self.key is not None and request.headers.get("Authorization") != f"Bearer {self.key}":
            return _litellm_auth_error()
        route = body.get("model")
        spec = self.routes.get(route)
        if spec is None:
            msg = (
                f"400: {{'error': '/chat/completions: Invalid model name passed in model={route}. "
                "Call `/v1/models` to view available models for your key.'}"
            )
            return _json_error(
                400, {"error": {"message": msg, "type": "None", "param": "None", "code": "400"}}
            )
        if "status" in spec:
            return _json_error(spec["status"], spec["body"], spec["headers"])
        headers = litellm_headers(
            model_id=spec.get("model_id", f"{route}-deployment"),
            group=spec.get("group", route),
            fallbacks=spec.get("fallbacks", 0),
            cost=spec.get("cost", 0.0),
        )
        if spec.get("fallback_errors"):
            headers["x-litellm-fallback-errors"] = spec["fallback_errors"]
        if body.get("stream"):
            gen = sse_body(
                spec["pieces"],
                model=spec.get("group", route),
                delay=spec.get("delay", 0.0),
                first_delay=spec.get("first_delay", 0.0),
                cut_after=spec.get("cut_after"),
                fallback_metadata=bool(spec.get("fallbacks")),
                usage=spec.get("usage", (12, 7)),
            )
            return Response(gen, status=200, headers=headers, mimetype="text/event-stream")
        return Response(
            json.dumps(completion_json("".join(spec["pieces"]), model=route)),
            status=200,
            headers=headers,
            content_type="application/json",
        )


def _json_error(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    text = body if isinstance(body, str) else json.dumps(body)
    return Response(text, status=status, headers=headers or {}, content_type="application/json")


def _litellm_auth_error() -> Response:
    # LiteLLM 1.106.12 without a database: a wrong or missing key is a 400 (research/litellm.md).
    return _json_error(
        400,
        {
            "error": {
                "message": "Authentication Error, No connected db.",
                "type": "no_db_connection",
                "param": "None",
                "code": "400",
            }
        },
    )


class FakeOllama:
    """Ollama's /api/tags and its OpenAI-compatible /v1/chat/completions."""

    def __init__(self, server: HTTPServer, models: list[str] | None = None) -> None:
        self.server = server
        self.models = ["gemma4:e4b"] if models is None else models
        self.pieces = ["local ", "answer"]
        self.requests: list[dict[str, Any]] = []
        self.first_delay = 0.0
        self.delay = 0.0  # between streamed pieces: a model decoding at 1/delay tokens/s
        server.expect_request("/api/tags", method="GET").respond_with_handler(self._tags)
        server.expect_request("/v1/chat/completions", method="POST").respond_with_handler(
            self._chat
        )
        server.expect_request("/", method="GET").respond_with_data("Ollama is running")

    @property
    def url(self) -> str:
        return self.server.url_for("").rstrip("/")

    def _tags(self, _request: Request) -> Response:
        models = [
            {"name": m, "model": m, "size": 1, "digest": "x", "details": {}} for m in self.models
        ]
        return Response(json.dumps({"models": models}), content_type="application/json")

    def _chat(self, request: Request) -> Response:
        body = request.get_json()
        self.requests.append(body)
        model = body.get("model")
        if model not in self.models:
            return _json_error(
                404,
                {
                    "error": {
                        "message": f"model '{model}' not found",
                        "type": "not_found_error",
                        "param": None,
                        "code": None,
                    }
                },
            )
        if body.get("stream"):
            gen = sse_body(self.pieces, model=model, first_delay=self.first_delay, delay=self.delay)
            return Response(gen, status=200, mimetype="text/event-stream")
        return Response(
            json.dumps(completion_json("".join(self.pieces), model=model)),
            content_type="application/json",
        )


def refused_url() -> str:
    """A loopback port with nothing listening: connections are refused at once."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


UNRESOLVABLE_URL = "http://apex.invalid:4000"  # RFC 6761: .invalid never resolves


class HangingListener:
    """Accepts TCP connections and never answers: a hung server, or a half-dead tunnel."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.conns: list[socket.socket] = []
        self.stopped = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self) -> None:
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        self.stopped = True
        for conn in self.conns:
            conn.close()
        self.sock.close()
