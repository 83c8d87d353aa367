"""A small HTTP/1.1 client on the standard library's sockets, for plain-http hosts on brain's own
network: Apex over Tailscale and the laptop's local server. No TLS, no proxy, no redirect, one
request per connection.

Why it exists (issue 32): importing httpx and making its client costs ~48 ms of a ~145 ms
answer; this module costs ~2 ms. httpx stays for everything else: https (Anthropic, Slack, a
TLS Apex), hosts on the internet (the user's proxy settings apply), uploads (voice), and any
host when `BRAIN_HTTP=httpx` is set (the way out should a server ever disagree with this
client; tests/test_client.py runs its hostile servers against both).

What must stay true, as for httpx under brain.transport (brain.client's docstring):
- every read honours the thread's Deadline (content moves it, nothing else does), is cut in
  READ_SLICE waits so a cancel is seen, and ends at the caller's per-read timeout;
- name resolution has a hard limit; every address of a name is tried;
- the status line and headers are bounded (MAX_HEAD), a chunk-size line too; the body is only
  framed here (Content-Length, chunked, or until close) and bounded by brain.client's readers;
- failures are NetError subclasses whose names and words match httpx's, so brain.client words
  both the same way (`describe`).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from brain.deadline import READ_SLICE, Deadline, current_deadline

MAX_HEAD = 64 * 1024  # the status line and headers of one answer
MAX_CHUNK_LINE = 4096  # one chunk-size line
RECV = 64 * 1024


# ----- failures (named as httpx names them) --------------------------------------------------


class NetError(Exception):
    """Nothing usable was exchanged: the base of every failure below (httpx.HTTPError's role)."""


class Timeout(NetError):
    pass


class ConnectTimeout(Timeout):
    pass


class ReadTimeout(Timeout):
    pass


class WriteTimeout(Timeout):
    pass


class ConnectError(NetError):
    pass


class ReadError(NetError):
    pass


class WriteError(NetError):
    pass


class RemoteProtocolError(NetError):
    """The server broke HTTP: a bad status line, headers past their bound, a cut body."""


_FROM_HTTPX = {
    "ConnectTimeout": ConnectTimeout,
    "ReadTimeout": ReadTimeout,
    "WriteTimeout": WriteTimeout,
    "PoolTimeout": Timeout,
    "TimeoutException": Timeout,
    "ConnectError": ConnectError,
    "ReadError": ReadError,
    "WriteError": WriteError,
    "RemoteProtocolError": RemoteProtocolError,
}


def from_httpx(exc: BaseException) -> NetError:
    """httpx's failure as the NetError of the same name and words (brain.client's path
    through httpx raises these, so a caller catches one family)."""
    kind = _FROM_HTTPX.get(type(exc).__name__, NetError)
    return kind(str(exc) or type(exc).__name__)


# ----- the deadline on every wait ------------------------------------------------------------


def clip(timeout: float | None) -> float | None:
    """The wait allowed for one socket operation: the caller's timeout, the deadline, a slice."""
    deadline = current_deadline()
    if deadline is None:
        return timeout
    if deadline.cancelled:
        raise ReadError(f"cancelled: {deadline.why}")
    left = deadline.remaining()
    if left <= 0:
        raise ReadTimeout("no content before the deadline")
    wait = min(left, READ_SLICE)
    return wait if timeout is None else min(timeout, wait)


def resolve(host: str, port: int, limit: float, deadline: Deadline | None = None) -> list[str]:
    """The addresses of `host`, within `limit` seconds (getaddrinfo itself has no timeout: a
    resolver that never answers, as MagicDNS with Tailscale down, must cost `limit` only)."""
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        return [host]  # already an address
    except OSError:
        pass
    box: list[Any] = []

    def look_up() -> None:
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            box.append(list(dict.fromkeys(str(info[4][0]) for info in found)))
        except OSError as exc:
            box.append(exc)

    worker = threading.Thread(target=look_up, daemon=True)
    worker.start()
    end = time.monotonic() + limit
    while worker.is_alive() and time.monotonic() < end:
        if deadline is not None and deadline.cancelled:
            raise ConnectError(f"cancelled: {deadline.why}")
        worker.join(min(READ_SLICE, max(end - time.monotonic(), 0)))
    if not box:
        raise ConnectTimeout(f"name resolution of {host} timed out")
    if isinstance(box[0], OSError):
        raise ConnectError(f"[Errno {box[0].errno}] {box[0].strerror}: {host}")
    return box[0]


def connect(host: str, port: int, timeout: float) -> socket.socket:
    """A connected socket to `host`, each of its addresses tried in turn within `timeout` (or
    the thread's Deadline's connect limit, when shorter)."""
    deadline = current_deadline()
    limit = timeout
    if deadline is not None and deadline.connect is not None:
        limit = min(limit, deadline.connect)
    started = time.monotonic()
    failure: NetError | None = None
    for address in resolve(host, port, limit, deadline):
        if deadline is not None and deadline.cancelled:
            raise ConnectError(f"cancelled: {deadline.why}")
        left = max(limit - (time.monotonic() - started), 0.05)
        try:
            # An address as bytes: getaddrinfo then skips the IDNA codec (~1 ms of imports).
            sock = socket.create_connection((address.encode("ascii"), port), timeout=left)
        except TimeoutError:
            failure = ConnectTimeout("timed out")
            continue
        except OSError as exc:
            failure = ConnectError(str(exc))
            continue
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # only a little slower
        return sock
    raise failure or ConnectError(f"no address for {host}")


# ----- one exchange --------------------------------------------------------------------------


class Headers(dict):
    """Header names in lower case; `get` takes any case; repeated headers joined by ", "."""

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return super().__contains__(str(key).lower())


class Response:
    """An answer whose body is read as it arrives (`iter_raw`), as httpx's streamed one."""

    def __init__(self, sock: socket.socket, read_timeout: float | None) -> None:
        self._sock = sock
        self._timeout = read_timeout
        self._buf = bytearray()
        self.status_code = 0
        self.reason = ""
        self.headers = Headers()

    # -- reading with the deadline

    def _fill(self) -> bool:
        started = time.monotonic()
        timeout = self._timeout
        while True:
            wait = clip(timeout)
            self._sock.settimeout(wait)
            try:
                data = self._sock.recv(RECV)
            except TimeoutError as exc:
                if exc.errno is not None:  # the kernel's ETIMEDOUT: the peer is gone
                    raise ReadError(str(exc)) from None
                waited = time.monotonic() - started
                if wait == timeout or (timeout is not None and waited >= timeout):
                    raise ReadTimeout("timed out") from None
                continue  # only a slice ran out: look at the deadline again
            except OSError as exc:
                raise ReadError(str(exc) or type(exc).__name__) from None
            if not data:
                return False
            self._buf += data
            return True

    def _line(self, limit: int, what: str) -> bytes:
        start = 0
        while True:
            end = self._buf.find(b"\n", start, limit + 2)
            if end >= 0:
                line = bytes(self._buf[:end]).rstrip(b"\r")
                del self._buf[: end + 1]
                return line
            start = len(self._buf)
            if start > limit + 1:
                bound = MAX_HEAD if what == "headers" else limit  # headers: all of them
                raise RemoteProtocolError(f"{what} longer than {bound // 1024} KiB")
            if not self._fill():
                raise RemoteProtocolError(
                    "Server disconnected without sending a response."
                    if what == "headers" and not self.status_code
                    else f"peer closed connection in the middle of the {what}"
                )

    def read_head(self) -> None:
        """The status line and headers (1xx answers skipped), within MAX_HEAD."""
        while True:
            used = 0
            status = self._line(MAX_HEAD, "headers")
            parts = status.split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
                raise RemoteProtocolError(f"not an HTTP answer: {status[:60].decode('latin-1')!r}")
            code = int(parts[1])
            headers = Headers()
            while True:
                line = self._line(MAX_HEAD - used, "headers")
                used += len(line) + 2
                if not line:
                    break
                name, sep, value = line.decode("latin-1").partition(":")
                if not sep or not name.strip():
                    raise RemoteProtocolError(f"a malformed header line: {line[:60]!r}")
                key, value = name.strip().lower(), value.strip()
                had = dict.get(headers, key)
                headers[key] = value if had is None else f"{had}, {value}"
            if 100 <= code < 200:
                continue  # 100 Continue and friends: the answer follows
            self.status_code = code
            self.reason = parts[2].decode("latin-1") if len(parts) > 2 else ""
            self.headers = headers
            return

    def iter_raw(self) -> Iterator[bytes]:
        """The body's bytes as they arrive, framed by Content-Length, chunked, or the close."""
        if self.status_code in (204, 304):
            return
        coding = self.headers.get("transfer-encoding", "").lower()
        if "chunked" in coding:
            yield from self._chunked()
            return
        length = self.headers.get("content-length")
        if length is not None:
            values = {v.strip() for v in length.split(",")}
            if len(values) != 1 or not _digits(next(iter(values))):
                raise RemoteProtocolError(f"a Content-Length that is no length ({length[:40]!r})")
            left = int(values.pop())
            yield from self._counted(left)
            return
        while True:  # until the server closes
            if self._buf:
                data = bytes(self._buf)
                self._buf.clear()
                yield data
            if not self._fill():
                return

    def _counted(self, left: int) -> Iterator[bytes]:
        while left > 0:
            if not self._buf and not self._fill():
                raise RemoteProtocolError(
                    "peer closed connection without sending complete message body: "
                    f"{left} bytes short"
                )
            data = bytes(self._buf[:left])
            del self._buf[: len(data)]
            left -= len(data)
            yield data

    def _chunked(self) -> Iterator[bytes]:
        while True:
            line = self._line(MAX_CHUNK_LINE, "chunked body")
            size_text = line.split(b";", 1)[0].strip()
            if not size_text or size_text.strip(b"0123456789abcdefABCDEF"):
                raise RemoteProtocolError(f"a bad chunk size ({size_text[:20]!r})")
            size = int(size_text, 16)
            if size == 0:
                while self._line(MAX_HEAD, "chunked body"):  # trailers, then the blank line
                    pass
                return
            yield from self._counted(size)
            if self._line(MAX_CHUNK_LINE, "chunked body"):  # the CRLF after the chunk
                raise RemoteProtocolError("a chunk longer than its size said")

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass


# What may stand unescaped in a request target (RFC 3986 pchar, "/" and "?", and "%" of an
# escape already made); anything else (a space, a non-ASCII letter) is percent-encoded, as
# httpx does.
_SAFE_PATH = "/%:@!$&'()*+,;=-._~"
_SAFE_QUERY = _SAFE_PATH + "?"


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()  # "²" is a digit to isdigit, not to int


def split_url(url: str) -> tuple[str, int, str, str, str | None]:
    """(host, port, the Host header, the request target, the Basic credentials of a URL with
    a user and password, or None) of a plain http:// URL. The URL itself never appears in an
    error (it may hold a password)."""
    from urllib.parse import quote, unquote, urlsplit

    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ConnectError("not a plain http:// URL")
    try:
        port = parts.port or 80
    except ValueError:
        raise ConnectError("a URL with a bad port") from None
    target = quote(parts.path or "/", safe=_SAFE_PATH)
    if parts.query:
        target += "?" + quote(parts.query, safe=_SAFE_QUERY)
    host = parts.hostname
    netloc = parts.netloc.rsplit("@", 1)[-1]
    if not netloc.isascii():  # an international name: its ASCII form, as on the wire
        netloc = host.encode("idna").decode("ascii") + (f":{parts.port}" if parts.port else "")
    basic = None
    if parts.username or parts.password:  # as httpx: the URL's credentials, as Basic auth
        from base64 import b64encode

        pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
        basic = "Basic " + b64encode(pair.encode("utf-8")).decode("ascii")
    return host, port, netloc, target, basic


def open_response(
    method: str,
    url: str,
    *,
    body: Iterable[bytes] | bytes = b"",
    length: int | None = None,
    headers: dict[str, str] | None = None,
    connect_timeout: float = 5.0,
    read_timeout: float | None = 10.0,
    write_timeout: float | None = 30.0,
) -> Response:
    """Send one request and read the answer's status and headers; the body is left to read
    (`Response.iter_raw`) and the caller closes the Response. `body` is bytes or pieces of
    bytes whose total is `length`."""
    host, port, netloc, target, basic = split_url(url)
    if isinstance(body, bytes):
        length, pieces = len(body), [body]
    else:
        pieces = body
    head = _head(method, target, netloc, basic, length, headers or {})
    sock = connect(host, port, connect_timeout)
    response = Response(sock, read_timeout)
    try:
        try:
            _send(sock, head, pieces, write_timeout)
        except WriteError as exc:
            # As httpcore: a server may answer (413, 401) and close before taking the whole
            # body; its answer, when there is one, says more than the broken pipe.
            if str(exc).startswith("cancelled: "):
                raise
            try:
                response.read_head()
            except NetError:
                raise exc from None
            return response
        response.read_head()
    except BaseException:
        response.close()
        raise
    return response


def _head(
    method: str,
    target: str,
    netloc: str,
    basic: str | None,
    length: int | None,
    headers: dict[str, str],
) -> bytes:
    """The request line and headers: the caller's override brain's own (any case), a URL's
    credentials override both (as httpx does); a line break or a character past Latin-1 in
    a header is refused, never sent."""
    fields = {
        "Host": netloc,
        "User-Agent": "brain",
        "Accept": "*/*",
        "Accept-Encoding": "identity",
        "Connection": "close",
    }
    if length or method in ("POST", "PUT", "PATCH"):
        fields["Content-Length"] = str(length or 0)
    for name, value in headers.items():
        if any(c in f"{name}{value}" for c in "\r\n\0"):
            first = (name.splitlines() or [""])[0][:40]
            raise WriteError(f"a header with a line break ({first})")
        fields = {k: v for k, v in fields.items() if k.lower() != name.lower()}
        fields[name] = str(value)
    if basic:
        fields = {k: v for k, v in fields.items() if k.lower() != "authorization"}
        fields["Authorization"] = basic
    lines = [f"{method} {target} HTTP/1.1", *(f"{k}: {v}" for k, v in fields.items())]
    try:
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError:  # as httpx: refused, never sent with "?" in its place
        bad = [k for k, v in fields.items() if not f"{k}{v}".isascii()]
        raise WriteError(f"a header that is not plain text ({', '.join(bad)[:60]})") from None


def _send(sock: socket.socket, head: bytes, pieces: Iterable[bytes], timeout: float | None) -> None:
    """Send the head and the body, each piece within `timeout` seconds, as `sendall` would:
    a body under 1 MiB is one piece (so the whole exchange of brain.client's `request` stays
    bounded); a larger one goes in pieces of 64 Ki characters, so a slow link can take a
    4 MiB input at ~2 KiB/s or more, while a server that takes nothing fails in `timeout`.
    A cancel is seen within READ_SLICE."""
    if isinstance(pieces, list) and len(pieces) == 1:  # a small body: one piece with its head
        _send_all(sock, head + pieces[0], timeout)
        return
    buffered = head
    for piece in pieces:
        if len(buffered) + len(piece) <= RECV:
            buffered += piece  # small requests go out in one segment
            continue
        if buffered:
            _send_all(sock, buffered, timeout)
        buffered = b""
        _send_all(sock, piece, timeout)
    if buffered:
        _send_all(sock, buffered, timeout)


def _send_all(sock: socket.socket, data: bytes, timeout: float | None) -> None:
    deadline = current_deadline()
    view = memoryview(data)
    end = None if timeout is None else time.monotonic() + timeout
    while view:
        if deadline is not None and deadline.cancelled:
            raise WriteError(f"cancelled: {deadline.why}")
        left = None if end is None else end - time.monotonic()
        if left is not None and left <= 0:
            raise WriteTimeout("timed out")
        sock.settimeout(READ_SLICE if left is None else max(min(left, READ_SLICE), 0.001))
        try:
            sent = sock.send(view)
        except TimeoutError as exc:
            if exc.errno is not None:  # the kernel's ETIMEDOUT: the peer is gone
                raise WriteError(str(exc)) from None
            continue  # only a slice ran out: look at the cancel and the clock again
        except OSError as exc:
            raise WriteError(str(exc) or type(exc).__name__) from None
        view = view[sent:]
