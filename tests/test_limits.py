"""What a learner's app sends bb is bounded: bodies, build output, logs; and inert.

The mini course's ``hostile`` exercise answers with a gigabyte (plain and as a gzip bomb),
floods its log, and writes escape codes into its answers and its log.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bb.errors import ExitCode
from bb.pack.manifest import load_pack
from bb.pack.scaffold import lay_solution
from bb.stack.tail import TextTail
from tests.conftest import MINI_PACK, run_bb
from tests.test_terminal import ESCAPES, controls

CAP_MESSAGE = "the response body exceeded 8 MiB"


# --- bounded tails ------------------------------------------------------------------------------


def test_a_tail_keeps_the_last_lines_each_cut_to_length() -> None:
    tail = TextTail(max_lines=3, max_line_chars=10, max_chars=1000)
    ended = tail.feed("one\ntwo\nthree\n" + "x" * 25)
    assert ended == ["one", "two", "three"]
    tail.feed("y" * 10**6 + "\nfour\nfive")
    assert tail.text() == "xxxxxxxxxx … (1000015 more characters)\nfour\nfive"
    assert tail.flush() == "five"


def test_a_tail_is_bounded_in_characters_and_decodes_split_utf8() -> None:
    tail = TextTail(max_lines=1000, max_line_chars=100, max_chars=50)
    encoded = "é\n".encode() * 100
    for i in range(len(encoded)):  # one byte at a time splits every "é"
        tail.feed_bytes(encoded[i : i + 1])
    assert set(tail.text().split("\n")) == {"é"}
    assert len(tail.text()) <= 50


class _FakeLogsApi:
    """Docker's logs endpoint answering with one endless line (pure logic: no engine)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def logs(self, container: str, **options: Any) -> Any:
        if not options.get("stream"):
            return b"L" * self.size
        return (b"L" * 65536 for _ in range(self.size // 65536))


def test_engine_logs_are_bounded_in_bytes_whatever_tail_says() -> None:
    from bb.stack.engine import LINE_CHARS, Engine

    class Client:
        api = _FakeLogsApi(64 * 2**20)

    logs = Engine(Client()).logs("c", tail=10)
    assert len(logs) < LINE_CHARS + 100
    assert logs.endswith(f" … ({64 * 2**20 - LINE_CHARS} more characters)")


# --- bounded reads of a body --------------------------------------------------------------------


@contextlib.contextmanager
def _endless_server(total: int) -> Iterator[tuple[str, dict[str, int]]]:
    """An HTTP server on 127.0.0.1 that answers every GET with ``total`` bytes made lazily
    (``/gzip``: as a gzip stream); yields its URL and how many bytes it managed to send."""
    sent = {"bytes": 0}
    chunk = bytes(64 * 1024)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            with contextlib.suppress(OSError):
                self.send_response(200)
                if self.path == "/gzip":
                    self.send_header("Content-Encoding", "gzip")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
                    for _ in range(total // len(chunk)):
                        data = compressor.compress(chunk)
                        if data:
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                            sent["bytes"] += len(data)
                    data = compressor.flush()
                    self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data))
                    return
                self.send_header("Content-Length", str(total))
                self.end_headers()
                for _ in range(total // len(chunk)):
                    self.wfile.write(chunk)
                    sent["bytes"] += len(chunk)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", sent
    finally:
        server.shutdown()
        server.server_close()


def test_the_readiness_probe_reads_no_body() -> None:
    from bb.pack.manifest import Readiness
    from bb.stack.probes import probe

    with _endless_server(200 * 2**20) as (url, sent):
        port = int(url.rsplit(":", 1)[1])
        began = time.monotonic()
        ready = probe(Readiness.model_validate({"http": {"path": "/"}}), "127.0.0.1", port)
        assert ready is None
        assert time.monotonic() - began < 5
        time.sleep(0.2)
        # Socket buffers take a few MiB before the server notices nobody reads.
        assert sent["bytes"] < 32 * 2**20


@pytest.mark.parametrize("path", ["/plain", "/gzip"])
def test_every_client_bb_gives_graders_stops_at_the_limit(path: str) -> None:
    from bb.grader import MAX_BODY_BYTES, BodyTooLarge, burst, capped_client, capped_session

    with _endless_server(256 * 2**20) as (url, sent):
        with capped_client(url) as client, pytest.raises(BodyTooLarge, match=CAP_MESSAGE):
            client.get(path)
        with (
            capped_client(url) as client,
            client.stream("GET", path) as response,
            pytest.raises(BodyTooLarge),
        ):
            for _ in response.iter_bytes():
                pass
        with capped_session() as session, pytest.raises(BodyTooLarge, match=CAP_MESSAGE):
            session.get(url + path, timeout=10)
        with pytest.raises(BodyTooLarge, match=CAP_MESSAGE):
            burst(url, [("GET", path, None)] * 3, concurrency=3)
        # Five requests, each stopped soon after the limit (plus what socket buffers held).
        assert sent["bytes"] < 5 * (MAX_BODY_BYTES + 16 * 2**20)


def test_a_small_body_reads_whole_through_every_client() -> None:
    from bb.grader import capped_client, capped_session

    body = b"x" * (3 * 2**20)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            data = gzip.compress(body) if self.path == "/gzip" else body
            self.send_response(200)
            if self.path == "/gzip":
                self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        for path in ("/plain", "/gzip"):
            with capped_client(url) as client:
                assert client.get(path).content == body
            with capped_session() as session:
                response = session.get(url + path, timeout=10, stream=True)
                assert response.content == body
                assert b"".join(response.iter_content(4096)) == body
    finally:
        server.shutdown()
        server.server_close()


def test_a_check_reports_at_most_a_bounded_text() -> None:
    from bb.grader.plugin import FIELD_CHARS, _bounded

    assert _bounded("short") == "short"
    assert _bounded(None) is None
    long = _bounded("x" * (FIELD_CHARS + 5000))
    assert long is not None and long.endswith("… (5000 more characters)")
    assert len(long) < FIELD_CHARS + 100


# --- a real build and a real grade ---------------------------------------------------------------


def _peak_rss_of(code: str) -> tuple[float, str]:
    """Run ``code`` in a fresh Python; its peak RSS in MiB and its stdout."""
    import subprocess

    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport resource\n"
         "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    *printed, peak = out.stdout.strip().splitlines()
    return float(peak), "\n".join(printed)


@pytest.mark.docker
def test_a_build_that_prints_without_end_keeps_a_bounded_tail(tmp_path: Path, engine: Any) -> None:
    from bb.stack.engine import BUILD_LOG_LINES

    # 136 MiB of output: 1.5 million short lines, one 16 MiB line, a last word, a failure.
    # (FROM the plain base image: containers built from bb's own images carry its labels.)
    (tmp_path / "Dockerfile").write_text(
        "FROM debian:bookworm-slim\n"
        "RUN yes 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'"
        " | head -n 1500000; head -c 16777216 /dev/zero | tr '\\0' L; echo; echo the end; false\n"
    )
    tag = "bb-test/build-flood:latest"
    try:
        peak, printed = _peak_rss_of(
            "import json, pathlib\nfrom bb.stack.engine import Engine\n"
            f"outcome = Engine.connect().build(pathlib.Path({str(tmp_path)!r}), {tag!r})\n"
            "print(json.dumps([outcome.ok, outcome.log]))"
        )
    finally:
        engine.remove_image(tag)
    ok, log = json.loads(printed)
    assert not ok
    lines = log.splitlines()
    assert len(lines) <= BUILD_LOG_LINES
    assert any(line.startswith("LLLL") and "more characters" in line for line in lines), log
    assert "the end" in log and "returned a non-zero code" in lines[-1]
    # Measured: 31 MiB, once 128 MiB on a machine under heavy load (the Docker SDK holds
    # whatever the engine sends at once); bb before this limit: 271 MiB.
    assert peak < 200, f"bb's build reached {peak:.0f} MiB"


def _hostile_workspace(tmp_path: Path) -> Path:
    workspace = tmp_path / "hostile"
    run_bb("start", "hostile", "--pack", MINI_PACK, "--dir", workspace)
    lay_solution(load_pack(MINI_PACK).exercise("hostile"), workspace)
    return workspace


def _grade_measured(workspace: Path, *args: str) -> tuple[int, bytes, bytes, float]:
    """``bb grade`` as a user runs it; its exit code, stdout, stderr, and the peak RSS (MiB)
    of bb and its grader suite, whichever was larger."""
    import subprocess

    out, err = workspace.parent / "stdout", workspace.parent / "stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "bb", "grade", *args], cwd=workspace, stdout=stdout,
            stderr=stderr, env={**os.environ, "TMPDIR": str(_own_tmp(workspace.parent))},
        )  # fmt: skip
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:
            process.kill()
            raise
        process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, out.read_bytes(), err.read_bytes(), usage.ru_maxrss / 1024


def _own_tmp(parent: Path) -> Path:
    """A temporary directory for one grade (the grader inherits TMPDIR, and only it)."""
    folder = parent / "tmp"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.mark.docker
def test_a_hostile_app_cannot_exhaust_bb(tmp_path: Path, no_leftovers: Any) -> None:
    from bb.stack.engine import LOG_FILES, LOG_READ_CHARS

    workspace = _hostile_workspace(tmp_path)
    code, stdout, stderr, peak = _grade_measured(workspace, "--json")
    assert code == ExitCode.CHECKS_FAILED, stderr.decode()
    document = json.loads(stdout)
    checks = {c["name"]: c for c in document["checks"]}
    # The readiness probe met the gigabyte too, and only wanted the status.
    assert checks["app"]["status"] == "passed"
    for name in ("huge_body", "huge_compressed_body", "huge_bodies_in_a_burst",
                 "huge_body_through_requests"):  # fmt: skip
        assert checks[name]["status"] == "failed"
        assert CAP_MESSAGE in checks[name]["message"], checks[name]
    for name in ("log_file_is_capped", "log_is_read_bounded", "memory_stays_small"):
        assert checks[name]["status"] == "passed", checks[name]
    measured = json.loads((_own_tmp(tmp_path) / "bb-hostile-measured.json").read_text())
    assert measured["log_config"]["Type"] == "json-file"
    assert measured["log_file_bytes"] <= LOG_FILES * 2 * 2**20 + 64 * 1024  # 44 MiB were written
    assert measured["log_chars"] <= LOG_READ_CHARS
    assert measured["grader_peak_rss_mib"] < 200
    assert peak < 250, f"bb or its grader reached {peak:.0f} MiB"
    # The JSON document keeps the app's escape codes, escaped.
    assert checks["escape_codes_in_an_answer"]["actual"] == ESCAPES
    assert ESCAPES in checks["escape_codes_in_the_log"]["actual"]
    assert b"\\u001b[2J" in stdout and b"\x1b" not in stdout


@pytest.mark.docker
def test_escape_codes_never_reach_the_terminal(tmp_path: Path, no_leftovers: Any) -> None:
    workspace = _hostile_workspace(tmp_path)
    code, stdout, stderr, _ = _grade_measured(workspace)
    assert code == ExitCode.CHECKS_FAILED, stderr.decode()
    for output in (stdout.decode(), stderr.decode()):
        assert controls(output) == [], repr(output[-2000:])
        assert "pwned" not in output
    table = stdout.decode()
    assert "GET /escapes answered [red]not markup[/red]" in table
    assert "[red]not markup[/red] flooded" in table  # from the app's log
    assert f"{CAP_MESSAGE}; bb stopped reading it." in table
