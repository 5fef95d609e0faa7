"""Small builders for throwaway packs and file trees."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import MINI_PACK


def build_file_tree(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def copy_mini_pack(destination: Path) -> Path:
    """A writable copy of the mini course, for tests that break it on purpose."""
    shutil.copytree(MINI_PACK, destination)
    return destination


def edit_yaml(path: Path, change: dict[str, Any]) -> None:
    data = yaml.safe_load(path.read_text())
    data.update(change)
    path.write_text(yaml.safe_dump(data))
