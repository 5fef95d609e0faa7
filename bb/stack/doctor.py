"""``bb doctor``: is this machine ready to grade? Each finding names its fix."""

from __future__ import annotations

import dataclasses
import enum
import os
import shutil
import sys
from pathlib import Path

from bb import paths
from bb.errors import BBError
from bb.pack.manifest import Pack

#: Free disk below this blocks grading (images, build cache and logs need room).
MIN_FREE_BYTES = 1 << 30
#: Below this, Docker Desktop or a small VM runs out of memory under a load check.
MIN_ENGINE_MEMORY = 3 << 30


class Verdict(enum.StrEnum):
    OK = "ok"
    #: Works, but something will hurt (slow, tight on memory).
    WARNING = "warning"
    #: Grading cannot work until this is fixed.
    BLOCKING = "blocking"


@dataclasses.dataclass(frozen=True)
class Finding:
    topic: str
    verdict: Verdict
    detail: str
    fix: str = ""


def diagnose(pack: Pack) -> list[Finding]:
    """Check everything grading needs on this machine; never raises for what it finds."""
    findings = [_python()]
    engine_findings, engine = _engine()
    findings += engine_findings
    if engine is not None:
        findings += _images(pack, engine)
    findings += _disk()
    findings.append(_store(pack))
    return findings


def blocked(findings: list[Finding]) -> bool:
    return any(f.verdict is Verdict.BLOCKING for f in findings)


def _python() -> Finding:
    # bb itself needs 3.11+, so reaching this line proves the version; say which one runs.
    version = ".".join(map(str, sys.version_info[:3]))
    return Finding("python", Verdict.OK, f"Python {version} ({sys.executable})")


def _engine() -> tuple[list[Finding], object | None]:
    from bb.stack.engine import Engine

    where = os.environ.get("DOCKER_HOST") or "the default socket"
    try:
        engine = Engine.connect()
    except BBError as exc:
        return [Finding("docker engine", Verdict.BLOCKING, exc.message, _engine_fix())], None
    facts = engine.facts()
    findings = [
        Finding(
            "docker engine",
            Verdict.OK,
            f"{facts.name} {facts.version} (API {facts.api_version}, {facts.os}/{facts.arch}) "
            f"at {where}",
        )
    ]
    memory = facts.memory_bytes
    if memory and memory < MIN_ENGINE_MEMORY:
        findings.append(
            Finding(
                "engine memory",
                Verdict.WARNING,
                f"the engine has {memory / 2**30:.1f} GiB of memory",
                "Give it at least 3 GiB (Docker Desktop: Settings → Resources → Memory).",
            )
        )
    elif memory:
        findings.append(
            Finding("engine memory", Verdict.OK, f"{memory / 2**30:.1f} GiB for containers")
        )
    return findings, engine


def _engine_fix() -> str:
    from bb.stack.engine import ENGINE_HINT, engine_candidates

    for candidate in engine_candidates():
        if candidate.reachable:
            return (
                f"An engine answers at {candidate.url} ({candidate.kind}): "
                f"`export DOCKER_HOST={candidate.url}`, then run `bb doctor` again."
            )
        if candidate.exists:
            return (
                f"{candidate.url} ({candidate.kind}) exists but does not answer "
                f"({candidate.problem}). "
                + (
                    "Add yourself to the docker group (`sudo usermod -aG docker $USER`, then "
                    "log in again)."
                    if "ermission" in candidate.problem
                    else "Start the engine, then run `bb doctor` again."
                )
            )
    return ENGINE_HINT


def _images(pack: Pack, engine: object) -> list[Finding]:
    from bb.stack.engine import Engine

    assert isinstance(engine, Engine)
    arch = engine.facts().arch
    findings = []
    for name in pack.course.images:
        tag = pack.image_tag(name)
        image_arch = engine.image_architecture(tag)
        if image_arch is None:
            findings.append(
                Finding(
                    f"image {name}",
                    Verdict.BLOCKING,
                    f"{tag} is not built",
                    "Run `bb setup` (once; grading is offline after it).",
                )
            )
        elif image_arch != arch:
            findings.append(
                Finding(
                    f"image {name}",
                    Verdict.WARNING,
                    f"{tag} is for {image_arch}, the engine runs {arch}: it runs emulated, slowly",
                    "Rebuild it for this machine: `bb setup --rebuild`.",
                )
            )
        else:
            findings.append(Finding(f"image {name}", Verdict.OK, f"{tag} ({image_arch})"))
    return findings


def _disk() -> list[Finding]:
    findings = []
    seen: set[int] = set()
    for label, path in (("bb's home", paths.home()), ("projects", paths.workspaces_root())):
        existing = _nearest_existing(path)
        device = existing.stat().st_dev
        if device in seen:
            continue
        seen.add(device)
        free = shutil.disk_usage(existing).free
        verdict = Verdict.OK if free >= MIN_FREE_BYTES else Verdict.BLOCKING
        findings.append(
            Finding(
                f"disk ({label})",
                verdict,
                f"{free / 2**30:.1f} GiB free at {existing}",
                ""
                if verdict is Verdict.OK
                else "Free at least 1 GiB (`docker system prune` "
                "removes unused images and build cache).",
            )
        )
    return findings


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def _store(pack: Pack) -> Finding:
    from bb import progress

    try:
        progress.load(pack.identity)
    except BBError as exc:
        return Finding("progress store", Verdict.BLOCKING, exc.message, exc.hint or "")
    return Finding("progress store", Verdict.OK, str(paths.progress_db()))
