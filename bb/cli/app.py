"""bb's command line: each command parses, calls one core function, renders what comes back.

Heavy modules (docker, pydantic, jinja2, httpx) are imported inside the commands, so that
``bb --help`` stays fast. Errors are caught once, in :func:`run`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional, TypeVar

import typer

from bb import __version__
from bb.errors import BBError, EnvironmentProblem, ExitCode, UserError
from bb.stack.isolation import ENV as ISOLATION_ENV
from bb.stack.isolation import Isolation

if TYPE_CHECKING:
    from bb.pack.manifest import Exercise, Pack, PackIdentity
    from bb.progress import ExerciseProgress
    from bb.results.report import GradeReport

app = typer.Typer(
    name="bb",
    help="A bootcamp that turns Python coders into backend engineers, one graded project "
    "at a time.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain Click help: Typer's Rich help imports rich.markdown and markdown_it on every
    # `--help` (about 45 ms), and labels every flag `<bool>`.
    rich_markup_mode=None,
    context_settings={"max_content_width": 100},
)
dev = typer.Typer(help="Tools for course authors and instructors.", no_args_is_help=True)
app.add_typer(dev, name="dev")
classroom = typer.Typer(help="Grade a whole class's submissions.", no_args_is_help=True)
app.add_typer(classroom, name="class")

_debug = bool(os.environ.get("BB_DEBUG"))
_Command = TypeVar("_Command", bound=Callable[..., Any])


class Stopped(BaseException):
    """A signal asked bb to stop (SIGTERM, or SIGHUP when the terminal closes). Like Ctrl-C's
    KeyboardInterrupt it unwinds through every ``finally``, so grades tear down."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


_STOP_SIGNALS = {signal.SIGTERM: ExitCode.TERMINATED}
if hasattr(signal, "SIGHUP"):
    _STOP_SIGNALS[signal.SIGHUP] = ExitCode.HANGUP


@contextlib.contextmanager
def _stop_signals_unwind(received: list[int]) -> Iterator[None]:
    """Make SIGTERM and SIGHUP raise :class:`Stopped` (once: a repeat while bb tears down is
    ignored, so teardown is not cut short)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, _frame: object) -> None:
        for number in _STOP_SIGNALS:
            signal.signal(number, signal.SIG_IGN)
        received.append(signum)
        raise Stopped(signum)

    previous = {number: signal.signal(number, on_signal) for number in _STOP_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _tell(*renderables: Any, **kwargs: Any) -> None:
    """Print on stderr, unless it is gone (a closed terminal must not turn into a bb bug)."""
    from bb.cli.console import err

    with contextlib.suppress(OSError):
        err.print(*renderables, **kwargs)


def guarded(command: _Command) -> _Command:
    """Catch every error once, here: one sentence and a fix on stderr, and the right exit code.

    A command returns an ``ExitCode`` (or None for OK); tracebacks appear only with --debug.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        from bb.cli.console import err

        received: list[int] = []
        try:
            with _stop_signals_unwind(received):
                code = command(*args, **kwargs)
        except KeyboardInterrupt:
            _tell("Interrupted; bb removed what it had started.")
            code = ExitCode.INTERRUPTED
        except Stopped as stop:
            _tell(f"Stopped by {signal.Signals(stop.signum).name}; bb removed what it had started.")
            code = _STOP_SIGNALS[signal.Signals(stop.signum)]
        except BBError as exc:
            from rich.text import Text

            from bb.cli.console import printable

            if _debug:
                err.print_exception()
            # Messages quote build logs, grader output and pack files: print them inert.
            _tell(Text.assemble(("error: ", "bold red"), printable(exc.message)), soft_wrap=True)
            if exc.hint:
                hint = printable(exc.hint)
                _tell(Text.assemble("\n", ("hint: ", "bold cyan"), hint), soft_wrap=True)
            code = exc.exit_code
        except Exception:
            if received:
                # Stopping made something else fail on the way out (a closed terminal, say).
                code = _STOP_SIGNALS[signal.Signals(received[0])]
            else:
                if _debug:
                    err.print_exception()
                _tell(
                    "bb hit an unexpected error. This is a bug in bb; re-run with --debug to "
                    "see the traceback, and please report it.",
                    markup=False,
                    soft_wrap=True,
                )
                code = ExitCode.INTERNAL
        if code:
            raise typer.Exit(int(code))

    return wrapper  # type: ignore[return-value]


PackOption = Annotated[
    Optional[Path],
    typer.Option(
        "--pack",
        envvar="BB_PACK",
        metavar="DIR",
        help="An exercise pack's directory [default: the built-in course].",
        show_default=False,
    ),
]


IsolationOption = Annotated[
    Isolation,
    typer.Option(
        "--isolation",
        envvar=ISOLATION_ENV,
        case_sensitive=False,
        help="How far the graded code is fenced in. standard: as its image says, with network. "
        "strict (for strangers' code): no network out, no way to this machine, non-root, "
        "read-only, no capabilities.",
    ),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bb {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show bb's version.")
    ] = False,
) -> None:
    global _debug
    _debug = _debug or debug
    _sweep_after_killed_grades()


def _sweep_after_killed_grades() -> None:
    """If a grade was killed mid-way, remove its scratch and containers now (cheap when there
    is none). Best effort: a sweep that fails never stops the command the user asked for."""
    from bb.stack import journal, warm

    try:
        journal.sweep_scratch()
        stale = journal.stale_entries() or any(warm.expired(s) for s in warm.all_states())
    except OSError:
        return
    if not stale:
        return
    from bb.stack.engine import Engine
    from bb.stack.lifecycle import sweep_leftovers

    try:
        sweep_leftovers(Engine.connect())
    except Exception:  # noqa: BLE001 - no engine now: the next command that needs one sweeps
        return


def _status_text(message: str) -> Any:
    """A spinner's message, which may quote a build log or a pack: inert, never markup."""
    from rich.text import Text

    from bb.cli.console import printable

    return Text(printable(message))


def _load(pack_dir: Path | None) -> Pack:
    from bb import paths
    from bb.pack.manifest import load_pack

    return load_pack(pack_dir if pack_dir is not None else paths.builtin_pack())


# -- learner commands --------------------------------------------------------------------------


@app.command()
@guarded
def setup(
    ca_bundle: Annotated[
        Optional[Path],
        typer.Option(
            help="Extra CA certificates (PEM) for builds behind a TLS-intercepting proxy "
            "[default: this machine's bundle].",
            show_default=False,
        ),
    ] = None,
    rebuild: Annotated[bool, typer.Option(help="Rebuild images that already exist.")] = False,
    pack: PackOption = None,
) -> None:
    """Check the Docker engine and build the course images (once; then grading is offline)."""

    from bb.cli.console import err
    from bb.stack.engine import Engine
    from bb.stack.images import build_course_images, build_relay_image
    from bb.stack.lifecycle import sweep_leftovers

    loaded = _load(pack)
    engine = Engine.connect()
    err.print("✓ Docker engine answers")
    sweep_leftovers(engine)
    with _BuildProgress(err) as progress:
        results = build_course_images(
            loaded,
            engine,
            ca_bundle=ca_bundle,
            rebuild=rebuild,
            on_image=progress.image,
            on_line=progress.line,
        )
        results.append(
            build_relay_image(
                engine, rebuild=rebuild, on_image=progress.image, on_line=progress.line
            )
        )
    for image in results:
        err.print(
            f"✓ {image.name}: {image.tag} {'built' if image.built else 'already there'}",
            markup=False,
        )
    err.print("\nReady. Start the first exercise with `bb start`.")


class _BuildProgress:
    """A progress bar per image build, moved by the builder's "Step N/M" lines, with the
    current step beside it."""

    _STEP = r"^Step (\d+)/(\d+) : (.*)$"

    def __init__(self, console: Any) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[step]}", markup=False), console=console,
        )  # fmt: skip
        self.task: Any = None

    def __enter__(self) -> _BuildProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def image(self, name: str, tag: str) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=self.progress.tasks[-1].total)
        self.progress.console.print(f"… building {name} ({tag}); this takes a minute")
        self.task = self.progress.add_task(f"building {name}", total=None, step="")

    def line(self, text: str) -> None:
        import re

        from bb.cli.console import printable

        step = re.match(self._STEP, text)
        if step is not None and self.task is not None:
            done, total, what = int(step[1]), int(step[2]), step[3]
            self.progress.update(
                self.task, completed=done - 1, total=total, step=printable(what)[:60]
            )


@app.command("list")
@guarded
def list_(pack: PackOption = None) -> None:
    """Show the course: its modules and exercises, with your progress on each."""
    from bb import progress
    from bb.cli.console import out
    from bb.cli.views import course_map

    loaded = _load(pack)
    out.print(course_map(loaded, progress.load(loaded.identity)))


@app.command()
@guarded
def start(
    exercise: Annotated[
        Optional[str],
        typer.Argument(
            help="The exercise to start [default: the next one you have not passed].",
            show_default=False,
        ),
    ] = None,
    directory: Annotated[
        Optional[Path],
        typer.Option(
            "--dir",
            metavar="PATH",
            help="Where to create the project [default: ~/bb-projects/EXERCISE].",
            show_default=False,
        ),
    ] = None,
    pack: PackOption = None,
) -> None:
    """Explain the next exercise and create its starter project."""

    from bb import paths, progress
    from bb.cli.console import err, out
    from bb.cli.views import course_map, lesson, next_steps
    from bb.pack.scaffold import new_project

    loaded = _load(pack)
    done = progress.load(loaded.identity)
    chosen = loaded.exercise(exercise) if exercise else _next_exercise(loaded, done)
    workspace = directory or paths.workspaces_root() / chosen.id
    result = new_project(loaded, chosen, workspace)
    progress.record_start(loaded.identity, chosen.id, result.workspace)
    done = progress.load(loaded.identity)
    out.print(course_map(loaded, done, current=chosen.id))
    out.print(lesson(loaded, chosen))
    if not result.created:
        err.print(
            f"Your project {result.workspace} already exists; bb left it untouched.",
            markup=False,
            soft_wrap=True,  # one line, whatever the path's length: it is for copying
        )
    out.print(next_steps(result.workspace, created=result.created))


def _next_exercise(pack: Pack, done: Mapping[str, ExerciseProgress]) -> Exercise:
    for exercise_id, exercise in pack.exercises.items():
        state = done.get(exercise_id)
        if state is None or state.passed_at is None:
            return exercise
    raise UserError(
        "You have passed every exercise of this course. Well done!",
        hint="Name one to revisit it: `bb start EXERCISE`.",
    )


@app.command()
@guarded
def grade(
    directory: Annotated[
        Optional[Path],
        typer.Option(
            "--dir",
            metavar="PATH",
            help="The project to grade [default: the one you are in].",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print bb's JSON document on stdout (--format json).")
    ] = False,
    output_format: Annotated[
        Optional[str],
        typer.Option(
            "--format",
            help="Write the result as json, junit (JUnit XML), gradescope or prairielearn "
            "(results.json). With gradescope or prairielearn, bb exits 0 whenever grading "
            "finished.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output",
            "-o",
            help="Write the --format result to this file (atomically) instead of stdout.",
            show_default=False,
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show details of passed checks too.")
    ] = False,
    isolation: IsolationOption = Isolation.STANDARD,
    cold: Annotated[
        bool,
        typer.Option(
            "--cold",
            help="Start the services fresh for this grade instead of reusing the warm ones "
            "(warm services get a fresh database every grade either way).",
        ),
    ] = False,
    select: Annotated[
        Optional[str],
        typer.Option(
            "-k",
            metavar="PATTERN",
            help="Run only the checks whose names match (pytest -k: words, and, or, not). "
            "A partial grade: it never passes the exercise.",
            show_default=False,
        ),
    ] = None,
) -> int:
    """Run your project and its services in containers, and check it against the exercise.

    The services (Postgres) stay warm afterwards so the next grade starts in about a second;
    `bb down` stops them, and they stop by themselves after 30 minutes unused."""
    from bb import progress
    from bb.cli.console import err
    from bb.grading.hints import escalate
    from bb.grading.runner import check_selection, grade_workspace
    from bb.pack.scaffold import read_record
    from bb.results.formats import Format, not_graded

    fmt = _format(output_format, as_json=as_json, output=output)
    if select is not None:
        check_selection(select)
    workspace = _workspace_at(directory)
    # Before a grade is spent: a store that cannot record it fails now, not after the grade.
    progress.check_usable()
    record = read_record(workspace)
    # Animated only for people at a terminal; with the document on stdout, plain lines.
    live = err.is_terminal and (fmt is None or output is not None)
    try:
        with _GradeDisplay(err, live=live) as display:
            graded_pack, report = grade_workspace(
                workspace,
                on_progress=display.progress,
                isolation=isolation,
                keep_warm=not cold,
                select=select,
                on_event=display.event,
            )
    except BBError as exc:
        if exc.report is not None:  # what the grade found before it was stopped
            with contextlib.suppress(BBError):  # the hints already seen, not one more
                seen = progress.revealed_hints(_load(record.pack).identity, record.exercise)
                exc.report, _ = escalate(exc.report, seen, advance=False)
            _show_report(exc.report, fmt, output, verbose=verbose)
        elif fmt is not None and fmt is not Format.JSON:  # a platform must hear it too
            _emit(not_graded(record.exercise, record.exercise, exc.message), fmt, output)
        raise
    unrecorded: EnvironmentProblem | None = None
    shown: list[Any] = []
    try:
        report, shown = escalate(report, progress.revealed_hints(graded_pack, report.exercise))
    except EnvironmentProblem as exc:  # the report is printed all the same
        unrecorded = exc
    _show_report(report, fmt, output, verbose=verbose, pack=graded_pack)
    try:
        if unrecorded is not None:
            raise unrecorded
        progress.record_attempt(graded_pack, report, hints=shown)
    except EnvironmentProblem as exc:
        raise EnvironmentProblem(
            f"The grade above could not be recorded in your progress: {exc.message}",
            hint=exc.hint,
        ) from None
    if report.selection is not None and fmt is not None:
        _tell(
            f"A partial grade (-k {report.selection.pattern}): it was recorded as an attempt, "
            "never as a pass.",
            markup=False,
        )
    if fmt is not None and fmt.platform:
        return ExitCode.OK  # grading finished: the score is the verdict, not the exit code
    # A partial grade exits 0 when the checks it ran passed (the exercise stays unpassed).
    return ExitCode.OK if report.all_ran_passed else ExitCode.CHECKS_FAILED


class _GradeDisplay:
    """What a grade shows while it runs: each check's line as it finishes and, at a
    terminal, a live line saying what the grade is doing or which check has been running for
    a while; elsewhere, the lines alone, plain."""

    def __init__(self, console: Any, *, live: bool) -> None:
        self.console = console
        self.live = live
        self.message = "grading"
        self.running: Any = None  # the CheckStarted of the check running now
        self.status: Any = None

    def __enter__(self) -> _GradeDisplay:
        if self.live:
            self.status = self.console.status(self)
            self.status.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.status is not None:
            self.status.stop()

    def __rich__(self) -> Any:
        import time

        from bb.cli.views import grade_status

        return grade_status(self.message, self.running, time.monotonic())

    def progress(self, message: str) -> None:
        self.message = message

    def event(self, event: Any) -> None:
        from bb.grading.runner import CheckStarted
        from bb.results.report import check_line

        if isinstance(event, CheckStarted):
            self.running = event
            return
        if self.running is not None and self.running.name == event.check.name:
            self.running = None
        with contextlib.suppress(OSError):  # a closed terminal must not stop the grade
            self.console.print(check_line(event.check), soft_wrap=not self.live)


@app.command()
@guarded
def watch(
    directory: Annotated[
        Optional[Path],
        typer.Option(
            "--dir",
            metavar="PATH",
            help="The project to watch [default: the one you are in].",
            show_default=False,
        ),
    ] = None,
    poll: Annotated[
        Optional[bool],
        typer.Option(
            "--poll/--no-poll",
            help="Poll the files instead of waiting for the kernel's notice [default: only on "
            "file systems where notices do not arrive: WSL's Windows drives, network mounts].",
            show_default=False,
        ),
    ] = None,
) -> int:
    """Grade your project now and again on every save, until Ctrl-C.

    Each result replaces the last, with the first failing check in full. The services stay
    warm, so a regrade costs little more than your app's start and the checks."""
    from rich.text import Text

    from bb import progress
    from bb.cli.console import err, out
    from bb.grading.hints import escalate
    from bb.grading.runner import grade_workspace
    from bb.grading.watch import Saves
    from bb.pack.scaffold import read_record
    from bb.results.report import render

    workspace = _workspace_at(directory)
    progress.check_usable()
    record = read_record(workspace)
    changed: set[Path] = set()
    # Watching starts before the first grade: a save made while grading is not lost.
    saves = Saves(workspace, poll=poll)
    while True:
        if out.is_terminal:
            out.clear()  # the new result replaces the last
        names = sorted(str(p.relative_to(workspace)) for p in changed if p.exists())
        if names:
            err.print(Text(f"saved: {', '.join(names[:3])}", style="dim"))
        err.print(Text(record.exercise, style="bold"))
        try:
            with _GradeDisplay(err, live=err.is_terminal) as display:
                graded_pack, report = grade_workspace(
                    workspace, on_progress=display.progress, keep_warm=True,
                    on_event=display.event,
                )  # fmt: skip
        except BBError as exc:
            # bb, the course or the machine is broken: watching cannot help. What the grade
            # found first is shown, then the error.
            if exc.report is not None:
                out.print(render(exc.report, compact=True, lines=False))
            raise
        report, shown = escalate(report, progress.revealed_hints(graded_pack, report.exercise))
        # Each check's line came as it finished; now the first failing one in full.
        out.print(render(report, compact=True, lines=False))
        progress.record_attempt(graded_pack, report, hints=shown)
        err.print(Text("Watching for saves… (Ctrl-C stops)", style="dim"))
        changed = saves.wait()


def _show_report(
    report: GradeReport,
    fmt: Any,
    output: Path | None,
    *,
    verbose: bool,
    pack: PackIdentity | None = None,
) -> None:
    """The report in ``fmt`` (to ``output`` or alone on stdout), and for people on the
    terminal unless stdout holds the document."""
    from bb.cli.console import out
    from bb.cli.views import pack_line
    from bb.results.report import render

    if fmt is not None:
        _emit(report, fmt, output)
    if fmt is None or output is not None:
        if pack is not None:
            out.print(pack_line(pack))
        out.print(render(report, verbose=verbose))


def _format(name: str | None, *, as_json: bool, output: Path | None) -> Any:
    from bb.results.formats import Format

    if name is None:
        if output is not None and not as_json:
            raise UserError("--output needs --format.", hint="e.g. `--format junit -o report.xml`")
        return Format.JSON if as_json else None
    try:
        chosen = Format(name)
    except ValueError:
        raise UserError(
            f"Unknown --format {name!r}.", hint=f"Choose one of: {', '.join(f for f in Format)}."
        ) from None
    if as_json and chosen is not Format.JSON:
        raise UserError("--json and --format name two formats; give one.")
    return chosen


def _emit(report: Any, fmt: Any, output: Path | None) -> None:
    """Write ``report`` in ``fmt`` to ``output``, or alone on stdout."""
    from bb.cli.console import print_data
    from bb.results.formats import render, write_atomically

    text = render(report, fmt)
    if output is None:
        print_data(text)
        return
    try:
        write_atomically(output, text)
    except OSError as exc:
        raise UserError(
            f"bb cannot write the result to {output} ({exc.strerror or exc}).",
            hint="Give --output a path in a folder you can write to.",
        ) from None


@app.command()
@guarded
def status(pack: PackOption = None) -> None:
    """Show your progress through the course."""
    from bb import progress
    from bb.cli.console import out
    from bb.cli.views import progress_summary

    loaded = _load(pack)
    out.print(progress_summary(loaded, progress.load(loaded.identity)))


ExerciseArgument = Annotated[
    Optional[str],
    typer.Argument(
        metavar="EXERCISE",
        help="The exercise [default: the project you are in, or your current exercise].",
        show_default=False,
    ),
]


def _chosen(exercise: str | None, pack: Path | None) -> tuple[Pack, Exercise, Path | None]:
    """The pack and exercise a command is about, and the learner's project of it if known.

    Inside a project with no arguments: that project. Otherwise the named exercise (or the
    next one not passed) of ``pack``, with the project ``bb start`` last made for it.
    """
    from bb import paths, progress
    from bb.pack.scaffold import read_record

    if exercise is None and pack is None and (workspace := paths.find_workspace(Path.cwd())):
        record = read_record(workspace)
        loaded = _load(record.pack)
        return loaded, loaded.exercise(record.exercise), workspace
    loaded = _load(pack)
    done = progress.load(loaded.identity)
    chosen = loaded.exercise(exercise) if exercise else _next_exercise(loaded, done)
    known = done.get(chosen.id)
    found = known.workspace if known and known.workspace and known.workspace.is_dir() else None
    return loaded, chosen, found


def _project_of(exercise: Exercise, workspace: Path | None) -> Path:
    if workspace is None:
        raise UserError(
            f"bb knows no project of {exercise.id} on this machine.",
            hint=f"cd into your project, or create one with `bb start {exercise.id}`.",
        )
    return workspace


@app.command()
@guarded
def hint(
    exercise: ExerciseArgument = None,
    next_check: Annotated[
        Optional[str],
        typer.Option(
            "--next",
            metavar="CHECK",
            help="Reveal the next, deeper level of this check's hint (a check name as `bb hint` "
            "lists it).",
            show_default=False,
        ),
    ] = None,
    pack: PackOption = None,
) -> None:
    """Show the exercise's hints, and what your grades revealed of each check's."""
    from bb import progress
    from bb.cli.console import out
    from bb.cli.views import hints, revealed_hint

    loaded, chosen, _ = _chosen(exercise, pack)
    if next_check is not None:
        item, advanced = progress.reveal_next_hint(loaded.identity, chosen.id, next_check)
        out.print(revealed_hint(item, advanced=advanced))
        return
    out.print(hints(chosen, progress.revealed_hints(loaded.identity, chosen.id)))


@app.command()
@guarded
def lesson(exercise: ExerciseArgument = None, pack: PackOption = None) -> None:
    """Show an exercise's lesson again (through a pager when it is longer than the screen)."""
    from bb.cli.views import lesson as lesson_view

    loaded, chosen, _ = _chosen(exercise, pack)
    _page(lesson_view(loaded, chosen))


def _page(renderable: Any) -> None:
    """Print ``renderable``, through a pager when stdout is a terminal it would overflow."""
    from bb.cli.console import out

    if not out.is_terminal:
        out.print(renderable)
        return
    lines = out.render_lines(renderable, out.options, pad=False)
    if len(lines) <= out.size.height:
        out.print(renderable)
        return
    os.environ.setdefault("LESS", "-R")  # let less show the colours
    with out.pager(styles=True):
        out.print(renderable)


@app.command()
@guarded
def solution(
    exercise: ExerciseArgument = None,
    force: Annotated[
        bool, typer.Option("--force", help="Show it before you have passed (asks first).")
    ] = False,
    pack: PackOption = None,
) -> int:
    """After you pass, show the reference solution as a diff against your project."""
    from bb import progress
    from bb.cli.views import diff_view
    from bb.pack.projects import solution_diff

    loaded, chosen, workspace = _chosen(exercise, pack)
    state = progress.load(loaded.identity).get(chosen.id)
    if state is None or state.passed_at is None:
        if not force:
            raise UserError(
                f"You have not passed {chosen.id} yet; the solution stays closed until you do.",
                hint="Try `bb hint` first. To see it anyway: `bb solution --force`.",
            )
        if not typer.confirm(
            "Seeing the solution before you solve it takes away most of what the exercise "
            "teaches. Show it anyway?",
            default=False,
            err=True,
        ):
            return ExitCode.USAGE
    _page(diff_view(solution_diff(chosen, _project_of(chosen, workspace))))
    return ExitCode.OK


@app.command()
@guarded
def reset(
    exercise: ExerciseArgument = None,
    list_: Annotated[
        bool, typer.Option("--list", help="List the backups earlier resets kept.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    pack: PackOption = None,
) -> int:
    """Restore an exercise's starter, keeping your work in a timestamped backup."""
    from bb.cli.console import err, out
    from bb.cli.views import backups_view
    from bb.pack.projects import list_backups, reset_project

    if list_:
        wanted = exercise
        if wanted is None and pack is None and (here := _workspace_here()) is not None:
            wanted = here[1]
        out.print(backups_view(list_backups(wanted)), soft_wrap=True)  # paths stay whole
        return ExitCode.OK
    loaded, chosen, workspace = _chosen(exercise, pack)
    project = _project_of(chosen, workspace)
    if not yes and not typer.confirm(
        f"Restore the starter of {chosen.id} in {project}? Your files move to a backup first.",
        default=False,
        err=True,
    ):
        return ExitCode.USAGE
    backup = reset_project(loaded, chosen, project)
    from rich.text import Text

    err.print(Text.assemble("✓ The starter is back in ", str(project), "."))
    err.print(
        Text.assemble("  Your work is in ", (str(backup.path), "bold"), " (bb reset --list).")
    )
    return ExitCode.OK


def _workspace_at(directory: Path | None) -> Path:
    """The project at or above ``directory`` (default: here)."""
    from bb import paths

    start_dir = directory or Path.cwd()
    workspace = paths.find_workspace(start_dir)
    if workspace is None:
        raise UserError(
            f"{start_dir} is not inside a bb project.",
            hint="cd into a project made by `bb start` (or pass --dir PATH).",
        )
    return workspace


def _project_here(directory: Path | None) -> tuple[Pack, Exercise, Path]:
    """The project at or above ``directory`` (default: here), its pack and exercise."""
    from bb.pack.scaffold import read_record

    workspace = _workspace_at(directory)
    record = read_record(workspace)
    loaded = _load(record.pack)
    return loaded, loaded.exercise(record.exercise), workspace


ProjectOption = Annotated[
    Optional[Path],
    typer.Option(
        "--dir",
        metavar="PATH",
        help="The project [default: the one you are in].",
        show_default=False,
    ),
]


@app.command()
@guarded
def up(
    directory: ProjectOption = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Start the services with empty data.")
    ] = False,
) -> int:
    """Run your project's whole stack and keep it running, to curl and psql while you debug.

    The app and the services keep the same ports every time, so the commands that failed
    checks print work here. Run it again after editing your code; `bb down` stops it."""
    from bb.cli.console import err, out
    from bb.cli.views import up_failed, up_running
    from bb.stack.lifecycle import StackFailed
    from bb.stack.up import bring_up

    loaded, exercise, workspace = _project_here(directory)
    try:
        with err.status("starting your stack") as status:
            stack = bring_up(
                loaded,
                exercise,
                workspace,
                fresh=fresh,
                on_progress=lambda m: status.update(_status_text(m)),
            )
    except StackFailed as failure:
        err.print(up_failed(failure))
        return ExitCode.CHECKS_FAILED
    out.print(up_running(stack))
    return ExitCode.OK


@app.command()
@guarded
def down(directory: ProjectOption = None) -> None:
    """Stop everything bb keeps running for your project: `bb up`'s stack and the warm
    services of grading."""
    from bb.cli.console import out
    from bb.stack.up import bring_down

    _, _, workspace = _project_here(directory)
    removed = bring_down(workspace)
    out.print(
        f"Stopped {removed} container(s) and network(s) of {workspace}."
        if removed
        else f"Nothing of {workspace} was running."
    )


def _workspace_here() -> tuple[Path, str] | None:
    from bb import paths
    from bb.pack.scaffold import read_record

    workspace = paths.find_workspace(Path.cwd())
    return None if workspace is None else (workspace, read_record(workspace).exercise)


@app.command()
@guarded
def doctor(pack: PackOption = None) -> int:
    """Check that this machine can grade: Docker engine, images, disk, Python, progress store."""
    from bb.cli.console import out
    from bb.cli.views import findings_view
    from bb.stack.doctor import blocked, diagnose

    findings = diagnose(_load(pack))
    out.print(findings_view(findings))
    return ExitCode.ENVIRONMENT if blocked(findings) else ExitCode.OK


# -- author commands -------------------------------------------------------------------------


@dev.command("check")
@guarded
def dev_check(
    pack: PackOption = None,
    exercise: Annotated[
        Optional[list[str]],
        typer.Option(
            "--exercise",
            "-e",
            metavar="EXERCISE",
            help="Check only this exercise (repeatable).",
            show_default=False,
        ),
    ] = None,
    grade_: Annotated[
        bool,
        typer.Option(
            "--grade/--no-grade", help="Grade each starter (must fail) and solution (must pass)."
        ),
    ] = True,
    variant: Annotated[
        Optional[list[str]],
        typer.Option(
            "--variant",
            "-w",
            metavar="NAME",
            help="Grade only this wrong variant of the chosen exercise (repeatable).",
            show_default=False,
        ),
    ] = None,
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", min=1, max=8, metavar="N", help="Grades to run at once.")
    ] = 2,
    isolation: IsolationOption = Isolation.STANDARD,
) -> int:
    """Validate a pack; grade every exercise's starter (must fail), solution (must pass) and
    known-wrong variants (each must fail the checks it names)."""

    from bb.cli.console import err, out
    from bb.cli.views import checker_summary
    from bb.grading.checker import check_exercise

    loaded = _load(pack)
    err.print(
        f"✓ {loaded.root}: manifests are valid ({len(loaded.exercises)} exercises)", markup=False
    )
    chosen = [loaded.exercise(e) for e in exercise] if exercise else list(loaded.exercises.values())
    if variant and len(chosen) != 1:
        raise UserError(
            "--variant names a wrong variant of one exercise.",
            hint="Choose that exercise with -e EXERCISE.",
        )
    results = []
    with err.status("checking") as status:
        for item in chosen:
            results.append(
                check_exercise(
                    loaded,
                    item,
                    grade=grade_,
                    variants=variant,
                    jobs=jobs,
                    on_progress=lambda m: status.update(_status_text(m)),
                    isolation=isolation,
                )
            )
    out.print(checker_summary(results))
    return ExitCode.OK if all(r.ok for r in results) else ExitCode.CONTENT


@classroom.command("grade")
@guarded
def class_grade(
    submissions: Annotated[
        Path,
        typer.Argument(
            help="A folder of submissions: project folders or .zip/.tar.gz archives, each "
            "named after its student.",
            show_default=False,
        ),
    ],
    exercise: Annotated[str, typer.Option("--exercise", "-e", help="The exercise they attempted.")],
    pack: PackOption = None,
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", min=1, max=64, metavar="N", help="Grades at once.")
    ] = 2,
    out: Annotated[
        Path, typer.Option("--out", help="Where results go (one folder per student).")
    ] = Path("bb-class-results"),
    timeout: Annotated[
        Optional[float],
        typer.Option(
            min=10,
            help="Each grade's time limit in seconds [default: the exercise's].",
            show_default=False,
        ),
    ] = None,
    regrade: Annotated[
        bool, typer.Option(help="Grade again submissions that already have a result.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON event per line on stdout.")
    ] = False,
    broker: Annotated[
        Optional[str],
        typer.Option(
            help="Send each submission to `bb worker`s through this Redis URL instead of "
            "grading here (needs `pip install 'bb[cluster]'`).",
            show_default=False,
        ),
    ] = None,
    queue: Annotated[str, typer.Option(help="The workers' queue, with --broker.")] = "bb-grading",
    isolation: Annotated[
        Isolation,
        typer.Option(
            "--isolation",
            case_sensitive=False,
            help="How far each submission is fenced in (strict: strangers' code has no network "
            "and no way to this machine).",
        ),
    ] = Isolation.STRICT,
) -> int:
    """Grade every submission in SUBMISSIONS, each in its own isolated stack."""
    import json

    from bb.cli.console import err, print_data
    from bb.cli.console import out as stdout
    from bb.cli.views import class_summary
    from bb.grading.classroom import find_submissions, grade_class

    loaded = _load(pack)
    chosen = loaded.exercise(exercise)
    found = find_submissions(submissions)
    if not found:
        raise UserError(
            f"{submissions} holds no submissions.",
            hint="Put one project folder or .zip/.tar.gz archive per student in it.",
        )
    runner = None
    if broker is not None:
        from bb.grading.cluster import CeleryRunner, make_app

        runner = CeleryRunner(
            make_app(broker), loaded, chosen, queue=queue, timeout=timeout,
            isolation=isolation.value,
        )  # fmt: skip
    options: dict[str, Any] = {
        "out": out, "jobs": jobs, "timeout": timeout, "regrade": regrade, "runner": runner,
        "isolation": isolation,
    }  # fmt: skip
    if as_json:
        results = grade_class(
            loaded, chosen, found, on_event=lambda event: print_data(json.dumps(event)), **options
        )
    else:
        with _class_progress(err, len(found)) as on_event:
            results = grade_class(loaded, chosen, found, on_event=on_event, **options)
        stdout.print(class_summary(results, out))
    from bb.results.report import Outcome

    problems = [r for r in results if r.report.outcome is not Outcome.GRADED]
    if not problems:
        return ExitCode.OK
    return (
        ExitCode.CONTENT
        if any(r.report.reason.startswith("course:") for r in problems)
        else ExitCode.ENVIRONMENT
    )


@app.command()
@guarded
def worker(
    broker: Annotated[str, typer.Option(help="The Redis URL `bb class grade --broker` uses.")],
    concurrency: Annotated[
        int, typer.Option(min=1, max=64, help="Grades this machine runs at once.")
    ] = 1,
    queue: Annotated[str, typer.Option(help="The queue to take submissions from.")] = (
        "bb-grading"
    ),
    visibility_timeout: Annotated[
        float,
        typer.Option(
            min=30,
            help="Seconds before a task whose worker vanished is delivered again; keep it "
            "above the longest grade.",
        ),
    ] = 3600.0,
    name: Annotated[str, typer.Option(help="This worker's name (unique per machine).")] = "bb",
) -> None:
    """Grade submissions from a queue, on this machine's Docker engine (run `bb setup` first)."""
    from bb.grading.cluster import run_worker

    run_worker(
        broker, concurrency=concurrency, queue=queue, visibility_timeout=visibility_timeout,
        name=name,
    )  # fmt: skip


class _class_progress:
    """A live display: done / running / failed, and the time left."""

    def __init__(self, console: Any, total: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("grading"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"), TimeRemainingColumn(), console=console,
        )  # fmt: skip
        self.task = self.progress.add_task("class", total=total, detail="")
        self.running = self.failed = self.not_graded = 0

    def __enter__(self) -> Callable[[dict[str, Any]], None]:
        self.progress.start()
        return self.on_event

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "grading":
            self.running += 1
        elif kind in ("finished", "reused"):
            self.running -= kind == "finished"
            self.failed += event["outcome"] == "graded" and not event["passed"]
            self.not_graded += event["outcome"] != "graded"
            self.progress.advance(self.task)
        detail = f"running {self.running} · not passed {self.failed}"
        if self.not_graded:
            detail += f" · not graded {self.not_graded}"
        self.progress.update(self.task, detail=detail)


# -- the edge ----------------------------------------------------------------------------------


def run(argv: list[str] | None = None) -> int:
    """Run bb with ``argv`` and return its exit code (for tests and embedding)."""
    try:
        app(args=argv, prog_name="bb")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return ExitCode.OK


def main() -> None:
    app(prog_name="bb")
