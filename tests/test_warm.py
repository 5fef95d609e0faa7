"""Warm services, `bb up`/`bb down` and `bb watch`, on a real engine, through the CLI.

The mini course's `notes` exercise runs a Python app over the course's Postgres. Its grader
fails when an earlier grade's rows, server settings or roles are still there, and leaves all
three behind on purpose: a warm grade passes only if the reset really happened.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from bb.errors import ExitCode
from bb.pack.manifest import load_pack
from bb.pack.scaffold import lay_solution
from bb.stack.engine import OWNER, WARM, WARM_WORKSPACE
from tests.conftest import MINI_PACK, run_bb

pytestmark = pytest.mark.docker


def _notes(tmp_path: Path, *, solved: bool = True) -> Path:
    workspace = tmp_path / "notes"
    run_bb("start", "notes", "--pack", MINI_PACK, "--dir", workspace)
    if solved:
        lay_solution(load_pack(MINI_PACK).exercise("notes"), workspace)
    return workspace


def _warm_containers(engine: Any, workspace: Path) -> dict[str, str]:
    """The warm containers of a project: name → id."""
    found = engine.labelled(f"{WARM_WORKSPACE}={workspace.resolve()}")
    return {labels.get(WARM, "") + "/" + cid[:12]: cid for cid, _, labels in found}


def _grade(workspace: Path, expect: int = ExitCode.OK, **env: str) -> dict[str, Any]:
    result = run_bb("grade", "--json", cwd=workspace, expect=expect, env=env)
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def test_a_warm_grade_starts_from_a_fresh_database(tmp_path: Path, no_leftovers: Any) -> None:
    workspace = _notes(tmp_path)
    first = _grade(workspace)
    warm_after_first = _warm_containers(no_leftovers, workspace)
    assert len(warm_after_first) == 1, "the database should stay warm after a grade"
    # The first grade left 3 rows, a changed setting and a role; the second must see none.
    second = _grade(workspace)
    assert {c["name"]: c["status"] for c in second["checks"]}["fresh_database"] == "passed"
    assert _warm_containers(no_leftovers, workspace) == warm_after_first, "not reused"
    assert second["timings"]["services"] < first["timings"]["services"]
    run_bb("down", cwd=workspace)
    assert _warm_containers(no_leftovers, workspace) == {}


def test_a_cold_grade_leaves_nothing_warm(tmp_path: Path, no_leftovers: Any) -> None:
    workspace = _notes(tmp_path)
    run_bb("grade", "--cold", cwd=workspace)
    assert _warm_containers(no_leftovers, workspace) == {}


def test_a_warm_service_that_died_is_replaced(tmp_path: Path, no_leftovers: Any) -> None:
    workspace = _notes(tmp_path)
    _grade(workspace)
    (dead,) = _warm_containers(no_leftovers, workspace).values()
    no_leftovers.kill(dead)
    _grade(workspace)  # passes: a fresh database was started instead
    (replacement,) = _warm_containers(no_leftovers, workspace).values()
    assert replacement != dead


def test_warm_services_stop_when_idle_or_when_the_project_goes(
    tmp_path: Path, no_leftovers: Any
) -> None:
    idle = _notes(tmp_path / "idle")
    _grade(idle, BB_WARM_IDLE="2")
    assert _warm_containers(no_leftovers, idle)
    # The detached reaper removes them by itself, with no bb command running.
    deadline = time.monotonic() + 60
    while _warm_containers(no_leftovers, idle):
        assert time.monotonic() < deadline, "idle warm services were not stopped"
        time.sleep(1)

    deleted = _notes(tmp_path / "deleted")
    _grade(deleted)
    assert _warm_containers(no_leftovers, deleted)
    subprocess.run(["rm", "-rf", str(deleted)], check=True)
    run_bb("list")  # any next command sweeps what belongs to a project that is gone
    assert _warm_containers(no_leftovers, deleted) == {}


def test_kill_9_with_warm_services_leaves_only_what_bb_keeps(
    tmp_path: Path, isolated_home: Path, no_leftovers: Any
) -> None:
    workspace = _notes(tmp_path)
    _grade(workspace)  # the services are warm now
    warm_before = _warm_containers(no_leftovers, workspace)
    process = subprocess.Popen(
        [sys.executable, "-m", "bb", "grade"],
        cwd=workspace,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "BB_HOME": str(isolated_home)},
    )
    owner = f"{OWNER}={socket.gethostname()}:{process.pid}"
    deadline = time.monotonic() + 300
    # The database is warm: the grade's own containers are its migrations, then its app.
    while len(no_leftovers.labelled(owner)) < 2:
        assert process.poll() is None, "the grade ended before its app started"
        assert time.monotonic() < deadline, "the grade never started its app"
        time.sleep(0.2)
    process.kill()
    process.wait(timeout=30)
    assert no_leftovers.labelled(owner), "kill -9 should leave the grade's app behind"
    run_bb("list")  # the next command sweeps the killed grade's containers...
    assert no_leftovers.labelled(owner) == []
    # ...and keeps the warm database, which the next grade resets and reuses.
    assert _warm_containers(no_leftovers, workspace) == warm_before
    _grade(workspace)
    assert _warm_containers(no_leftovers, workspace) == warm_before


def test_bb_up_serves_on_stable_ports_until_bb_down(tmp_path: Path, no_leftovers: Any) -> None:
    workspace = _notes(tmp_path)
    shown = run_bb("up", cwd=workspace).stdout
    url = next(word for word in shown.split() if word.startswith("http://127.0.0.1:"))
    dsn = next(word for word in shown.split() if word.startswith("postgresql://"))
    assert httpx.get(f"{url}/notes").json() == {"count": 0}
    assert httpx.post(f"{url}/notes", content="kept").status_code == 201

    again = run_bb("up", cwd=workspace).stdout  # after an edit: the app is replaced
    assert url in again and dsn in again, "the ports must stay the same"
    assert httpx.get(f"{url}/notes").json() == {"count": 1}, "the data must be kept"

    fresh = run_bb("up", "--fresh", cwd=workspace).stdout
    assert url in fresh
    assert httpx.get(f"{url}/notes").json() == {"count": 0}

    # The grade's failed checks point at this very stack.
    broken = workspace / "server.py"
    broken.write_text(broken.read_text().replace("count(*)", "count(*) + 1"))
    document = _grade(workspace, expect=ExitCode.CHECKS_FAILED)
    assert any(url in (c.get("reproduce") or "") for c in document["checks"])

    run_bb("down", cwd=workspace)
    assert _warm_containers(no_leftovers, workspace) == {}
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/notes", timeout=2)


def test_watch_regrades_on_save_and_stops_cleanly(
    tmp_path: Path, isolated_home: Path, no_leftovers: Any
) -> None:
    workspace = _notes(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "bb", "watch", "--no-poll"],
        cwd=workspace,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "BB_HOME": str(isolated_home), "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
    )
    seen: list[str] = []
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(x) for x in process.stdout or ()])
    reader.start()

    def read_until(text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {text!r} within {timeout} s:\n" + "".join(seen)) from None
            seen.append(line)
            if text in line:
                return

    try:
        read_until("All checks passed.", 300)
        read_until("Watching for saves", 30)
        server = workspace / "server.py"
        server.write_text(server.read_text().replace("count(*)", "count(*) + 1"))
        read_until("saved: server.py", 60)
        read_until("Not yet", 300)
    finally:
        os.killpg(process.pid, signal.SIGINT)
        code = process.wait(timeout=60)
        reader.join(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
    assert code == 130, "".join(seen)
    assert no_leftovers.managed_objects(orphans_only=True) == []
