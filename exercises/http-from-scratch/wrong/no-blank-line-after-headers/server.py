"""A small HTTP/1.1 server on raw asyncio streams: no framework, one task per connection.

Routes:
    GET  /                 200, empty body
    GET  /echo/<text>      200, the text (percent-decoded), text/plain; charset=utf-8
    GET  /user-agent       200, the User-Agent header's value
    POST /files/<name>     201, stores the body
    GET  /files/<name>     200, the stored bytes, or 404
    anything else          404 (405 for a known path with another method)
HEAD works wherever GET does. Framing follows RFC 9112; semantics RFC 9110.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import signal
import sys
import traceback
from email.utils import formatdate
from pathlib import Path
from urllib.parse import unquote

#: Longest request line or header line; a client may not make the server buffer more.
MAX_LINE = 8 * 1024
MAX_HEADERS = 100
MAX_BODY = 16 * 1024 * 1024
#: A whole request (head and body) must arrive within this many seconds; an idle keep-alive
#: connection is closed after it too, so a silent client cannot hold a connection forever.
REQUEST_TIMEOUT = 30.0
FILES_DIR = Path(os.environ.get("FILES_DIR", "/tmp/files"))

REASONS = {
    200: "OK",
    201: "Created",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    505: "HTTP Version Not Supported",
}
#: RFC 9110 §5.6.2: a method and a header name are tokens.
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
VERSION = re.compile(r"HTTP/(\d)\.(\d)")
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class HTTPError(Exception):
    """A request we must refuse: answered with ``status``, then the connection is closed
    (after a malformed request we can't know where the next one starts)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclasses.dataclass
class Request:
    method: str
    target: str
    version: str
    #: Names lower-cased: header names are case-insensitive (RFC 9110 §5.1).
    headers: dict[str, str]
    body: bytes = b""

    @property
    def keep_alive(self) -> bool:
        tokens = {t.strip().lower() for t in self.headers.get("connection", "").split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens  # HTTP/1.1 connections persist by default


@dataclasses.dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def encode(self, *, close: bool, head_only: bool = False) -> bytes:
        lines = [
            f"HTTP/1.1 {self.status} {REASONS[self.status]}",
            f"Date: {formatdate(usegmt=True)}",
            # Bytes, not characters: the client reads exactly this many bytes.
            f"Content-Length: {len(self.body)}",
        ]
        if self.content_type:
            lines.append(f"Content-Type: {self.content_type}")
        lines += [f"{name}: {value}" for name, value in self.headers]
        if close:
            lines.append("Connection: close")
        head = "".join(line + "\r\n" for line in lines).encode("latin-1")
        return head if head_only else head + self.body


def text(status: int, body: str) -> Response:
    return Response(status, body.encode("utf-8"), "text/plain; charset=utf-8")


async def read_line(reader: asyncio.StreamReader) -> bytes:
    """One line without its terminator. CRLF is the rule; a bare LF is accepted too
    (RFC 9112 §2.2), as robust servers do. EOF mid-line raises IncompleteReadError."""
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError:
        raise HTTPError(431, "A request line or header line is too long.") from None
    return line.removesuffix(b"\n").removesuffix(b"\r")


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """The next request on the connection, or None when the client closed it between requests."""
    try:
        first = await read_line(reader)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise
    try:
        request_line = first.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPError(400, "The request line is not UTF-8.") from None
    parts = request_line.split(" ")
    if len(parts) != 3 or not TOKEN.fullmatch(parts[0]) or not parts[1]:
        raise HTTPError(400, f"Malformed request line: {request_line[:100]!r}.")
    method, target, version = parts
    version_match = VERSION.fullmatch(version)
    if version_match is None:
        raise HTTPError(400, f"Malformed HTTP version: {version[:20]!r}.")
    if version_match.group(1) != "1":
        raise HTTPError(505, "Only HTTP/1.x is served here.")
    if not target.startswith("/"):
        raise HTTPError(400, "The request target must be a path starting with /.")

    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        line = await read_line(reader)
        if not line:
            break
        name, colon, value = line.decode("latin-1").partition(":")
        # No whitespace may sit between a field name and its colon (RFC 9112 §5.1).
        if not colon or not TOKEN.fullmatch(name):
            raise HTTPError(400, f"Malformed header line: {line[:100]!r}.")
        key = name.lower()
        value = value.strip(" \t")
        # A repeated field is one list-valued field (RFC 9110 §5.3).
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    else:
        raise HTTPError(431, f"More than {MAX_HEADERS} header lines.")

    request = Request(method, target, version, headers)
    if "transfer-encoding" in headers:
        raise HTTPError(501, "Request bodies with Transfer-Encoding are not supported here.")
    length_text = headers.get("content-length", "0")
    if not length_text.isdigit():
        raise HTTPError(400, f"Content-Length is not a number: {length_text[:20]!r}.")
    length = int(length_text)
    if length > MAX_BODY:
        raise HTTPError(413, f"The body may be at most {MAX_BODY} bytes.")
    # TCP delivers a stream, not messages: the body may arrive in many pieces, and read(n)
    # returns whatever is buffered. readexactly waits for all of it.
    request.body = await reader.readexactly(length)
    return request


def store(path: Path, data: bytes) -> None:
    """Write atomically: a concurrent GET sees the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}.{id(data)}.part")
    scratch.write_bytes(data)
    os.replace(scratch, path)


async def route(request: Request) -> Response:
    path = unquote(request.target.split("?", 1)[0])
    method = "GET" if request.method == "HEAD" else request.method
    if path == "/":
        return Response(200) if method == "GET" else not_allowed("GET, HEAD")
    if path.startswith("/echo/"):
        return text(200, path.removeprefix("/echo/")) if method == "GET" else not_allowed("GET, HEAD")
    if path == "/user-agent":
        if method != "GET":
            return not_allowed("GET, HEAD")
        return text(200, request.headers.get("user-agent", ""))
    if path.startswith("/files/"):
        name = path.removeprefix("/files/")
        if not FILE_NAME.fullmatch(name):
            return text(400, "A file name is letters, digits, '.', '_' and '-'.\n")
        file = FILES_DIR / name
        if method == "POST":
            # File I/O blocks: run it in a thread so that other connections keep being served.
            await asyncio.to_thread(store, file, request.body)
            return Response(201, headers=[("Location", f"/files/{name}")])
        if method == "GET":
            try:
                data = await asyncio.to_thread(file.read_bytes)
            except FileNotFoundError:
                return text(404, f"There is no file {name}.\n")
            return Response(200, data, "application/octet-stream")
        return not_allowed("GET, HEAD, POST")
    return text(404, f"Nothing lives at {path}.\n")


def not_allowed(allow: str) -> Response:
    return Response(405, headers=[("Allow", allow)])


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Serve one connection: requests one after another until either side closes it.

    asyncio runs one of these per connection, so a client that is slow (or silent) only
    ever waits on its own connection.
    """
    try:
        while True:
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    request = await read_request(reader)
            except HTTPError as error:
                writer.write(text(error.status, error.detail + "\n").encode(close=True))
                await writer.drain()
                return
            if request is None:
                return
            try:
                response = await route(request)
            except Exception:  # a bug here must cost one request, not the server
                traceback.print_exc()
                response = text(500, "Internal server error.\n")
            keep_alive = request.keep_alive and response.status < 500
            writer.write(response.encode(close=not keep_alive, head_only=request.method == "HEAD"))
            await writer.drain()
            if not keep_alive:
                return
    except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
        pass  # the client went away, or sent too slowly: nothing left to answer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def main() -> None:
    port = int(os.environ.get("PORT", "8000"))
    server = await asyncio.start_server(handle, "0.0.0.0", port, limit=MAX_LINE)
    stop = asyncio.Event()
    # As PID 1 in a container the process ignores SIGTERM unless it handles it.
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    print(f"listening on port {port}", file=sys.stderr, flush=True)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
