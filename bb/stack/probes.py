"""Readiness probes: is a service really serving yet? Each probe answers None when ready,
or a short reason when not (kept for the failure message)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from bb.pack.manifest import Readiness


def probe(readiness: Readiness, host: str, port: int) -> str | None:
    if readiness.http is not None:
        return _http(host, port, readiness.http.path, readiness.http.status)
    if readiness.postgres is not None:
        pg = readiness.postgres
        return _postgres(host, port, pg.user, pg.password, pg.dbname)
    if readiness.redis is not None:
        return _redis(host, port, readiness.redis.password)
    return _tcp(host, port)


def wait_ready(
    readiness: Readiness, port: int, *, exited: Callable[[], bool], deadline: float
) -> tuple[str | None, bool]:
    """Probe 127.0.0.1:``port`` until ready, giving up at the probe's own timeout or at
    ``deadline`` (a ``time.monotonic()`` value), and at once when ``exited()`` says the
    container ended. Returns ``(None, False)`` when ready, else ``(last reason, exited)``."""
    limit = min(deadline, time.monotonic() + readiness.timeout)
    while True:
        reason = probe(readiness, "127.0.0.1", port)
        if reason is None:
            return None, False
        if exited():
            return reason, True
        if time.monotonic() > limit:
            return reason, False
        time.sleep(0.1)


def describe(readiness: Readiness) -> str:
    if readiness.http is not None:
        return f"GET {readiness.http.path} → {readiness.http.status}"
    if readiness.postgres is not None:
        return "a Postgres connection and SELECT 1"
    if readiness.redis is not None:
        return "PING → PONG"
    return "a TCP connection"


def _http(host: str, port: int, path: str, status: int) -> str | None:
    answered = http_status(host, port, "GET", path, timeout=2.0)
    if isinstance(answered, str):
        return answered
    if answered != status:
        return f"GET {path} answered {answered}, not {status}"
    return None


def http_status(host: str, port: int, method: str, path: str, *, timeout: float) -> int | str:
    """The status ``method path`` answers, or why there was none. Only the status counts: the
    body is never read (an app may answer with gigabytes); closing the connection drops the
    rest. (http.client, not httpx: no TLS context to build on every poll.)"""
    import http.client

    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request(method, path, headers={"Accept-Encoding": "identity"})
        return connection.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        return f"{method} {path}: {type(exc).__name__}"
    finally:
        connection.close()


def _postgres(host: str, port: int, user: str, password: str, dbname: str) -> str | None:
    import psycopg

    try:
        with psycopg.connect(
            host=host, port=port, user=user, password=password, dbname=dbname, connect_timeout=2
        ) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        text = str(exc).strip()
        return f"Postgres: {text.splitlines()[0] if text else type(exc).__name__}"
    return None


def _redis(host: str, port: int, password: str | None) -> str | None:
    # RESP by hand: two inline commands need no client library on this hot path.
    commands = (f"AUTH {password}\r\n" if password else "") + "PING\r\n"
    try:
        with socket.create_connection((host, port), timeout=2.0) as sock:
            sock.sendall(commands.encode())
            answer = b""
            while answer.count(b"\r\n") < commands.count("\r\n"):
                chunk = sock.recv(256)
                if not chunk:
                    break
                answer += chunk
    except OSError as exc:
        return f"Redis: {exc.strerror or type(exc).__name__}"
    last = answer.split(b"\r\n")[-2:-1]
    if last != [b"+PONG"]:
        text = answer.decode(errors="replace").strip().splitlines()
        return f"Redis answered {text[-1][:80] if text else 'nothing'!r} to PING"
    return None


def _tcp(host: str, port: int) -> str | None:
    # A published port accepts connections even before the container listens (Docker's proxy
    # accepts, then closes). So a connection only counts when it stays open briefly.
    try:
        with socket.create_connection((host, port), timeout=2.0) as sock:
            sock.settimeout(0.2)
            try:
                if sock.recv(1) == b"":
                    return "the connection was closed at once"
            except TimeoutError:
                return None
    except OSError as exc:
        return f"TCP: {exc.strerror or type(exc).__name__}"
    return None
