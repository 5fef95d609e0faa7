"""bb's command line: each command parses, calls one core function, renders what comes back.

Heavy modules (docker, pydantic, jinja2, httpx) are imported inside the commands, so that
``bb --help`` stays fast. Errors are caught once, in :func:`run`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional, TypeVar

import typer

from bb import __version__
from bb.errors import BBError, ExitCode, UserError
from bb.isolation import ENV as ISOLATION_ENV
from bb.isolation import Isolation

if TYPE_CHECKING:
    from bb.pack import Exercise, Pack
    from bb.progress import ExerciseProgress

app = typer.Typer(
    name="bb",
    help="A bootcamp that turns Python coders into backend engineers, one graded project "
    "at a time.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
dev = typer.Typer(help="Tools for course authors and instructors.", no_args_is_help=True)
app.add_typer(dev, name="dev")

_debug = bool(os.environ.get("BB_DEBUG"))
_Command = TypeVar("_Command", bound=Callable[..., Any])


def guarded(command: _Command) -> _Command:
    """Catch every error once, here: one sentence and a fix on stderr, and the right exit code.

    A command returns an ``ExitCode`` (or None for OK); tracebacks appear only with --debug.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        from bb.console import err

        try:
            code = command(*args, **kwargs)
        except KeyboardInterrupt:
            err.print("Interrupted; bb removed what it had started.")
            code = ExitCode.INTERRUPTED
        except BBError as exc:
            from rich.text import Text

            if _debug:
                err.print_exception()
            err.print(Text.assemble(("error: ", "bold red"), exc.message), soft_wrap=True)
            if exc.hint:
                err.print(Text.assemble("\n", ("hint: ", "bold cyan"), exc.hint), soft_wrap=True)
            code = exc.exit_code
        except Exception:
            if _debug:
                err.print_exception()
            err.print(
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
    """If a grade was killed mid-way, remove its containers now (cheap when there is none)."""
    from bb import journal

    stale = journal.stale_entries()
    if not stale:
        return
    from bb.grading import sweep_leftovers
    from bb.runtime import Engine

    try:
        sweep_leftovers(Engine.connect())
    except BBError:
        return  # no engine now: the next command that needs one sweeps


def _load(pack_dir: Path | None) -> Pack:
    from bb import paths
    from bb.pack import load_pack

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
    from bb.console import err
    from bb.grading import sweep_leftovers
    from bb.images import build_course_images, build_relay_image
    from bb.runtime import Engine

    loaded = _load(pack)
    engine = Engine.connect()
    err.print("✓ Docker engine answers")
    sweep_leftovers(engine)
    with err.status("checking images") as status:

        def on_image(name: str, tag: str) -> None:
            err.print(f"… building {name} ({tag}); this takes a minute")
            status.update(f"building {name}")

        def on_line(line: str) -> None:
            status.update(
                f"building: {line[:70]}",
            )

        results = build_course_images(
            loaded, engine, ca_bundle=ca_bundle, rebuild=rebuild, on_image=on_image, on_line=on_line
        )
        results.append(
            build_relay_image(engine, rebuild=rebuild, on_image=on_image, on_line=on_line)
        )
    for image in results:
        err.print(f"✓ {image.name}: {image.tag} {'built' if image.built else 'already there'}")
    err.print("\nReady. Start the first exercise with `bb start`.")


@app.command("list")
@guarded
def list_(pack: PackOption = None) -> None:
    """Show the course: its modules and exercises, with your progress on each."""
    from bb import progress
    from bb.console import out
    from bb.views import course_map

    loaded = _load(pack)
    out.print(course_map(loaded, progress.load(loaded.course.id)))


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
            help="Where to create the project [default: ~/bb-projects/EXERCISE].",
            show_default=False,
        ),
    ] = None,
    pack: PackOption = None,
) -> None:
    """Explain the next exercise and create its starter project."""
    from bb import paths, progress
    from bb.console import err, out
    from bb.scaffold import new_project
    from bb.views import course_map, lesson, next_steps

    loaded = _load(pack)
    done = progress.load(loaded.course.id)
    chosen = loaded.exercise(exercise) if exercise else _next_exercise(loaded, done)
    workspace = directory or paths.workspaces_root() / chosen.id
    result = new_project(loaded, chosen, workspace)
    progress.record_start(loaded.course.id, chosen.id, result.workspace)
    done = progress.load(loaded.course.id)
    out.print(course_map(loaded, done, current=chosen.id))
    out.print(lesson(loaded, chosen))
    if not result.created:
        err.print(f"Your project {result.workspace} already exists; bb left it untouched.")
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
            "--dir", help="The project to grade [default: the one you are in].", show_default=False
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document on stdout.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show details of passed checks too.")
    ] = False,
    isolation: IsolationOption = Isolation.STANDARD,
) -> int:
    """Run your project and its services in containers, and check it against the exercise."""
    from bb import paths, progress
    from bb.console import err, out, print_data
    from bb.grading import grade_workspace
    from bb.report import render, to_json

    start_dir = directory or Path.cwd()
    workspace = paths.find_workspace(start_dir)
    if workspace is None:
        raise UserError(
            f"{start_dir} is not inside a bb project.",
            hint="cd into a project made by `bb start` (or pass --dir PATH).",
        )
    with err.status("grading") as status:
        course_id, report = grade_workspace(
            workspace, on_progress=lambda m: status.update(m), isolation=isolation
        )
    progress.record_attempt(course_id, report)
    if as_json:
        import json

        print_data(json.dumps(to_json(report), indent=2))
    else:
        out.print(render(report, verbose=verbose))
    return ExitCode.OK if report.passed else ExitCode.CHECKS_FAILED


@app.command()
@guarded
def status(pack: PackOption = None) -> None:
    """Show your progress through the course."""
    from bb import progress
    from bb.console import out
    from bb.views import progress_summary

    loaded = _load(pack)
    out.print(progress_summary(loaded, progress.load(loaded.course.id)))


@app.command()
@guarded
def hint(
    exercise: Annotated[
        Optional[str],
        typer.Argument(
            help="The exercise [default: the project you are in, or your current exercise].",
            show_default=False,
        ),
    ] = None,
    pack: PackOption = None,
) -> None:
    """Show the hints for the current exercise."""
    from bb import paths, progress
    from bb.console import out
    from bb.scaffold import read_record
    from bb.views import hints

    if exercise is None and pack is None and (workspace := paths.find_workspace(Path.cwd())):
        record = read_record(workspace)
        loaded = _load(record.pack)
        chosen = loaded.exercise(record.exercise)
    else:
        loaded = _load(pack)
        chosen = (
            loaded.exercise(exercise)
            if exercise
            else _next_exercise(loaded, progress.load(loaded.course.id))
        )
    out.print(hints(chosen))


# -- author commands -------------------------------------------------------------------------


@dev.command("check")
@guarded
def dev_check(
    pack: PackOption = None,
    exercise: Annotated[
        Optional[list[str]],
        typer.Option(
            "--exercise", "-e", help="Check only this exercise (repeatable).", show_default=False
        ),
    ] = None,
    grade_: Annotated[
        bool,
        typer.Option(
            "--grade/--no-grade", help="Grade each starter (must fail) and solution (must pass)."
        ),
    ] = True,
    isolation: IsolationOption = Isolation.STANDARD,
) -> int:
    """Validate a pack; grade every exercise's starter (must fail) and solution (must pass)."""
    from bb.checker import check_exercise
    from bb.console import err, out
    from bb.views import checker_summary

    loaded = _load(pack)
    err.print(f"✓ {loaded.root}: manifests are valid ({len(loaded.exercises)} exercises)")
    chosen = [loaded.exercise(e) for e in exercise] if exercise else list(loaded.exercises.values())
    results = []
    with err.status("checking") as status:
        for item in chosen:
            results.append(
                check_exercise(
                    loaded,
                    item,
                    grade=grade_,
                    on_progress=lambda m: status.update(m),
                    isolation=isolation,
                )
            )
    out.print(checker_summary(results))
    return ExitCode.OK if all(r.ok for r in results) else ExitCode.CONTENT


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
