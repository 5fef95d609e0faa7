"""Requests released together (bb.grader.concurrency) against a local asyncio server (no Docker)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from bb.grader import Call, simultaneous
from bb.grader.raw_http import RawHTTPError
from tests.local_server import LocalServer, response

CALLS = 5


class Gate:
    """Answers nobody until CALLS requests have arrived: only requests that really overlap
    get through, and it notes how many connections were open when the first one arrived."""

    def __init__(self, server: LocalServer) -> None:
        self.server = server
        self.arrived = 0
        self.connections_at_first: int | None = None
        self.everyone: asyncio.Event | None = None

    async def __call__(self, method: str, path: str, headers: dict[str, str],
                       body: bytes) -> bytes:  # fmt: skip
        if self.everyone is None:
            self.everyone = asyncio.Event()
            self.connections_at_first = self.server.connections
        self.arrived += 1
        if self.arrived == CALLS:
            self.everyone.set()
        await asyncio.wait_for(self.everyone.wait(), 5)
        echo = {"method": method, "tag": headers.get("if-match"), "body": body.decode()}
        return response(200, json.dumps(echo).encode(), headers={"ETag": '"e1"'})


async def not_modified(*_: object) -> bytes:
    return b'HTTP/1.1 304 Not Modified\r\nETag: "e1"\r\n\r\n'


async def hang(*_: object) -> bytes:
    await asyncio.sleep(30)
    return response(200)


async def informational(*_: object) -> bytes:
    return b"HTTP/1.1 100 Continue\r\n\r\n" + response(201, b"made")


@pytest.fixture
def server() -> Iterator[tuple[LocalServer, Gate]]:
    local = LocalServer({})
    gate = Gate(local)
    local.routes.update({"/gate": gate, "/304": not_modified, "/hang": hang,  # type: ignore[dict-item]
                         "/100": informational})  # fmt: skip
    with local.running() as running:
        yield running, gate


def test_every_connection_opens_before_the_requests_leave_together(
    server: tuple[LocalServer, Gate],
) -> None:
    local, gate = server
    calls = [Call("PUT", "/gate", json={"n": n}, headers={"If-Match": f'"v{n}"'})
             for n in range(CALLS)]  # fmt: skip
    result = simultaneous(local.url, calls, timeout=5)
    # The gate answers only once all five are in: sent one after another, none would return.
    assert result.statuses == [200] * CALLS and result.errors == []
    assert gate.connections_at_first == CALLS and local.connections == CALLS
    for n, outcome in enumerate(result.outcomes):
        assert outcome.response is not None
        assert outcome.response.json() == {"method": "PUT", "tag": f'"v{n}"',
                                           "body": json.dumps({"n": n})}  # fmt: skip
        assert outcome.response.headers["etag"] == '"e1"'
        assert result.released <= outcome.started <= outcome.finished
    assert 0 <= result.spread < 0.5


def test_tuples_a_304_without_length_and_interim_answers(
    server: tuple[LocalServer, Gate],
) -> None:
    local, _ = server
    result = simultaneous(local.url, [("GET", "/304", None, {"If-None-Match": '"e1"'}),
                                      ("POST", "/100", {"a": 1})])  # fmt: skip
    assert result.statuses == [304, 201]
    first, second = (outcome.response for outcome in result.outcomes)
    assert first is not None and second is not None
    # The headers are the app's own: nothing added to the 304.
    assert first.content == b"" and "content-length" not in first.headers
    assert second.text == "made"


def test_a_hung_answer_is_an_error_at_the_deadline(server: tuple[LocalServer, Gate]) -> None:
    local, _ = server
    result = simultaneous(local.url, [("GET", "/hang", None), ("GET", "/304", None)], timeout=0.5)
    assert result.statuses == [None, 304]
    assert result.outcomes[0].error is not None and "time limit" in result.outcomes[0].error
    assert result.outcomes[0].finished - result.outcomes[0].started < 2


def test_bounds_and_a_closed_port() -> None:
    with pytest.raises(ValueError):
        simultaneous("http://127.0.0.1:9", [])
    with pytest.raises(ValueError):
        simultaneous("http://127.0.0.1:9", [("GET", "/", None)] * 101)
    with pytest.raises(RawHTTPError):
        simultaneous("http://127.0.0.1:9", [("GET", "/", None)], connect_timeout=1)
