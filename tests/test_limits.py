"""What a learner's app sends bb is bounded: build output and logs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from bb.tail import TextTail

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
    from bb.runtime import LINE_CHARS, Engine

    class Client:
        api = _FakeLogsApi(64 * 2**20)

    logs = Engine(Client()).logs("c", tail=10)
    assert len(logs) < LINE_CHARS + 100
    assert logs.endswith(f" … ({64 * 2**20 - LINE_CHARS} more characters)")


# --- a real build -----------------------------------------------------------------------------


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
    from bb.runtime import BUILD_LOG_LINES

    # 96 MiB of output: a million short lines, one 16 MiB line, a last word, then a failure.
    # (FROM the plain base image: containers built from bb's own images carry its labels.)
    (tmp_path / "Dockerfile").write_text(
        "FROM debian:bookworm-slim\n"
        "RUN yes 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'"
        " | head -n 1000000; head -c 16777216 /dev/zero | tr '\\0' L; echo; echo the end; false\n"
    )
    tag = "bb-test/build-flood:latest"
    try:
        peak, printed = _peak_rss_of(
            "import json, pathlib\nfrom bb.runtime import Engine\n"
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
    assert peak < 120, f"bb's build reached {peak:.0f} MiB"
