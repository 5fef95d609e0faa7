"""Grading across machines: a Celery queue on a Redis broker feeding ``bb worker`` processes,
each on a machine with its own Docker engine, each grading with exactly the runtime
``bb grade`` uses (limits, cleanup and results are the same everywhere).

Tasks are JSON: the submission's project (and the pack, unless the worker already has that
version of it) travel inside the task as base64 tar.gz. Delivery is at least once: a task is
acknowledged only after it finished (late acks), requeued if its worker process dies, one at a
time per worker process (prefetch 1), and redelivered after the broker's visibility timeout if
a whole worker machine vanished. A task delivered twice grades twice and writes the same
files: the class's results hold one row per student whatever happens.

Needs the optional extra: ``pip install 'bb[cluster]'``.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import shutil
import socket
import tarfile
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bb import paths
from bb.errors import EnvironmentProblem, UserError

if TYPE_CHECKING:
    from celery import Celery

    from bb.grading.classroom import Job
    from bb.pack.manifest import Exercise, Pack
    from bb.results.report import GradeReport

TASK = "bb.grade_submission"
DEFAULT_QUEUE = "bb-grading"
#: A task carries at most this much (compressed project plus pack); larger ones are refused.
MAX_TASK_BYTES = 64 * 1024 * 1024
#: Redelivery after a lost worker waits this long; it must exceed the longest grade.
DEFAULT_VISIBILITY_TIMEOUT = 3600.0
#: The end of the app's log sent back with each result.
_APP_LOG_BYTES = 256 * 1024


def make_app(broker: str, *, visibility_timeout: float = DEFAULT_VISIBILITY_TIMEOUT) -> Celery:
    """The Celery app bb's workers and its class grading share.

    Raises:
        EnvironmentProblem: Celery is not installed (the ``cluster`` extra).
    """
    try:
        from celery import Celery
    except ImportError:
        raise EnvironmentProblem(
            "Distributed grading needs Celery, which is not installed.",
            hint="pip install 'bb[cluster]'",
        ) from None
    if not broker.startswith(("redis://", "rediss://")):
        raise UserError(
            f"The broker must be a Redis URL, not {broker!r}.", hint="e.g. redis://host:6379/0"
        )
    app = Celery("bb", broker=broker, backend=broker, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={"visibility_timeout": visibility_timeout},
        result_backend_transport_options={"visibility_timeout": visibility_timeout},
        result_expires=7 * 24 * 3600,
        task_default_queue=DEFAULT_QUEUE,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    app.task(name=TASK, bind=False)(grade_task)
    return app


def run_worker(
    broker: str, *, concurrency: int, queue: str, visibility_timeout: float, name: str
) -> None:
    """Run a worker until it is stopped (SIGTERM finishes the grades in flight first)."""
    from bb.stack.engine import Engine
    from bb.stack.lifecycle import sweep_leftovers

    sweep_leftovers(Engine.connect())  # what a killed worker here left behind
    app = make_app(broker, visibility_timeout=visibility_timeout)
    app.worker_main(
        argv=[
            "worker",
            f"--concurrency={concurrency}",
            f"--queues={queue}",
            f"--hostname={name}@{socket.gethostname()}",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
        ]
    )


# -- the task, on a worker -------------------------------------------------------------------


def grade_task(payload: dict[str, Any]) -> dict[str, Any]:
    """Grade one submission sent by ``bb class grade --broker``; return its result document."""
    from bb.grading.classroom import Job, grade_job
    from bb.pack.manifest import load_pack
    from bb.results.report import to_json
    from bb.stack.engine import Engine
    from bb.stack.isolation import Isolation
    from bb.stack.lifecycle import sweep_leftovers

    sweep_leftovers(Engine.connect())
    pack = load_pack(_pack_for(payload))
    exercise = pack.exercise(payload["exercise"])
    if payload.get("timeout"):
        grader = exercise.grader.model_copy(update={"timeout": float(payload["timeout"])})
        exercise = exercise.model_copy(update={"grader": grader})
    scratch = Path(tempfile.mkdtemp(prefix="bb-task-"))
    try:
        project = scratch / "project"
        _unpack(payload["project"], project)
        job = Job(payload["student"], payload["digest"], project, scratch / "out")
        isolation = Isolation(payload.get("isolation") or Isolation.STRICT)
        report, attempts = grade_job(pack, exercise, job, isolation=isolation)
        log_file = job.out / "app.log"
        log = log_file.read_bytes()[-_APP_LOG_BYTES:] if log_file.is_file() else b""
        return {
            "document": to_json(report),
            "attempts": attempts,
            "app_log": log.decode("utf-8", "replace"),
            "worker": socket.gethostname(),
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _pack_for(payload: dict[str, Any]) -> Path:
    """The pack the task names: this machine's copy of that exact version, unpacked once."""
    digest = str(payload["pack_digest"])
    if not digest.isalnum():
        raise UserError("The task names a malformed pack digest.")
    home = paths.home() / "cluster-packs" / digest
    if not (home / "course" / "course.yaml").is_file():
        home.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{digest}.", dir=home.parent))
        try:
            _unpack(payload["pack"], staging / "pack")
            with _suppress_exists():
                (staging / "pack").rename(home)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return home


class _suppress_exists:
    """Another worker process unpacked the same version first: theirs is as good."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, value: object, tb: object) -> bool:
        return isinstance(value, OSError) and value.errno in (17, 39)  # EEXIST, ENOTEMPTY


# -- the sender's side -----------------------------------------------------------------------


def pack_archive(root: Path) -> str:
    return _archive(root, skip={"__pycache__", ".git"})


@dataclasses.dataclass
class CeleryRunner:
    """Sends each prepared submission to the queue and waits for its result."""

    app: Celery
    pack: Pack
    exercise: Exercise
    queue: str = DEFAULT_QUEUE
    timeout: float | None = None
    isolation: str = "strict"

    def __post_init__(self) -> None:
        self._pack_archive = pack_archive(self.pack.root)
        self._pack_digest = self.pack.identity.digest

    def __call__(self, job: Job) -> tuple[GradeReport, int]:
        from bb.grading.classroom import write_results
        from bb.results.report import from_json

        project = _archive(job.project, skip=set())
        size = len(project) + len(self._pack_archive)
        if size > MAX_TASK_BYTES:
            raise EnvironmentProblem(
                f"{job.student}'s task would carry {size / 2**20:.0f} MiB; the queue takes "
                f"{MAX_TASK_BYTES / 2**20:.0f} MiB at most.",
                hint="Grade this one locally (without --broker).",
            )
        payload = {
            "student": job.student,
            "digest": job.digest,
            "exercise": self.exercise.id,
            "pack_digest": self._pack_digest,
            "pack": self._pack_archive,
            "project": project,
            "timeout": self.timeout,
            "isolation": self.isolation,
        }
        limit = (self.timeout or self.exercise.grader.timeout) * 4 + 600
        result = self.app.send_task(TASK, args=[payload], queue=self.queue)
        try:
            answer = result.get(timeout=limit, propagate=True)
        finally:
            result.forget()
        report = from_json(answer["document"])
        job.out.mkdir(parents=True, exist_ok=True)
        write_results(job.out, report)
        (job.out / "app.log").write_text(answer.get("app_log", ""), encoding="utf-8")
        return report, int(answer.get("attempts", 1))


def _archive(root: Path, *, skip: set[str]) -> str:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(root.rglob("*")):
            relative = path.relative_to(root)
            if any(part in skip for part in relative.parts) or path.is_symlink():
                continue
            tar.add(path, arcname=relative.as_posix(), recursive=False)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _unpack(encoded: str, destination: Path) -> None:
    data = base64.b64decode(encoded, validate=True)
    if len(data) > MAX_TASK_BYTES:
        raise UserError("The task's archive is larger than a task may carry.")
    destination.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(destination, filter="data")
