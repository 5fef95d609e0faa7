"""A mock upstream service ("origin") that graders control.

Any ``GET /<path>`` answers, after ``ORIGIN_LATENCY_MS`` milliseconds, ``200`` with a JSON
body: the one a grader set for that path, else one derived from the path alone (so two
requests get identical bytes)::

    {"path": "/weather/paris", "value": 417, "version": 0}

Control endpoints (never counted as hits, never delayed):

- ``GET /__hits``: ``{"total": N, "paths": {"/weather/paris": 3}}``, GETs served so far.
- ``POST /__control`` with any of ``{"latency_ms": 300, "fail_status": 500, "bodies":
  {"/weather/paris": {...}}}``; ``"fail_status": null`` recovers. Answers the settings.
- ``POST /__reset``: hits to zero, bodies and failure cleared, latency back to the default.

Requests are served on threads, so concurrent GETs wait out the latency side by side, as a
real slow upstream would.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_LATENCY_MS = int(os.environ.get("ORIGIN_LATENCY_MS", "300"))
#: The largest control body accepted: a grader sets a few small JSON documents.
MAX_CONTROL_BYTES = 1 << 20

_lock = threading.Lock()
_state: dict = {}


def _reset() -> None:
    with _lock:
        _state.update(hits={}, bodies={}, fail_status=None, latency_ms=DEFAULT_LATENCY_MS)


def _generated(path: str) -> dict:
    value = int.from_bytes(hashlib.sha256(path.encode()).digest()[:4], "big") % 1000
    return {"path": path, "value": value, "version": 0}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "bb-mock-origin"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib's name
        pass  # a load test would fill the container's log

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _path(self) -> str:
        return self.path.split("?", 1)[0]

    def do_GET(self) -> None:  # noqa: N802 - stdlib's name
        path = self._path()
        if path == "/__hits":
            with _lock:
                hits = dict(_state["hits"])
            self._send(200, {"total": sum(hits.values()), "paths": hits})
            return
        with _lock:
            _state["hits"][path] = _state["hits"].get(path, 0) + 1
            latency, failing = _state["latency_ms"], _state["fail_status"]
            body = _state["bodies"].get(path)
        time.sleep(latency / 1000)
        if failing is not None:
            self._send(failing, {"error": "origin failure"})
        else:
            self._send(200, body if body is not None else _generated(path))

    def do_POST(self) -> None:  # noqa: N802 - stdlib's name
        path = self._path()
        if path == "/__reset":
            _reset()
            self._send(200, {"reset": True})
            return
        if path != "/__control":
            self._send(405, {"error": "method not allowed"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_CONTROL_BYTES:
            self._send(413, {"error": "control body too large"})
            return
        try:
            change = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(change, dict):
                raise ValueError("a JSON object")
        except ValueError as exc:
            self._send(400, {"error": f"expected a JSON object: {exc}"})
            return
        with _lock:
            if "latency_ms" in change:
                _state["latency_ms"] = max(0, int(change["latency_ms"]))
            if "fail_status" in change:
                status = change["fail_status"]
                _state["fail_status"] = None if status is None else int(status)
            _state["bodies"].update(change.get("bodies") or {})
            settings = {k: _state[k] for k in ("latency_ms", "fail_status")}
        self._send(200, settings)

    def _not_allowed(self) -> None:
        self._send(405, {"error": "method not allowed"})

    do_PUT = do_PATCH = do_DELETE = _not_allowed  # noqa: N815 - stdlib's names


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog (5) would make a stampede of 50 wait on SYN retries, not on us.
    request_queue_size = 256


def main() -> None:
    _reset()
    Server(("0.0.0.0", int(os.environ.get("ORIGIN_PORT", "8080"))), Handler).serve_forever()


if __name__ == "__main__":
    main()
