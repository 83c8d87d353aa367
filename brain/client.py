"""The one HTTP layer: one request (`stream`, `request`) over brain.plainhttp (plain http on
brain's own network) or the shared httpx clients (https, the internet, uploads), deadlines,
bounded reads, SSE and NDJSON streams, and turning any HTTP failure into a brain error (both
clients fail as NetError).

What must stay true (DESIGN.md, issue 31):
- Every read has a bound: a line of a stream (MAX_LINE), a whole body (MAX_BODY), an answer
  (MAX_ANSWER). Nothing is decompressed without a bound; brain asks for identity encoding.
- A deadline counts content, not bytes. `Deadline` is moved only by the parsers when a piece of
  the answer arrives; keep-alive pings, empty chunks, or headers dribbled a byte at a time do
  not move it. Name resolution is bounded too (a resolver that never answers costs at most
  the connect timeout). A deadline can be cancelled from another thread (the liveness probe
  beside an Apex request): the next read then fails within READ_SLICE seconds.
- No redirect is followed (a key is never sent to another host).

Backends (brain/backends) build requests and read what these parsers yield; nothing here knows
which backend is which, prints, or decides about fallbacks.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from brain.deadline import Deadline, current_deadline, watching
from brain.errors import BackendError, BadInput, BrainError, TemporaryFailure
from brain.plainhttp import (
    ConnectError,
    ConnectTimeout,
    NetError,
    ReadTimeout,
    RemoteProtocolError,
    Timeout,
    from_httpx,
)

__all__ = ["Deadline", "NetError", "current_deadline", "watching"]  # for the backends

if TYPE_CHECKING:
    import httpx

Message = dict[str, str]


class HTTPResponse(Protocol):
    """What brain reads of an answer, from brain.plainhttp or httpx alike."""

    status_code: int
    headers: Any  # a mapping whose `get` takes any case

    def iter_raw(self) -> Iterator[bytes]: ...


OnDelta = Callable[[str], None]

MAX_LINE = 1 << 20  # one line of an SSE or NDJSON stream
MAX_BODY = 4 << 20  # a JSON answer or an error body
MAX_ANSWER = 16 << 20  # characters of one answer; past it the answer ends as partial


_clients: dict[tuple[bool, bool], Any] = {}
_clients_lock = threading.Lock()


def http(url: str, *, internet: bool = False) -> httpx.Client:
    """The shared client for `url`. `internet`: a host on the internet (Anthropic, Slack), where
    the user's proxy settings apply; Apex over Tailscale and local servers never use a proxy.

    A plain http:// URL needs no certificate store (loading certifi's costs ~20 ms a client):
    it gets an empty TLS context, which trusts nothing should TLS ever be attempted.
    """
    tls = url.startswith("https://")
    key = (tls, internet)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = _new_client(url, internet)
        return client


def _new_client(url: str, internet: bool) -> httpx.Client:
    import httpx

    transport = httpx.HTTPTransport(verify=verify_for(url), trust_env=internet)
    # The pool's network backend is httpcore's documented extension point; httpx does not
    # expose it, so it is set on the pool it built (tests/test_client.py checks it is used).
    # A proxy from the environment (internet hosts only) gets httpx's own transport and timeouts.
    from brain.transport import DeadlineBackend

    transport._pool._network_backend = DeadlineBackend()
    return httpx.Client(
        transport=transport,
        trust_env=internet,
        follow_redirects=False,
        headers={"User-Agent": "brain", "Accept-Encoding": "identity"},
        timeout=httpx.Timeout(10.0, connect=5.0),
    )


def verify_for(url: str) -> Any:
    """httpx's `verify` for `url`: certifi's store for https, an empty context for http."""
    if url.startswith("http://"):
        import ssl

        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return True


# ----- bounded reading ------------------------------------------------------------------------


class TooBig(Exception):
    """A body or a line passed its bound."""


def _decoder(response: HTTPResponse) -> Callable[[bytes], bytes] | None:
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip", "deflate"):
        wbits = 47 if encoding != "deflate" else 15  # 47: gzip or zlib header, detected
        inflater = zlib.decompressobj(wbits)

        def inflate(data: bytes) -> bytes:
            # max_length bounds what one chunk may expand to (a gzip bomb expands ~1000×).
            try:
                out = inflater.decompress(data, MAX_LINE)
            except zlib.error as exc:
                raise TooBig(f"a {encoding} body that does not inflate ({exc})") from None
            if inflater.unconsumed_tail:
                raise TooBig("a compressed chunk that expands past 1 MiB")
            return out

        return inflate
    raise TooBig(f"an encoding brain does not read ({encoding})")


def iter_bytes(response: HTTPResponse, limit: int | None = None) -> Iterator[bytes]:
    """The body's bytes as they arrive, decoded with a bound; TooBig past `limit` in all.

    The thread's Deadline is looked at on every chunk too: where brain's network backend is
    not in the way (a proxy from the environment), bytes that keep coming without content
    still end at the deadline."""
    decode = _decoder(response)
    total = 0
    deadline = current_deadline()
    for raw in response.iter_raw():
        if deadline is not None and (deadline.cancelled or deadline.remaining() <= 0):
            raise ReadTimeout(deadline.why or "no content before the deadline")
        data = decode(raw) if decode else raw
        total += len(data)
        if limit is not None and total > limit:
            raise TooBig(f"more than {limit // 1024} KiB")
        if data:
            yield data


def read_body(response: HTTPResponse, limit: int = MAX_BODY) -> bytes:
    return b"".join(iter_bytes(response, limit))


def iter_lines(response: HTTPResponse, limit: int = MAX_LINE) -> Iterator[str]:
    """Lines (without their ending) of a streamed body; TooBig for a line past `limit`."""
    pending = bytearray()
    for data in iter_bytes(response):
        pending += data
        start = 0
        while True:
            end = pending.find(b"\n", start)
            if end < 0:
                break
            yield pending[start:end].rstrip(b"\r").decode("utf-8", "replace")
            start = end + 1
        del pending[:start]
        if len(pending) > limit:
            raise TooBig(f"a line longer than {limit // 1024} KiB")
    if pending:
        yield pending.decode("utf-8", "replace")


def sse_events(response: HTTPResponse) -> Iterator[str]:
    """The `data` of each server-sent event (lines joined), as the SSE spec assembles them.
    Comments (`: ping`), `event:` and `id:` lines are skipped."""
    data: list[str] = []
    size = 0
    for line in iter_lines(response):
        if not line:
            if data:
                yield "\n".join(data)
                data, size = [], 0
            continue
        if line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)
            size += len(value)
            if size > MAX_LINE:
                raise TooBig("an event longer than 1 MiB")
    if data:
        yield "\n".join(data)


def ndjson(response: HTTPResponse) -> Iterator[Any]:
    """One JSON value per non-empty line (Ollama's native streams). ValueError on a bad line."""
    for line in iter_lines(response):
        if line.strip():
            yield json.loads(line)


# ----- one request ----------------------------------------------------------------------------


@dataclass
class Reply:
    """A whole (small) answer: status, headers, the JSON body or its text."""

    status: int
    headers: dict[str, str]
    body: Any  # parsed JSON, or the text when it is not JSON
    text: str
    raw: bytes = b""  # the body as it came (a caller that must tell text from binary)


def light(url: str, internet: bool = False) -> bool:
    """Whether `url` goes through brain.plainhttp rather than httpx: plain http:// on brain's
    own network (Apex over Tailscale, the laptop's server), unless BRAIN_HTTP=httpx."""
    import os

    return (
        url.startswith("http://")
        and not internet
        and os.environ.get("BRAIN_HTTP", "").strip().lower() != "httpx"
    )


_JSON_SLICE = 64 * 1024  # characters of a long string encoded at a time
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def json_pieces(value: Any) -> Iterator[bytes]:
    """`value` as the JSON httpx would send (compact, UTF-8, no NaN), in pieces: a long string
    (a 4 MiB input) is encoded a slice at a time, so no whole copy of it is ever made."""
    if isinstance(value, str) and len(value) > _JSON_SLICE:
        yield b'"'
        for at in range(0, len(value), _JSON_SLICE):
            yield _encoder.encode(value[at : at + _JSON_SLICE])[1:-1].encode("utf-8")
        yield b'"'
    elif isinstance(value, dict):
        yield b"{"
        for i, (key, item) in enumerate(value.items()):
            yield (b"," if i else b"") + _encoder.encode(_key(key)).encode("utf-8") + b":"
            yield from json_pieces(item)
        yield b"}"
    elif isinstance(value, (list, tuple)):
        yield b"["
        for i, item in enumerate(value):
            if i:
                yield b","
            yield from json_pieces(item)
        yield b"]"
    else:
        yield _encoder.encode(value).encode("utf-8")


def _key(key: Any) -> str:
    """A dict key as json.dumps writes it: true, false, null, numbers as their JSON text."""
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (bool, int, float)):
        return _encoder.encode(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _json_body(value: Any) -> tuple[Any, int]:
    """The pieces to send and their length. A small body is encoded once and kept; a large one
    is measured first and encoded again as it is sent (never held whole)."""
    kept: list[bytes] = []
    length = 0
    for piece in json_pieces(value):
        length += len(piece)
        if kept is not None and length <= 1 << 20:
            kept.append(piece)
        else:
            kept = None  # type: ignore[assignment]
    if kept is not None:
        return [b"".join(kept)], length
    return json_pieces(value), length


@contextmanager
def stream(
    method: str,
    url: str,
    *,
    connect: float,
    read: float,
    write: float = 30.0,
    json_body: Any = None,
    headers: dict[str, str] | None = None,
    internet: bool = False,
) -> Iterator[Any]:
    """One request whose answer is read as it arrives: a response with `status_code`, `headers`
    (any case) and `iter_raw()`. Failures are NetError (ConnectError, ReadTimeout, …) whichever
    client carried it: brain.plainhttp for plain http on brain's own network, httpx otherwise.
    `connect`, `read`, `write`: seconds one such step may wait (httpx's per-operation sense)."""
    if light(url, internet):
        from brain.plainhttp import open_response

        send = dict(headers or {})
        body: Any = b""
        length = 0
        if json_body is not None:
            body, length = _json_body(json_body)
            send.setdefault("Content-Type", "application/json")
        response = open_response(
            method,
            url,
            body=body,
            length=length,
            headers=send,
            connect_timeout=connect,
            read_timeout=read,
            write_timeout=write,
        )
        try:
            yield response
        finally:
            response.close()
        return
    import httpx

    timeout = httpx.Timeout(connect=connect, read=read, write=write, pool=5.0)
    try:
        with http(url, internet=internet).stream(
            method, url, json=json_body, headers=headers, timeout=timeout
        ) as response:
            yield response
    except httpx.HTTPError as exc:
        raise from_httpx(exc) from None


def request(
    method: str,
    url: str,
    *,
    timeout: float,
    connect: float | None = None,
    json_body: Any = None,
    headers: dict[str, str] | None = None,
    limit: int = MAX_BODY,
    internet: bool = False,
    deadline: Deadline | None = None,
) -> Reply:
    """One request whose whole exchange, body included, ends within `timeout` seconds.

    Raises NetError (transport) or TooBig; the caller words them (`describe`).
    """
    deadline = deadline or Deadline(timeout, connect=connect)
    with (
        watching(deadline),
        stream(
            method,
            url,
            connect=connect or timeout,
            read=timeout,
            write=timeout,
            json_body=json_body,
            headers=headers,
            internet=internet,
        ) as response,
    ):
        raw = read_body(response, limit)
    text = raw.decode("utf-8", "replace")
    try:
        body: Any = json.loads(text) if text.strip() else None
    except ValueError:
        body = text
    return Reply(response.status_code, dict(response.headers), body, text, raw)


def ask_small(url: str, timeout: float, body: Any = None) -> Reply | None:
    """GET `url` (POST `body` when given) for a small answer (at most 1 MiB), or None when
    nothing usable came back in `timeout` seconds: for questions whose failure only means
    "do not know" (what a local server is, what it has loaded)."""
    try:
        return request(
            "POST" if body is not None else "GET",
            url,
            timeout=timeout,
            connect=min(timeout, 1.0),
            json_body=body,
            limit=1 << 20,
        )
    except (NetError, TooBig):
        return None


def _as_net_error(exc: BaseException) -> BaseException:
    """httpx's own failures (voice uploads still meet them) in NetError's words."""
    httpx = sys.modules.get("httpx")
    if httpx is not None and isinstance(exc, httpx.HTTPError):
        return from_httpx(exc)
    return exc


def describe(exc: BaseException) -> str:
    """One short phrase for a failed exchange: DNS, refused, timed out, too big, cancelled."""
    exc = _as_net_error(exc)
    if isinstance(exc, TooBig):
        return f"sent {exc} (brain stops reading there)"
    text = str(exc) or type(exc).__name__
    low = text.lower()
    if low.startswith("cancelled: "):
        return text[len("cancelled: ") :]
    if "name resolution" in low and "timed out" in low:
        return "the name did not resolve in time (DNS timed out)"
    if isinstance(exc, ConnectTimeout):
        return "no answer to the connection attempt (timed out)"
    if isinstance(exc, ReadTimeout):
        return "connected, but no answer in time (timed out)"
    if isinstance(exc, Timeout):
        return "timed out"
    if any(
        s in low
        for s in ("name or service not known", "nodename nor servname", "getaddrinfo", "errno -2")
    ) or ("name resolution" in low):
        return "the name does not resolve (DNS)"
    if "refused" in low:
        return "connection refused"
    if "unreachable" in low:
        return "network unreachable"
    if isinstance(exc, RemoteProtocolError):
        return f"the connection broke ({one_line(text, 120)})"
    return one_line(text, 160)


def is_timeout(exc: BaseException) -> bool:
    exc = _as_net_error(exc)
    return isinstance(exc, Timeout) or "timed out" in str(exc).lower()


def is_unreachable_host(exc: BaseException) -> bool:
    """The host itself could not be reached (refused, DNS, connect timeout)."""
    return isinstance(_as_net_error(exc), (ConnectError, ConnectTimeout))


# ----- errors in words ------------------------------------------------------------------------

# LiteLLM and OpenAI-style servers wrap the cause in exception names and add paragraphs about
# model groups and retries; the cause is what a person needs (issue 29, item 4). The messages
# LiteLLM 1.106.12 really sends are in tests/test_client.py.
_NOISE_PREFIXES = (
    "received model group",
    "available model group fallbacks",
    "litellm retried",
    "litellm max retries",
    "litellm: model group",
    "model group=",
    "debug information",
    "cooldown deployments",
    "traceback",
    "error_str",
)
_ALSO_FAILED = re.compile(r"Fallback to (.+?) also failed", re.S)
# aiohttp's connection errors name the SSL context object: "ssl:<ssl.SSLContext object at 0x…>"
_OBJECT_NOISE = re.compile(r"\s*ssl:(<[^>]*>|default|None)")


def one_line(text: str, limit: int = 300) -> str:
    """The cause in `text`, on one line, cut at a word with an ellipsis past `limit`. Keys are
    masked before the cut, so a cut never leaves part of one (brain.secrets)."""
    from brain.secrets import redact

    text = redact(str(text))
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.lower().startswith(_NOISE_PREFIXES)] or lines[:1]
    line = lines[0] if lines else ""
    for _ in range(4):  # "litellm.APIConnectionError: APIConnectionError: OpenAIException - X"
        head, sep, rest = line.partition(": ")
        if sep and rest and (head.startswith("litellm.") or head.endswith(("Error", "Exception"))):
            line = rest.strip()
            continue
        head, sep, rest = line.partition(" - ")
        if sep and rest and head.endswith(("Exception", "Error")) and " " not in head:
            line = rest.strip()
            continue
        break
    if line.startswith("{"):  # the upstream's own JSON error body, passed through
        try:
            inner = error_message(json.loads(line))
        except ValueError:
            inner = ""
        line = inner.strip() or line
    line = _OBJECT_NOISE.sub("", line)
    also = _ALSO_FAILED.search(text)
    if also:  # LiteLLM: the first step's error, and which fallbacks failed after it
        line = f"{line} (then {' '.join(also.group(1).split())} failed too)"
    line = " ".join(_printable(line).split())
    if len(line) <= limit:
        return line
    cut = line[: limit - 1].rsplit(" ", 1)[0] if " " in line[: limit - 1] else line[: limit - 1]
    return cut.rstrip(" ,.;:") + "…"


def _printable(text: str) -> str:
    return "".join(ch if ch.isprintable() or ch == " " else " " for ch in text)


def error_message(body: Any) -> str:
    """The message in any of the usual error envelopes (OpenAI, Ollama, Anthropic, vLLM)."""
    if isinstance(body, dict):
        err = body.get("error", body.get("detail", body.get("message", body)))
        if isinstance(err, dict):
            return str(err.get("message") or err.get("detail") or err.get("type") or err)
        if isinstance(err, list) and err:
            return error_message({"error": err[0]})
        return str(err)
    if isinstance(body, list) and body:
        return error_message(body[0])
    return str(body or "")


def error_type(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("type") or body["error"].get("code") or "")
    return ""


_TOO_LONG = (
    "context_length_exceeded",
    "exceed_context_size",
    "maximum context length",
    "exceeds the maximum number of tokens",
    "prompt is too long",
    "longer than the context length",
    "too large for model with",
    "exceeds the available context size",
    "context window exceeded",  # LiteLLM's pre-call check: no step of the route can read it
)


def says_too_long(message: str, etype: str = "") -> bool:
    low = f"{etype} {message}".lower()
    if "per min" in low or "tpm" in low or "rate limit" in low:
        return False
    return any(p in low for p in _TOO_LONG)


def http_error(label: str, status: int, body: Any, headers: dict[str, str]) -> BrainError:
    """The error for a non-200 answer that no backend-specific rule claimed.

    408/5xx may fall back (nothing reached the user); 429 is "try later" (75); a context
    overflow may fall back to a backend with a longer context (`too_long`); other 4xx refuse.
    """
    message = one_line(error_message(body))
    if status == 429:
        retry = headers.get("retry-after") or headers.get("llm_provider-retry-after")
        when = f" in {retry} s" if retry and retry.replace(".", "", 1).isdigit() else " in a minute"
        return TemporaryFailure(
            f"{label} is rate limited (HTTP 429): {message}",
            f"Try again{when}; your input is kept (`brain queue run` replays it).",
        )
    if says_too_long(message, error_type(body)):
        reason = f"{label} says the input is too long for its model: {message}"
        error = BackendError(reason, reason=reason, exit_code=65)
        error.too_long = True
        return error
    if status == 408 or status >= 500:
        reason = f"{label} answered HTTP {status}: {message}"
        return BackendError(
            reason,
            "This is usually passing; try again, or see `brain status`.",
            reason=reason,
            exit_code=75 if status in (408, 503) else 69,
        )
    reason = f"{label} refused the request (HTTP {status}): {message}"
    return BackendError(
        reason,
        "Run with -v for details, or check `brain status`.",
        reason=reason,
        fallback_ok=False,
    )


def transport_error(label: str, url: str, exc: BaseException) -> BackendError:
    """A failure to exchange anything with `url` before the first token: may fall back.

    `transport` is true when the host itself could not be reached (refused, DNS, connect
    timeout): then it is away for every route. A read timeout means it is there but slow.
    """
    phrase = describe(exc)
    reason = f"{label} ({url}): {phrase}"
    error = BackendError(reason, reason=reason, transport=is_unreachable_host(exc))
    error.detail = phrase
    error.timeout = is_timeout(exc)
    return error


def refuse_too_long(tokens: int, limits: list[tuple[str, int]]) -> BadInput:
    """Input longer than every model it may go to: bad input (65), never "try later"."""
    where = ", ".join(f"{name} {limit:,}" for name, limit in limits)
    return BadInput(
        f"the input is about {tokens:,} tokens, longer than any model it may go to can read "
        f"({where} tokens).",
        "Send less (a part at a time), or ask a task with a long-input route such as "
        "`brain digest`.",
    )
