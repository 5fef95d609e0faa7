"""Checks for http-from-scratch: an HTTP/1.1 server written on raw asyncio streams.

Every check talks raw TCP (bb.grader.raw_http), not through an HTTP library, so that what the
server really sent is what is judged: CRLF line endings, the blank line after the headers,
Content-Length in bytes, connections held open or closed. Paths, header values, bodies and
file names are random on every run. Every read is bounded in bytes and in time.
"""

from __future__ import annotations

import functools
import hashlib
import random
import string
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import pytest

from bb.grader import (
    Failure,
    RawHTTP,
    RawHTTPError,
    RawResponse,
    expect,
    hint,
    open_connections,
    raw_connection,
)

FRAMING = (
    "Every line of the response head ends with \\r\\n (CRLF), and one empty line ends the "
    "headers: b'HTTP/1.1 200 OK\\r\\nContent-Length: 0\\r\\n\\r\\n'. Send Content-Length on "
    "every response, so the client knows where the body ends without waiting for a close."
)
ROUTING = (
    "Route on the path of the request line (METHOD SP /path SP HTTP/1.1); anything you don't "
    "serve is 404 Not Found, with a Content-Length like every other response."
)
BYTES = (
    "Content-Length counts bytes after encoding, not characters: len(body.encode('utf-8')). "
    "The path arrives percent-encoded (é is %C3%A9): decode it with urllib.parse.unquote."
)
HEADER_CASE = (
    "Header names are case-insensitive: normalize them (name.lower()) when you parse them, "
    "and look them up lower-cased."
)
CONCURRENCY = (
    "The test opens all connections before sending anything, then sends on the last one first. "
    "Handle each connection in its own task: asyncio.start_server does, as long as handle() "
    "never blocks (no time.sleep, no blocking socket calls, no lock held across a connection)."
)
KEEP_ALIVE = (
    "HTTP/1.1 connections persist: after answering, loop and read the next request on the same "
    "connection. When a request says Connection: close, answer it, then close the connection "
    "(writer.close()), and say Connection: close in the response."
)
BODY = (
    "TCP is a byte stream: read the headers until \\r\\n\\r\\n, then read exactly Content-Length "
    "bytes of body with await reader.readexactly(n). One read() returns whatever has arrived "
    "so far, which for a body sent in pieces is only its beginning."
)
MALFORMED = (
    "Validate the request line (METHOD SP target SP HTTP/1.1). When it is malformed, answer "
    "400 Bad Request and close the connection; catch the parse error inside handle(), so one "
    "bad client never crashes its handler or the server."
)

#: How long any single response may take to arrive (a bound on every read, not a threshold:
#: the reference answers in a few ms).
READ_TIMEOUT = 5.0
#: Check 5: the five connections' responses, one after another, within this many seconds.
#: Measured (reference in the course's python image, 90 rounds): median 12-51 ms, max 158 ms
#: at load average 30 on 2 cores (12x headroom). A server that serves one connection at a
#: time never answers the first request sent (it waits on a connection that sent nothing),
#: so it fails at the limit; the starter answers nothing at all (check 1 fails, this skips).
CONCURRENT_LIMIT = 2.0
CONCURRENT_CONNECTIONS = 5
ORDINALS = ("first", "second", "third", "fourth", "fifth")
#: Check 6: after a response to Connection: close, the server must close within this.
#: Measured (same 90 rounds): the reference's EOF follows its response by a median of 0.3 ms,
#: max 44 ms at load average 30 (22x headroom). A server that ignores Connection: close never
#: closes; the starter closes every connection unanswered (check 1 fails, this skips).
CLOSE_LIMIT = 1.0
#: Check 7: the body, its pieces and the pause between them.
UPLOAD_BYTES, UPLOAD_PIECES, UPLOAD_PAUSE = 64 * 1024, 3, 0.1
ALPHANUMERIC = string.ascii_letters + string.digits
#: Non-ASCII letters for echoed text: 2-byte (é ü ñ), 3-byte (€ 日 本) and 4-byte (🙂) in UTF-8.
WIDE = "éüñ€日本🙂"


# --- checks that need another check ------------------------------------------------------

#: Checks that passed in this grade. A check that builds on another is skipped when that one
#: did not pass, with the reason, instead of failing for a cause the learner already sees.
PASSED: set[str] = set()


def recorded(test: Callable[..., None]) -> Callable[..., None]:
    """Remember that ``test`` passed (pytest follows __wrapped__ for the fixtures)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        test(*args, **kwargs)
        PASSED.add(test.__name__.removeprefix("test_"))

    return run


def require_framing() -> None:
    if "root" not in PASSED:
        pytest.skip(
            "can't check until root passes: every check reads responses framed as GET / "
            "must be (status line, CRLF headers, blank line, Content-Length)"
        )


# --- talking raw HTTP ---------------------------------------------------------------------


@contextmanager
def connection(app_url: str) -> Iterator[RawHTTP]:
    with raw_connection(app_url, timeout=READ_TIMEOUT) as conn:
        yield conn


def random_token(rng: random.Random, size: int) -> str:
    return "".join(rng.choices(ALPHANUMERIC, k=size))


def request_bytes(
    method: str, target: str, headers: list[tuple[str, str]], body: bytes = b""
) -> bytes:
    """A request with exactly these header lines, in this order and spelling."""
    lines = [f"{method} {target} HTTP/1.1", *(f"{name}: {value}" for name, value in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def shown(data: bytes, limit: int = 300) -> str:
    text = repr(data[:limit])
    return text + (f" … ({len(data)} bytes in all)" if len(data) > limit else "")


def why_no_head(conn: RawHTTP, what: str, error: RawHTTPError) -> Failure:
    """A failure that says what arrived instead of a response head, and why it isn't one."""
    got = conn.received
    if not got:
        if conn.peer_closed:
            return Failure(
                f"{what}: the server closed the connection without sending anything.",
                expected="a response: status line, headers, blank line, body",
                actual="the connection closed, 0 bytes",
            )
        return Failure(
            f"{what}: no response within {READ_TIMEOUT:g} s.",
            expected="a response",
            actual="nothing (the connection stayed open and silent)",
        )
    if b"\n" in got and b"\r\n" not in got:
        return Failure(
            f"{what}: the response's lines end with \\n alone; HTTP lines end with \\r\\n (CRLF), "
            "so the head never ended.",
            expected="lines ending in \\r\\n, headers ending in \\r\\n\\r\\n",
            actual=shown(got),
            hint=FRAMING,
        )
    if b"\r\n\r\n" not in got:
        ending = (
            "closed the connection"
            if conn.peer_closed
            else f"sent nothing more for {READ_TIMEOUT:g} s"
        )
        return Failure(
            f"{what}: the headers never ended: no empty line (\\r\\n\\r\\n) after them, and the "
            f"server {ending}.",
            expected="the headers followed by \\r\\n\\r\\n",
            actual=shown(got),
            hint=FRAMING,
        )
    return Failure(f"{what}: {error.message}", actual=shown(got), hint=FRAMING)


def read_head(conn: RawHTTP, what: str, *, timeout: float = READ_TIMEOUT) -> RawResponse:
    try:
        return conn.read_response(head=True, timeout=timeout)
    except RawHTTPError as error:
        raise why_no_head(conn, what, error) from None


def read_full(conn: RawHTTP, what: str, *, timeout: float = READ_TIMEOUT) -> RawResponse:
    """The next response, head and body, framed by Content-Length."""
    began = time.monotonic()
    head = read_head(conn, what, timeout=timeout)
    return body_of(conn, head, what, timeout=max(0.1, timeout - (time.monotonic() - began)))


def body_of(
    conn: RawHTTP, head: RawResponse, what: str, *, timeout: float = READ_TIMEOUT
) -> RawResponse:
    """``head`` with its body, which its Content-Length must frame."""
    length = head.header("content-length")
    expect(
        length is not None and length.strip().isdigit(),
        f"{what}: the response has no Content-Length, so the client can't know where its "
        "body ends (HTTP/1.1 keeps the connection open after it).",
        expected="a header like Content-Length: 0",
        actual=shown(head.head),
        hint=FRAMING,
    )
    try:
        return conn.read_body(head, timeout=timeout)
    except RawHTTPError as error:
        raise Failure(
            f"{what}: the body did not arrive as its Content-Length ({length}) announced: "
            f"{error.message}",
            expected=f"{length} bytes of body",
            actual=shown(conn.received),
            hint=BYTES,
        ) from None


def expect_status(response: RawResponse, status: int, what: str, hint: str) -> None:
    expect(
        response.status == status,
        f"{what} should answer {status}, not {response.status}.",
        expected=status,
        actual=response.describe(),
        hint=hint,
    )


def noise_headers(rng: random.Random) -> list[tuple[str, str]]:
    """Headers a real client sends, in random case, so parsing by position or case fails."""
    headers = [("Accept", "*/*"), ("X-Request-Id", random_token(rng, 16))]
    return [(randomly_cased(rng, name), value) for name, value in headers]


def randomly_cased(rng: random.Random, name: str) -> str:
    return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in name)


def get(
    conn: RawHTTP, target: str, rng: random.Random, extra: Sequence[tuple[str, str]] = ()
) -> None:
    """Send a GET with a Host header, noise headers in random case, then ``extra``."""
    host = ("Host", f"{conn.host}:{conn.port}")
    conn.send(request_bytes("GET", target, [host, *noise_headers(rng), *extra]))


def echo_text(rng: random.Random) -> str:
    """Random words with é and other wide characters: more bytes in UTF-8 than characters."""
    words = []
    for _ in range(rng.randint(2, 4)):
        letters = rng.choices(string.ascii_letters, k=rng.randint(2, 6))
        letters.insert(rng.randrange(len(letters) + 1), rng.choice(WIDE))
        words.append("".join(letters))
    words.insert(rng.randrange(len(words) + 1), "é")
    return " ".join(words)


# --- the checks -----------------------------------------------------------------------------


@recorded
@hint(FRAMING)
def test_root(app_url: str, rng: random.Random) -> None:
    """GET / answers exactly HTTP/1.1 200 OK, its head ended by \\r\\n\\r\\n"""
    with connection(app_url) as conn:
        get(conn, "/", rng)
        response = read_head(conn, "GET /")
        status_line = response.head.split(b"\r\n", 1)[0]
        expect(
            status_line == b"HTTP/1.1 200 OK",
            "GET /: the status line should be exactly HTTP/1.1 200 OK (version, space, code, "
            "space, reason).",
            expected="HTTP/1.1 200 OK",
            actual=shown(status_line),
        )
        body_of(conn, response, "GET /")


@recorded
@hint(ROUTING)
def test_not_found(app_url: str, rng: random.Random) -> None:
    """GET /<random path> answers 404"""
    require_framing()
    path = "/" + random_token(rng, 12)
    with connection(app_url) as conn:
        get(conn, path, rng)
        expect_status(read_full(conn, f"GET {path}"), 404, f"GET {path}", ROUTING)


@recorded
@hint(BYTES)
def test_echo(app_url: str, rng: random.Random) -> None:
    """GET /echo/<UTF-8 text> answers the text, with Content-Length in bytes"""
    require_framing()
    sent = echo_text(rng)
    encoded = sent.encode("utf-8")
    target = "/echo/" + quote(sent, safe="")
    what = f"GET {target}"
    with connection(app_url) as conn:
        get(conn, target, rng)
        head = read_head(conn, what)
        expect_status(head, 200, what, BYTES)
        media = (head.header("content-type") or "").split(";")
        params = {p.strip().lower() for p in media[1:]}
        expect(
            media[0].strip().lower() == "text/plain" and params <= {"charset=utf-8"},
            f"{what}: the body is UTF-8 text, so Content-Type should be text/plain "
            "(text/plain; charset=utf-8 is better still).",
            expected="text/plain; charset=utf-8",
            actual=head.header("content-type") or "(no Content-Type)",
        )
        length = head.header("content-length")
        expect(
            length == str(len(encoded)),
            f"{what}: Content-Length should count the body's bytes in UTF-8 ({len(encoded)}), "
            f"not its characters ({len(sent)}).",
            expected=f"Content-Length: {len(encoded)}",
            actual=f"Content-Length: {length}" if length is not None else "(no Content-Length)",
        )
        response = conn.read_body(head)
        expect(
            response.body == encoded,
            f"{what}: the body should be the decoded text {sent!r}, in UTF-8.",
            expected=shown(encoded),
            actual=shown(response.body),
        )


@recorded
@hint(HEADER_CASE)
def test_user_agent(app_url: str, rng: random.Random) -> None:
    """GET /user-agent answers the User-Agent value, sent as a lowercase user-agent: header"""
    require_framing()
    agent = f"bb-grader/{rng.randint(1, 9)}.{rng.randint(0, 99)} ({random_token(rng, 10)})"
    with connection(app_url) as conn:
        get(conn, "/user-agent", rng, [("user-agent", agent)])
        response = read_full(conn, "GET /user-agent")
        expect_status(response, 200, "GET /user-agent (with a user-agent: header)", HEADER_CASE)
        expect(
            response.body == agent.encode(),
            "GET /user-agent: the body should be the value of the header sent as "
            f"'user-agent: {agent}' (header names are case-insensitive).",
            expected=agent,
            actual=shown(response.body),
        )


@recorded
@hint(CONCURRENCY)
def test_concurrent_connections(app_url: str, rng: random.Random) -> None:
    """5 connections opened before any request: each request, last one first, gets answered"""
    require_framing()
    tokens = [random_token(rng, 8) for _ in range(CONCURRENT_CONNECTIONS)]
    conns = open_connections(app_url, CONCURRENT_CONNECTIONS, timeout=READ_TIMEOUT)
    try:
        began = time.monotonic()
        for number in reversed(range(CONCURRENT_CONNECTIONS)):
            conn = conns[number]
            get(conn, f"/echo/{tokens[number]}", rng)
            left = CONCURRENT_LIMIT - (time.monotonic() - began)
            order = ORDINALS[CONCURRENT_CONNECTIONS - 1 - number]
            what = (
                f"Connection {number + 1} of {CONCURRENT_CONNECTIONS} (opened before any "
                f"request; its request went {order}, while the others sat open)"
            )
            try:
                response = conn.read_response(timeout=max(left, 0.01))
            except RawHTTPError:
                raise Failure(
                    f"{what} got no response within {CONCURRENT_LIMIT:g} s of the first "
                    "request: the server seems to serve one connection at a time, and waits "
                    "on a connection that has sent nothing yet.",
                    expected=f"all {CONCURRENT_CONNECTIONS} answered within {CONCURRENT_LIMIT:g} s",
                    actual=f"{CONCURRENT_CONNECTIONS - 1 - number} answered; then "
                    f"{shown(conn.received) if conn.received else 'nothing'} after "
                    f"{time.monotonic() - began:.2f} s",
                ) from None
            expect(
                response.status == 200 and response.body == tokens[number].encode(),
                f"{what}: GET /echo/{tokens[number]} got another answer.",
                expected=f"200 {tokens[number]}",
                actual=response.describe(),
                hint=BYTES,
            )
        elapsed = time.monotonic() - began
        expect(
            elapsed <= CONCURRENT_LIMIT,
            f"The {CONCURRENT_CONNECTIONS} responses took {elapsed:.2f} s in all.",
            expected=f"at most {CONCURRENT_LIMIT:g} s",
            actual=f"{elapsed:.2f} s",
        )
    finally:
        for conn in conns:
            conn.close()


@recorded
@hint(KEEP_ALIVE)
def test_keep_alive(app_url: str, rng: random.Random) -> None:
    """3 requests on one connection are all answered; Connection: close closes it after"""
    require_framing()
    agent = random_token(rng, 12)
    word = random_token(rng, 9)
    requests = [("/", b""), (f"/echo/{word}", word.encode()), ("/user-agent", agent.encode())]
    rng.shuffle(requests)
    with connection(app_url) as conn:
        for number, (target, body) in enumerate(requests, start=1):
            try:
                get(conn, target, rng, [("User-Agent", agent)])
            except RawHTTPError:
                raise Failure(
                    f"Request {number} of 3 on one connection (GET {target}) could not be sent: "
                    f"the server closed the connection after request {number - 1}.",
                    expected="the connection kept open between requests (HTTP/1.1 default)",
                    actual="the connection closed",
                ) from None
            what = f"Request {number} of 3 on one connection (GET {target})"
            try:
                response = read_full(conn, what)
            except Failure as failure:
                if number > 1 and conn.peer_closed and not conn.received:
                    raise Failure(
                        f"{what}: the server closed the connection after answering request "
                        f"{number - 1}, instead of reading the next request on it.",
                        expected="the connection kept open between requests (HTTP/1.1 default)",
                        actual="the connection closed, no response",
                    ) from None
                raise failure
            expect(
                response.status == 200 and response.body == body,
                f"{what} got another answer.",
                expected=f"200 {body.decode()}".rstrip(),
                actual=response.describe(),
            )
        target = f"/echo/{random_token(rng, 6)}"
        get(conn, target, rng, [("Connection", "close")])
        read_full(conn, f"GET {target} with Connection: close")
        answered = time.monotonic()
        closed = conn.closed_by_peer(timeout=CLOSE_LIMIT)
        expect(
            closed,
            f"After answering a request that said Connection: close, the server kept the "
            f"connection open for more than {CLOSE_LIMIT:g} s.",
            expected=f"the connection closed (EOF) within {CLOSE_LIMIT:g} s of the response",
            actual=f"still open after {time.monotonic() - answered:.2f} s"
            + (f", and then it sent {shown(conn.received)}" if conn.received else ""),
        )


@recorded
@hint(BODY)
def test_file_upload(app_url: str, rng: random.Random) -> None:
    """POST /files/<name>, 64 KiB sent in 3 pieces 100 ms apart: 201, and GET returns it"""
    require_framing()
    target = f"/files/upload-{random_token(rng, 10)}.bin"
    body = rng.randbytes(UPLOAD_BYTES)
    size = -(-len(body) // UPLOAD_PIECES)
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    what = (
        f"POST {target} (a {UPLOAD_BYTES:,}-byte body sent in {len(pieces)} pieces, "
        f"{UPLOAD_PAUSE * 1000:.0f} ms apart)"
    )
    with connection(app_url) as conn:
        headers = [("Host", f"{conn.host}:{conn.port}"), ("Content-Length", str(len(body))),
                   ("Content-Type", "application/octet-stream")]  # fmt: skip
        pieces[0] = request_bytes("POST", target, headers) + pieces[0]
        refused_at = None
        for number, piece in enumerate(pieces):
            if number:
                time.sleep(UPLOAD_PAUSE)
            try:
                conn.send(piece)
            except RawHTTPError:
                refused_at = number
                break
        try:
            response = read_full(conn, what)
        except Failure as failure:
            if refused_at is None:
                raise
            raise Failure(
                f"{what}: the server closed the connection before piece {refused_at + 1} of "
                "the body was sent, and sent no response.",
                expected="201, once the whole body has arrived",
                actual=f"the connection closed; {failure.actual or 'no response'}",
                hint=BODY,
            ) from None
        expect_status(response, 201, what, BODY)
    with connection(app_url) as conn:
        get(conn, target, rng)
        stored = read_full(conn, f"GET {target}")
        expect_status(stored, 200, f"GET {target} (after a 201 for its POST)", BODY)
        expect(
            stored.body == body,
            f"GET {target} should return exactly the {len(body):,} bytes uploaded.",
            expected=f"{len(body):,} bytes, SHA-256 {sha256(body)}",
            actual=f"{len(stored.body):,} bytes, SHA-256 {sha256(stored.body)}",
        )


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16] + "…"


def malformed_line(rng: random.Random) -> bytes:
    """A request line that is not METHOD SP target SP version: one word, or no version."""
    if rng.random() < 0.5:
        return "".join(rng.choices(string.ascii_uppercase, k=rng.randint(5, 10))).encode()
    return f"GET /{random_token(rng, 8)}".encode()


def with_app_log(failure: Failure, stack: Any) -> Failure:
    """``failure``, its message followed by the app's traceback when its log shows one."""
    try:
        log = stack.logs("app", 40)
    except Exception:  # the log is a courtesy: the failure stands without it
        return failure
    if "Traceback" not in log:
        return failure
    tail = log[log.rfind("Traceback") :][-1500:]
    return Failure(
        f"{failure.message}\nYour server's log shows an exception:\n{tail}",
        expected=failure.expected,
        actual=failure.actual,
        hint=failure.hint,
    )


@recorded
@hint(MALFORMED)
def test_malformed_request(app_url: str, rng: random.Random, stack: Any) -> None:
    """A malformed request line (GARBAGE) answers 400, and the server keeps serving"""
    require_framing()
    for line in (b"GARBAGE", malformed_line(rng)):
        raw = line + b"\r\n\r\n"
        what = f"The malformed request {shown(raw)}"
        with connection(app_url) as conn:
            conn.send(raw)
            try:
                response = read_full(conn, what)
                expect_status(response, 400, what, MALFORMED)
            except Failure as failure:
                raise with_app_log(failure, stack) from None
    with connection(app_url) as conn:
        get(conn, "/", rng)
        what = "GET / on a new connection, after the malformed requests"
        try:
            expect_status(read_full(conn, what), 200, what, MALFORMED)
        except Failure as failure:
            raise with_app_log(failure, stack) from None
