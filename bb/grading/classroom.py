"""Class grading: every submission of a class graded as an isolated grade of its own.

A submission is a project folder, or a .zip/.tar.gz/.tgz/.tar archive of one, named after its
student. Each is unpacked safely (no path leaves its folder, sizes are capped), graded with
exactly the runtime ``bb grade`` uses, and its result written in every format under the output
folder. One broken, hostile or hanging submission never stops the batch: a learner's failure
or timeout is a graded result; an infrastructure failure is retried (twice), never a learner's.
Re-running resumes: a submission whose content already has a graded result is skipped.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import re
import secrets
import shutil
import tarfile
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bb.errors import BBError, ContentError, EnvironmentProblem, UserError
from bb.pack.manifest import Exercise, Pack
from bb.results.formats import Format, not_graded, render, write_atomically
from bb.results.report import CheckResult, GradeReport, Outcome, Status, from_json, to_json
from bb.stack.isolation import Isolation

#: A submission unpacks to at most this much, in at most this many files.
MAX_SUBMISSION_BYTES = 200 * 1024 * 1024
MAX_SUBMISSION_FILES = 20_000
#: Never copied from a submission: tool state, not the project (and often huge).
_SKIPPED = {".git", ".venv", "venv", "node_modules", "__pycache__", ".bb", ".pytest_cache"}
#: Infrastructure failures (the engine erred) are retried this many times.
RETRIES = 2
#: A grade still running this long after its own time limit is stopped from outside.
WATCHDOG_GRACE = 60.0
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
RESULT_FILE = "result.json"
_FILES = {
    Format.JSON: RESULT_FILE,
    Format.JUNIT: "junit.xml",
    Format.GRADESCOPE: "gradescope.json",
    Format.PRAIRIELEARN: "prairielearn.json",
}

Event = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Submission:
    student: str
    source: Path


@dataclasses.dataclass(frozen=True)
class StudentResult:
    student: str
    digest: str
    report: GradeReport
    attempts: int
    #: True when an earlier run's result was kept (same content, no --regrade).
    reused: bool = False


class SubmissionRejected(Exception):
    """The submission itself is unusable (a learner's failure, graded as such)."""


def find_submissions(folder: Path) -> list[Submission]:
    """The submissions in ``folder``, by student name.

    Raises:
        UserError: ``folder`` is missing, or two entries give the same student name.
    """
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder of submissions.")
    found: dict[str, Path] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        name = entry.name
        if entry.is_file():
            suffix = next((s for s in ARCHIVE_SUFFIXES if name.lower().endswith(s)), None)
            if suffix is None:
                continue
            name = name[: -len(suffix)]
        elif not entry.is_dir():
            continue
        student = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "unnamed"
        if student in found:
            raise UserError(
                f"Two submissions are named {student!r}: {found[student].name} and {entry.name}.",
                hint="Keep one per student.",
            )
        found[student] = entry
    return [Submission(student, path) for student, path in found.items()]


def unpack(submission: Submission, destination: Path) -> None:
    """Put the project of ``submission`` in ``destination`` (which must not exist).

    Raises:
        SubmissionRejected: the archive is corrupt, too large, or escapes its folder.
    """
    source = submission.source
    staging = destination.with_name(destination.name + ".unpack")
    staging.mkdir(parents=True)
    try:
        if source.is_dir():
            _copy_tree(source, staging)
        elif source.name.lower().endswith(".zip"):
            _unzip(source, staging)
        else:
            _untar(source, staging)
        # An archive of a folder holds that one folder: its contents are the project.
        entries = [e for e in staging.iterdir() if e.name not in _SKIPPED]
        root = entries[0] if len(entries) == 1 and entries[0].is_dir() else staging
        root.rename(destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _copy_tree(source: Path, destination: Path) -> None:
    total = files = 0
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if any(part in _SKIPPED for part in relative.parts):
            continue
        target = destination / relative
        if path.is_symlink():
            continue  # a link could point anywhere on the instructor's machine
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        total += path.stat().st_size
        files += 1
        _within_caps(total, files)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


def _unzip(source: Path, destination: Path) -> None:
    try:
        with zipfile.ZipFile(source) as archive:
            members = archive.infolist()
            _within_caps(sum(m.file_size for m in members), len(members))
            for member in members:
                target = _safe_target(destination, member.filename)
                if member.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                if (member.external_attr >> 16) & 0o170000 == 0o120000:
                    continue  # a symbolic link
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as src, target.open("wb") as dst:
                    _copy_capped(src, dst, member.file_size)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise SubmissionRejected(f"{source.name} is not a readable zip archive ({exc}).") from None


def _untar(source: Path, destination: Path) -> None:
    try:
        with tarfile.open(source) as archive:
            members = [m for m in archive.getmembers() if m.isfile() or m.isdir()]
            _within_caps(sum(m.size for m in members if m.isfile()), len(members))
            for member in members:
                _safe_target(destination, member.name)
            # The "data" filter refuses absolute paths, links out of the tree, devices and
            # setuid bits, on top of the checks above.
            archive.extractall(destination, members=members, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise SubmissionRejected(f"{source.name} is not a readable tar archive ({exc}).") from None


def _safe_target(root: Path, name: str) -> Path:
    target = (root / name).resolve()
    if not target.is_relative_to(root.resolve()) or name.startswith("/"):
        raise SubmissionRejected(f"The archive names a path outside its folder: {name!r}.")
    return target


def _within_caps(total: int, files: int) -> None:
    if total > MAX_SUBMISSION_BYTES:
        raise SubmissionRejected(
            f"The submission unpacks to {total / 2**20:.0f} MiB; the limit is "
            f"{MAX_SUBMISSION_BYTES / 2**20:.0f} MiB."
        )
    if files > MAX_SUBMISSION_FILES:
        raise SubmissionRejected(
            f"The submission holds {files} files; the limit is {MAX_SUBMISSION_FILES}."
        )


def _copy_capped(src: Any, dst: Any, declared: int) -> None:
    # A zip's declared size can lie; count what really comes out.
    copied = 0
    while chunk := src.read(1 << 20):
        copied += len(chunk)
        if copied > max(declared, 0) + (1 << 20) or copied > MAX_SUBMISSION_BYTES:
            raise SubmissionRejected("A file in the archive is larger than the archive says.")
        dst.write(chunk)


def project_digest(project: Path) -> str:
    """A digest of the project's files (names and bytes), to know a submission unchanged."""
    digest = hashlib.sha256()
    for path in sorted(p for p in project.rglob("*") if p.is_file() and not p.is_symlink()):
        relative = path.relative_to(project)
        if any(part in _SKIPPED for part in relative.parts):
            continue
        digest.update(relative.as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


# -- grading one submission ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Job:
    """One submission to grade, ready: its project unpacked in ``project``."""

    student: str
    digest: str
    project: Path
    out: Path


def grade_job(
    pack: Pack, exercise: Exercise, job: Job, *, isolation: Isolation = Isolation.STRICT
) -> tuple[GradeReport, int]:
    """Grade one prepared submission, retrying infrastructure failures; write its files.

    Returns the report and how many attempts it took. Never raises for the learner's work;
    a course error or an engine that stays down becomes a not-graded report.
    """
    from bb.grading.runner import grade_exercise
    from bb.pack.scaffold import Record, write_record
    from bb.stack.engine import Engine

    write_record(job.project, Record(pack=pack.root, exercise=exercise.id, bb_version=""))
    job.out.mkdir(parents=True, exist_ok=True)
    attempts = 0
    report: GradeReport | None = None
    while report is None:
        attempts += 1
        # Fresh per attempt: a task delivered again must not meet its first run's containers.
        grade_id = secrets.token_hex(5)
        try:
            engine = Engine.connect()
            with _watchdog(engine, grade_id, exercise.grader.timeout + WATCHDOG_GRACE):
                report = grade_exercise(
                    pack,
                    exercise,
                    job.project,
                    engine=engine,
                    keep_image=False,
                    grade_id=grade_id,
                    app_log=job.out / "app.log",
                    isolation=isolation,
                )
            if _engine_hiccup(report) and attempts <= RETRIES:
                report = None  # the engine broke the build, not the learner: again
                continue
        except EnvironmentProblem as exc:
            if attempts <= RETRIES:
                time.sleep(min(2.0 * attempts, 5.0))
                continue
            report = not_graded(exercise.id, exercise.title, f"environment: {exc.message}")
        except ContentError as exc:
            report = not_graded(exercise.id, exercise.title, f"course: {exc.message}")
    report = _with_submission(report, job)
    write_results(job.out, report)
    return report, attempts


#: Build-log lines that mean the engine failed, whatever the Dockerfile says.
_ENGINE_FAULTS = re.compile(
    r"failed to register layer|failed to get digest|error creating overlay mount|"
    r"No such container|no space left on device|Cannot connect to the Docker daemon",
    re.IGNORECASE,
)


def _engine_hiccup(report: GradeReport) -> bool:
    build = next((c for c in report.checks if c.name == "build"), None)
    return (
        build is not None
        and build.status is Status.FAILED
        and bool(_ENGINE_FAULTS.search(build.log or ""))
    )


class _watchdog:
    """Removes every container and network of ``grade_id`` if the grade outlives ``limit``."""

    def __init__(self, engine: Any, grade_id: str, limit: float) -> None:
        self._timer = threading.Timer(limit, engine.remove_grade, args=(grade_id,))
        self._timer.daemon = True

    def __enter__(self) -> None:
        self._timer.start()

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


def _with_submission(report: GradeReport, job: Job) -> GradeReport:
    provenance = {**report.provenance, "submission": {"student": job.student, "digest": job.digest}}
    return dataclasses.replace(report, provenance=provenance)


def rejected(exercise: Exercise, student: str, digest: str, why: str) -> GradeReport:
    """A graded zero for a submission bb could not even unpack (the learner's to fix)."""
    check = CheckResult(
        name="submission",
        description="the submission can be unpacked",
        status=Status.FAILED,
        message=why,
        hint="Submit your project folder (or a .zip/.tar.gz of it) without build output.",
    )
    skipped = GradeReport(exercise.id, exercise.title, (check,), 0.0, {})
    return dataclasses.replace(
        skipped, provenance={"submission": {"student": student, "digest": digest}}
    )


def write_results(out: Path, report: GradeReport) -> None:
    """The report in every format, each file written atomically."""
    for fmt, name in _FILES.items():
        write_atomically(out / name, render(report, fmt))


def earlier_result(out: Path, digest: str) -> GradeReport | None:
    """The graded result an earlier run wrote for exactly this content, if any."""
    try:
        document = json.loads((out / RESULT_FILE).read_text(encoding="utf-8"))
        report = from_json(document)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    same = report.provenance.get("submission", {}).get("digest") == digest
    return report if same and report.outcome is Outcome.GRADED else None


# -- the class -------------------------------------------------------------------------------


def grade_class(
    pack: Pack,
    exercise: Exercise,
    submissions: Iterable[Submission],
    *,
    out: Path,
    jobs: int = 2,
    timeout: float | None = None,
    regrade: bool = False,
    isolation: Isolation = Isolation.STRICT,
    on_event: Callable[[Event], None] | None = None,
    runner: Callable[[Job], tuple[GradeReport, int]] | None = None,
) -> list[StudentResult]:
    """Grade every submission, ``jobs`` at a time; write each one's files and the class's.

    Args:
        timeout: each grade's wall-clock limit [default: the exercise's].
        isolation: strict by default: a class's code is strangers' code.
        runner: grades one prepared job (default: here, on this machine's engine); the
            distributed runner sends it to a worker instead.
    """
    emit = on_event or (lambda _event: None)
    if timeout is not None:
        grader = exercise.grader.model_copy(update={"timeout": timeout})
        exercise = exercise.model_copy(update={"grader": grader})
    grade_one = runner or (lambda job: grade_job(pack, exercise, job, isolation=isolation))
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="bb-class-"))
    results: dict[str, StudentResult] = {}
    lock = threading.Lock()
    queue = list(submissions)
    emit({"event": "start", "submissions": len(queue), "jobs": jobs})

    def work(submission: Submission) -> StudentResult:
        student_out = out / "students" / submission.student
        project = scratch / submission.student
        try:
            unpack(submission, project)
        except SubmissionRejected as exc:
            report = rejected(exercise, submission.student, "", str(exc))
            write_results(student_out, report)
            return StudentResult(submission.student, "", report, attempts=1)
        digest = project_digest(project)
        if not regrade and (earlier := earlier_result(student_out, digest)) is not None:
            shutil.rmtree(project, ignore_errors=True)
            return StudentResult(submission.student, digest, earlier, attempts=0, reused=True)
        emit({"event": "grading", "student": submission.student})
        try:
            report, attempts = grade_one(Job(submission.student, digest, project, student_out))
        finally:
            shutil.rmtree(project, ignore_errors=True)
        return StudentResult(submission.student, digest, report, attempts)

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs))
    try:
        futures = {pool.submit(work, s): s for s in queue}
        for future in concurrent.futures.as_completed(futures):
            submission = futures[future]
            try:
                result = future.result()
            except BBError as exc:  # the pack itself broke: say so, go on with the rest
                report = not_graded(exercise.id, exercise.title, exc.message)
                result = StudentResult(submission.student, "", report, attempts=1)
            with lock:
                results[submission.student] = result
            emit(_finished_event(result))
    except BaseException:
        # Ctrl-C or SIGTERM: no queued submission starts. The running ones finish their grade
        # (it is recorded, and reused by the next run), bounded by the grade's time limit.
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)
        shutil.rmtree(scratch, ignore_errors=True)
    ordered = [results[s.student] for s in queue if s.student in results]
    write_class_files(out, exercise, ordered)
    emit({"event": "done", "graded": sum(r.report.outcome is Outcome.GRADED for r in ordered)})
    return ordered


def _finished_event(result: StudentResult) -> Event:
    report = result.report
    return {
        "event": "reused" if result.reused else "finished",
        "student": result.student,
        "outcome": report.outcome.value,
        "score": report.score,
        "max_score": report.max_score,
        "passed": report.passed,
        "attempts": result.attempts,
        "reason": report.reason,
    }


def write_class_files(out: Path, exercise: Exercise, results: list[StudentResult]) -> None:
    """grades.csv and report.html for the whole class."""
    from bb.results.class_report import grades_csv, html_report

    write_atomically(out / "grades.csv", grades_csv(results))
    write_atomically(out / "report.html", html_report(exercise, results))
    summary = [
        {"student": r.student, "digest": r.digest, "attempts": r.attempts, **to_json(r.report)}
        for r in results
    ]
    write_atomically(out / "class.json", json.dumps(summary, indent=1, ensure_ascii=False))
