"""The learner's project after it exists: the reference solution as a diff, and a reset to the
starter that keeps the learner's work in a timestamped backup."""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import shutil
import tempfile
from pathlib import Path

import yaml

from bb import paths
from bb.errors import ContentError, UserError
from bb.pack.manifest import Exercise, Pack

#: Kept in place by a reset: the project's record, and the learner's own version history.
_KEPT = {".bb", ".git"}
#: Written into every backup, saying what it is a backup of.
BACKUP_RECORD = ".bb-backup.yaml"
#: Larger files are named in a diff, not shown (a solution is source code).
_MAX_DIFF_BYTES = 512 * 1024


@dataclasses.dataclass(frozen=True)
class FileDiff:
    path: str
    #: A unified diff from the learner's file to the solution's; empty when they are equal.
    diff: str
    #: Why no diff is shown (a binary or very large file), if so.
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Backup:
    path: Path
    exercise: str
    workspace: Path
    taken_at: dt.datetime


def solution_diff(exercise: Exercise, workspace: Path) -> list[FileDiff]:
    """How the reference solution differs from ``workspace``, file by file (solution files only).

    Raises:
        ContentError: the exercise has no reference solution.
    """
    solution = exercise.solution_dir
    if not solution.is_dir():
        raise ContentError(f"{solution}: the reference solution is missing.")
    diffs = []
    for source in sorted(p for p in solution.rglob("*") if p.is_file()):
        relative = source.relative_to(solution).as_posix()
        if "__pycache__" in relative:
            continue
        mine = workspace / relative
        theirs_bytes = source.read_bytes()
        mine_bytes = mine.read_bytes() if mine.is_file() else b""
        if mine_bytes == theirs_bytes:
            diffs.append(FileDiff(relative, ""))
            continue
        if max(len(theirs_bytes), len(mine_bytes)) > _MAX_DIFF_BYTES:
            diffs.append(FileDiff(relative, "", note="too large to show"))
            continue
        try:
            theirs_text = theirs_bytes.decode("utf-8")
            mine_text = mine_bytes.decode("utf-8")
        except UnicodeDecodeError:
            diffs.append(FileDiff(relative, "", note="binary file differs"))
            continue
        lines = difflib.unified_diff(
            mine_text.splitlines(keepends=True),
            theirs_text.splitlines(keepends=True),
            fromfile=f"yours/{relative}" if mine.is_file() else "/dev/null",
            tofile=f"solution/{relative}",
        )
        diffs.append(FileDiff(relative, "".join(_ending(line) for line in lines)))
    return diffs


def _ending(line: str) -> str:
    return line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"


def reset_project(pack: Pack, exercise: Exercise, workspace: Path) -> Backup:
    """Put the starter back in ``workspace``, moving everything else into a backup first.

    The workspace directory itself stays (a shell may be in it); its record file and any
    ``.git`` stay too. The starter is rendered before anything moves, so a broken template
    changes nothing, and each file is moved (never deleted) into the backup.

    Raises:
        ContentError: the exercise's templates are broken.
    """
    from bb.pack.scaffold import render_layers

    workspace = workspace.resolve()
    staging = Path(tempfile.mkdtemp(prefix=f".{workspace.name}.reset-", dir=workspace.parent))
    try:
        render_layers(pack, exercise, staging)
        taken_at = dt.datetime.now(dt.UTC)
        backup = _new_backup_dir(exercise.id, taken_at)
        (backup / BACKUP_RECORD).write_text(
            yaml.safe_dump(
                {
                    "exercise": exercise.id,
                    "workspace": str(workspace),
                    "taken_at": taken_at.isoformat(),
                }
            ),
            encoding="utf-8",
        )
        for entry in sorted(workspace.iterdir()):
            if entry.name not in _KEPT:
                shutil.move(entry, backup / entry.name)
        for entry in sorted(staging.iterdir()):
            if entry.name not in _KEPT:
                shutil.move(entry, workspace / entry.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Backup(backup, exercise.id, workspace, taken_at)


def _new_backup_dir(exercise_id: str, taken_at: dt.datetime) -> Path:
    root = paths.backups() / exercise_id
    root.mkdir(parents=True, exist_ok=True)
    stamp = taken_at.strftime("%Y%m%d-%H%M%S")
    for suffix in ("", *(f"-{n}" for n in range(2, 100))):
        candidate = root / f"{stamp}{suffix}"
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise UserError(f"Too many backups of {exercise_id} within one second in {root}.")


def list_backups(exercise_id: str | None = None) -> list[Backup]:
    """Backups made by resets, newest first (of one exercise, or all)."""
    root = paths.backups()
    found = []
    for record in root.glob(f"{exercise_id or '*'}/*/{BACKUP_RECORD}"):
        try:
            data = yaml.safe_load(record.read_text(encoding="utf-8"))
            found.append(
                Backup(
                    path=record.parent,
                    exercise=str(data["exercise"]),
                    workspace=Path(data["workspace"]),
                    taken_at=dt.datetime.fromisoformat(str(data["taken_at"])),
                )
            )
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
            continue  # not one of ours, or damaged: list what can be read
    return sorted(found, key=lambda b: b.taken_at, reverse=True)
