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
    stall_after_first: float = 0.0,
    fallback_metadata: dict[str, Any] | None = None,
    done: bool = True,
) -> Iterator[str]:
    if first_delay:
        time.sleep(first_delay)
    if fallback_metadata is not None:
        # LiteLLM 1.106.12 proxy_server._format_fallback_metadata_sse_event, sent when the
        # request asked include_fallback_errors (the header is not there on streams).
        meta = {
            "id": "litellm-fallback-metadata",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": fallback_metadata.get("fallback_model") or "",
            "choices": [],
            "litellm_fallback": fallback_metadata,
        }
        yield f"data: {json.dumps(meta)}\n\n"
    yield chunk("", model=model)  # role-only first chunk, as OpenAI and LiteLLM send
    for i, piece in enumerate(pieces):
        if cut_after is not None and i >= cut_after:
            raise ConnectionResetError("fake: the stream is cut here")
        if delay:
            time.sleep(delay)
        if i == 1 and stall_after_first:
            time.sleep(stall_after_first)
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
        server.expect_request("/v1/audio/transcriptions", method="POST").respond_with_handler(
            self._transcribe
        )
        # Speech: route -> {"text", "duration", "model_id"} or {"status", "body"} (set_speech).
        self.speech: dict[str, dict[str, Any]] = {}
        self.uploads: list[dict[str, Any]] = []  # every transcription request: fields and file

    @property
    def url(self) -> str:
        return self.server.url_for("").rstrip("/")

    def transcribes(
        self, route: str, text: str, *, duration: float = 6.7, model_id: str = "whisper-apex"
    ) -> None:
        """Route `route` transcribes every upload as `text` (LiteLLM's verbose_json answer)."""
        self.speech[route] = {"text": text, "duration": duration, "model_id": model_id}

    def _transcribe(self, request: Request) -> Response:
        upload = request.files.get("file")
        data = upload.read() if upload is not None else b""
        fields = dict(request.form)
        self.uploads.append(
            {
                **fields,
                "filename": upload.filename if upload is not None else None,
                "content_type": upload.content_type if upload is not None else None,
                "bytes": data,
                "authorization": request.headers.get("Authorization"),
            }
        )
        if self.key is not None and request.headers.get("Authorization") != f"Bearer {self.key}":
            return _litellm_auth_error()
        route = fields.get("model")
        spec = self.speech.get(str(route))
        if spec is None:
            msg = (
                f"400: {{'error': '/audio/transcriptions: Invalid model name passed in "
                f"model={route}. Call `/v1/models` to view available models for your key.'}}"
            )
            return _json_error(
                400, {"error": {"message": msg, "type": "None", "param": "None", "code": "400"}}
            )
        if "status" in spec:
            return _json_error(spec["status"], spec["body"])
        if not data:
            return _json_error(400, {"error": {"message": "no file", "type": "invalid_request"}})
        body: dict[str, Any] = {"text": spec["text"]}
        if fields.get("response_format") == "verbose_json":
            body.update(task="transcribe", language="english", duration=spec["duration"])
            body["segments"] = [
                {"id": 0, "start": 0.0, "end": spec["duration"], "text": spec["text"]}
            ]
        headers = litellm_headers(model_id=spec["model_id"], group=str(route))
        return Response(json.dumps(body), headers=headers, content_type="application/json")

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
        # LiteLLM's fallback errors: a JSON list of {message, type, param, code}; as a header on
        # non-streamed answers, as the litellm-fallback-metadata chunk on streams.
        errors = [
            {"message": m, "type": "APIConnectionError", "param": None, "code": "500"}
            for m in ([spec["fallback_errors"]] if spec.get("fallback_errors") else [])
        ]
        metadata = None
        if spec.get("fallbacks") and body.get("include_fallback_errors"):
            metadata = {"fallback_model": spec.get("group", route), "errors": errors}
            if not body.get("stream"):
                headers["x-litellm-fallback-errors"] = json.dumps(errors)
        if body.get("stream"):
            gen = sse_body(
                spec["pieces"],
                model=spec.get("group", route),
                delay=spec.get("delay", 0.0),
                first_delay=spec.get("first_delay", 0.0),
                cut_after=spec.get("cut_after"),
                stall_after_first=spec.get("stall_after_first", 0.0),
                fallback_metadata=metadata,
                usage=spec.get("usage", (12, 7)),
            )
            return Response(gen, status=200, headers=headers, mimetype="text/event-stream")
        return Response(
            json.dumps(completion_json("".join(spec["pieces"]), model=route)),
            status=200,
            headers=headers,
            content_type="application/json",
        )


def _json_body(request: Request) -> dict[str, Any]:
    """The JSON body whatever the Content-Type says: Ollama reads it so, and LiteLLM's
    ollama_chat/ provider (1.106.12) posts /api/chat without `Content-Type: application/json`
    and /api/show with the old `name` field."""
    body = request.get_json(force=True, silent=True)
    return body if isinstance(body, dict) else {}


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


def fake_tokens(text: str) -> int:
    """The fake Ollama's tokenizer: one token per 4 characters (real ones vary; brain's own
    estimate must stay above it, which is what the tests check)."""
    return -(-len(text) // 4)


class FakeOllama:
    """Ollama as it really behaves (research/real-chain.md, research/clients.md §3):

    - native /api/chat streams NDJSON, honours `options.num_ctx`, and without it uses the
      server default (`default_ctx`, 4,096 on a GPU under 24 GB);
    - the OpenAI-compatible /v1/chat/completions cannot set the context: it always uses the
      default;
    - either way, input past the context is silently dropped from the start (`kept` records
      what the model really read), as Ollama does;
    - /api/show reports the model's own context (`model_ctx`), /api/ps what is loaded and with
      which context, /api/tags what is pulled, /api/version that it is Ollama.
    """

    def __init__(self, server: HTTPServer, models: list[str] | None = None) -> None:
        self.server = server
        self.models = ["gemma4:e4b"] if models is None else models
        self.pieces = ["local ", "answer"]
        self.requests: list[dict[str, Any]] = []  # every chat request, native or /v1
        self.first_delay = 0.0
        self.loaded: list[str] = list(self.models)  # what /api/ps says is in memory
        self.loaded_ctx: dict[str, int] = {}
        self.generate_requests: list[dict[str, Any]] = []
        self.delay = 0.0  # between streamed pieces: a model decoding at 1/delay tokens/s
        self.default_ctx = 4096
        self.model_ctx = 131072
        self.kept: list[str] = []  # the prompt text each request really reached the model with
        self.num_ctx_seen: list[int | None] = []
        server.expect_request("/api/tags", method="GET").respond_with_handler(self._tags)
        server.expect_request("/api/ps", method="GET").respond_with_handler(self._ps)
        server.expect_request("/api/version", method="GET").respond_with_json({"version": "0.13.0"})
        server.expect_request("/api/show", method="POST").respond_with_handler(self._show)
        server.expect_request("/api/generate", method="POST").respond_with_handler(self._generate)
        server.expect_request("/api/chat", method="POST").respond_with_handler(self._native)
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

    def _ps(self, _request: Request) -> Response:
        models = [
            {
                "name": m,
                "model": m,
                "size": 1,
                "size_vram": 1,
                "context_length": self.loaded_ctx.get(m, self.default_ctx),
            }
            for m in self.loaded
        ]
        return Response(json.dumps({"models": models}), content_type="application/json")

    def _show(self, request: Request) -> Response:
        model = _json_body(request).get("model") or _json_body(request).get("name")
        if model not in self.models:
            return _json_error(404, {"error": f"model '{model}' not found"})
        info = {"general.architecture": "gemma3", "gemma3.context_length": self.model_ctx}
        return Response(
            json.dumps({"model_info": info, "parameters": "", "capabilities": ["completion"]}),
            content_type="application/json",
        )

    def _generate(self, request: Request) -> Response:
        body = _json_body(request)
        self.generate_requests.append(body)
        if body.get("model") in self.models and body.get("model") not in self.loaded:
            self.loaded.append(body["model"])
        return Response(
            json.dumps({"model": body.get("model"), "response": "", "done": True}),
            content_type="application/json",
        )

    def _load(self, model: str, ctx: int) -> None:
        if model in self.models:
            if model not in self.loaded:
                self.loaded.append(model)
            self.loaded_ctx[model] = ctx

    def _read(self, messages: list[dict[str, Any]], ctx: int) -> tuple[str, int]:
        """What the model reads of `messages` in a context of `ctx` tokens: the end only."""
        text = "\n".join(str(m.get("content", "")) for m in messages)
        tokens = fake_tokens(text)
        kept = text if tokens <= ctx else text[-ctx * 4 :]
        self.kept.append(kept)
        return kept, min(tokens, ctx)

    def _not_found(self, model: str, native: bool) -> Response:
        if native:
            return _json_error(404, {"error": f"model '{model}' not found"})
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

    def _native(self, request: Request) -> Response:
        body = _json_body(request)
        self.requests.append(body)
        model = body.get("model")
        if model not in self.models:
            return self._not_found(model, native=True)
        num_ctx = (body.get("options") or {}).get("num_ctx")
        self.num_ctx_seen.append(num_ctx)
        ctx = min(int(num_ctx or self.default_ctx), self.model_ctx)
        self._load(model, ctx)
        _, prompt_tokens = self._read(body.get("messages", []), ctx)
        if body.get("stream") is False:  # one JSON object, as Ollama answers `"stream": false`
            last = json.loads(list(self._ndjson(model, prompt_tokens))[-1])
            last["message"]["content"] = "".join(self.pieces)
            return Response(json.dumps(last), content_type="application/json")
        return Response(
            self._ndjson(model, prompt_tokens), status=200, mimetype="application/x-ndjson"
        )

    def _ndjson(self, model: str, prompt_tokens: int) -> Iterator[str]:
        if self.first_delay:
            time.sleep(self.first_delay)
        for piece in self.pieces:
            if self.delay:
                time.sleep(self.delay)
            line = {
                "model": model,
                "message": {"role": "assistant", "content": piece},
                "done": False,
            }
            yield json.dumps(line) + "\n"
        done = {
            "model": model,
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": prompt_tokens,
            "eval_count": len(self.pieces),
        }
        yield json.dumps(done) + "\n"

    def _chat(self, request: Request) -> Response:
        body = _json_body(request)
        self.requests.append(body)
        model = body.get("model")
        if model not in self.models:
            return self._not_found(model, native=False)
        self._load(model, self.default_ctx)
        self.num_ctx_seen.append(None)
        self._read(body.get("messages", []), self.default_ctx)  # /v1 cannot set num_ctx
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


class FakeAnthropic:
    """Anthropic's Messages API (POST /v1/messages, streamed): its SSE events, its usage
    fields and its error envelope {"type":"error","error":{type,message}} (research/providers.md).
    """

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.pieces = ["Claude ", "answers"]
        self.model = "claude-sonnet-4-5-20250929"
        self.usage = (1000, 200)  # input, output tokens
        self.key: str | None = None  # when set, x-api-key must match (else 401)
        self.status: tuple[int, str, str] | None = None  # (HTTP status, error type, message)
        self.requests: list[dict[str, Any]] = []
        self.headers_seen: list[dict[str, str]] = []
        server.expect_request("/v1/messages", method="POST").respond_with_handler(self._messages)

    @property
    def url(self) -> str:
        return self.server.url_for("").rstrip("/")

    def _messages(self, request: Request) -> Response:
        self.requests.append(request.get_json())
        self.headers_seen.append(dict(request.headers))
        if self.key is not None and request.headers.get("x-api-key") != self.key:
            return _anthropic_error(401, "authentication_error", "invalid x-api-key")
        if self.status is not None:
            return _anthropic_error(*self.status)
        return Response(self._events(), status=200, mimetype="text/event-stream")

    def _events(self) -> Iterator[str]:
        def event(kind: str, data: dict[str, Any]) -> str:
            return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n"

        message = {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "usage": {"input_tokens": self.usage[0], "output_tokens": 1},
        }
        yield event("message_start", {"message": message})
        yield event("content_block_start", {"index": 0, "content_block": {"type": "text"}})
        yield event("ping", {})
        for piece in self.pieces:
            yield event(
                "content_block_delta",
                {"index": 0, "delta": {"type": "text_delta", "text": piece}},
            )
        yield event("content_block_stop", {"index": 0})
        yield event(
            "message_delta",
            {
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": self.usage[1]},
            },
        )
        yield event("message_stop", {})


def _anthropic_error(status: int, etype: str, message: str) -> Response:
    body = {"type": "error", "error": {"type": etype, "message": message}}
    return Response(json.dumps(body), status=status, content_type="application/json")


class FakeProviders:
    """The upstreams behind a real LiteLLM proxy, one pytest-httpserver each, so that one can
    be stopped like a real server (`down`: connections refused) and started again on the same
    port (`restore`). `base(name)` is what the provider's *_API_BASE points at.
    OpenAI-compatible providers answer /v1/chat/completions; `ollama` answers Ollama's native
    /api/chat (LiteLLM's ollama_chat/ provider: NDJSON, `options.num_ctx`) and /api/show;
    `anthropic` answers Anthropic's /v1/messages. Each answer names who gave it
    ("<provider>:<model> answers"); `fail(name, status)` makes one provider answer with an
    error instead.
    OpenAI-compatible providers also transcribe (`/v1/audio/transcriptions`, multipart, as
    OpenAI's Whisper API, a speaches server on Apex and Groq take it): "<provider>:<model>
    heard: " and the upload's size and name; `uploads` records each (fields and bytes).
    """

    def __init__(self, names: list[str]) -> None:
        self.servers: dict[str, HTTPServer] = {}
        self.failing: dict[str, int] = {}
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.uploads: list[tuple[str, dict[str, Any]]] = []
        for name in names:
            server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
            handler = self._anthropic if name == "anthropic" else self._openai(name)
            path = "/v1/messages" if name == "anthropic" else "/v1/chat/completions"
            if name == "ollama":
                handler, path = self._ollama, "/api/chat"
                server.expect_request("/api/show", method="POST").respond_with_json(
                    {"model_info": {"general.architecture": "gemma3"}}
                )
            server.expect_request(path, method="POST").respond_with_handler(handler)
            if name != "anthropic":
                server.expect_request(
                    "/v1/audio/transcriptions", method="POST"
                ).respond_with_handler(self._whisper(name))
            server.start()
            self.servers[name] = server

    def base(self, provider: str) -> str:
        root = self.servers[provider].url_for("").rstrip("/")
        return root if provider in ("anthropic", "ollama") else f"{root}/v1"

    def fail(self, provider: str, status: int = 500) -> None:
        self.failing[provider] = status

    def down(self, provider: str) -> None:
        """Stop the provider's server: connections to it are refused."""
        server = self.servers[provider]
        if server.is_running():
            server.stop()

    def restore(self, provider: str) -> None:
        """Answer normally again (and listen again on the same port, if it was down)."""
        self.failing.pop(provider, None)
        server = self.servers[provider]
        if not server.is_running():
            server.start()

    def close(self) -> None:
        for server in self.servers.values():
            server.clear()
            if server.is_running():
                server.stop()

    def asked(self, provider: str) -> list[str]:
        """The models `provider` was asked for, in order."""
        return [body.get("model", "") for name, body in self.requests if name == provider]

    def _failure(self, provider: str) -> Response | None:
        status = self.failing.get(provider)
        if status is None:
            return None
        if provider == "ollama":  # Ollama's own error body
            return _json_error(status, {"error": f"fake {provider} failure"})
        return _json_error(
            status,
            {
                "error": {
                    "message": f"fake {provider} failure",
                    "type": "server_error",
                    "code": None,
                }
            },
        )

    def _openai(self, provider: str) -> Any:
        def handle(request: Request) -> Response:
            body = request.get_json()
            self.requests.append((provider, body))
            failed = self._failure(provider)
            if failed is not None:
                return failed
            model = body.get("model", "")
            pieces = [f"{provider}:{model} ", "answers"]
            if body.get("stream"):
                return Response(sse_body(pieces, model=model), mimetype="text/event-stream")
            return Response(
                json.dumps(completion_json("".join(pieces), model=model)),
                content_type="application/json",
            )

        return handle

    def _whisper(self, provider: str) -> Any:
        def handle(request: Request) -> Response:
            upload = request.files.get("file")
            data = upload.read() if upload is not None else b""
            fields = dict(request.form)
            self.uploads.append(
                (provider, {**fields, "filename": getattr(upload, "filename", None), "bytes": data})
            )
            failed = self._failure(provider)
            if failed is not None:
                return failed
            model = fields.get("model", "")
            text = (
                f"{provider}:{model} heard {len(data)} bytes of {getattr(upload, 'filename', '')}"
            )
            body: dict[str, Any] = {"text": text}
            if fields.get("response_format") == "verbose_json":
                body.update(
                    task="transcribe",
                    language="english",
                    duration=6.7,
                    segments=[
                        {
                            "id": 0,
                            "seek": 0,
                            "start": 0.0,
                            "end": 6.7,
                            "text": text,
                            "tokens": [1, 2],
                            "temperature": 0.0,
                            "avg_logprob": -0.2,
                            "compression_ratio": 1.0,
                            "no_speech_prob": 0.01,
                        }
                    ],
                )
            return Response(json.dumps(body), content_type="application/json")

        return handle

    def _ollama(self, request: Request) -> Response:
        body = _json_body(request)
        self.requests.append(("ollama", body))
        failed = self._failure("ollama")
        if failed is not None:
            return failed
        model = body.get("model", "")
        pieces = [f"ollama:{model} ", "answers"]
        end = {
            "model": model,
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 12,
            "eval_count": 2,
        }
        if body.get("stream") is False:
            end["message"]["content"] = "".join(pieces)
            return Response(json.dumps(end), content_type="application/json")
        lines = [
            json.dumps(
                {"model": model, "message": {"role": "assistant", "content": p}, "done": False}
            )
            for p in pieces
        ] + [json.dumps(end)]
        return Response("".join(x + "\n" for x in lines), mimetype="application/x-ndjson")

    def _anthropic(self, request: Request) -> Response:
        body = request.get_json()
        self.requests.append(("anthropic", body))
        failed = self._failure("anthropic")
        if failed is not None:
            return failed
        model = body.get("model", "")
        text = f"anthropic:{model} answers"
        usage = {"input_tokens": 12, "output_tokens": 7}
        if not body.get("stream"):
            message = {
                "id": "msg_fake",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": usage,
            }
            return Response(json.dumps(message), content_type="application/json")

        def events() -> Iterator[str]:
            start = {
                "type": "message_start",
                "message": {
                    "id": "msg_fake",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 12, "output_tokens": 1},
                },
            }
            seq: list[dict[str, Any]] = [
                start,
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": text},
                },
                {"type": "content_block_stop", "index": 0},
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": 7},
                },
                {"type": "message_stop"},
            ]
            for event in seq:
                yield f"event: {event['type']}\ndata: {json.dumps(event)}\n\n"

        return Response(events(), mimetype="text/event-stream")


class FakeHub:
    """The Hugging Face Hub as huggingface_hub (2.x) asks it when faster-whisper downloads a
    model: the revision and tree APIs, then HEAD and GET of each file under /resolve/. It
    serves the files of `directory` as `repo` (point HF_ENDPOINT at `.url`). `stall_after`:
    send that many bytes of the first file larger than it, then hang (a connection that dies
    mid-download)."""

    SHA = "0123456789abcdef0123456789abcdef01234567"

    def __init__(self, server: HTTPServer, repo: str, directory: Any) -> None:
        import re
        from pathlib import Path

        self.server = server
        self.repo = repo
        self.files = {p.name: p.read_bytes() for p in Path(directory).iterdir() if p.is_file()}
        self.stall_after: int | None = None
        self.asked: list[str] = []
        server.expect_request(re.compile(".*")).respond_with_handler(self._handle)

    @property
    def url(self) -> str:
        return self.server.url_for("").rstrip("/")

    def _handle(self, request: Request) -> Response:
        import hashlib

        path = request.path
        self.asked.append(f"{request.method} {path}")
        if path == "/api/agent-harnesses":
            return Response(json.dumps({"standardEnvVars": [], "harnesses": {}}))
        if path.startswith(f"/api/models/{self.repo}/tree/"):
            tree = [
                {"type": "file", "path": n, "size": len(d), "oid": hashlib.sha1(d).hexdigest()}
                for n, d in self.files.items()
            ]
            return Response(json.dumps(tree), content_type="application/json")
        if path.startswith(f"/api/models/{self.repo}"):
            siblings = [{"rfilename": n} for n in self.files]
            body = {"id": self.repo, "sha": self.SHA, "siblings": siblings}
            return Response(json.dumps(body), content_type="application/json")
        prefix = f"/{self.repo}/resolve/"
        name = path.rsplit("/", 1)[-1]
        if not path.startswith(prefix) or name not in self.files:
            return Response(
                "Entry not found", status=404, headers={"X-Error-Code": "EntryNotFound"}
            )
        data = self.files[name]
        headers = {
            "X-Repo-Commit": self.SHA,
            "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
            "Accept-Ranges": "bytes",
        }
        if request.method == "HEAD":
            response = Response(b"", headers=headers)
            response.automatically_set_content_length = False
            response.headers["Content-Length"] = str(len(data))
            return response
        if self.stall_after is not None and len(data) > self.stall_after:
            cut = self.stall_after

            def dribble() -> Iterator[bytes]:
                yield data[:cut]
                time.sleep(3600)  # the rest never comes (the server thread dies with it)

            response = Response(dribble(), headers=headers)
            response.headers["Content-Length"] = str(len(data))
            return response
        return Response(data, headers=headers, content_type="application/octet-stream")


class Relay:
    """A TCP relay on loopback to a real server (`target`: "http://127.0.0.1:PORT"), which can
    be stopped like the server behind it (`down`: connections refused) and started again on
    the same port (`up`). Lets one real llama.cpp stand behind several LiteLLM deployments,
    each of which can go down on its own."""

    def __init__(self, target: str) -> None:
        host, _, port = target.removeprefix("http://").partition(":")
        self.target = (host, int(port.rstrip("/")))
        self.port = 0
        self.sock: socket.socket | None = None
        self.conns: list[socket.socket] = []
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        if self.sock is not None:
            return
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(16)
        self.port = sock.getsockname()[1]
        self.sock = sock
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def down(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            try:  # close() alone leaves a socket that a thread blocks in accept() on listening
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        for conn in self.conns:
            try:
                conn.close()
            except OSError:
                pass
        self.conns.clear()

    def _accept(self, sock: socket.socket) -> None:
        while True:
            try:
                client, _ = sock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
