"""A raw TCP client for HTTP checks that an HTTP library would smooth over: connections opened
before anything is sent, requests sent in pieces with pauses, malformed requests, pipelining,
and exactly what came back (status line, headers, a Content-Length or chunked body, EOF).

    from bb.grader.raw_http import raw_connection

    with raw_connection(app_url) as conn:
        conn.send_slowly(b"GET /health HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n", chunk_size=4, delay=0.05)
        response = conn.read_response(timeout=5)
        expect(response.status == 200, ...)

Every read has a deadline and a size cap; a timeout, an early close or a malformed response
raises :class:`RawHTTPError` (a :class:`~bb.grader.Failure`, so the learner reads its message).
"""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from bb.grader import Failure

MAX_HEAD = 64 * 1024


class RawHTTPError(Failure):
    """The response did not arrive, or was not HTTP/1.1 as it should be."""


@dataclasses.dataclass(frozen=True)
class RawResponse:
    version: str
    status: int
    reason: str
    #: In order, as sent (names as the server spelled them).
    headers: tuple[tuple[str, str], ...]
    body: bytes
    #: The status line and headers, as received.
    head: bytes

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or None."""
        values = self.header_values(name)
        return values[0] if values else None

    def header_values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def chunked(self) -> bool:
        return "chunked" in (self.header("transfer-encoding") or "").lower()

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def describe(self, limit: int = 200) -> str:
        body = self.text if len(self.body) <= limit else self.text[:limit] + "…"
        return f"{self.version} {self.status} {self.reason} {body}".rstrip()


def build_request(
    method: str,
    path: str,
    *,
    host: str = "localhost",
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
) -> bytes:
    """An HTTP/1.1 request's bytes; Content-Length is added when there is a body."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    given = {k.lower() for k in headers or {}}
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body and "content-length" not in given and "transfer-encoding" not in given:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class RawHTTP:
    """One TCP connection, opened at once (nothing is sent until asked)."""

    def __init__(
        self, host: str, port: int, *, timeout: float = 5.0, max_bytes: int = 1 << 20
    ) -> None:
        self.host, self.port = host, port
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._buffer = b""
        self._eof = False
        try:
            self._sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise RawHTTPError(
                f"Could not open a TCP connection to {host}:{port} ({exc.strerror or exc})."
            ) from None
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def __enter__(self) -> RawHTTP:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    # -- sending --------------------------------------------------------------------------------

    def send(self, data: bytes | str) -> None:
        """Send all of ``data`` now. A peer that already closed raises RawHTTPError."""
        payload = data.encode("latin-1") if isinstance(data, str) else data
        try:
            self._sock.sendall(payload)
        except OSError as exc:
            raise RawHTTPError(
                f"The server closed the connection while the request was being sent "
                f"({exc.strerror or type(exc).__name__})."
            ) from None

    def send_chunks(self, chunks: Iterable[bytes], *, delay: float) -> None:
        """Send each chunk, pausing ``delay`` seconds between them (a slow client)."""
        for n, chunk in enumerate(chunks):
            if n:
                time.sleep(delay)
            self.send(chunk)

    def send_slowly(self, data: bytes, *, chunk_size: int = 1, delay: float = 0.05) -> None:
        """Send ``data`` ``chunk_size`` bytes at a time, ``delay`` seconds apart."""
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        pieces = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]
        self.send_chunks(pieces, delay=delay)

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> None:
        """Send a well-formed HTTP/1.1 request (see :func:`build_request`)."""
        host = f"{self.host}:{self.port}"
        self.send(build_request(method, path, host=host, headers=headers, body=body))

    # -- receiving ------------------------------------------------------------------------------

    def _fill(self, deadline: float, what: str) -> None:
        """Read at least one more byte into the buffer, or raise."""
        if self._eof:
            raise RawHTTPError(
                f"The server closed the connection before {what} "
                f"(received {len(self._buffer)} more bytes: {self._buffer[:200]!r})."
            )
        left = deadline - time.monotonic()
        if left <= 0:
            raise RawHTTPError(
                f"No {what} within the time limit (received {len(self._buffer)} bytes so far: "
                f"{self._buffer[:200]!r})."
            )
        self._sock.settimeout(left)
        try:
            data = self._sock.recv(65536)
        except TimeoutError:
            raise RawHTTPError(
                f"No {what} within the time limit (received {len(self._buffer)} bytes so far: "
                f"{self._buffer[:200]!r})."
            ) from None
        except ConnectionResetError:
            data = b""
        if not data:
            self._eof = True
            return self._fill(deadline, what)
        self._buffer += data

    def _take_until(self, marker: bytes, deadline: float, what: str, limit: int) -> bytes:
        while (end := self._buffer.find(marker)) < 0:
            if len(self._buffer) > limit:
                raise RawHTTPError(f"The {what} is longer than {limit} bytes.")
            self._fill(deadline, what)
        taken, self._buffer = self._buffer[:end], self._buffer[end + len(marker) :]
        return taken

    def _take(self, count: int, deadline: float, what: str) -> bytes:
        while len(self._buffer) < count:
            self._fill(deadline, what)
        taken, self._buffer = self._buffer[:count], self._buffer[count:]
        return taken

    def read_response(self, *, timeout: float | None = None, head: bool = False) -> RawResponse:
        """Read the next complete response (``head``: it answers a HEAD, so it has no body).

        Interim responses (1xx) are returned too; call again for the final one.
        """
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        raw_head = self._take_until(b"\r\n\r\n", deadline, "response head", MAX_HEAD)
        lines = raw_head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise RawHTTPError(f"Not an HTTP status line: {lines[0][:200]!r}.")
        headers = []
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip():
                raise RawHTTPError(f"A malformed header line in the response: {line[:200]!r}.")
            headers.append((name, value.strip()))
        response = RawResponse(parts[0], int(parts[1]), parts[2] if len(parts) > 2 else "",
                               tuple(headers), b"", raw_head)  # fmt: skip
        if head:
            return response
        return self._read_body(response, deadline)

    def read_body(self, response: RawResponse, *, timeout: float | None = None) -> RawResponse:
        """``response`` (read with ``head=True``) with its body read: by Content-Length, chunked,
        or until the server closes. Lets a check judge the head before trusting its framing."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        return self._read_body(response, deadline)

    @property
    def received(self) -> bytes:
        """Bytes that arrived and no read has consumed yet (what a failed read was waiting on)."""
        return self._buffer

    @property
    def peer_closed(self) -> bool:
        """Whether a read has seen the server close the connection."""
        return self._eof

    def _read_body(self, response: RawResponse, deadline: float) -> RawResponse:
        status = response.status
        if 100 <= status < 200 or status in (204, 304):
            return response
        if response.chunked:
            body = self._chunked_body(deadline)
        elif (length := response.header("content-length")) is not None:
            if not length.strip().isdigit():
                raise RawHTTPError(f"Content-Length is not a number: {length!r}.")
            if int(length) > self.max_bytes:
                raise RawHTTPError(f"The body ({length} bytes) is over {self.max_bytes} bytes.")
            body = self._take(int(length), deadline, f"body of {length} bytes")
        else:
            body = self._until_eof(deadline)
        return dataclasses.replace(response, body=body)

    def _chunked_body(self, deadline: float) -> bytes:
        body = b""
        while True:
            size_line = self._take_until(b"\r\n", deadline, "chunk size", 1024)
            size_text = size_line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise RawHTTPError(f"A malformed chunk size: {size_line[:100]!r}.") from None
            if size == 0:
                while self._take_until(b"\r\n", deadline, "end of the trailers", MAX_HEAD):
                    pass
                return body
            if len(body) + size > self.max_bytes:
                raise RawHTTPError(f"The chunked body is over {self.max_bytes} bytes.")
            body += self._take(size, deadline, "chunk")
            if self._take(2, deadline, "chunk end") != b"\r\n":
                raise RawHTTPError("A chunk is not followed by CRLF.")

    def _until_eof(self, deadline: float) -> bytes:
        while True:
            if len(self._buffer) > self.max_bytes:
                raise RawHTTPError(f"The body is over {self.max_bytes} bytes.")
            try:
                self._fill(deadline, "end of a body without length (a close)")
            except RawHTTPError:
                if self._eof:
                    body, self._buffer = self._buffer, b""
                    return body
                raise

    def closed_by_peer(self, timeout: float = 2.0) -> bool:
        """Whether the server closes the connection within ``timeout`` seconds (bytes that
        arrive meanwhile are kept for the next read)."""
        deadline = time.monotonic() + timeout
        while not self._eof:
            try:
                self._fill(deadline, "close")
            except RawHTTPError:
                return self._eof
        return True


def raw_connection(
    url_or_host: str, port: int | None = None, *, timeout: float = 5.0, max_bytes: int = 1 << 20
) -> RawHTTP:
    """Open a raw connection to ``app_url`` (``http://127.0.0.1:PORT``), or to host and port."""
    if port is None:
        parts = urlsplit(url_or_host)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"give a URL with a host and a port, not {url_or_host!r}")
        return RawHTTP(parts.hostname, parts.port, timeout=timeout, max_bytes=max_bytes)
    return RawHTTP(url_or_host, port, timeout=timeout, max_bytes=max_bytes)


def open_connections(url: str, count: int, *, timeout: float = 5.0) -> list[RawHTTP]:
    """``count`` connections, all open before any sends a byte (at most 1,000)."""
    if not 0 < count <= 1000:
        raise ValueError("count must be in [1, 1000]")
    opened: list[RawHTTP] = []
    try:
        for _ in range(count):
            opened.append(raw_connection(url, timeout=timeout))
    except BaseException:
        for conn in opened:
            conn.close()
        raise
    return opened
