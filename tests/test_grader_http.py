"""The raw HTTP client against a local asyncio server (no Docker)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from bb.grader.raw_http import RawHTTPError, build_request, open_connections, raw_connection
from tests.local_server import LocalServer, response


async def hello(*_: object) -> bytes:
    return response(200, b"hello", headers={"X-Twice": "1"}) + b""


async def chunked(*_: object) -> bytes:
    return (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n")  # fmt: skip


async def closing(*_: object) -> bytes:
    return response(200, b"bye", headers={"Connection": "close"})


async def unframed(*_: object) -> bytes:
    return b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall until the end"


async def echo(method: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
    return response(201, f"{method} {path} {body.decode()}".encode())


async def hang(*_: object) -> bytes:
    await asyncio.sleep(30)
    return response(200)


async def big(*_: object) -> bytes:
    return response(200, b"x" * 5000)


async def garbage(*_: object) -> bytes:
    return b"SMTP ready\r\n\r\n"


@pytest.fixture
def server() -> Iterator[LocalServer]:
    routes = {"/hello": hello, "/chunked": chunked, "/closing": closing, "/unframed": unframed,
              "/echo": echo, "/hang": hang, "/big": big, "/garbage": garbage}  # fmt: skip
    with LocalServer(routes).running() as running:  # type: ignore[arg-type]
        yield running


def test_keep_alive_requests_and_headers(server: LocalServer) -> None:
    with raw_connection(server.url) as conn:
        for _ in range(2):
            conn.request("GET", "/hello")
            answer = conn.read_response()
            assert (answer.version, answer.status, answer.body) == ("HTTP/1.1", 200, b"hello")
            assert answer.header("x-twice") == "1" and answer.header("content-length") == "5"
        conn.request("POST", "/echo", body=b"payload")
        assert conn.read_response().text == "POST /echo payload"
        assert not conn.closed_by_peer(timeout=0.2)
    assert server.connections == 1


def test_pipelined_requests_come_back_in_order(server: LocalServer) -> None:
    with raw_connection(server.url) as conn:
        conn.send(build_request("GET", "/hello") + build_request("POST", "/echo", body=b"2"))
        assert conn.read_response().body == b"hello"
        assert conn.read_response().text == "POST /echo 2"


def test_chunked_and_unframed_bodies(server: LocalServer) -> None:
    with raw_connection(server.url) as conn:
        conn.request("GET", "/chunked")
        answer = conn.read_response()
        assert answer.chunked and answer.body == b"hello, world"
    with raw_connection(server.url) as conn:
        conn.request("GET", "/unframed")
        assert conn.read_response().body == b"all until the end"


def test_connection_close_is_seen(server: LocalServer) -> None:
    with raw_connection(server.url) as conn:
        conn.request("GET", "/closing")
        answer = conn.read_response()
        assert answer.header("connection") == "close" and answer.body == b"bye"
        assert conn.closed_by_peer(timeout=2)
        with pytest.raises(RawHTTPError, match="closed the connection"):
            conn.read_response(timeout=1)


def test_a_request_sent_slowly_in_pieces(server: LocalServer) -> None:
    request = build_request("POST", "/echo", body=b"slow")
    with raw_connection(server.url) as conn:
        began = time.monotonic()
        conn.send_slowly(request, chunk_size=len(request) // 4 + 1, delay=0.1)
        assert time.monotonic() - began >= 0.3
        assert conn.read_response().text == "POST /echo slow"
    arrivals = [at for at, _ in server.received]
    # The server really got it in pieces: the request line by the 2nd, the body in the 4th.
    assert arrivals[-1] - arrivals[0] >= 0.15


def test_connections_open_before_anything_is_sent(server: LocalServer) -> None:
    conns = open_connections(server.url, 3)
    try:
        deadline = time.monotonic() + 5
        while server.connections < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.connections == 3 and server.received == []
        for conn in conns:
            conn.request("GET", "/hello")
        assert [c.read_response().status for c in conns] == [200, 200, 200]
    finally:
        for conn in conns:
            conn.close()


def test_a_malformed_request_gets_its_answer(server: LocalServer) -> None:
    with raw_connection(server.url) as conn:
        conn.send(b"NONSENSE\r\n\r\n")
        answer = conn.read_response()
        assert answer.status == 400 and conn.closed_by_peer()


def test_timeouts_caps_and_garbage_are_failures(server: LocalServer) -> None:
    with raw_connection(server.url) as conn:
        conn.request("GET", "/hang")
        began = time.monotonic()
        with pytest.raises(RawHTTPError, match="No response head within the time limit"):
            conn.read_response(timeout=0.3)
        assert time.monotonic() - began < 2
    with raw_connection(server.url, max_bytes=1000) as conn:
        conn.request("GET", "/big")
        with pytest.raises(RawHTTPError, match="over 1000 bytes"):
            conn.read_response()
    with raw_connection(server.url) as conn:
        conn.request("GET", "/garbage")
        with pytest.raises(RawHTTPError, match="Not an HTTP status line"):
            conn.read_response()


def test_a_closed_port_is_a_failure() -> None:
    with LocalServer({}).running() as stopped:
        port = stopped.port
    with pytest.raises(RawHTTPError, match="Could not open a TCP connection"):
        raw_connection("127.0.0.1", port)


async def lf_only(*_: object) -> bytes:
    return b"HTTP/1.1 200 OK\nContent-Length: 2\n\nhi"


def test_head_first_then_body_and_what_a_failed_read_saw(server: LocalServer) -> None:
    server.routes["/lf"] = lf_only  # type: ignore[assignment]
    with raw_connection(server.url) as conn:
        conn.request("GET", "/hello")
        head = conn.read_response(head=True)
        assert head.header("content-length") == "5" and head.body == b""
        assert conn.received.endswith(b"hello") or conn.received == b""
        assert conn.read_body(head).body == b"hello" and conn.received == b""
    with raw_connection(server.url) as conn:
        conn.request("GET", "/lf")
        with pytest.raises(RawHTTPError, match="No response head"):
            conn.read_response(timeout=0.3)
        # The check can tell what arrived instead: lines ending in LF alone.
        assert conn.received == b"HTTP/1.1 200 OK\nContent-Length: 2\n\nhi"
        assert not conn.peer_closed
    with raw_connection(server.url) as conn:
        conn.request("GET", "/closing")
        conn.read_response()
        assert conn.closed_by_peer(timeout=2) and conn.peer_closed
