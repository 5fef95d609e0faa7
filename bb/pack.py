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
validation error names the file and the dotted path of the field.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

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


class Readiness(_Strict):
    """How bb knows a container is really ready: exactly one probe, plus a deadline."""

    tcp: bool = False
    http: HttpProbe | None = None
    postgres: PostgresProbe | None = None
    timeout: float = Field(default=60.0, gt=0, le=600)

    @model_validator(mode="after")
    def _one_probe(self) -> Readiness:
        chosen = [name for name in ("http", "postgres") if getattr(self, name) is not None]
        if self.tcp:
            chosen.append("tcp")
        if len(chosen) != 1:
            raise ValueError("give exactly one of tcp, http or postgres")
        return self


class Limits(_Strict):
    memory: str = Field(default="512m", pattern=r"^\d+[kmg]$")
    cpus: float = Field(default=1.0, gt=0, le=8)
    pids: int = Field(default=256, ge=16)


class Service(_Strict):
    """A supporting container (database, cache, mock). Keys follow Compose where they can."""

    image: str = Field(description="a course image name from course.yaml, or any image reference")
    environment: dict[str, str] = Field(default_factory=dict)
    command: list[str] | None = None
    port: int = Field(ge=1, le=65535, description="the port the service listens on")
    ready: Readiness
    tmpfs: list[str] = Field(default_factory=list)
    limits: Limits = Field(default_factory=lambda: Limits(memory="1g", cpus=2.0, pids=512))


class App(_Strict):
    """The learner's application, built from the Dockerfile in the workspace."""

    port: int = Field(default=8000, ge=1, le=65535)
    environment: dict[str, str] = Field(default_factory=dict)
    #: A one-off command run in the app image before the app starts (migrations).
    migrate: list[str] | None = None
    ready: Readiness = Field(default_factory=lambda: Readiness(http=HttpProbe(path="/health")))
    limits: Limits = Field(default_factory=Limits)
    #: Under strict isolation the build gets no network, unless the exercise needs it (a
    #: Dockerfile that installs packages itself). The app never gets one.
    build_network: bool = False


class Grader(_Strict):
    suite: str = Field(description="a directory under graders/")
    #: Wall-clock limit for one whole grade: build, start, checks.
    timeout: float = Field(default=300.0, gt=0, le=3600)


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


class Pack(BaseModel):
    """A loaded, validated pack: the course and its exercises, in course order."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    root: Path
    course: Course
    exercises: dict[str, Exercise]

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

    def image_tag(self, name: str) -> str:
        """The local tag of a course image, named by its recipe's content (equal recipes share)."""
        recipe = self.root / "course" / self.course.images[name].recipe
        return f"bb/{name}:{_tree_digest(recipe)}"

    def image_ref(self, image: str) -> str:
        """Resolve a service's ``image``: a course image name, or any reference as given."""
        return self.image_tag(image) if image in self.course.images else image


def _tree_digest(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


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
    return Pack(root=root, course=course, exercises=exercises)


def _check_references(root: Path, course: Course, exercise: Exercise, manifest: Path) -> None:
    for name in exercise.template:
        if not (root / "templates" / name).is_dir():
            raise ContentError(f"{manifest}: template: no directory templates/{name}.")
    if not (root / "graders" / exercise.grader.suite).is_dir():
        raise ContentError(
            f"{manifest}: grader.suite: no directory graders/{exercise.grader.suite}."
        )
    for name in exercise.wrong:
        if not exercise.wrong_dir(name).is_dir():
            raise ContentError(f"{manifest}: wrong.{name}: no directory wrong/{name} beside it.")
    for name, recipe in course.images.items():
        if not (root / "course" / recipe.recipe / "Dockerfile").is_file():
            raise ContentError(
                f"{root / 'course' / 'course.yaml'}: images.{name}.recipe: "
                f"no Dockerfile in course/{recipe.recipe}."
            )
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
