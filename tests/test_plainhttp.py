"""brain.plainhttp, the light client for plain-http hosts on brain's own network (issue 32):
HTTP framing against raw sockets, the request body byte for byte as httpx would send it, and
the same failures in the same words as httpx. The deadline and bound cases run for both
clients in tests/test_client.py and tests/test_bounds.py."""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

import httpx
import pytest
from fakes import refused_url
from hostile import Hostile, Request, reply

from brain import client, plainhttp
from brain.client import describe, json_pieces, request, stream

OK_HEAD = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"


def raw(data: bytes) -> Any:
    def script(conn: socket.socket, _r: Request, _s: threading.Event) -> None:
        conn.sendall(data)

    return script


def get(server: Hostile, path: str = "/x", **kw: Any) -> client.Reply:
    return request("GET", server.url + path, timeout=5.0, connect=1.0, **kw)


@pytest.fixture(autouse=True)
def light_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BRAIN_HTTP", raising=False)


def test_plain_http_on_brains_own_network_goes_through_the_light_client(monkeypatch) -> None:
    assert client.light("http://100.64.0.1:4000")
    assert not client.light("https://apex.example.ts.net")  # TLS: httpx
    assert not client.light("http://example.com", internet=True)  # the user's proxy: httpx
    monkeypatch.setenv("BRAIN_HTTP", "httpx")  # the way out, should a server disagree
    assert not client.light("http://100.64.0.1:4000")


def test_chunked_answer_with_extensions_and_trailers() -> None:
    body = b'{"a": 1, "b": "two"}'
    wire = (
        OK_HEAD.encode()
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + b"5;name=value\r\n"
        + body[:5]
        + b"\r\n"
        + f"{len(body) - 5:x}\r\n".encode()
        + body[5:]
        + b"\r\n0\r\nX-Trailer: yes\r\n\r\n"
    )
    with Hostile({"/x": raw(wire)}) as server:
        got = get(server)
    assert got.status == 200 and got.body == {"a": 1, "b": "two"}


def test_a_body_read_to_the_close_and_interim_100_skipped() -> None:
    wire = b"HTTP/1.1 100 Continue\r\n\r\n" + OK_HEAD.encode() + b"Connection: close\r\n\r\n[1,2]"
    with Hostile({"/x": raw(wire)}) as server:
        got = get(server)
    assert got.status == 200 and got.body == [1, 2]


def test_headers_are_case_blind_and_repeats_joined() -> None:
    wire = OK_HEAD + "X-LiteLLM-Model-Id: m1\r\nVia: a\r\nvia: b\r\nContent-Length: 2\r\n\r\n{}"
    with Hostile({"/x": raw(wire.encode())}) as server:
        with stream("GET", server.url + "/x", connect=1.0, read=5.0) as response:
            assert response.headers.get("x-litellm-model-id") == "m1"
            assert response.headers["X-LITELLM-MODEL-ID"] == "m1"
            assert dict(response.headers)["via"] == "a, b"  # lower-case keys, as httpx gives


@pytest.mark.parametrize(
    ("wire", "said"),
    [
        (OK_HEAD + "Content-Length: 10\r\n\r\n{}", "the connection broke"),
        (OK_HEAD + "Transfer-Encoding: chunked\r\n\r\nzz\r\n", "the connection broke"),
        (OK_HEAD + "X-Big: " + "y" * (80 * 1024) + "\r\n\r\n", "longer than 64 KiB"),
        ("SSH-2.0-OpenSSH_9.2\r\n\r\n", "not an HTTP answer"),
        (OK_HEAD + "Content-Length: -5\r\n\r\n{}", "no length"),
        (OK_HEAD + "Content-Length: 2, 3\r\n\r\n{}", "no length"),
        (OK_HEAD + "Transfer-Encoding: chunked\r\n\r\n0x2\r\n{}\r\n0\r\n\r\n", "chunk size"),
        (OK_HEAD + "Transfer-Encoding: chunked\r\n\r\n-1\r\n", "chunk size"),
        (OK_HEAD + "Transfer-Encoding: chunked\r\n\r\n1\r\n{}\r\n0\r\n\r\n", "longer than its"),
        ("", "Server disconnected without sending a response"),
    ],
)
def test_a_broken_answer_is_a_protocol_error_in_words(wire: str, said: str) -> None:
    with Hostile({"/x": raw(wire.encode())}) as server:
        with pytest.raises(plainhttp.RemoteProtocolError) as err:
            get(server)
    assert said in describe(err.value)


def test_refused_and_unresolvable_read_as_with_httpx() -> None:
    for url, said in [
        (refused_url(), "connection refused"),
        ("http://brain-test.invalid:4000", "the name does not resolve (DNS)"),
    ]:
        with pytest.raises(plainhttp.ConnectError) as err:
            request("GET", url, timeout=2.0, connect=1.0)
        assert describe(err.value) == said
        assert client.is_unreachable_host(err.value)


def test_a_header_with_a_line_break_is_never_sent() -> None:
    with Hostile({"/x": reply(200, b"{}")}) as server:
        with pytest.raises(plainhttp.WriteError):
            get(server, headers={"Authorization": "Bearer k\r\nX-Evil: 1"})
        assert server.requests == []


@pytest.mark.parametrize(
    "value",
    [
        {"model": "m", "messages": [{"role": "user", "content": 'héllo "q" \\ \n\t\x01 ✓'}]},
        {"n": [1, 2.5, None, True, False], "empty": {}, "list": []},
        {"long": 'é\u2028x"\\\n' * 40_000},  # past one slice: escapes across the cuts
        {"long": "a" * (1 << 20) + "😀" * 70_000},
    ],
)
def test_the_json_body_is_what_httpx_would_send(value: Any) -> None:
    sent = httpx.Request("POST", "http://x/", json=value).read()
    assert b"".join(json_pieces(value)) == sent


def test_nan_is_refused_as_httpx_refuses_it() -> None:
    with pytest.raises(ValueError):
        b"".join(json_pieces({"x": float("nan")}))


@pytest.mark.parametrize("size", [100, 3 << 20])
def test_a_request_body_arrives_whole_with_its_length(size: int) -> None:
    value = {"messages": [{"role": "user", "content": "ü" * size}], "stream": True}

    def echo(conn: socket.socket, r: Request, _s: threading.Event) -> None:
        echo.body = r.body  # type: ignore[attr-defined]  # before answering: the test reads it
        said = json.dumps({"length": r.headers.get("content-length"), "got": len(r.body)})
        reply(200, said.encode())(conn, r, _s)

    with Hostile({"/x": echo}) as server:
        got = request("POST", server.url + "/x", timeout=10.0, json_body=value)
    expected = httpx.Request("POST", "http://x/", json=value).read()
    assert got.body == {"length": str(len(expected)), "got": len(expected)}
    assert echo.body == expected  # type: ignore[attr-defined]


def test_an_httpx_failure_reads_the_same_as_the_light_clients(monkeypatch) -> None:
    monkeypatch.setenv("BRAIN_HTTP", "httpx")
    with pytest.raises(plainhttp.ConnectError) as err:  # httpx's, as the same family
        request("GET", refused_url(), timeout=2.0, connect=1.0)
    assert describe(err.value) == "connection refused"


@pytest.mark.parametrize(
    "url",
    [
        "http://h:4000/v1/chat/completions",
        "http://h/a b/ü?q=a b&r=ü%20x&s=/?",
        "http://h/notes;v=1?since=2026-12-06T00:00:00+01:00",
    ],
)
def test_the_request_target_is_httpxs(url: str) -> None:
    _host, _port, _netloc, target, _basic = plainhttp.split_url(url)
    assert target == httpx.Request("GET", url).url.raw_path.decode("ascii")


def test_a_url_with_a_user_and_password_sends_them_as_httpx_does() -> None:
    url = "http://me:p%40ss@127.0.0.1:9/x"
    want = httpx.Request("GET", url)
    httpx.BasicAuth("me", "p@ss").sync_auth_flow(want).__next__()
    *_, basic = plainhttp.split_url(url)
    assert basic == want.headers["authorization"]
    with pytest.raises(plainhttp.ConnectError) as err:
        plainhttp.split_url("http://me:secret@host:notaport/")
    assert "secret" not in str(err.value)  # the URL, password and all, is never in an error


def test_an_ipv6_address_is_reached() -> None:
    try:
        server = socket.socket(socket.AF_INET6)
        server.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    server.listen(1)
    port = server.getsockname()[1]

    def answer() -> None:
        conn, _ = server.accept()
        conn.recv(65536)
        conn.sendall(OK_HEAD.encode() + b"Content-Length: 4\r\n\r\ntrue")
        conn.close()

    threading.Thread(target=answer, daemon=True).start()
    got = request("GET", f"http://[::1]:{port}/x", timeout=5.0)
    server.close()
    assert got.body is True


def test_an_answer_given_before_the_body_was_taken_is_read() -> None:
    # A server that refuses a large body at once (413) and closes: its answer is what counts.
    def refuse(conn: socket.socket, _r: Request, _s: threading.Event) -> None:
        conn.sendall(b'HTTP/1.1 413 Too Large\r\nContent-Length: 21\r\n\r\n{"error": "too big"}\n')
        conn.shutdown(socket.SHUT_RDWR)

    def early(conn: socket.socket, _s: threading.Event) -> None:
        conn.recv(1024)  # the request line only
        refuse(conn, Request("POST", "/x"), _s)

    big = {"content": "z" * (8 << 20)}
    with Hostile({}) as server:
        server._one = lambda conn: (early(conn, server.stopped), conn.close())  # type: ignore
        got = request("POST", server.url + "/x", timeout=10.0, json_body=big)
    assert got.status == 413 and got.body == {"error": "too big"}


def test_a_header_that_is_not_latin_1_is_refused_not_garbled() -> None:
    with Hostile({"/x": reply(200, b"{}")}) as server:
        with pytest.raises(plainhttp.WriteError) as err:
            get(server, headers={"Authorization": "Bearer sk-k€y"})
        assert server.requests == [] and "k€y" not in str(err.value)


def test_keys_that_are_not_text_are_written_as_json_writes_them() -> None:
    value = {True: 1, None: [2], 3: {"4.5": 4.5, 1.5: False}}
    assert b"".join(json_pieces(value)) == httpx.Request("POST", "http://x/", json=value).read()


def _taking_nothing() -> tuple[socket.socket, str]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    return server, f"http://127.0.0.1:{server.getsockname()[1]}/x"


def test_an_upload_nobody_takes_ends_at_the_write_timeout() -> None:
    import time

    server, url = _taking_nothing()  # accepts (the kernel does), never reads
    start = time.monotonic()
    with pytest.raises(plainhttp.WriteTimeout):
        with stream(
            "POST", url, connect=1.0, read=5.0, write=1.0, json_body={"c": "z" * (16 << 20)}
        ):
            pass
    assert time.monotonic() - start < 10  # it ended (one piece's wait), not a wait per piece
    server.close()


def test_a_cancel_stops_an_upload_that_is_stuck() -> None:
    import time

    from brain.deadline import Deadline, watching

    server, url = _taking_nothing()
    deadline = Deadline(30.0)
    threading.Timer(0.5, deadline.cancel, args=("Apex is not answering",)).start()
    start = time.monotonic()
    with pytest.raises(plainhttp.WriteError) as err, watching(deadline):
        with stream(
            "POST", url, connect=1.0, read=30.0, write=30.0, json_body={"c": "z" * (16 << 20)}
        ):
            pass
    assert describe(err.value) == "Apex is not answering"
    assert time.monotonic() - start < 10  # it ended: seen within a slice, not after 30 s
    server.close()


def test_a_superscript_digit_is_no_length() -> None:
    # b"\xb2" is "²" in Latin-1: a digit to str.isdigit, not to int()
    wire = OK_HEAD.encode() + b"Content-Length: \xb2\r\n\r\n{}"
    with Hostile({"/x": raw(wire)}) as server:
        with pytest.raises(plainhttp.RemoteProtocolError):
            get(server)
