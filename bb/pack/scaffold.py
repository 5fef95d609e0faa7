"""Scaffolding: render an exercise's template layers into a learner's workspace.

Only ``*.jinja`` files are rendered (the suffix is stripped); everything else is copied byte for
byte. Undefined variables are errors, and no file may land outside the workspace. Every
workspace gets a record file saying which pack and exercise it belongs to, so that ``bb grade``
needs no arguments.

Templates are untrusted: they render in Jinja's immutable sandbox (no attribute tricks reach
Python's internals, so a template cannot run code), a template over :data:`MAX_TEMPLATE_BYTES`
is refused unread, and rendering stops at :data:`MAX_RENDERED_CHARS` of output. ``{% include %}``,
``{% import %}`` and ``{% extends %}`` find templates only in the exercise's own layers (the
latest layer first), by paths relative to a layer's root.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from bb import __version__
from bb.errors import ContentError, UserError
from bb.pack.manifest import BUILTIN, Exercise, Pack
from bb.paths import RECORD_FILE

if TYPE_CHECKING:
    import jinja2

RECORD_HEADER = "# Managed by bb — do not edit. It says which exercise this project is.\n"

#: Never copied from a template, whatever the author left there.
_IGNORED = {"__pycache__", ".pytest_cache", ".DS_Store"}

#: A ``.jinja`` file (or an included one) larger than this is refused unread: templates are
#: source files, and rendering a huge one would hold it, and its output, in memory.
MAX_TEMPLATE_BYTES = 1024**2
#: Rendering one template stops here: a loop can blow a small template up.
MAX_RENDERED_CHARS = 8 * 1024**2


@dataclasses.dataclass(frozen=True)
class Record:
    """The contents of a workspace's record file."""

    pack: Path
    exercise: str
    bb_version: str


@dataclasses.dataclass(frozen=True)
class ScaffoldResult:
    workspace: Path
    created: bool
    files: tuple[str, ...]


def template_context(pack: Pack, exercise: Exercise) -> dict[str, Any]:
    return {
        "exercise": {"id": exercise.id, "title": exercise.title},
        "course": {"id": pack.course.id, "title": pack.course.title},
        "images": {name: pack.image_tag(name) for name in pack.course.images},
        "app_port": exercise.app.port,
    }


def render_layers(pack: Pack, exercise: Exercise, destination: Path) -> list[str]:
    """Render every template layer of ``exercise`` into ``destination``; return relative paths.

    Where the system allows, rendering runs in a forked child process capped at
    :data:`RENDER_MEMORY_BYTES` of extra memory and :data:`RENDER_CPU_SECONDS` of CPU: the
    sandbox stops templates reaching Python, the caps stop them exhausting the machine.

    Raises:
        ContentError: a template is broken (undefined variable, syntax error, escaping path,
            unsafe code, too large, too hungry), or a layer holds a link or a special file.
    """
    layers = pack.template_dirs(exercise)
    sources = [(layer, _layer_files(layer)) for layer in layers]
    env = _environment(layers)
    context = template_context(pack, exercise)
    destination = destination.resolve()

    def render_all(rendering: Callable[[Path], None]) -> list[str]:
        written: dict[str, None] = {}
        for layer, files in sources:
            for source in files:
                relative = source.relative_to(layer)
                rendered_name = relative.as_posix().removesuffix(".jinja")
                target = (destination / rendered_name).resolve()
                if not target.is_relative_to(destination):
                    raise ContentError(f"{source}: would be written outside the workspace.")
                target.parent.mkdir(parents=True, exist_ok=True)
                if source.suffix == ".jinja":
                    rendering(source)
                    target.write_text(_render(env, source, context), encoding="utf-8")
                else:
                    shutil.copyfile(source, target)
                shutil.copymode(source, target)
                written[rendered_name] = None
        return list(written)

    if not hasattr(os, "fork"):
        return render_all(lambda _source: None)
    return _in_capped_child(render_all, layers)


#: What one rendering of an exercise's templates may use on top of what bb already holds.
RENDER_MEMORY_BYTES = 1024**3
RENDER_CPU_SECONDS = 10


def _in_capped_child(
    render_all: Callable[[Callable[[Path], None]], list[str]], layers: list[Path]
) -> list[str]:
    """Run ``render_all`` in a forked child under memory and CPU caps; its result, or its
    ContentError, comes back as JSON lines over a pipe (each template announced before it
    renders, so a child killed at the CPU cap still names its culprit)."""
    import json
    import signal

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_end)
        with os.fdopen(write_end, "w", encoding="utf-8") as pipe:

            def say(message: dict[str, Any]) -> None:
                pipe.write(json.dumps(message) + "\n")
                pipe.flush()

            try:
                _cap_this_process()
                say({"files": render_all(lambda source: say({"rendering": str(source)}))})
            except ContentError as exc:
                say({"error": exc.message, "hint": exc.hint})
            except MemoryError:
                say({"memory": True})
            except BaseException as exc:  # a bug in bb: the parent reports it as one
                say({"bug": f"{type(exc).__name__}: {exc}"})
            finally:
                os._exit(0)
    os.close(write_end)
    messages: list[dict[str, Any]] = []
    try:
        with os.fdopen(read_end, encoding="utf-8") as pipe:
            for line in pipe:
                with contextlib.suppress(ValueError):  # a line cut short by the CPU cap
                    messages.append(json.loads(line))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # gone already, unless the parent was interrupted
        os.waitpid(pid, 0)
    rendering = next(
        (m["rendering"] for m in reversed(messages) if "rendering" in m),
        ", ".join(str(layer) for layer in layers),
    )
    last = messages[-1] if messages else {}
    if "files" in last:
        return list(last["files"])
    if "error" in last:
        raise ContentError(last["error"], hint=last["hint"])
    if "bug" in last:
        raise RuntimeError(f"rendering templates failed: {last['bug']}")
    if "memory" in last:
        raise ContentError(
            f"{rendering}: rendering needs more than {RENDER_MEMORY_BYTES // 1024**2} MiB of "
            "memory; bb stopped it."
        )
    raise ContentError(
        f"{rendering}: rendering took more than {RENDER_CPU_SECONDS} s of CPU; bb stopped it."
    )


def _cap_this_process() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CPU, (RENDER_CPU_SECONDS, RENDER_CPU_SECONDS + 1))
    try:  # Linux: the address space now, plus the budget (other systems: the CPU cap only)
        pages = int(Path("/proc/self/statm").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    limit = pages * os.sysconf("SC_PAGE_SIZE") + RENDER_MEMORY_BYTES
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _layer_files(layer: Path) -> list[Path]:
    """The files of one template layer, checked before anything renders (an include may read
    any of them): no symbolic links, no special files."""
    files = []
    for source in sorted(layer.rglob("*")):
        relative = source.relative_to(layer)
        if any(part in _IGNORED for part in relative.parts):
            continue
        if source.is_symlink():
            raise ContentError(f"{source}: templates may not contain symbolic links.")
        if source.is_dir():
            continue
        if not source.is_file():
            raise ContentError(f"{source}: not a regular file; templates hold only files.")
        files.append(source)
    return files


def _read_template(path: Path) -> str:
    size = path.stat().st_size
    if size > MAX_TEMPLATE_BYTES:
        raise ContentError(
            f"{path}: the template is {size:,} bytes; bb renders templates of at most "
            f"{MAX_TEMPLATE_BYTES:,} bytes.",
            hint="Ship large files without the .jinja suffix: they are copied, not rendered.",
        )
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ContentError(f"{path}: a template must be UTF-8 text.") from None


def _render(env: jinja2.Environment, source: Path, context: dict[str, Any]) -> str:
    import jinja2

    try:
        template = env.from_string(_read_template(source))
        chunks: list[str] = []
        size = 0
        for chunk in template.generate(context):
            size += len(chunk)
            if size > MAX_RENDERED_CHARS:
                raise ContentError(
                    f"{source}: renders to more than {MAX_RENDERED_CHARS:,} characters; bb "
                    "stopped it."
                )
            chunks.append(chunk)
        return "".join(chunks)
    except ContentError as exc:
        if str(source) in exc.message:
            raise
        raise ContentError(f"{source}: {exc.message}", hint=exc.hint) from None
    except jinja2.TemplateNotFound as exc:
        raise ContentError(
            f"{source}: {exc.name!r} is not a file of this exercise's template layers; "
            "include, import and extend only those, by paths relative to a layer."
        ) from None
    except jinja2.TemplateError as exc:
        line = getattr(exc, "lineno", None)
        where = f":{line}" if line else ""
        raise ContentError(f"{source}{where}: {exc}") from None
    except (ArithmeticError, LookupError, TypeError, ValueError, RecursionError) as exc:
        # A template's own runtime error (1/0, a bad index, an include of itself).
        raise ContentError(f"{source}: rendering failed: {type(exc).__name__}: {exc}") from None


def _environment(layers: list[Path]) -> jinja2.Environment:
    import jinja2

    sandbox_class = _sandbox_class()
    return sandbox_class(
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        loader=_layer_loader_class()(list(reversed(layers))),
    )


@functools.cache
def _layer_loader_class() -> Callable[[list[Path]], jinja2.BaseLoader]:
    import jinja2
    from jinja2.loaders import split_template_path

    class LayerLoader(jinja2.BaseLoader):
        """Finds included templates in the exercise's layers only, latest layer first."""

        def __init__(self, layers: list[Path]) -> None:
            self.layers = layers

        def get_source(
            self, environment: jinja2.Environment, template: str
        ) -> tuple[str, str | None, Callable[[], bool] | None]:
            pieces = split_template_path(template)  # refuses "..": no way out of a layer
            for layer in self.layers:
                path = layer.joinpath(*pieces)
                if path.is_symlink() or not path.is_file():
                    continue
                if any(part in _IGNORED for part in pieces):
                    continue
                return _read_template(path), str(path), lambda: True
            raise jinja2.TemplateNotFound(template)

    return LayerLoader


@functools.cache
def _sandbox_class() -> type[jinja2.Environment]:
    from jinja2.exceptions import SecurityError
    from jinja2.runtime import Context
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class BoundedSandbox(ImmutableSandboxedEnvironment):
        """Jinja's sandbox, where ``*`` and ``**`` may not build a value larger than the
        output limit (the sandbox alone lets ``"x" * 10**10`` take 10 GB)."""

        intercepted_binops = frozenset({"*", "**"})

        def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
            if operator == "*":
                for sequence, times in ((left, right), (right, left)):
                    if (
                        isinstance(sequence, str | bytes | list | tuple)
                        and isinstance(times, int)
                        and len(sequence) * times > MAX_RENDERED_CHARS
                    ):
                        raise SecurityError("a repetition this large is refused")
            if (
                operator == "**"
                and isinstance(left, int)
                and isinstance(right, int)
                and abs(left) > 1
                and right * abs(left).bit_length() > 64 * 1024
            ):
                raise SecurityError("a power this large is refused")
            return super().call_binop(context, operator, left, right)

    return BoundedSandbox


def new_project(pack: Pack, exercise: Exercise, workspace: Path) -> ScaffoldResult:
    """Create the exercise's starter project in ``workspace``, or keep the one already there.

    An existing project of the same exercise is left exactly as it is: the learner's edits are
    never overwritten. The project is rendered in a fresh staging directory beside
    ``workspace`` and published by one atomic rename, so a broken template leaves nothing
    half-made and, of several ``bb start`` racing for one directory, one creates the project
    and the others find it there.

    Raises:
        UserError: ``workspace`` holds something else (files that are not this exercise's project).
        ContentError: the exercise's templates are broken.
    """
    workspace = workspace.expanduser().resolve()
    existing = _existing_project(workspace, exercise)
    if existing is not None:
        return existing
    try:
        workspace.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(
            tempfile.mkdtemp(prefix=f".{workspace.name}.bb-partial-", dir=workspace.parent)
        )
    except OSError as exc:
        raise UserError(
            f"bb cannot create the project at {workspace} ({exc.strerror or exc}).",
            hint="Choose a writable directory with --dir.",
        ) from None
    try:
        staging.chmod(_default_directory_mode())
        files = render_layers(pack, exercise, staging)
        write_record(staging, Record(pack=pack.root, exercise=exercise.id, bb_version=__version__))
        try:
            # Atomic: replaces an empty directory, fails if anything (another bb's project,
            # the learner's files) arrived there meanwhile.
            staging.rename(workspace)
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                raise UserError(
                    f"bb cannot create the project at {workspace} ({exc.strerror or exc}).",
                    hint="Choose a writable directory with --dir.",
                ) from None
            existing = _existing_project(workspace, exercise)
            if existing is not None:
                return existing
            raise UserError(  # pragma: no cover - emptied again between rename and the look
                f"{workspace} changed while bb was creating the project there.",
                hint="Run `bb start` again.",
            ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ScaffoldResult(workspace=workspace, created=True, files=tuple(files))


def _existing_project(workspace: Path, exercise: Exercise) -> ScaffoldResult | None:
    """The project already at ``workspace`` (None when there is nothing, or an empty directory).

    Raises:
        UserError: ``workspace`` holds another exercise's project, or anything else.
    """
    if not workspace.exists():
        return None
    existing = read_record(workspace) if (workspace / RECORD_FILE).is_file() else None
    if existing is not None and existing.exercise == exercise.id:
        return ScaffoldResult(workspace=workspace, created=False, files=())
    if existing is not None:
        raise UserError(
            f"{workspace} already holds the project of exercise {existing.exercise!r}.",
            hint="Choose another directory with --dir.",
        )
    if not workspace.is_dir() or any(workspace.iterdir()):
        raise UserError(
            f"{workspace} exists and is not empty; bb will not write into it.",
            hint="Choose an empty or new directory with --dir.",
        )
    return None


def _default_directory_mode() -> int:
    """What ``mkdir`` would give (mkdtemp makes its directory private to the owner)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o777 & ~mask


def lay_solution(exercise: Exercise, workspace: Path) -> None:
    """Copy the reference solution's files over a scaffolded starter (for the course checker)."""
    solution = exercise.solution_dir
    if not solution.is_dir():
        raise ContentError(f"{solution}: the reference solution is missing.")
    shutil.copytree(
        solution, workspace, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*_IGNORED)
    )


def write_record(workspace: Path, record: Record) -> None:
    from bb.pack.manifest import location_key

    path = workspace / RECORD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    # The built-in course is named, not located: the project outlives a reinstall of bb.
    body = yaml.safe_dump(
        {
            "pack": location_key(record.pack),
            "exercise": record.exercise,
            "bb_version": record.bb_version,
        },
        sort_keys=False,
    )
    path.write_text(RECORD_HEADER + body, encoding="utf-8")


def read_record(workspace: Path) -> Record:
    """Read a workspace's record file.

    Raises:
        UserError: the record is missing or was edited into something bb cannot read.
    """
    from bb import paths

    path = workspace / RECORD_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        pack = str(data["pack"])
        return Record(
            pack=paths.builtin_pack() if pack == BUILTIN else Path(pack),
            exercise=str(data["exercise"]),
            bb_version=str(data.get("bb_version", "")),
        )
    except FileNotFoundError:
        raise UserError(
            f"{workspace} is not a bb project (no {RECORD_FILE}).",
            hint="Run `bb grade` inside a directory made by `bb start`.",
        ) from None
    except (yaml.YAMLError, KeyError, TypeError):
        raise UserError(
            f"{path} is damaged.",
            hint="Restore it (it names the pack and exercise), or start the exercise again "
            "in a new directory with `bb start EXERCISE --dir PATH`.",
        ) from None
