"""A normal (non-editable) install carries the whole built-in course, byte for byte."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACK_DIRS = ("course", "exercises", "templates", "graders")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    return next(out.glob("bb-*.whl"))


def _pack_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", *PACK_DIRS], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return [ROOT / name for name in listed]


def test_the_wheel_holds_every_pack_file(wheel: Path) -> None:
    files = _pack_files()
    assert files, "git lists no pack files"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for path in files:
            inside = f"bb/_pack/{path.relative_to(ROOT).as_posix()}"
            assert inside in names, f"{inside} is missing from the wheel"
            assert archive.read(inside) == path.read_bytes(), f"{inside} differs"


def test_an_installed_bb_reads_its_own_copy(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--ignore-installed", str(wheel)],
        check=True,
        capture_output=True,
    )
    where = subprocess.run(
        [python, "-c", "import bb.paths; print(bb.paths.builtin_pack())"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.strip().startswith(str(env_dir))
    check = subprocess.run(
        [python, "-m", "bb", "dev", "check", "--no-grade"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "The pack is sound." in check.stdout
