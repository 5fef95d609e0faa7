"""The container runtime: the only module that talks to the Docker engine.

Everything bb starts carries the ``io.bb.managed`` label and the id of the grade that owns it,
plus the owner's process id. A grade tears down its containers and network in ``finally``;
whatever a killed process left behind is swept by the next bb command that sees it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bb.errors import EnvironmentProblem

if TYPE_CHECKING:
    import docker

MANAGED = "io.bb.managed"
GRADE = "io.bb.grade"
OWNER = "io.bb.owner"

ENGINE_HINT = (
    "Start the Docker engine and try again: `sudo systemctl start docker` on Linux, or open "
    "Docker Desktop. Without one: `sudo apt-get install docker.io` (Debian/Ubuntu) then "
    "`sudo dockerd &`. If it runs elsewhere, set DOCKER_HOST."
)


@dataclasses.dataclass(frozen=True)
class ContainerSpec:
    """What to run. Ports are published on 127.0.0.1 at the given host ports."""

    name: str
    image: str
    environment: dict[str, str]
    command: list[str] | None = None
    aliases: tuple[str, ...] = ()
    ports: dict[int, int] = dataclasses.field(default_factory=dict)
    tmpfs: tuple[str, ...] = ()
    memory: str = "512m"
    cpus: float = 1.0
    pids: int = 256


@dataclasses.dataclass(frozen=True)
class BuildOutcome:
    ok: bool
    log: str


class Engine:
    """A connection to the Docker engine, scoped to what bb needs."""

    def __init__(self, client: docker.DockerClient) -> None:
        self._client = client

    @classmethod
    def connect(cls) -> Engine:
        """Connect to the engine named by the environment (DOCKER_HOST, or the local socket).

        Raises:
            EnvironmentProblem: no engine answers.
        """
        import docker
        from docker.errors import DockerException

        try:
            client = docker.from_env(timeout=120)
            client.ping()
        except DockerException as exc:
            raise EnvironmentProblem(
                f"bb could not reach a Docker engine ({_first_line(exc)}).", hint=ENGINE_HINT
            ) from None
        return cls(client)

    # -- images ----------------------------------------------------------------------------

    def has_image(self, ref: str) -> bool:
        from docker.errors import ImageNotFound

        try:
            self._client.images.get(ref)
        except ImageNotFound:
            return False
        return True

    def pull(self, ref: str) -> None:
        from docker.errors import DockerException

        try:
            self._client.images.pull(ref)
        except DockerException as exc:
            raise EnvironmentProblem(
                f"The image {ref} is not on this machine and could not be pulled "
                f"({_first_line(exc)}).",
                hint="Check the network, or build the image locally and tag it with that name.",
            ) from None

    def build(
        self,
        context: Path,
        tag: str,
        *,
        labels: dict[str, str] | None = None,
        on_line: Callable[[str], None] | None = None,
        deadline: float | None = None,
        dockerfile: Path | None = None,
    ) -> BuildOutcome:
        """Build ``context``'s Dockerfile as ``tag``; the outcome carries the build log.

        ``dockerfile`` (a file outside ``context``) replaces the context's own Dockerfile; the
        engine does not copy it into the image.

        A build still running at ``deadline`` (a ``time.monotonic()`` value) is abandoned,
        which makes the engine cancel it. No single read waits longer than the time left, so a
        build that prints nothing (``RUN sleep 1000``) is stopped too.
        """
        from docker.errors import DockerException
        from requests.exceptions import RequestException
        from urllib3.exceptions import HTTPError as Urllib3Error

        lines: list[str] = []
        ok = True
        stopped = "(build stopped: the grading time limit was reached)"
        try:
            stream: Iterator[dict[str, Any]] = self._client.api.build(
                path=str(context),
                tag=tag,
                rm=True,
                forcerm=True,
                decode=True,
                labels=labels or {},
                dockerfile=None if dockerfile is None else str(dockerfile),
                timeout=None if deadline is None else max(deadline - time.monotonic(), 1.0),
            )
            for chunk in stream:
                text = chunk.get("stream") or chunk.get("status") or ""
                if "error" in chunk:
                    ok = False
                    text = str(chunk["error"])
                for line in text.splitlines():
                    if line.strip():
                        lines.append(line.rstrip())
                        if on_line is not None:
                            on_line(line.rstrip())
                if deadline is not None and time.monotonic() > deadline:
                    ok = False
                    lines.append(stopped)
                    break
        except DockerException as exc:
            ok = False
            lines.append(_first_line(exc))
        except (RequestException, Urllib3Error):  # a read outlasted the time left
            ok = False
            lines.append(stopped)
        return BuildOutcome(ok=ok, log="\n".join(lines))

    def remove_image(self, ref: str) -> None:
        from docker.errors import DockerException

        with contextlib.suppress(DockerException):
            self._client.api.remove_image(ref, force=True)

    def prune_dangling(self, label: str) -> None:
        """Drop untagged images carrying ``label`` (a rebuild moved their tag to a new image)."""
        from docker.errors import DockerException

        with contextlib.suppress(DockerException):
            self._client.api.prune_images(filters={"dangling": True, "label": label})

    def images_labelled(self, label: str) -> list[tuple[str, dict[str, str]]]:
        """(id, labels) of every image carrying ``label``."""
        return [
            (str(info["Id"]), dict(info.get("Labels") or {}))
            for info in self._client.api.images(filters={"label": label})
        ]

    # -- containers and networks -----------------------------------------------------------

    def labels(self, grade_id: str) -> dict[str, str]:
        return {MANAGED: "1", GRADE: grade_id, OWNER: _owner_token()}

    def create_network(self, name: str, grade_id: str) -> str:
        network = self._client.networks.create(name, driver="bridge", labels=self.labels(grade_id))
        return str(network.id)

    def run(self, spec: ContainerSpec, *, network: str, grade_id: str) -> str:
        """Start a container from ``spec`` on ``network``; return its id."""
        from docker.errors import DockerException

        api = self._client.api
        try:
            host_config = api.create_host_config(
                port_bindings={f"{c}/tcp": ("127.0.0.1", h) for c, h in spec.ports.items()},
                tmpfs=dict.fromkeys(spec.tmpfs, "rw"),
                mem_limit=spec.memory,
                nano_cpus=int(spec.cpus * 1e9),
                pids_limit=spec.pids,
                network_mode=network,
                init=False,
            )
            networking = api.create_networking_config(
                {network: api.create_endpoint_config(aliases=list(spec.aliases))}
            )
            created = api.create_container(
                spec.image,
                command=spec.command,
                name=spec.name,
                environment=spec.environment,
                labels=self.labels(grade_id),
                ports=[(c, "tcp") for c in spec.ports],
                host_config=host_config,
                networking_config=networking,
            )
            api.start(created["Id"])
        except DockerException as exc:
            raise EnvironmentProblem(
                f"Docker could not start the container {spec.name} ({_first_line(exc)})."
            ) from None
        return str(created["Id"])

    def state(self, container_id: str) -> tuple[str, int | None]:
        """The container's status (``running``, ``exited``, …) and its exit code if it ended."""
        info = self._client.api.inspect_container(container_id)
        status = info["State"]["Status"]
        code = info["State"]["ExitCode"] if status in ("exited", "dead") else None
        return str(status), code

    def has_exited(self, container_id: str) -> bool:
        return self.state(container_id)[0] in ("exited", "dead")

    def wait(self, container_id: str, timeout: float) -> int | None:
        """Wait for the container to exit; its exit code, or None if it ran past ``timeout``."""
        from requests.exceptions import ConnectionError as RequestsConnectionError
        from requests.exceptions import ReadTimeout

        try:
            result = self._client.api.wait(container_id, timeout=max(timeout, 1))
        except (ReadTimeout, RequestsConnectionError):
            return None
        return int(result.get("StatusCode", 1))

    def logs(self, container_id: str, tail: int = 40) -> str:
        from docker.errors import DockerException

        try:
            raw = self._client.api.logs(container_id, stdout=True, stderr=True, tail=tail)
        except DockerException:
            return ""
        return bytes(raw).decode("utf-8", "replace")

    def start(self, container_id: str) -> None:
        self._client.api.start(container_id)

    def pause(self, container_id: str) -> None:
        """Freeze every process of the container (memory, tmpfs and connections are kept)."""
        self._client.api.pause(container_id)

    def unpause(self, container_id: str) -> None:
        self._client.api.unpause(container_id)

    def remove_container(self, container_id: str) -> None:
        """Remove one container (running or not) and its anonymous volumes; gone is fine."""
        from docker.errors import DockerException

        with contextlib.suppress(DockerException):
            self._client.api.remove_container(container_id, force=True, v=True)

    def restart(self, container_id: str, timeout: int = 10) -> None:
        self._client.api.restart(container_id, timeout=timeout)

    def stop(self, container_id: str, timeout: int = 10) -> None:
        self._client.api.stop(container_id, timeout=timeout)

    def kill(self, container_id: str, signal: str = "SIGKILL") -> None:
        self._client.api.kill(container_id, signal=signal)

    def remove_grade(self, grade_id: str) -> None:
        """Remove every container and network of one grade. Never raises for what is gone."""
        self._remove(filters={"label": [f"{GRADE}={grade_id}"]})

    def sweep(self) -> int:
        """Remove what grades whose process is gone left behind; return how many objects."""
        return self._remove(filters={"label": [MANAGED]}, only_orphans=True)

    def managed_objects(self, *, orphans_only: bool = False) -> list[str]:
        """Names of bb's containers and networks on the engine; with ``orphans_only``, just
        those whose bb process has ended (what a sweep would remove)."""
        api = self._client.api
        found = [
            (c["Names"][0].lstrip("/"), c.get("Labels") or {})
            for c in api.containers(all=True, filters={"label": MANAGED})
        ]
        found += [
            (n["Name"], n.get("Labels") or {}) for n in api.networks(filters={"label": [MANAGED]})
        ]
        return [
            str(name)
            for name, labels in found
            if not (orphans_only and _owner_alive(labels.get(OWNER, "")))
        ]

    def _remove(self, *, filters: dict[str, list[str]], only_orphans: bool = False) -> int:
        from docker.errors import DockerException, NotFound

        removed = 0
        api = self._client.api
        for info in api.containers(all=True, filters=filters):
            if only_orphans and _owner_alive(info.get("Labels", {}).get(OWNER, "")):
                continue
            try:
                api.remove_container(info["Id"], force=True, v=True)
                removed += 1
            except NotFound:
                pass
            except DockerException:
                pass
        for info in api.networks(filters=filters):
            if only_orphans and _owner_alive(info.get("Labels", {}).get(OWNER, "")):
                continue
            try:
                api.remove_network(info["Id"])
                removed += 1
            except NotFound:
                pass
            except DockerException:
                pass
        return removed


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (for publishing a container's port)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _owner_token() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _owner_alive(token: str) -> bool:
    """Whether the bb process that created an object may still run.

    Objects made from another host (an engine shared through DOCKER_HOST) are not ours to
    judge, so they count as alive; a malformed token marks an orphan.
    """
    host, _, pid = token.rpartition(":")
    if not host or not pid.isdigit():
        return False
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
