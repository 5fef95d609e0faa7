"""Distributed class grading for real: a Redis broker, two `bb worker`s, one killed mid-grade."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bb.stack.engine import free_port
from tests.conftest import MINI_PACK, _docker_required
from tests.test_classroom import _project

pytestmark = pytest.mark.docker


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[str]:
    server = shutil.which("redis-server")
    if server is None:
        if _docker_required():
            pytest.fail("redis-server is required here (apt-get install redis-server)")
        pytest.skip("redis-server is not installed")
    pytest.importorskip("celery")
    port = free_port()
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while subprocess.run([shutil.which("redis-cli") or "redis-cli", "-p", str(port), "ping"],
                             capture_output=True).returncode != 0:  # fmt: skip
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


def _worker(broker: str, name: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:  # the worker keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "bb", "worker", "--broker", broker, "--concurrency", "1",
             "--visibility-timeout", "30", "--name", name],
            stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def test_two_workers_grade_a_class_even_when_one_dies(
    tmp_path: Path, broker: str, no_leftovers: Any
) -> None:
    submissions = tmp_path / "submissions"
    for student, solved in (("ada", True), ("grace", True), ("linus", False), ("ken", True)):
        _project(submissions / student, solved=solved)
    logs = [tmp_path / "w1.log", tmp_path / "w2.log"]
    workers = [_worker(broker, f"w{n}", log) for n, log in enumerate(logs, 1)]
    out = tmp_path / "results"
    try:
        grading = subprocess.Popen(
            [sys.executable, "-m", "bb", "class", "grade", str(submissions), "-e", "hello",
             "--pack", str(MINI_PACK), "--out", str(out), "--jobs", "4", "--json",
             "--broker", broker],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while "received" not in logs[0].read_text(errors="replace"):
            assert time.monotonic() < deadline, logs[0].read_text(errors="replace")
            time.sleep(0.2)
        time.sleep(2)  # into the grade: its containers are starting
        os.killpg(workers[0].pid, signal.SIGKILL)
        stdout, stderr = grading.communicate(timeout=400)
        assert grading.returncode == 0, stderr
    finally:
        for process in workers:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in workers:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
    events = [json.loads(line) for line in stdout.splitlines()]
    finished = [e for e in events if e["event"] == "finished"]
    assert sorted(e["student"] for e in finished) == ["ada", "grace", "ken", "linus"]
    assert {e["student"] for e in finished if e["passed"]} == {"ada", "grace", "ken"}
    with (out / "grades.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(row["student"] for row in rows) == ["ada", "grace", "ken", "linus"]
    assert "received" in logs[1].read_text(errors="replace"), "the other worker graded too"
    # The killed worker's containers are orphans now; the next bb command sweeps them.
    subprocess.run([sys.executable, "-m", "bb", "list"], capture_output=True, check=True)
