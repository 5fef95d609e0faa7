"""Exercise packs: reading and strictly validating course and exercise manifests.

A pack is a directory laid out like the built-in course::

    course/course.yaml        the course: modules, their exercises in order, image recipes
    course/lessons/<id>.md    one lesson per exercise
    course/images/<name>/     image recipes (a Dockerfile and its context)
    exercises/<id>/exercise.yaml   one manifest per exercise
    exercises/<id>/solution/  the reference solution, laid over the scaffolded starter
    templates/<name>/         Jinja2 project skeletons (``*.jinja`` rendered, the rest copied)
    graders/<name>/           pytest grader suites

Everything is loaded with ``yaml.safe_load`` into frozen models that reject unknown keys, and a
validation error names the file and the dotted path of the field. A pack is untrusted input:
every path a manifest names (template layers, grader suites, image recipes) must resolve, after
symbolic links, inside the pack's directory, and no symbolic link in the pack may point out of it.

A pack is known by where it lives, never by the id its course declares: the built-in course is
one identity wherever bb is installed (``builtin``), any other pack is its resolved directory.
Its content digest says which version of it a grade ran against.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from bb.errors import ContentError

FORMAT_VERSION = 1
SLUG = r"^[a-z0-9][a-z0-9-]{0,31}$"
Slug = Annotated[str, Field(pattern=SLUG)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpProbe(_Strict):
    path: str = "/"
    #: Any status below 500 that equals this counts as ready.
    status: int = 200


class PostgresProbe(_Strict):
    user: str
    password: str
    dbname: str


class RedisProbe(_Strict):
    """Ready when PING answers PONG (a Redis still loading its data answers an error)."""

    #: Sent inline (AUTH <password>): no spaces or line breaks, which would split the command.
    password: str | None = Field(default=None, pattern=r"^\S+$")


class Readiness(_Strict):
    """How bb knows a container is really ready: exactly one probe, plus a deadline."""

    tcp: bool = False
    http: HttpProbe | None = None
    postgres: PostgresProbe | None = None
    redis: RedisProbe | None = None
    timeout: float = Field(default=60.0, gt=0, le=600)

    @model_validator(mode="after")
    def _one_probe(self) -> Readiness:
        chosen = [n for n in ("http", "postgres", "redis") if getattr(self, n) is not None]
        if self.tcp:
            chosen.append("tcp")
        if len(chosen) != 1:
            raise ValueError("give exactly one of tcp, http, postgres or redis")
        return self


#: Below these a container cannot run a Python web app or a database at all; Docker itself
#: refuses less than 6 MiB of memory, which would surface only as a failed grade.
MIN_MEMORY_BYTES = 32 * 1024**2
MIN_CPUS = 0.1
_UNITS = {"k": 1024, "m": 1024**2, "g": 1024**3}


def memory_bytes(value: str) -> int:
    """``512m`` -> bytes (Docker's units: binary k, m, g)."""
    return int(value[:-1]) * _UNITS[value[-1]]


class Limits(_Strict):
    memory: str = Field(default="512m", pattern=r"^\d+[kmg]$")
    cpus: float = Field(default=1.0, ge=MIN_CPUS, le=8)
    pids: int = Field(default=256, ge=16)

    @field_validator("memory")
    @classmethod
    def _enough_memory(cls, value: str) -> str:
        if memory_bytes(value) < MIN_MEMORY_BYTES:
            raise ValueError(f"{value} is too little memory to run anything; give at least 32m")
        return value


class ServiceReset(_Strict):
    """How bb wipes a service's state between warm grades, when it is neither Postgres nor
    Redis (which bb knows how to wipe): a POST to this path must answer 2xx."""

    post: str = Field(pattern=r"^/[^\s]*$")


class Service(_Strict):
    """A supporting container (database, cache, mock). Keys follow Compose where they can."""

    image: str = Field(description="a course image name from course.yaml, or any image reference")
    environment: dict[str, str] = Field(default_factory=dict)
    command: list[str] | None = None
    port: int = Field(ge=1, le=65535, description="the port the service listens on")
    ready: Readiness
    tmpfs: list[str] = Field(default_factory=list)
    limits: Limits = Field(default_factory=lambda: Limits(memory="1g", cpus=2.0, pids=512))
    #: Lets the service stay warm between grades (see ServiceReset).
    reset: ServiceReset | None = None


class App(_Strict):
    """The learner's application: built from the Dockerfile in the workspace, or, with
    ``image`` and ``command``, the workspace's files run in that image (no Dockerfile)."""

    port: int = Field(default=8000, ge=1, le=65535)
    image: str | None = Field(
        default=None,
        description="run the project's files in this image (a course image name or any "
        "reference) instead of building its Dockerfile; needs command",
    )
    #: With ``image``: the command that starts the app, run in /app (the project's files).
    command: list[str] | None = Field(default=None, min_length=1)
    environment: dict[str, str] = Field(default_factory=dict)
    #: Environment variables bb sets to a fresh random value for every grade (and every
    #: `bb up`), over ``environment``: an app must read its secrets, never hard-code them.
    #: Graders read the value from ``stack.environment``.
    secrets: list[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]] = Field(
        default_factory=list
    )
    #: A one-off command run in the app image before the app starts (migrations).
    migrate: list[str] | None = None
    ready: Readiness = Field(default_factory=lambda: Readiness(http=HttpProbe(path="/health")))
    limits: Limits = Field(default_factory=Limits)
    #: How many containers of the app run, each on the network as ``app-1``, ``app-2``, ...
    #: and all as ``app``; graders reach each one (state shared through services, not memory).
    replicas: int = Field(default=1, ge=1, le=8)
    #: Under strict isolation the build gets no network, unless the exercise needs it (a
    #: Dockerfile that installs packages itself). The app never gets one.
    build_network: bool = False

    @model_validator(mode="after")
    def _image_with_command(self) -> App:
        if (self.image is None) != (self.command is None):
            raise ValueError(
                "give image and command together (the project's files run in that image with "
                "that command), or neither (the project's Dockerfile is built)"
            )
        return self


Visibility = Literal["visible", "hidden", "after_due_date", "after_published"]


class Grader(_Strict):
    suite: str = Field(description="a directory under graders/")
    #: Wall-clock limit for one whole grade: build, start, checks.
    timeout: float = Field(default=300.0, gt=0, le=3600)
    #: What each check is worth, by check name; the others are worth 1 point each.
    points: dict[str, Annotated[float, Field(ge=0, le=1000)]] = Field(default_factory=dict)
    #: When learners see each check's result, by check name; the others are visible.
    visibility: dict[str, Visibility] = Field(default_factory=dict)


class WrongVariant(_Strict):
    """A known-wrong solution: the files in ``exercises/<id>/wrong/<name>/``, laid over the
    reference solution, make a mistake a learner would plausibly make. The course checker
    grades it and requires every check in ``fails`` to fail."""

    mistake: str = Field(min_length=1, description="the mistake, in one sentence")
    fails: list[str] = Field(min_length=1, description="checks that must fail on it")


class Exercise(_Strict):
    format_version: Literal[1]
    id: Slug
    title: str
    summary: str
    #: Template layers under templates/, rendered in order; later layers override files.
    template: list[str] = Field(min_length=1)
    hints: list[str] = Field(min_length=1)
    services: dict[Slug, Service] = Field(default_factory=dict)
    app: App = Field(default_factory=App)
    grader: Grader
    #: Known-wrong solutions, by name (a directory under ``wrong/``).
    wrong: dict[Slug, WrongVariant] = Field(default_factory=dict)

    # Set by the loader, not by the manifest.
    root: Path = Field(default=Path(), exclude=True)

    @property
    def solution_dir(self) -> Path:
        return self.root / "solution"

    def wrong_dir(self, name: str) -> Path:
        return self.root / "wrong" / name


class ImageRecipe(_Strict):
    recipe: str = Field(description="a directory under course/ holding a Dockerfile")


class Module(_Strict):
    id: Slug
    title: str
    exercises: list[Slug] = Field(min_length=1)


class Course(_Strict):
    format_version: Literal[1]
    id: Slug
    title: str
    description: str = ""
    images: dict[Slug, ImageRecipe] = Field(default_factory=dict)
    modules: list[Module] = Field(min_length=1)


#: A pack's top-level directories; its content digest covers exactly these.
PACK_DIRS = ("course", "exercises", "templates", "graders")
#: Never part of a pack's content: caches that tools leave behind.
IGNORED_NAMES = frozenset({"__pycache__", ".pytest_cache", ".DS_Store"})
#: Where the built-in course lives, as progress and project records name it.
BUILTIN = "builtin"


@dataclasses.dataclass(frozen=True)
class PackIdentity:
    """Which pack, and which version of it: what progress is keyed by and stamped with."""

    #: ``builtin`` for the built-in course wherever bb is installed; else the resolved directory.
    where: str
    #: The course's own id and title: shown to people, never trusted to tell packs apart.
    id: str
    title: str
    #: SHA-256 of the pack's content (every file under :data:`PACK_DIRS`).
    digest: str

    @property
    def builtin(self) -> bool:
        return self.where == BUILTIN

    @property
    def short_digest(self) -> str:
        return self.digest[:12]

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "title": self.title, "where": self.where, "digest": self.digest}


def location_key(root: Path) -> str:
    """How progress names the pack at ``root``: ``builtin``, or its resolved directory."""
    from bb import paths

    resolved = root.resolve()
    return BUILTIN if resolved == paths.builtin_pack().resolve() else str(resolved)


class Pack(BaseModel):
    """A loaded, validated pack: the course and its exercises, in course order."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    root: Path
    course: Course
    exercises: dict[str, Exercise]

    @functools.cached_property
    def identity(self) -> PackIdentity:
        """Where the pack lives and the digest of its content, computed once per load."""
        return PackIdentity(
            where=location_key(self.root),
            id=self.course.id,
            title=self.course.title,
            digest=content_digest(self.root),
        )

    def exercise(self, exercise_id: str) -> Exercise:
        try:
            return self.exercises[exercise_id]
        except KeyError:
            from bb.errors import UserError

            known = ", ".join(self.exercises)
            raise UserError(
                f"There is no exercise called {exercise_id!r} in {self.course.title}.",
                hint=f"Known exercises: {known}. `bb list` shows them all.",
            ) from None

    def module_of(self, exercise_id: str) -> Module:
        return next(m for m in self.course.modules if exercise_id in m.exercises)

    def lesson_path(self, exercise_id: str) -> Path:
        return self.root / "course" / "lessons" / f"{exercise_id}.md"

    def lesson_text(self, exercise_id: str) -> str:
        path = self.lesson_path(exercise_id)
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ContentError(f"{path}: the lesson of {exercise_id!r} is missing.") from None

    def template_dirs(self, exercise: Exercise) -> list[Path]:
        return [self.root / "templates" / name for name in exercise.template]

    def grader_dir(self, exercise: Exercise) -> Path:
        return self.root / "graders" / exercise.grader.suite

    def recipe_dir(self, name: str) -> Path:
        return self.root / "course" / self.course.images[name].recipe

    def image_tag(self, name: str) -> str:
        """The local tag of a course image, named by its recipe's content (equal recipes share)."""
        return f"bb/{name}:{_tree_digest(self.recipe_dir(name))}"

    def image_ref(self, image: str) -> str:
        """Resolve a service's ``image``: a course image name, or any reference as given."""
        return self.image_tag(image) if image in self.course.images else image


def _tree_digest(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(
        p for p in directory.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    ):
        digest.update(path.relative_to(directory).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _entries(directory: Path) -> Iterator[Path]:
    """Every non-directory under ``directory``, in a stable order, without following links."""
    try:
        with os.scandir(directory) as scan:
            found = sorted(scan, key=lambda entry: entry.name)
    except FileNotFoundError:
        return
    for entry in found:
        if entry.name in IGNORED_NAMES or entry.name.endswith(".pyc"):
            continue
        if entry.is_dir(follow_symlinks=False):
            yield from _entries(Path(entry.path))
        else:
            yield Path(entry.path)


def content_digest(root: Path) -> str:
    """SHA-256 over every file of the pack at ``root`` (names, kinds and bytes); a symbolic
    link counts by its target's name, so nothing outside the pack is ever read."""
    digest = hashlib.sha256()
    for top in PACK_DIRS:
        for path in _entries(root / top):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            if path.is_symlink():
                digest.update(b"link\0" + path.readlink().as_posix().encode() + b"\0")
            elif path.is_file():
                data = path.read_bytes()
                digest.update(b"file\0%d\0" % len(data) + data)
    return digest.hexdigest()


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ContentError(f"{path}: file not found.") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ContentError(
            f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})."
        ) from None


def format_validation_error(path: Path, exc: ValidationError) -> str:
    """One ``file: dotted.field: message`` line per problem."""
    lines = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "literal_error" and field == "format_version":
            message = f"unsupported format_version (this bb reads {FORMAT_VERSION})"
        lines.append(f"{path}: {field}: {message}")
    return "\n".join(lines)


def _validate(model: type[BaseModel], path: Path, data: Any, **extra: Any) -> Any:
    if not isinstance(data, dict):
        raise ContentError(f"{path}: expected a mapping at the top level.")
    try:
        return model.model_validate({**data, **extra})
    except ValidationError as exc:
        raise ContentError(
            format_validation_error(path, exc), hint="Fix the manifest, then run `bb dev check`."
        ) from None


def load_pack(root: Path) -> Pack:
    """Load and validate a pack.

    Args:
        root: the pack's directory (holding ``course/course.yaml``).

    Raises:
        ContentError: a manifest is missing, malformed, or inconsistent with the others.
    """
    root = root.resolve()
    course_file = root / "course" / "course.yaml"
    if not course_file.is_file():
        raise ContentError(
            f"{root} is not an exercise pack: {course_file} is missing.",
            hint="A pack holds course/course.yaml, exercises/, templates/ and graders/.",
        )
    course: Course = _validate(Course, course_file, _read_yaml(course_file))
    _check_images(root, course, course_file)

    exercises: dict[str, Exercise] = {}
    for module in course.modules:
        for exercise_id in module.exercises:
            if exercise_id in exercises:
                raise ContentError(f"{course_file}: exercise {exercise_id!r} is listed twice.")
            manifest = root / "exercises" / exercise_id / "exercise.yaml"
            if not manifest.is_file():
                raise ContentError(
                    f"{course_file}: module {module.id!r} lists {exercise_id!r}, "
                    f"but {manifest} does not exist."
                )
            exercise: Exercise = _validate(
                Exercise, manifest, _read_yaml(manifest), root=manifest.parent
            )
            if exercise.id != exercise_id:
                raise ContentError(
                    f"{manifest}: id: is {exercise.id!r}, but the directory is {exercise_id!r}."
                )
            _check_references(root, course, exercise, manifest)
            exercises[exercise_id] = exercise
    _check_links(root)
    return Pack(root=root, course=course, exercises=exercises)


def _inside(root: Path, parent: str, name: str, manifest: Path, field: str) -> Path:
    """``root/parent/name``, refused unless it resolves (links and all) inside the pack."""
    if Path(name).is_absolute():
        raise ContentError(
            f"{manifest}: {field}: {name!r} is an absolute path; name a directory inside the "
            f"pack, relative to {parent}/."
        )
    path = root / parent / name
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):
        raise ContentError(f"{manifest}: {field}: {name!r} cannot be resolved.") from None
    if not resolved.is_relative_to(root):
        raise ContentError(
            f"{manifest}: {field}: {name!r} leads outside the pack (to {resolved}); a pack may "
            "only use its own files."
        )
    return path


def _check_images(root: Path, course: Course, course_file: Path) -> None:
    for name, recipe in course.images.items():
        field = f"images.{name}.recipe"
        directory = _inside(root, "course", recipe.recipe, course_file, field)
        if not (directory / "Dockerfile").is_file():
            raise ContentError(f"{course_file}: {field}: no Dockerfile in course/{recipe.recipe}.")


def _check_references(root: Path, course: Course, exercise: Exercise, manifest: Path) -> None:
    for index, name in enumerate(exercise.template):
        if not _inside(root, "templates", name, manifest, f"template[{index}]").is_dir():
            raise ContentError(f"{manifest}: template[{index}]: no directory templates/{name}.")
    suite = exercise.grader.suite
    if not _inside(root, "graders", suite, manifest, "grader.suite").is_dir():
        raise ContentError(f"{manifest}: grader.suite: no directory graders/{suite}.")
    for name in exercise.wrong:
        if not exercise.wrong_dir(name).is_dir():
            raise ContentError(f"{manifest}: wrong.{name}: no directory wrong/{name} beside it.")
    for name, service in exercise.services.items():
        if (
            re.fullmatch(SLUG, service.image)
            and ":" not in service.image
            and "/" not in service.image
        ) and service.image not in course.images:
            raise ContentError(
                f"{manifest}: services.{name}.image: {service.image!r} is not an image of "
                "this course; name one from course.yaml's images, or a full reference."
            )
    if exercise.app.image is not None and _unknown_course_image(exercise.app.image, course):
        raise ContentError(
            f"{manifest}: app.image: {exercise.app.image!r} is not an image of this course; "
            "name one from course.yaml's images, or a full reference."
        )


def _unknown_course_image(image: str, course: Course) -> bool:
    """A bare name (no tag, no registry) that is not one of the course's images: a typo."""
    return (
        bool(re.fullmatch(SLUG, image))
        and ":" not in image
        and "/" not in image
        and image not in course.images
    )


def _check_links(root: Path) -> None:
    """Refuse symbolic links that lead out of the pack, and anything but files and links: a
    link would let a template, solution or recipe copy files from anywhere on the machine, and
    reading a pipe or device would hang or flood bb."""
    for top in PACK_DIRS:
        for path in _entries(root / top):
            if path.is_symlink():
                try:
                    target = path.resolve()
                except (OSError, RuntimeError):
                    raise ContentError(
                        f"{path}: a symbolic link that cannot be resolved."
                    ) from None
                if not target.is_relative_to(root):
                    raise ContentError(
                        f"{path}: a symbolic link leading outside the pack (to {target}); a pack "
                        "may only use its own files."
                    )
            elif not path.is_file():
                raise ContentError(
                    f"{path}: not a regular file; a pack holds only files and directories."
                )
