#!/usr/bin/env python3
"""A stand-in OpenAI-compatible endpoint for bench/run.sh (stdlib only, so it starts fast).

It answers every chat completion with the same answer of --tokens pieces, streamed (SSE, with
a usage chunk) or as one JSON body, and speaks enough of LiteLLM (/health/liveliness,
x-litellm-* headers) and Ollama (/api/tags) for brain's probe and local tier. With no delay
(the default) what a client measures against it is the client itself.

    fake_openai.py --port 0 --port-file PATH [--tokens 50] [--delay 0] [--first-delay 0]
    fake_openai.py --answer-file ANSWER.md --piece-size 4 ...   that text, in pieces of 4
    fake_openai.py --hang --port-file PATH       accepts connections, never answers
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ANSWER_TEXT = (
    "Hello! This is the fake endpoint answering with a fixed reply of fifty pieces, so every "
    "client gets the same text and the same number of chunks to parse, print and count. It "
    "keeps going with plain words until the count is reached and then it stops right here now"
)
ANSWER_WORDS = ANSWER_TEXT.split(" ")


def pieces(n: int) -> list[str]:
    words = (ANSWER_WORDS * (n // len(ANSWER_WORDS) + 1))[:n]
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-openai"
    opts: argparse.Namespace

    def log_message(self, *_args: object) -> None:  # quiet: the bench reads stdout/stderr
        pass

    def _send(self, status: int, body: object, ctype: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/health/liveliness":
            self._send(200, "I'm alive!")
        elif self.path in ("/v1/models", "/models"):
            self._send(200, {"object": "list", "data": [{"id": "mock", "object": "model"}]})
        elif self.path == "/api/tags":
            models = [{"name": m, "model": m} for m in self.opts.models]
            self._send(200, {"models": models})
        else:
            self._send(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._send(400, {"error": {"message": "bad JSON"}})
            return
        if not self.path.endswith("/chat/completions"):
            self._send(404, {"error": {"message": "not found"}})
            return
        model = str(body.get("model") or "mock")
        parts = self.opts.parts or pieces(self.opts.tokens)
        usage = {
            "prompt_tokens": 12,
            "completion_tokens": len(parts),
            "total_tokens": 12 + len(parts),
        }
        litellm = {
            "x-litellm-model-id": f"fake-{model}",
            "x-litellm-model-group": model,
            "x-litellm-attempted-fallbacks": "0",
        }
        if self.opts.first_delay:
            time.sleep(self.opts.first_delay)
        if not body.get("stream"):
            data = json.dumps(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": 1,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "".join(parts)},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in litellm.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        for k, v in litellm.items():
            self.send_header(k, v)
        self.end_headers()

        def event(obj: object) -> None:
            line = f"data: {obj if isinstance(obj, str) else json.dumps(obj)}\n\n".encode()
            self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
            self.wfile.flush()

        def chunk(delta: dict, finish: str | None = None) -> dict:
            return {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        event(chunk({"role": "assistant", "content": ""}))
        for piece in parts:
            if self.opts.delay:
                time.sleep(self.opts.delay)
            event(chunk({"content": piece}))
        event(chunk({}, "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            event({**chunk({}), "choices": [], "usage": usage})
        event("[DONE]")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def hang(port: int, port_file: Path | None) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(64)
    if port_file:
        port_file.write_text(str(sock.getsockname()[1]))
    held = []
    while True:
        conn, _ = sock.accept()
        held.append(conn)  # kept open, never read from or written to


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", type=Path)
    ap.add_argument("--tokens", type=int, default=50)
    ap.add_argument("--delay", type=float, default=0.0, help="seconds between pieces")
    ap.add_argument("--first-delay", type=float, default=0.0, help="seconds before the answer")
    ap.add_argument("--models", nargs="*", default=["gemma4:e4b", "mock"])
    ap.add_argument("--hang", action="store_true", help="accept connections, never answer")
    ap.add_argument("--answer-file", type=Path, help="answer with this text instead")
    ap.add_argument("--piece-size", type=int, default=4, help="characters per piece (file)")
    opts = ap.parse_args()
    opts.parts = None
    if opts.answer_file:
        text, size = opts.answer_file.read_text(), opts.piece_size
        opts.parts = [text[i : i + size] for i in range(0, len(text), size)]
    if opts.hang:
        hang(opts.port, opts.port_file)
        return
    Handler.opts = opts
    server = ThreadingHTTPServer(("127.0.0.1", opts.port), Handler)
    server.daemon_threads = True
    if opts.port_file:
        opts.port_file.write_text(str(server.server_address[1]))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
