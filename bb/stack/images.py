"""The course's images: built once from the recipes a pack ships, so grading works offline."""

from __future__ import annotations

import dataclasses
import os
import shutil
import ssl
import tempfile
from collections.abc import Callable
from pathlib import Path

from bb.errors import EnvironmentProblem, UserError
from bb.pack.manifest import Pack
from bb.stack.engine import MANAGED, Engine

#: The file name recipes may COPY to trust extra certificate authorities while they build.
EXTRA_CA = "extra-ca.crt"


@dataclasses.dataclass(frozen=True)
class ImageStatus:
    name: str
    tag: str
    built: bool  # False when it was already there


def default_ca_bundle() -> Path | None:
    """The host's own CA bundle: builds then trust what this machine trusts (company proxies)."""
    for candidate in (
        os.environ.get("BB_CA_BUNDLE"),
        ssl.get_default_verify_paths().cafile,
        "/etc/ssl/certs/ca-certificates.crt",
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def build_course_images(
    pack: Pack,
    engine: Engine,
    *,
    ca_bundle: Path | None = None,
    rebuild: bool = False,
    on_image: Callable[[str, str], None] | None = None,
    on_line: Callable[[str], None] | None = None,
) -> list[ImageStatus]:
    """Build every image the course declares that is not on the engine yet.

    Raises:
        UserError: ``ca_bundle`` does not exist.
        EnvironmentProblem: a build failed (the message carries the end of its log).
    """
    if ca_bundle is not None and not ca_bundle.is_file():
        raise UserError(
            f"The CA bundle {ca_bundle} does not exist.",
            hint="Pass the path of a PEM file to --ca-bundle.",
        )
    bundle = ca_bundle or default_ca_bundle()
    statuses = []
    for name, recipe in pack.course.images.items():
        tag = pack.image_tag(name)
        if engine.has_image(tag) and not rebuild:
            statuses.append(ImageStatus(name, tag, built=False))
            continue
        if on_image is not None:
            on_image(name, tag)
        with tempfile.TemporaryDirectory(prefix="bb-image-") as scratch:
            context = Path(scratch) / "context"
            shutil.copytree(pack.root / "course" / recipe.recipe, context)
            extra = context / EXTRA_CA
            if bundle is not None:
                shutil.copyfile(bundle, extra)
            else:
                extra.write_bytes(b"")
            outcome = engine.build(
                context, tag, labels={MANAGED: "1", "io.bb.course": pack.course.id}, on_line=on_line
            )
        if not outcome.ok:
            tail = "\n".join(outcome.log.splitlines()[-12:])
            raise EnvironmentProblem(
                f"Building the course image {name!r} failed:\n{tail}",
                hint=_build_hint(outcome.log),
            )
        statuses.append(ImageStatus(name, tag, built=True))
    return statuses


def _build_hint(log: str) -> str:
    lowered = log.lower()
    if (
        "pull access denied" in lowered
        or "manifest unknown" in lowered
        or "dial tcp" in lowered
        or "not found" in lowered
        and "debian" in lowered
    ):
        return (
            "The base image debian:bookworm-slim could not be pulled. Pull it when online, "
            "or create it locally with debootstrap (see the README, 'No registry?')."
        )
    if "certificate" in lowered or "ssl" in lowered:
        return "A TLS certificate was not trusted: pass your proxy's CA with --ca-bundle PATH."
    return "Check the network (the build installs packages), then run `bb setup` again."


#: bb's own relay recipe (not a pack's): strict isolation needs it whatever the course.
RELAY_RECIPE = Path(__file__).resolve().parent / "relay"


def relay_image_tag() -> str:
    """The relay's local tag, named by its recipe's content like the course images."""
    from bb.pack.manifest import _tree_digest

    return f"bb/relay:{_tree_digest(RELAY_RECIPE)}"


def build_relay_image(
    engine: Engine,
    *,
    rebuild: bool = False,
    on_image: Callable[[str, str], None] | None = None,
    on_line: Callable[[str], None] | None = None,
) -> ImageStatus:
    """Build the relay that strictly isolated grades use, unless it is there already.

    Raises:
        EnvironmentProblem: the build failed (the message carries the end of its log).
    """
    tag = relay_image_tag()
    if engine.has_image(tag) and not rebuild:
        return ImageStatus("relay", tag, built=False)
    if on_image is not None:
        on_image("relay", tag)
    outcome = engine.build(
        RELAY_RECIPE, tag, labels={MANAGED: "1", "io.bb.tool": "relay"}, on_line=on_line
    )
    if not outcome.ok:
        tail = "\n".join(outcome.log.splitlines()[-12:])
        raise EnvironmentProblem(
            f"Building bb's relay image failed:\n{tail}", hint=_build_hint(outcome.log)
        )
    return ImageStatus("relay", tag, built=True)
