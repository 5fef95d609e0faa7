"""Where bb keeps things. The only module that decides a path on the user's machine.

``BB_HOME`` moves everything bb keeps (progress, caches); ``BB_WORKSPACES`` moves the default
place for new projects. Tests point both at a temporary directory.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The file, inside a workspace, that says which pack and exercise it belongs to.
RECORD_FILE = Path(".bb") / "project.yaml"


def home() -> Path:
    """The directory holding everything bb keeps for this user."""
    override = os.environ.get("BB_HOME")
    if override:
        return Path(override).expanduser().resolve()
    import platformdirs

    return Path(platformdirs.user_data_dir("bb", appauthor=False))


def progress_db() -> Path:
    return home() / "progress.sqlite3"


def backups() -> Path:
    """Where ``bb reset`` keeps the learner's work before it restores a starter."""
    return home() / "backups"


def workspaces_root() -> Path:
    """The parent of new exercise projects when ``bb start`` is given no ``--dir``."""
    override = os.environ.get("BB_WORKSPACES")
    if override:
        return Path(override).expanduser().resolve()
    return Path.home() / "bb-projects"


def builtin_pack() -> Path:
    """The root of the built-in course pack.

    An installed wheel carries the pack inside the package (``bb/_pack``); a source checkout
    has it at the repository root, beside ``bb/``.
    """
    packaged = Path(__file__).parent / "_pack"
    if (packaged / "course" / "course.yaml").is_file():
        return packaged
    return Path(__file__).resolve().parent.parent


def find_workspace(start: Path) -> Path | None:
    """The nearest directory at or above ``start`` that holds a bb record file."""
    start = start.resolve()
    for candidate in (start, *start.parents):
        if (candidate / RECORD_FILE).is_file():
            return candidate
    return None
