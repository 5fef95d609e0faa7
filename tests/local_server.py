"""A small HTTP/1.1 server on 127.0.0.1, run by asyncio in a thread, for tests of the grader
tools that need a real socket but no Docker."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Iterator

#: A route: given the request (method, path, headers, body), the raw bytes to answer, or None
#: to close the connection without answering.
Route = Callable[[str, str, dict[str, str], bytes], Awaitable[bytes | None]]


def response(status: int, body: bytes = b"", *, headers: dict[str, str] | None = None) -> bytes:
    head = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class LocalServer:
    """Serves ``routes`` (path → Route); a request that does not parse gets a 400 and a close.

    ``received`` keeps (arrival time, bytes) of every read, so tests can see how bytes arrived.
    """

    def __init__(self, routes: dict[str, Route]) -> None:
        self.routes = routes
        self.received: list[tuple[float, bytes]] = []
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.port = 0

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024)
        )
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.run_until_complete(server.wait_closed())
        self._loop.close()

    async def _read(self, reader: asyncio.StreamReader, count: int | None = None) -> bytes:
        data = await (reader.readexactly(count) if count is not None else reader.readline())
        self.received.append((self._loop.time(), data))
        return data

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                line = await self._read(reader)
                if not line:
                    return
                parts = line.decode("latin-1").split()
                if len(parts) != 3 or not parts[2].startswith("HTTP/"):
                    writer.write(
                        response(400, b"bad request line", headers={"Connection": "close"})
                    )
                    await writer.drain()
                    return
                headers: dict[str, str] = {}
                while (header := await self._read(reader)) not in (b"\r\n", b"\n", b""):
                    name, _, value = header.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length") or 0)
                body = await self._read(reader, length) if length else b""
                route = self.routes.get(parts[1].split("?")[0])
                answer = (
                    await route(parts[0], parts[1], headers, body)
                    if route is not None
                    else response(404)
                )
                if answer is None:
                    return
                writer.write(answer)
                await writer.drain()
                if b"connection: close" in answer.lower().split(b"\r\n\r\n")[0]:
                    return
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            # Cancelled: the server is shutting down; the connection just ends.
            return
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    @contextlib.contextmanager
    def running(self) -> Iterator[LocalServer]:
        self._thread.start()
        self._ready.wait(5)
        try:
            yield self
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
