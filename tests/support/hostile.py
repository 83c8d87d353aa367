"""Hostile HTTP servers on raw sockets, so that every byte is ours: endless lines and bodies,
keep-alive pings with no content, headers dribbled a byte at a time, a gzip bomb, a server that
echoes the Authorization header back. Used by the tests (issue 31) and by bench/memory.py,
which measures brain's peak memory against each of them.

A server runs one *script* per request path; the script gets the connection, the parsed
request and an Event that is set when the server closes. Unknown paths get a 404.

    server = Hostile({"/v1/chat/completions": endless_line})
    ... server.url ...
    server.close()
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
JSON_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


Script = Callable[[socket.socket, Request, threading.Event], None]


class Hostile:
    """A TCP server that answers each request path with its script, in a thread each."""

    def __init__(self, scripts: dict[str, Script], *, alive: bool = True) -> None:
        self.scripts = dict(scripts)
        for script in self.scripts.values():  # costly payloads made now, not while brain waits
            getattr(script, "prepare", lambda: None)()
        if alive:  # Apex's liveness probe answers, so the request itself is what is tested
            self.scripts.setdefault("/health/liveliness", reply(200, b'"I\'m alive!"'))
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(32)
        self.stopped = threading.Event()
        self.requests: list[Request] = []
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
            conn.settimeout(60)
            request = read_request(conn)
            if request is None:
                return
            self.requests.append(request)
            script = self.scripts.get(request.path.split("?")[0])
            if script is None:
                conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                return
            script(conn, request, self.stopped)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stopped.set()
        self.sock.close()

    def __enter__(self) -> Hostile:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def read_request(conn: socket.socket) -> Request | None:
    data = b""
    while b"\r\n\r\n" not in data:
        got = conn.recv(65536)
        if not got:
            return None
        data += got
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, *_ = lines[0].split(" ")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    size = int(headers.get("content-length") or 0)
    while len(body) < size:
        got = conn.recv(65536)
        if not got:
            break
        body += got
    return Request(method, path, headers, body)


# ----- scripts ----------------------------------------------------------------------------------


def forever(conn: socket.socket, stopped: threading.Event, data: bytes, every: float) -> None:
    """Send `data` every `every` seconds until the client leaves or the server stops."""
    while not stopped.is_set():
        conn.sendall(data)
        if every:
            time.sleep(every)


def reply(status: int, body: bytes, content_type: str = "application/json") -> Script:
    def script(conn: socket.socket, _r: Request, _s: threading.Event) -> None:
        conn.sendall(
            f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )

    return script


def chunk(content: str) -> bytes:
    body = {"choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}]}
    return f"data: {json.dumps(body)}\n\n".encode()


def endless_line(conn: socket.socket, _r: Request, stopped: threading.Event) -> None:
    """An SSE line that never ends (a 1 MiB bound must stop it)."""
    conn.sendall(SSE_HEAD + b"data: ")
    forever(conn, stopped, b"x" * 65536, 0)


def pings(conn: socket.socket, _r: Request, stopped: threading.Event) -> None:
    """SSE keep-alive comments forever, never any content."""
    conn.sendall(SSE_HEAD)
    forever(conn, stopped, b": ping\n\n", 0.05)


def empty_chunks(conn: socket.socket, _r: Request, stopped: threading.Event) -> None:
    conn.sendall(SSE_HEAD)
    forever(conn, stopped, chunk(""), 0.05)


def dribble(conn: socket.socket, _r: Request, stopped: threading.Event) -> None:
    """Headers a byte at a time, forever (a header line that never ends)."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    forever(conn, stopped, b"a", 0.05)


def stall_after_first(conn: socket.socket, _r: Request, stopped: threading.Event) -> None:
    """One piece of content, then keep-alive pings forever."""
    conn.sendall(SSE_HEAD + chunk("begun "))
    forever(conn, stopped, b": ping\n\n", 0.05)


def trickle_after_first(conn: socket.socket, _r: Request, stopped: threading.Event) -> None:
    """One piece of content, then one empty chunk now and then, forever."""
    conn.sendall(SSE_HEAD + chunk("begun "))
    forever(conn, stopped, chunk(""), 0.3)


def endless_json(conn: socket.socket, _r: Request, stopped: threading.Event) -> None:
    """A JSON body that never ends."""
    conn.sendall(JSON_HEAD + b"[")
    forever(conn, stopped, b"1," * 32768, 0)


def endless_error(conn: socket.socket, _r: Request, stopped: threading.Event) -> None:
    """A 500 whose error body never ends."""
    conn.sendall(
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n"
        b"Connection: close\r\n\r\n"
    )
    forever(conn, stopped, b"error " * 10000, 0)


def endless_text(conn: socket.socket, _r: Request, stopped: threading.Event) -> None:
    """A 200 text body that never ends (a webhook that answers with an endless page)."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
    forever(conn, stopped, b"ok " * 20000, 0)


def dribble_body(conn: socket.socket, _r: Request, stopped: threading.Event) -> None:
    """A 200 whose body arrives one byte every 50 ms, forever."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
    forever(conn, stopped, b"o", 0.05)


_BOMB: bytes | None = None


def _bomb() -> bytes:
    # ~0.3 s of CPU, more under load: made when the server is set up (Hostile), so brain's
    # first-byte deadline never runs out while the server is still compressing.
    global _BOMB
    if _BOMB is None:
        _BOMB = gzip.compress(b"data: " + b"x" * (64 << 20))
    return _BOMB


def gzip_bomb(conn: socket.socket, _r: Request, _stopped: threading.Event) -> None:
    """64 MiB of SSE that packs into ~64 KiB."""
    bomb = _bomb()
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\n"
        + f"Content-Length: {len(bomb)}\r\nConnection: close\r\n\r\n".encode()
        + bomb
    )


gzip_bomb.prepare = _bomb  # type: ignore[attr-defined]


def echo_auth(conn: socket.socket, request: Request, _stopped: threading.Event) -> None:
    """A 500 whose error message repeats the Authorization header it was sent, padded so that a
    300-character cut falls inside the key."""
    auth = request.headers.get("authorization", "")
    message = "x" * 280 + f" upstream rejected {auth} for this request"
    reply(500, json.dumps({"error": {"message": message}}).encode())(conn, request, _stopped)


def echo_auth_answer(conn: socket.socket, request: Request, _stopped: threading.Event) -> None:
    """An answer (200, streamed) whose text repeats the Authorization header, split over
    three chunks so that no single chunk holds the whole key."""
    auth = request.headers.get("authorization", "")
    third = max(len(auth) // 3, 1)
    parts = [auth[:third], auth[third : 2 * third], auth[2 * third :]]
    conn.sendall(SSE_HEAD + chunk("you sent: ") + b"".join(chunk(p) for p in parts))
    conn.sendall(chunk(" (echoed)") + b"data: [DONE]\n\n")
