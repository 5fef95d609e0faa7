"""Grading: build the learner's app, start it beside its services, run the grader suite.

Stages run in order — build, services, migrate, app, checks — and each is reported as a check
of its own. When a stage fails, the grader suite still lists its checks, each skipped with the
reason, so the learner sees the one real problem instead of twenty connection errors.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bb import journal
from bb.errors import ContentError, EnvironmentProblem
from bb.isolation import Isolation
from bb.pack import Exercise, Pack, Readiness
from bb.report import CheckResult, GradeReport, Status
from bb.runtime import MANAGED, Confinement, ContainerSpec, Engine, free_port

Progress = Callable[[str], None]

#: Labels of the images built from learners' projects.
APP_IMAGE = "io.bb.app"
WORKSPACE = "io.bb.workspace"

#: pytest exit codes that mean the grader suite itself is broken, never a pass.
_BROKEN_SUITE = {
    2: "was interrupted by errors while collecting checks",
    3: "hit an internal error",
    4: "was called wrongly",
    5: "holds no checks",
}


class StageFailed(Exception):
    """A stage did not succeed; carries the check that says why."""

    def __init__(self, check: CheckResult) -> None:
        super().__init__(check.message)
        self.check = check


@dataclasses.dataclass
class _Running:
    """What one grade has started, for probes, the grader context and teardown."""

    grade_id: str
    network: str = ""
    services: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    isolation: Isolation = Isolation.STANDARD
    #: Under strict isolation: the host port on 127.0.0.1 the relay forwards to each container
    #: (by alias: the services' names and "app").
    relayed: dict[str, int] = dataclasses.field(default_factory=dict)


def app_image_tag(exercise: Exercise, workspace: Path) -> str:
    """One tag per workspace, so rebuilding after an edit reuses the build cache."""
    digest = hashlib.sha256(str(workspace.resolve()).encode()).hexdigest()[:10]
    return f"bb/app/{exercise.id}-{digest}:latest"


def grade_exercise(
    pack: Pack,
    exercise: Exercise,
    workspace: Path,
    *,
    engine: Engine,
    on_progress: Progress | None = None,
    keep_image: bool = True,
    isolation: Isolation = Isolation.STANDARD,
) -> GradeReport:
    """Grade ``workspace`` as an attempt at ``exercise``.

    Args:
        keep_image: keep the app's image afterwards (its layers make the next build fast).
        isolation: how far the graded code is fenced in (see :class:`bb.isolation.Isolation`).

    Raises:
        EnvironmentProblem: an image is missing or Docker failed.
        ContentError: the grader suite is broken.
    """
    say = on_progress or (lambda _message: None)
    started = time.monotonic()
    deadline = started + exercise.grader.timeout
    timings: dict[str, float] = {}
    checks: list[CheckResult] = []
    _require_images(pack, exercise, engine)
    if isolation is Isolation.STRICT:
        _require_relay(engine)

    running = _Running(grade_id=secrets.token_hex(4), isolation=isolation)
    blocked: str | None = None
    tag = app_image_tag(exercise, workspace)
    entry = journal.open_entry(running.grade_id)
    suite: _SuiteRun | None = None
    try:
        suite = _SuiteRun(pack, exercise)
        stages: list[tuple[str, Callable[[], CheckResult | None]]] = [
            (
                "build",
                lambda: _build_app(engine, workspace, tag, deadline, say, exercise, isolation),
            ),
            ("services", lambda: _start_services(pack, exercise, engine, running, deadline, say)),
            ("migrate", lambda: _migrate(exercise, engine, running, tag, deadline, say)),
            ("app", lambda: _start_app(exercise, engine, running, tag, deadline, say)),
        ]
        for stage, action in stages:
            t0 = time.monotonic()
            try:
                check = action()
            except StageFailed as failure:
                checks.append(failure.check)
                blocked = f"can't check until this passes: {failure.check.description}"
                break
            finally:
                timings[stage] = time.monotonic() - t0
            if check is not None:
                checks.append(check)
        t0 = time.monotonic()
        say("running the checks")
        app = running.services.get("app")
        context = {
            "grade_id": running.grade_id,
            "seed": secrets.randbits(32),
            "blocked": blocked,
            "app_url": f"http://127.0.0.1:{app['port']}" if app else "http://127.0.0.1:9",
            "services": running.services,
        }
        checks.extend(suite.finish(context, deadline))
        timings["checks"] = time.monotonic() - t0
    finally:
        t0 = time.monotonic()
        if suite is not None:
            suite.close()
        engine.remove_grade(running.grade_id)
        if not keep_image:
            engine.remove_image(tag)
        entry.unlink(missing_ok=True)
        timings["teardown"] = time.monotonic() - t0
    return GradeReport(
        exercise=exercise.id,
        title=exercise.title,
        checks=tuple(checks),
        duration=time.monotonic() - started,
        timings=timings,
        isolation=isolation.value,
    )


def _require_images(pack: Pack, exercise: Exercise, engine: Engine) -> None:
    tags = [pack.image_tag(name) for name in pack.course.images]
    missing = [tag for tag in tags if not engine.has_image(tag)]
    if missing:
        raise EnvironmentProblem(
            f"The course images are not built yet ({', '.join(missing)}).",
            hint="Run `bb setup` once; after it, grading works offline.",
        )
    for service in exercise.services.values():
        ref = pack.image_ref(service.image)
        if not engine.has_image(ref):
            engine.pull(ref)


def _stage(
    name: str, description: str, status: Status, message: str = "", **kw: Any
) -> CheckResult:
    return CheckResult(name=name, description=description, status=status, message=message, **kw)


def _time_left(deadline: float) -> float:
    return deadline - time.monotonic()


def _out_of_time(name: str, description: str) -> StageFailed:
    return StageFailed(
        _stage(
            name, description, Status.FAILED, "The grading time limit was reached during this step."
        )
    )


def _build_app(
    engine: Engine,
    workspace: Path,
    tag: str,
    deadline: float,
    say: Progress,
    exercise: Exercise,
    isolation: Isolation,
) -> CheckResult:
    description = "your app's image builds from its Dockerfile"
    if not (workspace / "Dockerfile").is_file():
        raise StageFailed(
            _stage(
                "build",
                description,
                Status.FAILED,
                f"There is no Dockerfile in {workspace}.",
                hint="Restore the Dockerfile from the starter project.",
            )
        )
    say("building your app's image")
    labels = {MANAGED: "1", APP_IMAGE: "1", WORKSPACE: str(workspace.resolve())}
    offline = isolation is Isolation.STRICT and not exercise.app.build_network
    outcome = engine.build(
        workspace, tag, labels=labels, deadline=deadline, network_mode="none" if offline else None
    )
    if not outcome.ok:
        tail = "\n".join(outcome.log.splitlines()[-15:])
        hint = "Read the build log above; the last lines say what broke."
        if offline:
            hint += " Under strict isolation the build has no network: install nothing in it."
        raise StageFailed(
            _stage(
                "build",
                description,
                Status.FAILED,
                "`docker build` failed.",
                log=tail,
                hint=hint,
            )
        )
    return _stage("build", description, Status.PASSED)


def _wait_ready(
    engine: Engine, container: str, readiness: Readiness, port: int, deadline: float
) -> tuple[str | None, bool]:
    from bb.probes import wait_ready

    return wait_ready(
        readiness, port, exited=lambda: engine.has_exited(container), deadline=deadline
    )


def _start_services(
    pack: Pack,
    exercise: Exercise,
    engine: Engine,
    running: _Running,
    deadline: float,
    say: Progress,
) -> CheckResult | None:
    running.network = f"bb-{running.grade_id}"
    _open_networks(exercise, engine, running)
    if not exercise.services:
        return None
    description = f"services start ({', '.join(exercise.services)})"
    say(f"starting {', '.join(exercise.services)}")
    started: list[tuple[str, str, int]] = []
    for name, service in exercise.services.items():
        ports, port = _publish(running, name, service.port)
        container = engine.run(
            ContainerSpec(
                name=f"bb-{running.grade_id}-{name}",
                image=pack.image_ref(service.image),
                environment=service.environment,
                command=service.command,
                aliases=(name,),
                ports=ports,
                tmpfs=tuple(service.tmpfs),
                memory=service.limits.memory,
                cpus=service.limits.cpus,
                pids=service.limits.pids,
                outside_names=_outside_names(running),
            ),
            network=running.network,
            grade_id=running.grade_id,
        )
        entry: dict[str, Any] = {
            "container": container,
            "port": port,
            "ready": service.ready.model_dump(mode="json"),
        }
        if service.ready.postgres is not None:
            pg = service.ready.postgres
            entry["dsn"] = f"postgresql://{pg.user}:{pg.password}@127.0.0.1:{port}/{pg.dbname}"
        running.services[name] = entry
        started.append((name, container, port))
    for name, container, port in started:
        reason, exited = _wait_ready(
            engine, container, exercise.services[name].ready, port, deadline
        )
        if reason is not None:
            # A course service that will not start is not the learner's doing.
            raise StageFailed(
                _stage(
                    "services",
                    description,
                    Status.ERROR,
                    f"The {name} service "
                    f"{'exited' if exited else 'did not become ready'} ({reason}).",
                    log=engine.logs(container, tail=20),
                    hint="This is not your code: check that Docker has enough memory, then retry.",
                )
            )
    return _stage("services", description, Status.PASSED)


def _app_environment(exercise: Exercise) -> dict[str, str]:
    return {**exercise.app.environment, "PORT": str(exercise.app.port)}


def _migrate(
    exercise: Exercise, engine: Engine, running: _Running, tag: str, deadline: float, say: Progress
) -> CheckResult | None:
    if not exercise.app.migrate:
        return None
    command = " ".join(exercise.app.migrate)
    description = f"migrations run (`{command}`)"
    say("running your migrations")
    container = engine.run(
        ContainerSpec(
            name=f"bb-{running.grade_id}-migrate",
            image=tag,
            environment=_app_environment(exercise),
            command=exercise.app.migrate,
            memory=exercise.app.limits.memory,
            cpus=exercise.app.limits.cpus,
            pids=exercise.app.limits.pids,
            confinement=_confinement(running),
            outside_names=_outside_names(running),
        ),
        network=running.network,
        grade_id=running.grade_id,
    )
    code = engine.wait(container, timeout=_time_left(deadline))
    if code is None:
        raise _out_of_time("migrate", description)
    if code != 0:
        raise StageFailed(
            _stage(
                "migrate",
                description,
                Status.FAILED,
                f"`{command}` exited with status {code}.",
                log=engine.logs(container, tail=20),
                hint="Run your migrations against a fresh database; the log's last lines say "
                "what broke.",
            )
        )
    return _stage("migrate", description, Status.PASSED)


def _start_app(
    exercise: Exercise, engine: Engine, running: _Running, tag: str, deadline: float, say: Progress
) -> CheckResult:
    from bb.probes import describe

    app = exercise.app
    description = f"your app starts and answers ({describe(app.ready)})"
    say("starting your app")
    ports, port = _publish(running, "app", app.port)
    container = engine.run(
        ContainerSpec(
            name=f"bb-{running.grade_id}-app",
            image=tag,
            environment=_app_environment(exercise),
            aliases=("app",),
            ports=ports,
            memory=app.limits.memory,
            cpus=app.limits.cpus,
            pids=app.limits.pids,
            confinement=_confinement(running),
            outside_names=_outside_names(running),
        ),
        network=running.network,
        grade_id=running.grade_id,
    )
    running.services["app"] = {
        "container": container,
        "port": port,
        "ready": app.ready.model_dump(mode="json"),
    }
    reason, exited = _wait_ready(engine, container, app.ready, port, deadline)
    if reason is not None:
        if exited:
            _, code = engine.state(container)
            message = f"Your app exited with status {code} before it was ready."
        else:
            message = f"Your app was not ready after {app.ready.timeout:g} s ({reason})."
        raise StageFailed(
            _stage(
                "app",
                description,
                Status.FAILED,
                message,
                log=engine.logs(container, tail=25),
                hint="Start it yourself (`docker build` then `docker run`) and read its log; "
                "the last "
                "lines above usually name the problem.",
            )
        )
    return _stage("app", description, Status.PASSED)


# -- strict isolation ----------------------------------------------------------------------

#: The relay listens on these ports inside its container, one per forwarded container.
_RELAY_FIRST_PORT = 40000


def _require_relay(engine: Engine) -> None:
    from bb.images import relay_image_tag

    if not engine.has_image(relay_image_tag()):
        raise EnvironmentProblem(
            f"Strict isolation needs bb's relay image ({relay_image_tag()}), which is not "
            "built yet.",
            hint="Run `bb setup` once; after it, grading works offline.",
        )


def _open_networks(exercise: Exercise, engine: Engine, running: _Running) -> None:
    """Create the grade's network. Under strict isolation it is internal, and a relay
    container, the only one also on an ordinary bridge, publishes the app's and the services'
    ports on 127.0.0.1 (the host has no address on the internal network, so a port published
    there would lead nowhere)."""
    if running.isolation is not Isolation.STRICT:
        engine.create_network(running.network, running.grade_id)
        return
    from bb.images import relay_image_tag

    engine.create_internal_network(running.network, running.grade_id)
    edge = f"{running.network}-edge"
    engine.create_network(edge, running.grade_id)
    targets = {name: service.port for name, service in exercise.services.items()}
    targets["app"] = exercise.app.port
    forwards, published = [], {}
    for offset, (alias, port) in enumerate(targets.items()):
        listen = _RELAY_FIRST_PORT + offset
        forwards.append(f"{listen}={alias}:{port}")
        published[listen] = running.relayed[alias] = free_port()
    engine.run(
        ContainerSpec(
            name=f"bb-{running.grade_id}-relay",
            image=relay_image_tag(),
            environment={},
            command=forwards,
            ports=published,
            # One process per open connection: the graders' bursts open a hundred at once.
            memory="256m",
            cpus=1.0,
            pids=1024,
            confinement=Confinement(writable=()),
            also_on=(running.network,),
            # The relay looks its targets up per connection; while one is down (a restart, a
            # crash) the name is unknown, and must not be asked of the world.
            outside_names=False,
        ),
        network=edge,
        grade_id=running.grade_id,
    )


def _publish(running: _Running, alias: str, container_port: int) -> tuple[dict[int, int], int]:
    """How a container's port reaches the host: the ports to publish on the container itself,
    and the host port the graders use (the relay's, under strict isolation)."""
    if running.isolation is Isolation.STRICT:
        return {}, running.relayed[alias]
    port = free_port()
    return {container_port: port}, port


def _outside_names(running: _Running) -> bool:
    """Whether names outside the grade resolve: not under strict isolation, where no lookup
    may leave (a DNS query is a way out too)."""
    return running.isolation is not Isolation.STRICT


def _confinement(running: _Running) -> Confinement | None:
    """The lock-down of the learner's own containers (app, migrations)."""
    return Confinement() if running.isolation is Isolation.STRICT else None


class _SuiteRun:
    """The grader suite under pytest, in a child process started before the stack is up.

    pytest spends seconds importing and collecting; that overlaps the build and the container
    start-up. The plugin then waits for the context file, which :meth:`finish` writes.
    """

    def __init__(self, pack: Pack, exercise: Exercise) -> None:
        self.suite = pack.grader_dir(exercise)
        self.timeout = exercise.grader.timeout
        self.scratch = Path(tempfile.mkdtemp(prefix="bb-grade-"))
        self.results = self.scratch / "results.jsonl"
        self.output = self.scratch / "pytest.log"
        # An ini file of our own: the suite must not pick up whatever pytest settings lie
        # around it (a repository's pyproject.toml, say).
        (self.scratch / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
        command = [
            sys.executable, "-m", "pytest", str(self.suite),
            "-p", "bb.grader_plugin", "-p", "no:cacheprovider",
            "-c", str(self.scratch / "pytest.ini"), "--rootdir", str(self.scratch),
            "--bb-results", str(self.results),
            "-q", "--no-header", "-rN", "--tb=short", "-W", "ignore::DeprecationWarning",
        ]  # fmt: skip
        env = {**os.environ, "BB_GRADE_CONTEXT": str(self.scratch / "context.json"),
               "BB_GRADE_PARENT": str(os.getpid()), "PYTHONDONTWRITEBYTECODE": "1"}  # fmt: skip
        with self.output.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=self.scratch, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def finish(self, context: dict[str, Any], deadline: float) -> list[CheckResult]:
        """Hand the suite the stack's context, wait for it, and return its checks.

        Raises:
            ContentError: the suite is broken (no checks, collection errors, pytest misuse).
        """
        staged = self.scratch / "context.json.partial"
        staged.write_text(json.dumps(context), encoding="utf-8")
        staged.rename(self.scratch / "context.json")  # atomic: the plugin never reads half
        timed_out = False
        try:
            code = self.process.wait(timeout=max(_time_left(deadline), 1.0))
        except subprocess.TimeoutExpired:
            timed_out = True
            self.stop()
            code = self.process.returncode
        checks = [
            _check_from_record(json.loads(line))
            for line in (self.results.read_text(encoding="utf-8").splitlines()
                         if self.results.exists() else [])
            if line.strip()
        ]  # fmt: skip
        if timed_out:
            checks.append(_stage(
                "time-limit", f"grading finishes within {self.timeout:g} s", Status.FAILED,
                "Grading was stopped at its time limit; the checks after this point did not run.",
                hint="A request that never returns (a deadlock, a lock held forever, an infinite "
                "loop) stops the whole grade. Look for one.",
            ))  # fmt: skip
            return checks
        if code in _BROKEN_SUITE:
            log = self.output.read_text(encoding="utf-8", errors="replace")
            tail = "\n".join(log.splitlines()[-25:])
            raise ContentError(
                f"The grader suite {self.suite} {_BROKEN_SUITE[code]} "
                f"(pytest exit {code}).\n{tail}",
                hint="This is a course bug, not yours: run `bb dev check` on the pack.",
            )
        if code not in (0, 1):
            raise ContentError(f"The grader suite {self.suite} ended with pytest exit {code}.")
        return checks

    def stop(self) -> None:
        """Kill pytest (and anything it started) if it still runs."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.scratch, ignore_errors=True)


def _check_from_record(record: dict[str, Any]) -> CheckResult:
    return CheckResult(
        name=record["name"],
        description=record["description"],
        status=Status(record["status"]),
        message=record.get("message") or "",
        expected=record.get("expected"),
        actual=record.get("actual"),
        hint=record.get("hint"),
        duration=float(record.get("duration") or 0.0),
    )


def sweep_leftovers(engine: Engine) -> int:
    """Remove what killed grades left behind (containers, networks), and app images that are
    stale: untagged by a rebuild, or built from a workspace that no longer exists."""
    removed = engine.sweep()
    engine.prune_dangling(f"{APP_IMAGE}=1")
    for image_id, labels in engine.images_labelled(f"{APP_IMAGE}=1"):
        if not Path(labels.get(WORKSPACE, "/")).is_dir():
            engine.remove_image(image_id)
    for entry in journal.stale_entries():
        entry.unlink(missing_ok=True)
    return removed


def grade_workspace(
    workspace: Path,
    *,
    on_progress: Progress | None = None,
    isolation: Isolation = Isolation.STANDARD,
) -> tuple[str, GradeReport]:
    """Grade the project in ``workspace``, found through its record file.

    Returns the course id (for the progress store) and the report.

    Raises:
        UserError: ``workspace`` is not a bb project, or its pack has moved.
        EnvironmentProblem: Docker or an image is missing.
        ContentError: the pack or the grader suite is broken.
    """
    from bb.errors import UserError
    from bb.pack import load_pack
    from bb.scaffold import read_record

    record = read_record(workspace)
    if not (record.pack / "course" / "course.yaml").is_file():
        raise UserError(
            f"The pack this project came from is gone ({record.pack}).",
            hint=f"Restore it, or edit the pack path in {workspace / '.bb' / 'project.yaml'}.",
        )
    pack = load_pack(record.pack)
    exercise = pack.exercise(record.exercise)
    engine = Engine.connect()
    sweep_leftovers(engine)
    report = grade_exercise(
        pack, exercise, workspace, engine=engine, on_progress=on_progress, isolation=isolation
    )
    return pack.course.id, report
