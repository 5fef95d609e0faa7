"""Grading: build the learner's app, start it beside its services, run the grader suite.

Stages run in order — build, services, migrate, app, checks — and each is reported as a check
of its own. When a stage fails, the grader suite still lists its checks, each skipped with the
reason, so the learner sees the one real problem instead of twenty connection errors.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from bb import __version__
from bb.errors import BBError, ContentError, EnvironmentProblem, UserError
from bb.pack.manifest import Exercise, Pack, PackIdentity
from bb.results.report import CheckResult, GradeReport, Selection, Status, weighed
from bb.stack import journal
from bb.stack.engine import ENGINE_HINT, Engine, is_engine_fault
from bb.stack.isolation import Isolation
from bb.stack.lifecycle import (
    ProjectStack,
    StackFailed,
    require_relay,
    sweep_leftovers,
)

Progress = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class CheckStarted:
    """A check of the grader suite began (stages announce themselves through ``Progress``)."""

    name: str
    description: str
    #: ``time.monotonic()`` when bb learned of it (within a tenth of a second of the start).
    at: float


@dataclasses.dataclass(frozen=True)
class CheckFinished:
    """A check, or a stage, reached its result."""

    check: CheckResult


GradeEvent = CheckStarted | CheckFinished
OnEvent = Callable[[GradeEvent], None]


#: How much of the app's log a grade keeps when asked to (class grading keeps it per student).
APP_LOG_LINES = 2000

#: pytest exit codes that mean the grader suite itself is broken, never a pass.
_BROKEN_SUITE = {
    2: "was interrupted by errors while collecting checks",
    3: "hit an internal error",
    4: "was called wrongly",
    5: "holds no checks",
}


def grade_exercise(
    pack: Pack,
    exercise: Exercise,
    workspace: Path,
    *,
    engine: Engine,
    on_progress: Progress | None = None,
    keep_image: bool = True,
    grade_id: str | None = None,
    app_log: Path | None = None,
    isolation: Isolation = Isolation.STANDARD,
    keep_warm: bool = False,
    repro: Mapping[str, str] | None = None,
    select: str | None = None,
    on_event: OnEvent | None = None,
) -> GradeReport:
    """Grade ``workspace`` as an attempt at ``exercise``.

    A grade that cannot reach a verdict raises, and the error carries the report so far in
    its ``report`` (the CLI shows it before the error).

    Args:
        keep_image: keep the app's image afterwards (its layers make the next build fast).
        grade_id: the id every container and network of this grade is labelled with (a
            watchdog outside can remove them all by it); a fresh one by default.
        app_log: where to save the end of the app's log before teardown, if anywhere.
        isolation: how far the graded code is fenced in (see :class:`bb.stack.isolation.Isolation`).
        keep_warm: keep the services warm for the next grade of this project, and reuse them
            if they already are (their state is reset first; see :mod:`bb.stack.warm`).
        repro: where `bb up` serves this project (``debug_url``, ``debug_dsn``), so failed
            checks can print commands that reproduce them there.
        select: a ``-k`` expression on check names: only the checks it selects run (every
            stage still does: each check needs the running stack), and the report is partial
            (never a pass).
        on_event: told of each check as it starts and of each check and stage as it ends,
            while the grade runs.

    Raises:
        UserError: ``select`` is not an expression, or selects none of the suite's checks.
        EnvironmentProblem: an image is missing, or Docker failed or went away mid-grade.
        ContentError: the grader suite is broken: it collects nothing, dies before every
            check reported, or hangs on its own while the app is idle.
    """
    say = on_progress or (lambda _message: None)
    tell = on_event or (lambda _event: None)
    if select is not None:
        check_selection(select)
    started = time.monotonic()
    deadline = started + exercise.grader.timeout
    timings: dict[str, float] = {}
    checks: list[CheckResult] = []
    with _engine_faults(engine):
        _require_images(pack, exercise, engine)
        if isolation is Isolation.STRICT:
            require_relay(engine)

    stack = ProjectStack(
        pack,
        exercise,
        workspace,
        engine,
        grade_id=grade_id or secrets.token_hex(4),
        isolation=isolation,
        keep_warm=keep_warm,
    )
    blocked: str | None = None
    entry = journal.open_entry(stack.grade_id)
    suite: _SuiteRun | None = None
    fault: BBError | None = None
    stage_fault: BBError | None = None
    try:
        with _engine_faults(engine):
            suite = _SuiteRun(pack, exercise, select=select, on_event=on_event)
            for stage, description, action in _stages(stack, deadline, say):
                suite.poll()  # a -k that selects nothing stops the grade here, not at its end
                t0 = time.monotonic()
                try:
                    ran = action()
                except StackFailed as failure:
                    check = _failed_stage(stage, description, failure, isolation)
                    checks.append(check)
                    tell(CheckFinished(check))
                    blocked = f"can't check until this passes: {description}"
                    if check.status is Status.ERROR:
                        # Not the learner's (a course service that will not start): the
                        # grade has no verdict, and says so once the checks are listed.
                        stage_fault = EnvironmentProblem(check.message, check.hint)
                    break
                finally:
                    timings[stage] = time.monotonic() - t0
                if ran is not False:
                    passed = _stage(stage, description, Status.PASSED)
                    checks.append(passed)
                    tell(CheckFinished(passed))
            t0 = time.monotonic()
            say("running the checks")
            context = {
                "grade_id": stack.grade_id,
                "seed": secrets.randbits(32),
                "blocked": blocked,
                "app_url": stack.app_url or "http://127.0.0.1:9",
                "app_urls": stack.app_urls,
                "services": stack.endpoints,
                # What a grader needs to run one-off commands in the app's image (stack.run).
                "app_image": stack.tag,
                "network": stack.network,
                "app_environment": stack.app_environment,
                "app_limits": exercise.app.limits.model_dump(mode="json"),
                **(repro or {}),
            }
            outcome = suite.finish(context, deadline, activity=stack.activity)
            checks.extend(outcome.checks)
            for check in outcome.checks:  # those the suite never reported (a hang, a death)
                if check.name not in suite.told:
                    tell(CheckFinished(check))
            timings["checks"] = time.monotonic() - t0
            fault = outcome.fault or stage_fault
            if fault is not None or not all(c.status is Status.PASSED for c in checks):
                # Checks fail, and graders die, when the engine vanishes under them: that is
                # neither the learner's doing nor the course's.
                _require_engine(engine)
    except BBError as exc:
        fault = exc
    finally:
        t0 = time.monotonic()
        if suite is not None:
            suite.close()
        if app_log is not None:
            with contextlib.suppress(BBError, OSError):  # a vanished engine has no log to give
                text = stack.app_log(APP_LOG_LINES)
                if text is not None:
                    app_log.write_text(text, encoding="utf-8")
        if stack.close(keep_image=keep_image):
            # (bb's home may have turned read-only; the entry then goes at a later sweep)
            with contextlib.suppress(OSError):
                entry.unlink(missing_ok=True)
        # else the entry stays: once this process is gone, the next bb command sweeps
        timings["teardown"] = time.monotonic() - t0
    grader = exercise.grader
    report = GradeReport(
        exercise=exercise.id,
        title=exercise.title,
        checks=tuple(weighed(c, grader.points, grader.visibility) for c in checks),
        duration=time.monotonic() - started,
        timings=timings,
        provenance=_provenance(pack, engine)
        if fault is None
        else {"pack": pack.identity.to_json()},
        complete=fault is None,
        isolation=isolation.value,
        selection=None
        if select is None
        else Selection(select, suite.left_out if suite is not None else ()),
    )
    if fault is not None:
        if not isinstance(fault, UserError):  # a usage error has no grade to show
            fault.report = report
        raise fault
    return report


def check_selection(pattern: str) -> None:
    """Refuse a ``-k`` pattern that is not an expression, before a grade is spent on it.

    Raises:
        UserError: naming the pattern and what is wrong with it.
    """
    from _pytest.mark.expression import Expression

    if not pattern.strip():
        raise UserError(
            "-k needs a pattern.", hint="e.g. `bb grade -k create` or `-k 'create and not bad'`."
        )
    try:
        Expression.compile(pattern)
    except SyntaxError as exc:
        raise UserError(
            f"-k {pattern!r} is not a pattern bb can read ({exc.msg}).",
            hint="Words match check names; join them with and, or, not and parentheses.",
        ) from None


def _provenance(pack: Pack, engine: Engine | None) -> dict[str, Any]:
    """What graded: the pack's version, bb's, and the ids of the images the course runs (when
    the engine is there to say)."""
    images = (
        {name: engine.image_id(pack.image_tag(name)) for name in pack.course.images}
        if engine is not None
        else {}
    )
    return {"pack": pack.identity.to_json(), "bb_version": __version__, "images": images}


@contextlib.contextmanager
def _engine_faults(engine: Engine) -> Iterator[None]:
    """Turn a fault of the Docker engine (it went away, or failed a request) into an
    EnvironmentProblem; any other error is checked against the engine too, since a vanished
    engine makes bb's own steps fail in odd ways."""
    try:
        yield
    except EnvironmentProblem:
        raise
    except BBError:
        _require_engine(engine)
        raise
    except Exception as exc:
        if is_engine_fault(exc) or not engine.answers():
            _require_engine(engine, exc)
            raise EnvironmentProblem(
                f"Docker failed during the grade ({_first_line(exc)}).",
                hint="Check the engine's health (`docker info`) and its free disk space, then "
                "grade again.",
            ) from None
        raise


def _require_engine(engine: Engine, cause: BaseException | None = None) -> None:
    """Raise an EnvironmentProblem if the engine no longer answers."""
    if engine.answers():
        return
    detail = f" ({_first_line(cause)})" if cause is not None else ""
    raise EnvironmentProblem(
        f"The Docker engine stopped answering during the grade{detail}.",
        hint=f"{ENGINE_HINT} The next bb command removes what this grade left behind.",
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _require_images(pack: Pack, exercise: Exercise, engine: Engine) -> None:
    tags = [pack.image_tag(name) for name in pack.course.images]
    missing = [tag for tag in tags if not engine.has_image(tag)]
    if missing:
        raise EnvironmentProblem(
            f"The course images are not built yet ({', '.join(missing)}).",
            hint="Run `bb setup` once; after it, grading works offline.",
        )
    refs = [pack.image_ref(service.image) for service in exercise.services.values()]
    if exercise.app.image is not None:
        refs.append(pack.image_ref(exercise.app.image))
    for ref in refs:
        if not engine.has_image(ref):
            engine.pull(ref)


def _stage(
    name: str, description: str, status: Status, message: str = "", **kw: Any
) -> CheckResult:
    return CheckResult(name=name, description=description, status=status, message=message, **kw)


def _time_left(deadline: float) -> float:
    return deadline - time.monotonic()


def _stages(
    stack: ProjectStack, deadline: float, say: Progress
) -> list[tuple[str, str, Callable[[], bool | None]]]:
    """The stages before the checks: name, what the learner sees, and the step (False when
    the exercise has nothing to do in it: no services, no migrations)."""
    from bb.stack.probes import describe

    exercise, pack = stack.exercise, stack.pack
    app = exercise.app
    built = (
        f"your app's image builds ({pack.image_ref(app.image)} + your files)"
        if app.image is not None
        else "your app's image builds from its Dockerfile"
    )
    migrate = " ".join(app.migrate or [])
    return [
        ("build", built, lambda: stack.build(deadline, say)),
        (
            "services",
            f"services start ({', '.join(exercise.services)})",
            lambda: stack.start_services(deadline, say),
        ),
        ("migrate", f"migrations run (`{migrate}`)", lambda: stack.migrate(deadline, say)),
        (
            "app",
            f"your app starts and answers ({describe(app.ready)})",
            lambda: stack.start_app(deadline, say),
        ),
    ]


def _failed_stage(
    stage: str, description: str, failure: StackFailed, isolation: Isolation
) -> CheckResult:
    """The check a failed stage reports, with the hint for what usually breaks there."""
    if failure.out_of_time:
        return _stage(
            stage, description, Status.FAILED,
            "The grading time limit was reached during this step.",
        )  # fmt: skip
    if not failure.learner:
        return _stage(
            stage, description, Status.ERROR, failure.message, log=failure.log,
            hint="This is not your code: check that Docker has enough memory, then retry.",
        )  # fmt: skip
    hints = {
        "migrate": "Run your migrations against a fresh database; the log's last lines say "
        "what broke.",
        "app": "Start it yourself (`docker build` then `docker run`) and read its log; the "
        "last lines above usually name the problem.",
    }
    if stage == "build":
        if not failure.log:
            hint = "Restore the Dockerfile from the starter project."
        else:
            hint = "Read the build log above; the last lines say what broke."
            if isolation is Isolation.STRICT and failure.exited:
                hint += " Under strict isolation the build has no network: install nothing in it."
    else:
        hint = hints.get(stage, "")
    return _stage(
        stage, description, Status.FAILED, failure.message, log=failure.log or None, hint=hint
    )


#: Variables the grader suite inherits: what finds programs and the user's home, the locale,
#: the Docker engine, proxies and CA bundles. Nothing else of the caller's environment reaches
#: it: PYTEST_ADDOPTS, PYTEST_PLUGINS, PYTHONSTARTUP, PYTHONPATH, PYTHONWARNINGS, plugins'
#: settings (COV_*, HYPOTHESIS_*) or libpq's PG* could change what runs, or what counts as a pass.
_INHERITED = frozenset(
    {
        "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ",
        "TMPDIR", "TEMP", "TMP", "SYSTEMROOT", "XDG_RUNTIME_DIR",
        "DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONFIG",
        "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
        "http_proxy", "https_proxy", "all_proxy", "no_proxy",
        "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    }
)  # fmt: skip
_LOCAL_HOSTS = "127.0.0.1,localhost,::1"


def suite_environment(source: Mapping[str, str], scratch: Path) -> dict[str, str]:
    """The grader suite's environment, built from an allow-list of ``source``'s variables."""
    env = {k: v for k, v in source.items() if k in _INHERITED or k.startswith("LC_")}
    for name in ("NO_PROXY", "no_proxy"):
        # The stack is on 127.0.0.1: no request of a grader's may go through a proxy.
        env[name] = ",".join(filter(None, (env.get(name), _LOCAL_HOSTS)))
    bb_root = _bb_import_root()
    if bb_root is not None:
        env["PYTHONPATH"] = str(bb_root)
    env.update(
        {
            # Only the plugins bb names on the command line (-p bb.grader.plugin) load.
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "BB_GRADE_CONTEXT": str(scratch / "context.json"),
            "BB_GRADE_PARENT": str(os.getpid()),
        }
    )
    return env


def _bb_import_root() -> Path | None:
    """The directory the suite must put first on its path to import this very bb, or None
    when the interpreter finds it anyway (installed in site-packages)."""
    import site

    import bb

    root = Path(bb.__file__).resolve().parent.parent
    site_dirs = [*site.getsitepackages(), site.getusersitepackages()]
    if any(Path(d).resolve() == root for d in site_dirs if d):
        return None
    return root


#: Seconds before the time limit over which the app's activity is measured, to tell a grader
#: that hangs on its own (the app idle) from one waiting on the app (busy, or not answering).
ACTIVITY_WINDOW = 3.0
#: The share of one CPU above which the app counts as busy. An idle app measures well below
#: 1% (the mini course's server: 0.0%); a spinning one close to 100%.
_BUSY_CPU_SHARE = 0.05
#: Modules in which a grader waits on the network (on the learner's app or its services).
_IO_PACKAGES = frozenset(
    {
        "socket", "ssl", "selectors", "select", "asyncio", "http", "httpx", "httpcore", "h11",
        "h2", "anyio", "psycopg", "psycopg_c", "psycopg_binary", "psycopg_pool", "urllib3",
        "requests", "docker", "websocket", "websockets", "aiohttp",
    }
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class SuiteOutcome:
    """The checks the suite reported (with an entry for every check it declared), and what,
    if anything, stopped it from reaching a verdict."""

    checks: list[CheckResult]
    fault: BBError | None = None


@dataclasses.dataclass(frozen=True)
class HangEvidence:
    """What bb saw when a grade reached its time limit with a check still running."""

    #: The suite's threads, each its frames outermost first; None if the suite did not answer.
    stacks: list[dict[str, Any]] | None
    #: The app's (CPU seconds, bytes sent) at the start and the end of the window.
    before: tuple[float, int] | None
    after: tuple[float, int] | None
    window: float


def app_was_busy(evidence: HangEvidence) -> bool:
    if evidence.before is None or evidence.after is None:
        return False
    cpu = evidence.after[0] - evidence.before[0]
    sent = evidence.after[1] - evidence.before[1]
    return sent > 0 or cpu > _BUSY_CPU_SHARE * evidence.window


def grader_waits_on_network(evidence: HangEvidence) -> bool:
    """Whether some thread of the suite is inside network code (waiting for an answer)."""
    for thread in evidence.stacks or []:
        frames = thread.get("frames") or []
        if frames and str(frames[-1].get("module", "")).split(".")[0] in _IO_PACKAGES:
            return True
    return False


def where_it_hangs(evidence: HangEvidence, suite: Path) -> str:
    """The grader's own line the main thread is stuck under, as ``file:line (function)``."""
    for thread in evidence.stacks or []:
        if not thread.get("main"):
            continue
        frames = thread.get("frames") or []
        own = [f for f in frames if _is_within(Path(str(f.get("file", ""))), suite)]
        frame = (own or frames or [None])[-1]
        if frame is not None:
            shown = Path(str(frame["file"]))
            if own:  # as the pack names it: graders/<suite>/<file>
                shown = shown.resolve().relative_to(suite.resolve().parent.parent)
            return f"{shown}:{frame['line']} ({frame['function']})"
    return "an unknown place: the suite did not say where it was"


def _is_within(path: Path, directory: Path) -> bool:
    try:
        path.resolve().relative_to(directory.resolve())
    except ValueError:
        return False
    return True


class _SuiteRun:
    """The grader suite under pytest, in a child process started before the stack is up.

    pytest spends seconds importing and collecting; that overlaps the build and the container
    start-up. The plugin then waits for the context file, which :meth:`finish` writes.

    The plugin appends a JSON line to the results file as each check starts and ends; bb
    reads the file as it grows (:meth:`poll`) and tells ``on_event`` while the suite runs.
    """

    #: How often bb reads the results file while the suite runs, in seconds.
    POLL_INTERVAL = 0.1

    def __init__(
        self,
        pack: Pack,
        exercise: Exercise,
        *,
        select: str | None = None,
        on_event: OnEvent | None = None,
    ) -> None:
        self.suite = pack.grader_dir(exercise)
        self.exercise = exercise.id
        self.timeout = exercise.grader.timeout
        self.select = select
        self.on_event = on_event
        self.scratch = journal.new_scratch()
        self.results = self.scratch / "results.jsonl"
        self.output = self.scratch / "pytest.log"
        self._read_up_to = 0
        self._partial_line = b""
        self._identities: dict[str, dict[str, Any]] = {}
        #: The names of the checks ``select`` left out, once the suite has collected.
        self.left_out: tuple[str, ...] = ()
        #: The names of the checks ``on_event`` has heard the end of.
        self.told: set[str] = set()
        # An ini file of our own: the suite must not pick up whatever pytest settings lie
        # around it (a repository's pyproject.toml, say).
        (self.scratch / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
        command = [
            sys.executable, "-m", "pytest", str(self.suite),
            "-p", "bb.grader.plugin", "-p", "no:cacheprovider",
            "-c", str(self.scratch / "pytest.ini"), "--rootdir", str(self.scratch),
            "--bb-results", str(self.results),
            "-q", "--no-header", "-rN", "--tb=short", "-W", "ignore::DeprecationWarning",
        ]  # fmt: skip
        if select is not None:
            # One argument, "=" joined: a pattern that starts with "-" stays a pattern.
            command.append(f"--bb-select={select}")
        env = suite_environment(os.environ, self.scratch)
        with self.output.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=self.scratch, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def finish(
        self,
        context: dict[str, Any],
        deadline: float,
        *,
        activity: Callable[[], tuple[float, int] | None] = lambda: None,
    ) -> SuiteOutcome:
        """Hand the suite the stack's context, wait for it, and hold its results against the
        checks it declared.

        ``activity`` samples the app's counters, to judge a suite still running at the time
        limit. A broken suite (no checks, collection errors, pytest misuse, a death before
        every check reported, a hang of its own) comes back as the outcome's ContentError; a
        selection that selects no check, as its UserError.
        """
        staged = self.scratch / "context.json.partial"
        staged.write_text(json.dumps(context), encoding="utf-8")
        staged.rename(self.scratch / "context.json")  # atomic: the plugin never reads half
        evidence: HangEvidence | None = None
        try:
            code = self._wait(_time_left(deadline) - ACTIVITY_WINDOW)
        except UserError as exc:  # a selection of nothing: no check is to run
            self.stop()
            return SuiteOutcome([], exc)
        if code is None:
            before = activity()
            code = self._wait(max(_time_left(deadline), 1.0))
            if code is None:
                after = activity()
                stacks = self._ask_for_stacks(timeout=2.0)
                self.stop()
                evidence = HangEvidence(stacks, before, after, ACTIVITY_WINDOW)
                code = self.process.returncode
        return self._outcome(code, evidence)

    def _wait(self, seconds: float) -> int | None:
        """Wait up to ``seconds`` for the suite to end, reading its results as they come."""
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            try:
                code: int | None = self.process.wait(timeout=max(min(left, self.POLL_INTERVAL), 0))
            except subprocess.TimeoutExpired:
                code = None
            self.poll()
            if code is not None or left <= 0:
                return code

    def poll(self) -> None:
        """Read what the suite has written since the last call: tell ``on_event`` of each
        check started and finished, and note what the collection says.

        Raises:
            UserError: the suite collected, and ``select`` selects none of its checks.
        """
        try:
            with self.results.open("rb") as fh:
                fh.seek(self._read_up_to)
                data = fh.read()
        except FileNotFoundError:
            return
        self._read_up_to += len(data)
        lines = (self._partial_line + data).split(b"\n")
        self._partial_line = lines.pop()  # the plugin may be midway through a line
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                self._take(record)

    def _take(self, record: dict[str, Any]) -> None:
        kind = record.get("kind")
        if kind == "collected":
            checks = [dict(c) for c in record.get("checks") or [] if isinstance(c, dict)]
            self._identities = {str(c.get("id")): c for c in checks}
            selection = record.get("selection")
            if self.select is not None and isinstance(selection, dict):
                left_out = [dict(c) for c in selection.get("left_out") or []]
                self.left_out = tuple(str(c.get("name")) for c in left_out)
                if not checks and self.left_out:
                    raise self._selects_nothing()
        elif self.on_event is None:
            return
        elif kind == "started":
            identity = self._identities.get(str(record.get("id")), {})
            name = str(identity.get("name") or record.get("id"))
            description = str(identity.get("description") or name)
            self.on_event(CheckStarted(name, description, time.monotonic()))
        elif kind == "check":
            with contextlib.suppress(KeyError, ValueError, TypeError):
                check = _check_from_record(record)
                self.told.add(check.name)
                self.on_event(CheckFinished(check))

    def _selects_nothing(self) -> UserError:
        names = ", ".join(self.left_out) or "none"
        return UserError(
            f"-k {self.select!r} selects none of the checks of {self.exercise}.",
            hint=f"Its checks: {names}. Words match parts of these names.",
        )

    def _ask_for_stacks(self, timeout: float) -> list[dict[str, Any]] | None:
        from bb.grader.plugin import STACK_REQUEST, STACKS

        answer = self.scratch / STACKS
        (self.scratch / STACK_REQUEST).touch()
        limit = time.monotonic() + timeout
        while time.monotonic() < limit and self.process.poll() is None:
            if answer.exists():
                with contextlib.suppress(OSError, ValueError):
                    return list(json.loads(answer.read_text(encoding="utf-8")))
            time.sleep(0.05)
        return None

    def _records(self) -> list[dict[str, Any]]:
        if not self.results.exists():
            return []
        records = []
        for line in self.results.read_text(encoding="utf-8", errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    records.append(record)
        return records

    def _log_tail(self, lines: int = 25) -> str:
        with contextlib.suppress(OSError):
            log = self.output.read_text(encoding="utf-8", errors="replace")
            return "\n".join(log.splitlines()[-lines:])
        return ""

    def _broken(self, what: str) -> ContentError:
        return ContentError(
            f"The grader suite {self.suite} {what}.\n{self._log_tail()}".rstrip(),
            hint="This is a course bug, not yours: run `bb dev check` on the pack.",
        )

    def _outcome(self, code: int | None, evidence: HangEvidence | None) -> SuiteOutcome:
        records = self._records()
        declared = next((r for r in records if r.get("kind") == "collected"), None)
        results = {str(r.get("id")): r for r in records if r.get("kind") == "check"}
        started = [str(r.get("id")) for r in records if r.get("kind") == "started"]
        if declared is None:
            if evidence is not None:
                what = "did not finish collecting its checks within the time limit"
            elif code in _BROKEN_SUITE:
                what = f"{_BROKEN_SUITE[code]} (pytest exit {code})"
            else:
                what = f"ended before it collected its checks ({_ending(code)})"
            return SuiteOutcome([], self._broken(what))
        identities = [dict(c) for c in declared.get("checks") or []]
        if not identities and self.select is not None:
            with contextlib.suppress(UserError):
                self._take(declared)  # notes what the pattern left out
            if self.left_out:
                return SuiteOutcome([], self._selects_nothing())
        if not identities and code in (0, 1, 5):
            return SuiteOutcome([], self._broken(_BROKEN_SUITE[5]))
        running = next((i for i in reversed(started) if i not in results), None)
        checks: list[CheckResult] = []
        missing: list[str] = []
        for identity in identities:
            key = str(identity.get("id"))
            if key in results:
                checks.append(_check_from_record(results[key]))
            else:
                missing.append(str(identity.get("name")))
                checks.append(self._unreported(identity, key == running, evidence))
        for node in declared.get("deselected") or []:
            name = str(node).rpartition("::")[2].removeprefix("test_")
            missing.append(name)
            checks.append(
                _stage(name, name, Status.ERROR, "The grader deselected this check; it never ran.")
            )
        if evidence is not None:
            return SuiteOutcome(checks, self._judge_hang(evidence, running, identities, checks))
        if code in _BROKEN_SUITE:
            return SuiteOutcome(checks, self._broken(f"{_BROKEN_SUITE[code]} (pytest exit {code})"))
        if missing or code not in (0, 1):
            return SuiteOutcome(
                checks,
                self._broken(
                    f"stopped before every check reported ({_ending(code)}; no result from: "
                    f"{', '.join(missing) or 'none'})"
                ),
            )
        return SuiteOutcome(checks)

    def _unreported(
        self, identity: dict[str, Any], was_running: bool, evidence: HangEvidence | None
    ) -> CheckResult:
        name = str(identity.get("name"))
        description = str(identity.get("description") or name)
        if evidence is None:
            return _stage(
                name, description, Status.ERROR,
                "The grader stopped before this check reported.",
            )  # fmt: skip
        if not was_running:
            return _stage(
                name, description, Status.SKIPPED,
                "Not run: grading was stopped at its time limit before this check.",
            )  # fmt: skip
        if app_was_busy(evidence) or grader_waits_on_network(evidence):
            return _stage(
                name, description, Status.FAILED,
                f"Grading was stopped at its time limit ({self.timeout:g} s) while this check "
                "waited on your app.",
                hint="A request that never returns (a deadlock, a lock held forever, an "
                "infinite loop) stops the whole grade. Look for one.",
            )  # fmt: skip
        return _stage(
            name, description, Status.ERROR,
            f"This check hung at {where_it_hangs(evidence, self.suite)} while your app sat "
            "idle: a bug in the grader, not in your code.",
        )  # fmt: skip

    def _judge_hang(
        self,
        evidence: HangEvidence,
        running: str | None,
        identities: list[dict[str, Any]],
        checks: list[CheckResult],
    ) -> BBError | None:
        """None when the learner's app kept the suite waiting (the running check failed), a
        ContentError when the suite hung on its own."""
        learner = app_was_busy(evidence) or grader_waits_on_network(evidence)
        if running is None:
            # Between checks (a fixture's set-up or tear-down): say so as a check of its own.
            checks.append(
                _stage(
                    "time-limit", f"grading finishes within {self.timeout:g} s",
                    Status.FAILED if learner else Status.ERROR,
                    "Grading was stopped at its time limit between checks.",
                )
            )  # fmt: skip
        if learner:
            return None
        name = next(
            (str(i.get("name")) for i in identities if str(i.get("id")) == running), "(between)"
        )
        return ContentError(
            f"The grader suite {self.suite} hangs: the check `{name}` was still running at the "
            f"grading time limit ({self.timeout:g} s) while the app was idle, at "
            f"{where_it_hangs(evidence, self.suite)}.",
            hint="This is a course bug, not yours: the check waits on something other than "
            "your app. Run `bb dev check` on the pack.",
        )

    def stop(self) -> None:
        """Kill pytest (and anything it started) if it still runs."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.scratch, ignore_errors=True)


def _ending(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"pytest exit {code}"


def _check_from_record(record: dict[str, Any]) -> CheckResult:
    levels = tuple(str(h) for h in record.get("hints") or () if h)
    if not levels and record.get("hint"):
        levels = (str(record["hint"]),)
    return CheckResult(
        name=record["name"],
        description=record["description"],
        status=Status(record["status"]),
        message=record.get("message") or "",
        expected=record.get("expected"),
        actual=record.get("actual"),
        # The first level; which one the learner sees is decided against their progress.
        hint=levels[0] if levels else None,
        hints=levels,
        hint_level=1 if levels else 0,
        duration=float(record.get("duration") or 0.0),
        reproduce=record.get("reproduce"),
    )


def grade_workspace(
    workspace: Path,
    *,
    on_progress: Progress | None = None,
    isolation: Isolation = Isolation.STANDARD,
    keep_warm: bool = False,
    select: str | None = None,
    on_event: OnEvent | None = None,
) -> tuple[PackIdentity, GradeReport]:
    """Grade the project in ``workspace``, found through its record file.

    Returns the pack's identity (for the progress store: where the pack lives and the digest
    of the content graded against) and the report. ``select`` and ``on_event`` are
    :func:`grade_exercise`'s.

    Raises:
        UserError: ``workspace`` is not a bb project, or its pack has moved.
        EnvironmentProblem: Docker or an image is missing.
        ContentError: the pack or the grader suite is broken.
    """
    from bb.errors import UserError
    from bb.pack.manifest import load_pack
    from bb.pack.scaffold import read_record

    record = read_record(workspace)
    if not (record.pack / "course" / "course.yaml").is_file():
        raise UserError(
            f"The pack this project came from is gone ({record.pack}).",
            hint=f"Restore it, or edit the pack path in {workspace / '.bb' / 'project.yaml'}.",
        )
    pack = load_pack(record.pack)
    exercise = pack.exercise(record.exercise)
    identity = pack.identity  # the content as it is now, before the grade runs it
    engine = Engine.connect()
    sweep_leftovers(engine)
    from bb.stack.up import repro_targets

    report = grade_exercise(
        pack,
        exercise,
        workspace,
        engine=engine,
        on_progress=on_progress,
        isolation=isolation,
        keep_warm=keep_warm,
        repro=repro_targets(workspace, exercise),
        select=select,
        on_event=on_event,
    )
    return identity, report
