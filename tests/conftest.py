"""bb's test kit: an isolated home per test, a CLI runner, and the Docker requirement."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bb.errors import ExitCode

ROOT = Path(__file__).resolve().parent.parent
MINI_PACK = ROOT / "tests" / "fixtures" / "pack"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point everything bb keeps, and its default workspaces, at this test's directory."""
    home = tmp_path / "bb-home"
    monkeypatch.setenv("BB_HOME", str(home))
    monkeypatch.setenv("BB_WORKSPACES", str(tmp_path / "projects"))
    monkeypatch.delenv("BB_PACK", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "100")
    yield home
    _stop_warm_stacks()


def _stop_warm_stacks() -> None:
    """Grades through the CLI keep services warm; a test's home goes with the test, so do
    they (their reapers exit once their state is gone)."""
    from bb.stack import warm

    states = warm.all_states()
    if not states:
        return
    from bb.stack.engine import Engine

    engine = Engine.connect()
    for state in states:
        warm.remove(engine, state.key)


@dataclasses.dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def run_bb(
    *args: str | Path,
    expect: int = ExitCode.OK,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 600,
    input: str | None = None,
) -> Result:
    """Run the real ``bb`` in a child process, as a user would; fail with its output on a
    mismatch of exit code."""
    completed = subprocess.run(
        [sys.executable, "-m", "bb", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        input=input,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )
    result = Result(completed.returncode, completed.stdout, completed.stderr)
    assert result.code == expect, f"expected exit {expect}, got:\n{result}"
    return result


def _docker_required() -> bool:
    return bool(os.environ.get("CI")) or os.environ.get("BB_REQUIRE_DOCKER") == "1"


@pytest.fixture(scope="session")
def engine():  # type: ignore[no-untyped-def]
    """A connected Docker engine with the course images built; skipped locally without one,
    and a failure in CI, where Docker tests are required."""
    from bb.errors import EnvironmentProblem
    from bb.pack.manifest import load_pack
    from bb.stack.engine import Engine

    try:
        connected = Engine.connect()
    except EnvironmentProblem as exc:
        if _docker_required():
            pytest.fail(f"Docker tests are required here, but: {exc.message}")
        pytest.skip(f"no Docker engine: {exc.message}")
    pack = load_pack(ROOT)
    missing = [
        pack.image_tag(n) for n in pack.course.images if not connected.has_image(pack.image_tag(n))
    ]
    if missing:
        message = f"course images missing ({', '.join(missing)}): run `bb setup`"
        if _docker_required():
            pytest.fail(message)
        pytest.skip(message)
    return connected


@pytest.fixture
def no_leftovers(engine):  # type: ignore[no-untyped-def]
    """After the test, no container or network of bb's may outlive the bb process that made it.

    (Objects of bb processes still running, such as another grade on a shared engine, are not
    this test's.)"""
    yield engine
    leftovers = engine.managed_objects(orphans_only=True)
    assert leftovers == [], f"bb left these behind: {leftovers}"
