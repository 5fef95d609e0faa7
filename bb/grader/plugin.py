"""bb's pytest plugin: fixtures for grader suites, and results written as data.

bb runs a grader suite as ``python -m pytest -p bb.grader.plugin`` on the host, with
``BB_GRADE_CONTEXT`` naming a JSON file that describes the running stack. bb starts pytest
while the stack is still coming up: pytest imports and collects the suite, then waits here for
that file to appear.

Everything the parent learns arrives as JSON lines appended to ``--bb-results``, each with a
``kind``: ``collected`` (every check the suite declares, written once collection is done),
``started`` (a check began) and ``check`` (a check's result), each line flushed as it happens,
so bb can show a check's result while the suite runs on. bb compares the results with the
collection: a check that never reported did not pass, whatever pytest's exit status says.

``--bb-select PATTERN`` (``bb grade -k``) keeps only the checks whose name the pattern matches,
as ``pytest -k`` would, but on check names alone; the collection record names the pattern and
the checks it left out, apart from anything else that deselected a check.
On request (a ``stack-request`` file beside the context file), a watchdog thread writes where
each thread of the suite is (``stacks.json``), so bb can tell a grader that hangs on its own
from one waiting on the learner's app.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import sys
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from bb.grader import Failure

CONTEXT_ENV = "BB_GRADE_CONTEXT"
PARENT_ENV = "BB_GRADE_PARENT"
#: Beside the context file: bb asks for the suite's thread stacks, and where they are written.
STACK_REQUEST = "stack-request"
STACKS = "stacks.json"


@dataclasses.dataclass(frozen=True)
class RunResult:
    """How a one-off command in the app's image ended: its exit code and its output."""

    exit_code: int
    output: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class Stack:
    """The running containers of this grade, as graders may see and poke them."""

    def __init__(self, context: dict[str, Any]) -> None:
        self._context = context
        self.app_url: str = context["app_url"]
        #: One URL per copy of the app (``app.replicas``), replica 1 (``app_url``) first.
        self.app_urls: list[str] = list(context.get("app_urls") or [self.app_url])
        #: Where `bb up` serves this project (stable ports): what commands printed for the
        #: learner to paste should aim at, since this grade's stack is gone when they read it.
        self.debug_url: str = context.get("debug_url") or self.app_url
        self.seed: int = context["seed"]
        self._runs = 0

    def _service(self, name: str) -> dict[str, Any]:
        try:
            return dict(self._context["services"][name])
        except KeyError:
            raise LookupError(f"this exercise has no service called {name!r}") from None

    def dsn(self, service: str = "db") -> str:
        """A host-side connection string for a Postgres service, as its superuser."""
        dsn = self._service(service).get("dsn")
        if not dsn:
            raise LookupError(f"service {service!r} is not a Postgres service")
        return str(dsn)

    def port(self, service: str) -> int:
        return int(self._service(service)["port"])

    def url(self, service: str) -> str:
        """``http://127.0.0.1:PORT`` of a service (e.g. a mock origin), as the host reaches it."""
        return f"http://127.0.0.1:{self.port(service)}"

    def redis_url(self, service: str = "redis") -> str:
        """A host-side ``redis://`` URL for a Redis service."""
        url = self._service(service).get("url")
        if not url:
            raise LookupError(f"service {service!r} is not a Redis service")
        return str(url)

    @property
    def environment(self) -> dict[str, str]:
        """The environment the app runs with (its manifest's ``app.environment`` and PORT)."""
        return {str(k): str(v) for k, v in (self._context.get("app_environment") or {}).items()}

    def logs(self, name: str = "app", tail: int = 50) -> str:
        return str(self._engine().logs(self._service(name)["container"], tail=tail))

    def restart(self, name: str = "app") -> None:
        """Restart a container and block until it is ready again (its ports do not change)."""
        service = self._service(name)
        self._engine().restart(service["container"])
        self._wait_ready(name, service, "After a restart")

    def run(self, command: Sequence[str], *, timeout: float = 60.0) -> RunResult:
        """Run ``command`` in a one-off container of the learner's app image, on this grade's
        network, with the app's environment (as bb runs migrations), e.g.
        ``stack.run(["alembic", "downgrade", "base"])``. Returns its exit code and output (the
        last 2,000 lines); the container is removed afterwards.

        Raises:
            Failure: the command ran past ``timeout`` seconds (it is killed), or the stack has
                no app image (its build failed).
        """
        from bb.errors import EnvironmentProblem
        from bb.stack.engine import ContainerSpec

        image = self._context.get("app_image")
        network = self._context.get("network")
        if not image or not network:
            raise Failure("This grade has no app image to run commands in.")
        limits = self._context.get("app_limits") or {}
        engine = self._engine()
        self._runs += 1
        try:
            container = engine.run(
                ContainerSpec(
                    name=f"bb-{self._context['grade_id']}-run-{self._runs}",
                    image=image,
                    environment=dict(self._context.get("app_environment") or {}),
                    command=list(command),
                    memory=limits.get("memory", "512m"),
                    cpus=float(limits.get("cpus", 1.0)),
                    pids=int(limits.get("pids", 256)),
                ),
                network=network,
                grade_id=self._context["grade_id"],
            )
        except EnvironmentProblem as exc:
            # Typically "executable file not found" in the learner's image: as a shell says it.
            # (The created container goes with the grade's teardown.)
            return RunResult(exit_code=127, output=exc.message)
        try:
            code = engine.wait(container, timeout=timeout)
            output = engine.logs(container, tail=2000)
            if code is None:
                raise Failure(
                    f"`{' '.join(command)}` did not finish within {timeout:g} s.",
                    actual=output[-2000:] or "(no output)",
                )
            return RunResult(exit_code=code, output=output)
        finally:
            engine.remove_container(container)

    def stop(self, name: str = "app", *, timeout: int = 10) -> None:
        """Stop a container (SIGTERM, then SIGKILL after ``timeout`` s), e.g. to see how the
        app behaves while its database is down. :meth:`start` brings it back.

        A service whose data lives on tmpfs (the course's postgres) comes back empty, as after
        :meth:`restart`; :meth:`pause` makes it unreachable and keeps its data.
        """
        self._engine().stop(self._service(name)["container"], timeout=timeout)

    def pause(self, name: str) -> None:
        """Freeze a container: it accepts no work (connections hang) but keeps its memory,
        data and connections; :meth:`unpause` resumes it where it was."""
        self._engine().pause(self._service(name)["container"])

    def unpause(self, name: str) -> None:
        self._engine().unpause(self._service(name)["container"])

    def start(self, name: str = "app") -> None:
        """Start a stopped container again and block until it is ready (same ports)."""
        service = self._service(name)
        engine = self._engine()
        engine.start(service["container"])
        self._wait_ready(name, service, "After a start")

    def _wait_ready(self, name: str, service: dict[str, Any], when: str) -> None:
        from bb.pack.manifest import Readiness
        from bb.stack.probes import wait_ready

        container = service["container"]
        engine = self._engine()
        readiness = Readiness.model_validate(service["ready"])
        reason, _ = wait_ready(
            readiness,
            int(service["port"]),
            exited=lambda: engine.has_exited(container),
            deadline=time.monotonic() + readiness.timeout,
        )
        if reason is not None:
            raise Failure(
                f"{when}, {name} did not become ready ({reason}).",
                actual=engine.logs(container, tail=20),
            )

    def _engine(self) -> Any:
        from bb.stack.engine import Engine

        if not hasattr(self, "_engine_instance"):
            self._engine_instance = Engine.connect()
        return self._engine_instance


def _wait_for_context(path: Path) -> dict[str, Any]:
    """Block until bb writes the stack's description (the watchdog ends us if bb is gone)."""
    while not path.exists():
        time.sleep(0.02)
    return dict(json.loads(path.read_text(encoding="utf-8")))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--bb-results", required=True, help="file to append check results to")
    parser.addoption(
        "--bb-select",
        default=None,
        help="keep only the checks whose name matches this -k expression",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "bb_hint(*levels): the hint shown when this check fails, by level"
    )
    if not os.environ.get(CONTEXT_ENV):
        raise pytest.UsageError(f"{CONTEXT_ENV} is not set: grader suites run under `bb grade`.")
    _results_file[:] = [Path(config.getoption("--bb-results"))]
    # bb names itself: by the time this runs, a killed bb may already have been replaced as
    # our parent, and os.getppid() would name the wrong process.
    parent = int(os.environ.get(PARENT_ENV) or os.getppid())
    scratch = Path(os.environ[CONTEXT_ENV]).parent
    threading.Thread(target=_watchdog, args=(parent, scratch), daemon=True).start()


def _watchdog(parent: int, scratch: Path) -> None:
    """If bb is killed, its checks must not go on hammering a stack that is being swept; and
    when bb asks, say where every thread of the suite is."""
    while os.getppid() == parent:
        request = scratch / STACK_REQUEST
        if request.exists():
            request.unlink(missing_ok=True)
            _write_atomically(scratch / STACKS, json.dumps(_thread_stacks()))
        time.sleep(0.2)
    os._exit(2)


def _thread_stacks() -> list[dict[str, Any]]:
    """Where every thread but this one is: its Python frames, outermost first."""
    me = threading.get_ident()
    main = threading.main_thread().ident
    stacks: list[dict[str, Any]] = []
    for ident, innermost in sys._current_frames().items():
        if ident == me:
            continue
        frames: list[dict[str, Any]] = []
        frame: FrameType | None = innermost
        while frame is not None:
            frames.append(
                {
                    "module": str(frame.f_globals.get("__name__", "")),
                    "file": frame.f_code.co_filename,
                    "line": frame.f_lineno,
                    "function": frame.f_code.co_name,
                }
            )
            frame = frame.f_back
        stacks.append({"main": ident == main, "frames": frames[::-1]})
    return stacks


def _write_atomically(path: Path, text: str) -> None:
    staged = path.with_name(path.name + ".partial")
    staged.write_text(text, encoding="utf-8")
    staged.rename(path)


def _append(record: dict[str, Any]) -> None:
    # One write of one whole line, closed (so flushed) at once: bb reads the file as it grows.
    with _results_file[0].open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


_deselected: list[str] = []
#: The checks ``--bb-select`` left out (by bb, on the learner's request: not a fault).
_left_out: list[dict[str, Any]] = []


def pytest_deselected(items: list[pytest.Item]) -> None:
    _deselected.extend(item.nodeid for item in items)


def check_name(item: pytest.Item) -> str:
    return item.name.removeprefix("test_")


def selects(pattern: str, name: str) -> bool:
    """Whether the ``-k`` expression ``pattern`` selects the check ``name``: each word matches
    as a case-insensitive substring of the name (with or without its ``test_``), joined by
    ``and``, ``or``, ``not`` and parentheses."""
    from _pytest.mark.expression import Expression

    lowered, full = name.lower(), f"test_{name}".lower()

    def matches(word: str, /, **_: str | int | bool | None) -> bool:
        return word.lower() in lowered or word.lower() == full

    return Expression.compile(pattern).evaluate(matches)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    pattern = config.getoption("--bb-select")
    if pattern is None:
        return
    kept = []
    for item in items:
        if selects(pattern, check_name(item)):
            kept.append(item)
        else:
            _left_out.append(_identity(item))
    items[:] = kept


def pytest_collection_finish(session: pytest.Session) -> None:
    # The declaration bb holds the results against: a check listed here that never reports
    # (the suite died, or something deselected it) did not pass.
    record: dict[str, Any] = {
        "kind": "collected",
        "checks": [_identity(item) for item in session.items],
        "deselected": list(_deselected),
    }
    pattern = session.config.getoption("--bb-select")
    if pattern is not None:
        record["selection"] = {"pattern": pattern, "left_out": list(_left_out)}
    _append(record)


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    _append({"kind": "started", "id": nodeid})


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    # Collection is done (the slow imports too); now the checks need the running stack.
    session.config._bb_context = _wait_for_context(  # type: ignore[attr-defined]
        Path(os.environ[CONTEXT_ENV])
    )


@pytest.fixture(scope="session")
def stack(pytestconfig: pytest.Config) -> Stack:
    return Stack(pytestconfig._bb_context)  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def app_url(stack: Stack) -> str:
    return stack.app_url


@pytest.fixture
def http(app_url: str) -> Iterator[Any]:
    from bb.grader import capped_client

    # Never through a proxy from the environment: the app is on 127.0.0.1, and a proxy could
    # answer in its place.
    with capped_client(app_url, trust_env=False) as client:
        yield client


@pytest.fixture
def db(stack: Stack) -> Iterator[Any]:
    import psycopg

    # Named, so that instrumentation (bb.grader.pg) can tell the grader's connections apart.
    with psycopg.connect(
        stack.dsn("db"),
        autocommit=True,
        application_name="bb-grader",
        cursor_factory=_recording_cursor(),
    ) as conn:
        yield conn


def _recording_cursor() -> Any:
    """A psycopg cursor that notes each statement, for a psql line if the check fails."""
    import psycopg

    from bb.grader import repro

    class RecordingCursor(psycopg.Cursor[Any]):
        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            try:
                text = psycopg.ClientCursor(self.connection).mogrify(query, params)
                repro.note_query(text)
            except Exception:  # noqa: BLE001 - a courtesy; never in the way of the check
                pass
            return super().execute(query, params, **kwargs)

    return RecordingCursor


@pytest.fixture
def redis(stack: Stack) -> Iterator[Any]:
    """A client (redis-py, strings in and out) of the service named ``redis``."""
    import redis as redis_py

    client = redis_py.Redis.from_url(
        stack.redis_url("redis"),
        decode_responses=True,
        socket_connect_timeout=5,
        socket_timeout=10,
    )
    with client:
        yield client


@pytest.fixture
def rng(stack: Stack, request: pytest.FixtureRequest) -> random.Random:
    # One stream per check, so adding a check does not change the data of the others.
    return random.Random(f"{stack.seed}:{request.node.nodeid}")


def pytest_runtest_setup(item: pytest.Item) -> None:
    from bb.grader import repro

    repro.reset()
    blocked = item.config._bb_context.get("blocked")  # type: ignore[attr-defined]
    if blocked:
        pytest.skip(blocked)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call" or (report.when == "setup" and not report.passed):
        report._bb_record = _record(item, report, call)  # type: ignore[attr-defined]
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    record = getattr(report, "_bb_record", None)
    if record is not None:
        # Appended as each check ends, so a grade stopped by its time limit keeps what finished.
        _append(record)


_results_file: list[Path] = []


def _identity(item: pytest.Item) -> dict[str, Any]:
    """What names a check: its node id (unique), its name and description, its hint (the
    first level, and every level in ``hints``)."""
    function = getattr(item, "function", None)
    doc = (getattr(function, "__doc__", None) or "").strip().splitlines()
    marker = item.get_closest_marker("bb_hint")
    levels = [str(a) for a in marker.args if isinstance(a, str)] if marker else []
    return {
        "id": item.nodeid,
        "name": check_name(item),
        "description": doc[0] if doc else item.name,
        "hint": levels[0] if levels else None,
        "hints": levels,
    }


def _record(
    item: pytest.Item, report: pytest.TestReport, call: pytest.CallInfo[None]
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "kind": "check",
        **_identity(item),
        "duration": call.duration,
        "message": "",
        "expected": None,
        "actual": None,
    }
    if report.passed:
        record["status"] = "passed"
    elif report.skipped:
        record["status"] = "skipped"
        longrepr = report.longrepr
        record["message"] = str(
            longrepr[2] if isinstance(longrepr, tuple) else longrepr
        ).removeprefix("Skipped: ")
    else:
        exc = call.excinfo.value if call.excinfo is not None else None
        record["status"] = "failed" if report.when == "call" else "error"
        if isinstance(exc, Failure):
            record.update(
                message=_bounded(exc.message),
                expected=_bounded(exc.expected),
                actual=_bounded(exc.actual),
            )
            if exc.hints:  # the failure's own hint, all its levels, replaces the check's
                record["hint"] = _bounded(exc.hints[0])
                record["hints"] = [_bounded(level) for level in exc.hints]
        elif isinstance(exc, AssertionError):
            record["message"] = _bounded(str(exc).strip() or "An assertion failed.")
        elif exc is not None:
            record["message"] = _bounded(_explain(exc, report.when))
        from bb.grader import repro

        record["reproduce"] = _bounded(repro.command(item.config._bb_context))  # type: ignore[attr-defined]
    return record


#: The longest message, expected or actual value a check reports (a grader may quote a whole
#: response body, and the learner reads this on a terminal).
FIELD_CHARS = 4000


def _bounded(text: str | None) -> str | None:
    if text is None or len(text) <= FIELD_CHARS:
        return text
    return f"{text[:FIELD_CHARS]}… ({len(text) - FIELD_CHARS} more characters)"


def _explain(exc: BaseException, when: str) -> str:
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return f"Your app did not answer in time ({type(exc).__name__})."
    if isinstance(exc, httpx.TransportError):
        return f"Could not talk to your app ({type(exc).__name__}: {exc}). Did it crash?"
    text = f"{type(exc).__name__}: {exc}".strip()
    if when == "setup":
        return f"The check could not be set up: {text}"
    return text
