"""The journal of grades in flight and grades' scratch directories: what counts as left behind."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from bb import paths
from bb.errors import EnvironmentProblem
from bb.stack import journal
from tests.helpers import fill_disk, small_disk


def _entries() -> Path:
    return paths.home() / "grades-in-flight"


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_live_grade_is_not_stale_and_a_dead_one_is() -> None:
    live = journal.open_entry("live")
    dead = _entries() / "dead"
    dead.write_text(journal.owner_token(_dead_pid()))
    assert journal.stale_entries() == [dead]
    assert live.read_text() == journal.owner_token()


@pytest.mark.parametrize("content", ["", "   ", "0", "-1", "not a pid", "\x00\x00"])
def test_an_empty_or_unreadable_entry_is_stale(content: str) -> None:
    # An entry left empty by a full disk named pid 0, and os.kill(0, 0) succeeds.
    _entries().mkdir(parents=True)
    entry = _entries() / "left-by-a-full-disk"
    entry.write_text(content)
    assert journal.stale_entries() == [entry]


def test_a_reused_pid_does_not_keep_an_entry_alive() -> None:
    _entries().mkdir(parents=True)
    entry = _entries() / "reused"
    # Our own pid, but a start time that is not ours: the grade's process is long gone.
    entry.write_text(f"{os.getpid()} 1")
    if journal.owner_token() == str(os.getpid()):
        pytest.skip("no process start times on this system")
    assert journal.stale_entries() == [entry]


def test_another_users_process_counts_as_alive(monkeypatch: Any) -> None:
    def permission_denied(pid: int, signal: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "kill", permission_denied)
    assert journal.owner_alive("4242")


def test_a_full_disk_leaves_no_empty_entry(tmp_path: Path, monkeypatch: Any) -> None:
    with small_disk(tmp_path / "disk") as disk:
        monkeypatch.setenv("BB_HOME", str(disk / "bb"))
        journal.open_entry("before")  # makes the directory
        fill_disk(disk)
        with pytest.raises(EnvironmentProblem, match="is full"):
            journal.open_entry("after")
        assert sorted(p.name for p in _entries().iterdir()) == ["before"]


def _scratch_of(owner: str | None) -> Path:
    scratch = Path(tempfile.mkdtemp(prefix=journal.SCRATCH_PREFIX))
    if owner is not None:
        (scratch / journal.OWNER_FILE).write_text(owner)
    (scratch / "results.jsonl").write_text("{}\n")
    return scratch


def test_the_scratch_of_a_dead_grade_is_swept_and_no_other() -> None:
    dead = _scratch_of(journal.owner_token(_dead_pid()))
    mine = journal.new_scratch()
    unmarked = _scratch_of(None)  # a bb that writes no owner file may be using it
    try:
        assert journal.sweep_scratch() >= 1
        assert not dead.exists()
        assert mine.is_dir()
        assert unmarked.is_dir()
    finally:
        for scratch in (dead, mine, unmarked):
            subprocess.run(["rm", "-rf", str(scratch)], check=True)
