"""An HTTP/1.1 server on raw asyncio streams: no framework. Read README.md for the contract.

Run it: PORT=8000 python server.py
Try it: curl -v localhost:8000/    or    printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' | nc localhost 8000
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Serve one client connection. asyncio calls this once per connection, in a task of its
    own, so many connections can be served at once.

    TODO: read the request line and the header lines, up to the blank line that ends them
    (reader.readuntil(b"\\r\\n")); then exactly Content-Length bytes of body
    (reader.readexactly(n)); route the request; write the response (status line, headers,
    a blank line, the body) with writer.write(...) and `await writer.drain()`. Then keep
    serving requests on this connection until the client closes it or asks to
    (Connection: close).
    """
    request_line = await reader.readline()
    print(f"received {request_line!r}, answered nothing yet (TODO)", file=sys.stderr, flush=True)
    writer.close()
    await writer.wait_closed()


async def main() -> None:
    port = int(os.environ.get("PORT", "8000"))
    server = await asyncio.start_server(handle, "0.0.0.0", port)
    stop = asyncio.Event()
    # As PID 1 in a container the process ignores SIGTERM unless it handles it.
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    print(f"listening on port {port}", file=sys.stderr, flush=True)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
