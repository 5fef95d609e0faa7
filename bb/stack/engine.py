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
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bb.errors import EnvironmentProblem

if TYPE_CHECKING:
    import docker

MANAGED = "io.bb.managed"
GRADE = "io.bb.grade"
OWNER = "io.bb.owner"
#: Services kept warm between grades of one project carry this label (the warm stack's key)
#: instead of a grade's: a grade's teardown and the orphan sweep leave them alone.
WARM = "io.bb.warm"
#: The project directory a warm stack belongs to (it goes when the directory goes).
WARM_WORKSPACE = "io.bb.warm-workspace"
#: Which of the project's warm stacks: ``grade`` (grading's services) or ``up`` (`bb up`).
WARM_ROLE = "io.bb.warm-role"
#: Untagged app images younger than this may belong to a build still running.
STALE_IMAGE_AGE = "10m"

#: What bb keeps of a build's output: its last lines, each cut to a length.
BUILD_LOG_LINES = 200
#: The longest line bb keeps of a build's output or a container's log.
LINE_CHARS = 1000
#: The most of a container's log that :meth:`Engine.logs` returns, whatever ``tail`` says.
LOG_READ_CHARS = 256 * 1024
#: Docker's log of each container bb starts is rotated at this size, keeping this many files,
#: so an app that floods its output cannot fill the host's disk (at most 2 x 2 MiB each).
LOG_FILE_SIZE = "2m"
LOG_FILES = 2

#: What grades create carries both labels. Containers inherit their image's labels, so the
#: containers of a build's RUN steps, or a learner's own `docker run` of an app image, carry
#: MANAGED alone, belong to no grade, and are never swept.
_GRADE_OBJECTS = [MANAGED, GRADE]

#: Bridge driver option: give the host no address on the network's bridge.
INHIBIT_HOST_ADDRESS = "com.docker.network.bridge.inhibit_ipv4"

ENGINE_HINT = (
    "Start the Docker engine and try again: `sudo systemctl start docker` on Linux, or open "
    "Docker Desktop. Without one: `sudo apt-get install docker.io` (Debian/Ubuntu) then "
    "`sudo dockerd &`. If it runs elsewhere, set DOCKER_HOST."
)


@dataclasses.dataclass(frozen=True)
class Confinement:
    """What a container of untrusted code may not do, on top of its memory/CPU/pid limits:
    run as root (a fixed numeric uid: a user *name* could map to 0 in the image's own
    /etc/passwd), write outside small tmpfs mounts, hold any capability, or gain privileges
    through setuid binaries."""

    user: str = "65534:65534"
    writable: tuple[str, ...] = ("/tmp",)
    #: Size of each writable tmpfs; its pages count against the container's memory limit too.
    tmpfs_size: str = "64m"


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
    #: Locks the container down (for untrusted code); None runs it as its image says.
    confinement: Confinement | None = None
    #: Further networks the container joins before it starts (the relay's inner network).
    also_on: tuple[str, ...] = ()
    #: False: only the names of containers on its networks resolve. Any other lookup fails
    #: within a second and is sent nowhere (Docker's resolver would otherwise forward it to
    #: this machine's DNS servers, from the container's own network namespace).
    outside_names: bool = True


@dataclasses.dataclass(frozen=True)
class EngineFacts:
    name: str
    version: str
    api_version: str
    os: str
    #: In Docker's image terms (amd64, arm64), so it compares with an image's architecture.
    arch: str
    memory_bytes: int


@dataclasses.dataclass(frozen=True)
class EngineCandidate:
    """A place a Docker-compatible engine may listen, as found on this machine."""

    url: str
    kind: str
    exists: bool
    reachable: bool
    problem: str = ""


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

    def facts(self) -> EngineFacts:
        info = self._client.info()
        version = self._client.version()
        return EngineFacts(
            name="Podman" if "podman" in str(version.get("Components", "")).lower() else "Docker",
            version=str(version.get("Version", "?")),
            api_version=str(version.get("ApiVersion", "?")),
            os=str(info.get("OSType", "?")),
            arch=_docker_arch(str(info.get("Architecture", "?"))),
            memory_bytes=int(info.get("MemTotal") or 0),
        )

    # -- images ----------------------------------------------------------------------------

    def image_id(self, ref: str) -> str | None:
        """The content-addressed id (sha256:…) of a local image, or None when it is absent."""
        from docker.errors import ImageNotFound

        try:
            return str(self._client.api.inspect_image(ref)["Id"])
        except ImageNotFound:
            return None

    def image_architecture(self, ref: str) -> str | None:
        """The architecture an image was built for, or None when it is not on the engine."""
        from docker.errors import ImageNotFound

        try:
            return str(self._client.api.inspect_image(ref).get("Architecture", "?"))
        except ImageNotFound:
            return None

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
        network_mode: str | None = None,
    ) -> BuildOutcome:
        """Build ``context``'s Dockerfile as ``tag``; the outcome carries the build log.

        ``dockerfile`` (a file outside ``context``) replaces the context's own Dockerfile; the
        engine does not copy it into the image.

        A build still running at ``deadline`` (a ``time.monotonic()`` value) is abandoned,
        which makes the engine cancel it. No single read waits longer than the time left, so a
        build that prints nothing (``RUN sleep 1000``) is stopped too. ``network_mode="none"``
        gives the build's RUN steps no network at all.
        """
        from docker.errors import DockerException
        from requests.exceptions import RequestException
        from urllib3.exceptions import HTTPError as Urllib3Error

        from bb.stack.tail import TextTail

        # A build may print without end: keep its tail only, each line cut to a length.
        log = TextTail(max_lines=BUILD_LOG_LINES, max_line_chars=LINE_CHARS, skip_blank=True)
        ok = True
        stopped = "(build stopped: the grading time limit was reached)"

        def show(lines: list[str]) -> None:
            if on_line is not None:
                for line in lines:
                    on_line(line)

        try:
            stream: Iterator[dict[str, Any]] = self._client.api.build(
                path=str(context),
                tag=tag,
                rm=True,
                forcerm=True,
                decode=True,
                labels=labels or {},
                dockerfile=None if dockerfile is None else str(dockerfile),
                network_mode=network_mode,
                timeout=None if deadline is None else max(deadline - time.monotonic(), 1.0),
            )
            for chunk in stream:
                # Output of RUN steps arrives in pieces that break lines anywhere (joined back
                # here); a status or an error is a line of its own.
                text = str(chunk.get("stream") or "")
                if "status" in chunk:
                    text = f"\n{chunk['status']}\n"
                if "error" in chunk:
                    ok = False
                    text = f"\n{chunk['error']}\n"
                show(log.feed(text.replace("\r\n", "\n").replace("\r", "\n")))
                if deadline is not None and time.monotonic() > deadline:
                    ok = False
                    log.add_line(stopped)
                    break
        except DockerException as exc:
            ok = False
            log.add_line(_first_line(exc))
        except (RequestException, Urllib3Error):  # a read outlasted the time left
            ok = False
            log.add_line(stopped)
        last = log.flush()
        show([last] if last is not None else [])
        return BuildOutcome(ok=ok, log=log.text())

    def remove_image(self, ref: str) -> None:
        from docker.errors import DockerException

        with contextlib.suppress(DockerException):
            self._client.api.remove_image(ref, force=True)

    def prune_dangling(self, label: str) -> None:
        """Drop untagged images carrying ``label`` (a rebuild moved their tag to a new image)."""
        from docker.errors import DockerException

        with contextlib.suppress(DockerException):
            # Only old ones: a build in progress (another grade's) has dangling layers too.
            self._client.api.prune_images(
                filters={"dangling": True, "label": label, "until": STALE_IMAGE_AGE}
            )

    def images_labelled(self, label: str) -> list[tuple[str, dict[str, str]]]:
        """(id, labels) of every image carrying ``label``."""
        return [
            (str(info["Id"]), dict(info.get("Labels") or {}))
            for info in self._client.api.images(filters={"label": label})
        ]

    # -- containers and networks -----------------------------------------------------------

    def labels(self, grade_id: str) -> dict[str, str]:
        return {MANAGED: "1", GRADE: grade_id, OWNER: _owner_token()}

    @staticmethod
    def warm_labels(key: str, workspace: str, role: str) -> dict[str, str]:
        return {MANAGED: "1", WARM: key, WARM_WORKSPACE: workspace, WARM_ROLE: role}

    def create_network(
        self, name: str, grade_id: str = "", *, labels: Mapping[str, str] | None = None
    ) -> str:
        network = self._client.networks.create(
            name, driver="bridge", labels=dict(labels or self.labels(grade_id))
        )
        return str(network.id)

    def network_exists(self, name: str) -> bool:
        from docker.errors import NotFound

        try:
            self._client.api.inspect_network(name)
        except NotFound:
            return False
        return True

    def create_internal_network(self, name: str, grade_id: str) -> str:
        """A bridge network that reaches neither the internet nor this machine.

        ``internal`` alone stops forwarding beyond the bridge, but the host keeps an address on
        it (the gateway), so containers still reach every host service bound to 0.0.0.0 and,
        through it, docker0's address too. Without an address on the host side the gateway
        answers nobody: whatever is not on the bridge itself is unreachable.
        """
        network = self._client.networks.create(
            name,
            driver="bridge",
            internal=True,
            options={INHIBIT_HOST_ADDRESS: "true"},
            labels=self.labels(grade_id),
        )
        return str(network.id)

    def run(
        self,
        spec: ContainerSpec,
        *,
        network: str,
        grade_id: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> str:
        """Start a container from ``spec`` on ``network``; return its id. It carries the
        grade's labels, or ``labels`` (a warm stack's)."""
        from docker.errors import DockerException

        api = self._client.api
        try:
            host_config = api.create_host_config(
                port_bindings={f"{c}/tcp": ("127.0.0.1", h) for c, h in spec.ports.items()},
                tmpfs=_tmpfs_mounts(spec),
                mem_limit=spec.memory,
                nano_cpus=int(spec.cpus * 1e9),
                pids_limit=spec.pids,
                network_mode=network,
                init=False,
                log_config={
                    "Type": "json-file",
                    "Config": {"max-size": LOG_FILE_SIZE, "max-file": str(LOG_FILES)},
                },
                **_confinement_host_options(spec.confinement),
                **_dns_host_options(spec.outside_names),
            )
            networking = api.create_networking_config(
                {network: api.create_endpoint_config(aliases=list(spec.aliases))}
            )
            created = api.create_container(
                spec.image,
                command=spec.command,
                name=spec.name,
                environment=spec.environment,
                labels=dict(labels or self.labels(grade_id)),
                ports=[(c, "tcp") for c in spec.ports],
                host_config=host_config,
                networking_config=networking,
                user=spec.confinement.user if spec.confinement is not None else None,
            )
            for extra in spec.also_on:
                api.connect_container_to_network(created["Id"], extra)
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
        """The last ``tail`` lines of a container's output (stdout and stderr), each cut to
        LINE_CHARS and LOG_READ_CHARS in all: read as a stream, so one endless line cannot
        fill bb's memory."""
        from docker.errors import DockerException
        from requests.exceptions import RequestException

        from bb.stack.tail import TextTail

        kept = TextTail(max_lines=tail, max_line_chars=LINE_CHARS, max_chars=LOG_READ_CHARS)
        try:
            stream = self._client.api.logs(
                container_id, stdout=True, stderr=True, tail=tail, stream=True, follow=False
            )
            with contextlib.closing(stream):
                for chunk in stream:
                    kept.feed_bytes(bytes(chunk))
        except (DockerException, RequestException):
            pass  # what was read so far is still worth showing
        kept.flush()
        return kept.text()

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

    def answers(self) -> bool:
        """Whether the engine still answers (a grade's faults mean something else if not)."""
        try:
            return bool(self._client.ping())
        except Exception:  # noqa: BLE001 - any failure to answer is the answer
            return False

    def activity(self, container_id: str) -> tuple[float, int] | None:
        """The container's CPU seconds used and bytes sent so far, or None if unknown.

        Bytes received are left out: an idle container still receives the network's chatter.
        """
        try:
            stats = self._client.api.stats(container_id, stream=False, one_shot=True)
            cpu = stats["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9
            sent = sum(int(n.get("tx_bytes", 0)) for n in (stats.get("networks") or {}).values())
        except Exception:  # noqa: BLE001 - no counters (engine gone, container ended)
            return None
        return float(cpu), sent

    def labelled(self, label: str) -> list[tuple[str, str, dict[str, str]]]:
        """Containers (running or not) carrying ``label`` (``key`` or ``key=value``): their
        ids, states and labels."""
        return [
            (str(c["Id"]), str(c.get("State", "")), dict(c.get("Labels") or {}))
            for c in self._client.api.containers(all=True, filters={"label": [label]})
        ]

    def remove_labelled(self, label: str) -> int:
        """Remove every container and network carrying ``label``; return how many."""
        return self._remove(filters={"label": [label]})

    def remove_grade(self, grade_id: str) -> None:
        """Remove every container and network of one grade. Never raises for what is gone."""
        self._remove(filters={"label": [f"{GRADE}={grade_id}"]})

    def sweep(self) -> int:
        """Remove what grades whose process is gone left behind; return how many objects.

        Only objects of a grade (they carry its id) count: the containers of a build step
        inherit the labels of bb's images, and sweeping them would kill another grade's build.
        """
        return self._remove(filters={"label": _GRADE_OBJECTS}, only_orphans=True)

    def remove_own_grades(self) -> int:
        """Remove every container and network of this process's grades (all of them, running
        or not): what stopping a batch of grades at once needs. Warm services carry no grade."""
        return self._remove(filters={"label": [*_GRADE_OBJECTS, f"{OWNER}={_owner_token()}"]})

    def managed_objects(self, *, orphans_only: bool = False) -> list[str]:
        """Names of the containers and networks bb's grades made; with ``orphans_only``, just
        those whose bb process has ended (what a sweep would remove). A build's intermediate
        containers carry the image's labels but no grade: they are the builder's to remove."""
        api = self._client.api
        owned = {"label": _GRADE_OBJECTS}
        found = [
            (c["Names"][0].lstrip("/"), c.get("Labels") or {})
            for c in api.containers(all=True, filters=owned)
        ]
        found += [(n["Name"], n.get("Labels") or {}) for n in api.networks(filters=owned)]
        return [str(name) for name, labels in found if not (orphans_only and not _orphan(labels))]

    def _remove(self, *, filters: dict[str, list[str]], only_orphans: bool = False) -> int:
        from docker.errors import DockerException, NotFound

        removed = 0
        api = self._client.api
        for info in api.containers(all=True, filters=filters):
            if only_orphans and not _orphan(info.get("Labels") or {}):
                continue
            try:
                api.remove_container(info["Id"], force=True, v=True)
                removed += 1
            except NotFound:
                pass
            except DockerException:
                pass
        for info in api.networks(filters=filters):
            if only_orphans and not _orphan(info.get("Labels") or {}):
                continue
            try:
                api.remove_network(info["Id"])
                removed += 1
            except NotFound:
                pass
            except DockerException:
                pass
        return removed


def engine_candidates() -> list[EngineCandidate]:
    """Sockets where Docker, Docker Desktop or Podman usually listen, and the endpoint of the
    current Docker CLI context (which the Docker SDK does not follow by itself)."""
    import json

    found: list[tuple[str, str]] = []
    config = Path.home() / ".docker" / "config.json"
    with contextlib.suppress(OSError, ValueError, AttributeError):
        current = json.loads(config.read_text(encoding="utf-8")).get("currentContext")
        if current and current != "default":
            for meta in (Path.home() / ".docker" / "contexts" / "meta").glob("*/meta.json"):
                data = json.loads(meta.read_text(encoding="utf-8"))
                if data.get("Name") == current:
                    host = data.get("Endpoints", {}).get("docker", {}).get("Host")
                    if host:
                        found.append((str(host), f"docker context {current!r}"))
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR", f"/run/user/{os.getuid()}")
    for path, kind in (
        ("/var/run/docker.sock", "Docker"),
        (str(Path.home() / ".docker" / "run" / "docker.sock"), "Docker Desktop"),
        (str(Path.home() / ".docker" / "desktop" / "docker.sock"), "Docker Desktop"),
        (f"{runtime_dir}/docker.sock", "rootless Docker"),
        (f"{runtime_dir}/podman/podman.sock", "Podman"),
        ("/run/podman/podman.sock", "Podman"),
    ):
        found.append((f"unix://{path}", kind))
    return [_probe_candidate(url, kind) for url, kind in found]


def _probe_candidate(url: str, kind: str) -> EngineCandidate:
    if not url.startswith("unix://"):
        return EngineCandidate(url, kind, exists=True, reachable=False, problem="not probed")
    path = url.removeprefix("unix://")
    if not Path(path).exists():
        return EngineCandidate(url, kind, exists=False, reachable=False)
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(2.0)
            sock.connect(path)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            answer = sock.recv(64)
    except OSError as exc:
        return EngineCandidate(url, kind, True, False, exc.strerror or type(exc).__name__)
    ok = answer.startswith(b"HTTP/") and b" 200 " in answer
    return EngineCandidate(url, kind, True, ok, "" if ok else "no answer to a ping")


def _docker_arch(machine: str) -> str:
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


def _tmpfs_mounts(spec: ContainerSpec) -> dict[str, str]:
    mounts = dict.fromkeys(spec.tmpfs, "rw")
    if spec.confinement is not None:
        for path in spec.confinement.writable:
            # mode 1777: the confined uid owns nothing in the image, but may write here.
            mounts.setdefault(path, f"rw,nosuid,nodev,size={spec.confinement.tmpfs_size},mode=1777")
    return mounts


def _confinement_host_options(confinement: Confinement | None) -> dict[str, Any]:
    if confinement is None:
        return {}
    return {
        "read_only": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
    }


def _dns_host_options(outside_names: bool) -> dict[str, Any]:
    if outside_names:
        return {}
    # Docker's embedded resolver still answers for the containers of the networks; what it
    # would forward goes to the container's own loopback, where nothing answers.
    return {"dns": ["127.0.0.1"], "dns_opt": ["timeout:1", "attempts:1"], "dns_search": ["."]}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (for publishing a container's port)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _owner_token() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _orphan(labels: dict[str, str]) -> bool:
    """Whether an object belongs to a grade whose bb process is gone. Objects of no grade are
    not: a build's intermediate containers carry the image's labels, and the engine removes
    them itself when the build ends or its client goes (sweeping them kills builds running in
    other bb processes)."""
    return GRADE in labels and not _owner_alive(labels.get(OWNER, ""))


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


def is_engine_fault(exc: BaseException) -> bool:
    """Whether ``exc`` comes from talking to the engine (it went away, or answered an error),
    as opposed to a fault of bb's own."""
    from docker.errors import DockerException
    from requests.exceptions import RequestException
    from urllib3.exceptions import HTTPError as Urllib3Error

    return isinstance(exc, (DockerException, RequestException, Urllib3Error, ConnectionError))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
