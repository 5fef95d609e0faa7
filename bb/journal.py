"""A journal of grades in flight, so any bb command can notice what a killed grade left behind.

Cheap on purpose (no Docker import): each grade writes a file named after its id, holding its
process id, and removes it when it has torn down. A file whose process is gone marks leftovers.
"""

from __future__ import annotations

import os
from pathlib import Path

from bb import paths


def _directory() -> Path:
    return paths.home() / "grades-in-flight"


def open_entry(grade_id: str) -> Path:
    directory = _directory()
    directory.mkdir(parents=True, exist_ok=True)
    entry = directory / grade_id
    entry.write_text(str(os.getpid()), encoding="utf-8")
    return entry


def stale_entries() -> list[Path]:
    """Entries whose grading process no longer runs."""
    directory = _directory()
    if not directory.is_dir():
        return []
    stale = []
    for entry in directory.iterdir():
        try:
            pid = int(entry.read_text(encoding="utf-8").strip() or "0")
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError, OSError):
            stale.append(entry)
    return stale
