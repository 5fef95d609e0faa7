"""A project's stack on the Docker engine: its network, its services and the learner's app.

A grade (or `bb up`) opens a :class:`ProjectStack`, builds the app's image, starts the
services, runs the migrations and starts the app, then closes it. Each step raises
:class:`StackFailed` with what went wrong; grading turns that into a stage's check. Closing
removes everything of the grade (every container and network carries its id, so a watchdog or
the next sweep can remove them too), except warm services (see :mod:`bb.stack.warm`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bb.errors import EnvironmentProblem
from bb.pack.manifest import Exercise, Pack, Readiness
from bb.stack import warm
from bb.stack.engine import MANAGED, WARM, Confinement, ContainerSpec, Engine, free_port
from bb.stack.isolation import Isolation

Progress = Callable[[str], None]

#: Labels of the images built from learners' projects.
APP_IMAGE = "io.bb.app"
WORKSPACE = "io.bb.workspace"

#: Marks the app container `bb up` keeps running (on the warm stack of role ``up``).
KEPT_APP = "io.bb.kept-app"
#: The relay listens on these ports inside its container, one per forwarded container.
_RELAY_FIRST_PORT = 40000


class StackFailed(Exception):
    """A step of the stack did not succeed.

    ``learner`` says whose it is: False for a course service that will not start (not the
    learner's code). ``log`` is the end of the failing container's (or build's) output.
    """

    def __init__(
        self,
        step: str,
        message: str,
        *,
        log: str = "",
        learner: bool = True,
        exited: bool = False,
        out_of_time: bool = False,
    ) -> None:
        super().__init__(message)
        self.step = step
        self.message = message
        self.log = log
        self.learner = learner
        self.exited = exited
        self.out_of_time = out_of_time


def app_image_tag(exercise: Exercise, workspace: Path) -> str:
    """One tag per workspace, so rebuilding after an edit reuses the build cache."""
    digest = hashlib.sha256(str(workspace.resolve()).encode()).hexdigest()[:10]
    return f"bb/app/{exercise.id}-{digest}:latest"


def generated_dockerfile(image_ref: str, command: list[str]) -> str:
    """The Dockerfile of an app declared as ``app.image`` + ``app.command``: the project's
    files in /app of that image. Built like a project's own, so stages and caching match."""
    return f"FROM {image_ref}\nWORKDIR /app\nCOPY . /app\nCMD {json.dumps(command)}\n"


def replica_names(exercise: Exercise) -> list[str]:
    """The app's containers by endpoint name: ``app`` (replica 1), ``app-2``, ``app-3``, ..."""
    return ["app", *(f"app-{n}" for n in range(2, exercise.app.replicas + 1))]


def app_environment(exercise: Exercise) -> dict[str, str]:
    """The app's environment as its manifest gives it (and PORT), secrets not yet drawn."""
    return {**exercise.app.environment, "PORT": str(exercise.app.port)}


def drawn_secrets(exercise: Exercise) -> dict[str, str]:
    """A fresh random value for each of ``app.secrets``: 256 bits, as hex."""
    return {name: secrets.token_hex(32) for name in exercise.app.secrets}


class ProjectStack:
    """The containers one grade (or `bb up`) runs for a project, and their teardown.

    Args:
        grade_id: labels every container and network this stack starts for the grade.
        keep_warm: keep resettable services running after :meth:`close`, and reuse them when they
            are already warm (see :mod:`bb.stack.warm`); ignored under strict isolation.
        role: which warm stack of the project: ``grade`` (reset every grade) or ``up``
            (`bb up`'s: its network stays too, and so does the app that :meth:`start_app`
            starts with ``keep=True``).
        ports: host ports to publish on, by name ("app" and services), where they must be
            stable (`bb up`); the others get free ones.
        reset_warm: reset warm services' state when reusing them (off for `bb up`, which
            keeps the learner's data unless asked).
    """

    def __init__(
        self,
        pack: Pack,
        exercise: Exercise,
        workspace: Path,
        engine: Engine,
        *,
        grade_id: str,
        isolation: Isolation = Isolation.STANDARD,
        keep_warm: bool = False,
        role: str = "grade",
        ports: Mapping[str, int] | None = None,
        reset_warm: bool = True,
    ) -> None:
        self.pack = pack
        self.exercise = exercise
        self.workspace = workspace
        self.engine = engine
        self.grade_id = grade_id
        self.isolation = isolation
        self.tag = app_image_tag(exercise, workspace)
        self.network = f"bb-{grade_id}"
        #: By name ("app" and each service): container id, host port, readiness, DSN.
        self.endpoints: dict[str, dict[str, Any]] = {}
        #: Under strict isolation: the host port the relay forwards to each container.
        self._relayed: dict[str, int] = {}
        self._ports = dict(ports or {})
        self._role = role
        self._reset_warm = reset_warm
        standard = keep_warm and isolation is Isolation.STANDARD
        self._warm_names = (
            [n for n, s in exercise.services.items() if warm.resettable(s)] if standard else []
        )
        self._warm_key = (
            warm.stack_key(role, workspace, exercise.id, self._warm_specs())
            if standard and (self._warm_names or role == "up")
            else ""
        )
        self._lock: contextlib.ExitStack | None = None
        #: What the app, its migrations and the graders' one-off commands run with.
        self.app_environment = {**app_environment(exercise), **drawn_secrets(exercise)}
        #: Whether the services were already warm (reset, not started) for this grade.
        self.reused = False

    # -- warm services ----------------------------------------------------------------------

    def _warm_specs(self) -> dict[str, Any]:
        return {
            name: [
                self.pack.image_ref(self.exercise.services[name].image),
                self.engine.image_id(self.pack.image_ref(self.exercise.services[name].image)),
                self.exercise.services[name].model_dump(mode="json"),
            ]
            for name in self._warm_names
        }

    @property
    def is_warm(self) -> bool:
        return bool(self._warm_key) and self._lock is not None

    def _take_warm_lock(self) -> None:
        if not self._warm_key:
            return
        stack = contextlib.ExitStack()
        if stack.enter_context(warm.try_lock(self._warm_key)):
            self._lock = stack
        else:  # another grade of this project runs: this one runs cold
            stack.close()
            self._warm_names, self._warm_key = [], ""

    def _reuse_warm(self, deadline: float) -> bool:
        """Reset the warm services and take them over; False (and nothing warm left) if any
        of them is gone or cannot be reset."""
        state = warm.WarmState.load(self._warm_key)
        if state is None or set(state.services) != set(self._warm_names):
            warm.remove(self.engine, self._warm_key)
            return False
        for name in self._warm_names:
            entry = state.services[name]
            try:
                status, _ = self.engine.state(entry["container"])
            except Exception:  # noqa: BLE001 - a container that is gone is simply not warm
                status = "gone"
            if status != "running":
                problem: str | None = f"not running ({status})"
            elif self._reset_warm:
                problem = warm.reset(self.exercise.services[name], int(entry["port"]))
            else:
                from bb.stack.probes import probe

                problem = probe(self.exercise.services[name].ready, "127.0.0.1", int(entry["port"]))
            if problem is not None:
                warm.remove(self.engine, self._warm_key)
                return False
        if not self.engine.network_exists(state.network):
            warm.remove(self.engine, self._warm_key)
            return False
        self.network = state.network
        self.endpoints.update({name: dict(state.services[name]) for name in self._warm_names})
        state.last_used = time.time()
        state.save()
        warm.ensure_reaper(state)
        return True

    def _warm_labels(self) -> dict[str, str]:
        return self.engine.warm_labels(self._warm_key, str(self.workspace.resolve()), self._role)

    # -- steps --------------------------------------------------------------------------------

    def build(self, deadline: float, say: Progress) -> None:
        """Build the app's image: the project's Dockerfile, or its files in ``app.image``."""
        app = self.exercise.app
        # Under strict isolation a build reaches no network unless the pack allows it.
        offline = self.isolation is Isolation.STRICT and not app.build_network
        say("building your app's image")
        if app.image is not None and app.command is not None:
            with tempfile.TemporaryDirectory(prefix="bb-dockerfile-") as scratch:
                dockerfile = Path(scratch) / "Dockerfile"
                dockerfile.write_text(
                    generated_dockerfile(self.pack.image_ref(app.image), app.command),
                    encoding="utf-8",
                )
                self._build(deadline, offline, dockerfile)
            return
        if not (self.workspace / "Dockerfile").is_file():
            raise StackFailed("build", f"There is no Dockerfile in {self.workspace}.")
        self._build(deadline, offline, None)

    def _build(self, deadline: float, offline: bool, dockerfile: Path | None) -> None:
        labels = {MANAGED: "1", APP_IMAGE: "1", WORKSPACE: str(self.workspace.resolve())}
        outcome = self.engine.build(
            self.workspace,
            self.tag,
            labels=labels,
            deadline=deadline,
            dockerfile=dockerfile,
            network_mode="none" if offline else None,
        )
        if not outcome.ok:
            tail = "\n".join(outcome.log.splitlines()[-15:])
            raise StackFailed("build", "`docker build` failed.", log=tail, exited=offline)

    def start_services(self, deadline: float, say: Progress) -> bool:
        """Open the network and start (or reset the warm) services; False if there are none.
        Raises StackFailed (not the learner's) when a service will not become ready."""
        self._take_warm_lock()
        if self._warm_key and self._reuse_warm(deadline):
            self.reused = True
        else:
            self._open_networks()
        services = self.exercise.services
        cold = [n for n in services if n not in self.endpoints]
        if cold:
            say(f"starting {', '.join(cold)}")
        elif self.reused:
            say(f"resetting {', '.join(services)} (kept warm)")
        started: list[tuple[str, str, int]] = []
        for name in cold:
            service = services[name]
            is_warm = name in self._warm_names
            ports, port = self._publish(name, service.port)
            container = self.engine.run(
                ContainerSpec(
                    name=f"bb-warm-{self._warm_key}-{name}"
                    if is_warm
                    else f"bb-{self.grade_id}-{name}",
                    image=self.pack.image_ref(service.image),
                    environment=service.environment,
                    command=service.command,
                    aliases=(name,),
                    ports=ports,
                    tmpfs=tuple(service.tmpfs),
                    memory=service.limits.memory,
                    cpus=service.limits.cpus,
                    pids=service.limits.pids,
                    outside_names=self._outside_names(),
                ),
                network=self.network,
                grade_id=self.grade_id,
                labels=self._warm_labels() if is_warm else None,
            )
            entry: dict[str, Any] = {
                "container": container,
                "port": port,
                "ready": service.ready.model_dump(mode="json"),
            }
            if service.ready.postgres is not None:
                pg = service.ready.postgres
                entry["dsn"] = f"postgresql://{pg.user}:{pg.password}@127.0.0.1:{port}/{pg.dbname}"
            if service.ready.redis is not None:
                secret = service.ready.redis.password
                entry["url"] = f"redis://{f':{secret}@' if secret else ''}127.0.0.1:{port}/0"
            self.endpoints[name] = entry
            started.append((name, container, port))
        for name, container, port in started:
            reason, exited = self._wait_ready(container, services[name].ready, port, deadline)
            if reason is not None:
                raise StackFailed(
                    "services",
                    f"The {name} service "
                    f"{'exited' if exited else 'did not become ready'} ({reason}).",
                    log=self.engine.logs(container, tail=20),
                    learner=False,
                    exited=exited,
                )
        if self._warm_key and not self.reused:
            self._remember_warm()
        return bool(services)

    def _remember_warm(self) -> None:
        """Record a warm stack just made, start its reaper, and drop an older one of this
        project and role (made before a course change): it is useless now."""
        state = warm.WarmState(
            key=self._warm_key,
            workspace=str(self.workspace.resolve()),
            network=self.network,
            services={n: self.endpoints[n] for n in self._warm_names},
            last_used=time.time(),
            role=self._role,
        )
        state.save()
        warm.ensure_reaper(state)
        warm.remove_for_workspace(self.engine, self.workspace, role=self._role, keep=self._warm_key)

    def migrate(self, deadline: float, say: Progress) -> bool:
        """Run ``app.migrate`` in the app's image; False if the exercise has none."""
        migrate = self.exercise.app.migrate
        if not migrate:
            return False
        say("running your migrations")
        limits = self.exercise.app.limits
        container = self.engine.run(
            ContainerSpec(
                name=f"bb-{self.grade_id}-migrate",
                image=self.tag,
                environment=self.app_environment,
                command=migrate,
                memory=limits.memory,
                cpus=limits.cpus,
                pids=limits.pids,
                confinement=self._confinement(),
                outside_names=self._outside_names(),
            ),
            network=self.network,
            grade_id=self.grade_id,
        )
        code = self.engine.wait(container, timeout=deadline - time.monotonic())
        if code is None:
            raise StackFailed("migrate", "The time limit was reached.", out_of_time=True)
        if code != 0:
            raise StackFailed(
                "migrate",
                f"`{' '.join(migrate)}` exited with status {code}.",
                log=self.engine.logs(container, tail=20),
            )
        return True

    def start_app(self, deadline: float, say: Progress, *, keep: bool = False) -> None:
        """Start the learner's app (each of its ``replicas``) and wait until every one answers
        its readiness probe. With ``keep`` (`bb up`), the app belongs to the warm stack and
        outlives this process, replacing the one an earlier `bb up` left running."""
        app = self.exercise.app
        copies = app.replicas
        say("starting your app" if copies == 1 else f"starting {copies} copies of your app")
        keep = keep and bool(self._warm_key)
        if keep:
            for container_id, _, labels in self.engine.labelled(f"{WARM}={self._warm_key}"):
                if labels.get(KEPT_APP) == "1":
                    self.engine.remove_container(container_id)
        started: list[tuple[str, str, int]] = []
        for replica, endpoint in enumerate(replica_names(self.exercise), start=1):
            ports, port = self._publish(endpoint, app.port)
            container = self.engine.run(
                ContainerSpec(
                    name=f"bb-warm-{self._warm_key}-{endpoint}"
                    if keep
                    else f"bb-{self.grade_id}-{endpoint}",
                    image=self.tag,
                    environment={**self.app_environment, "BB_REPLICA": str(replica)},
                    # All answer to "app" (a later proxy's upstream can list app-1, app-2, ...).
                    aliases=("app", f"app-{replica}"),
                    ports=ports,
                    memory=app.limits.memory,
                    cpus=app.limits.cpus,
                    pids=app.limits.pids,
                    confinement=self._confinement(),
                    outside_names=self._outside_names(),
                ),
                network=self.network,
                grade_id=self.grade_id,
                labels={**self._warm_labels(), KEPT_APP: "1"} if keep else None,
            )
            self.endpoints[endpoint] = {
                "container": container,
                "port": port,
                "ready": app.ready.model_dump(mode="json"),
            }
            started.append((endpoint, container, port))
        for replica, (endpoint, container, port) in enumerate(started, start=1):
            reason, exited = self._wait_ready(container, app.ready, port, deadline)
            if reason is None:
                continue
            which = "Your app" if copies == 1 else f"Your app ({endpoint}, {replica} of {copies})"
            if exited:
                _, code = self.engine.state(container)
                message = f"{which} exited with status {code} before it was ready."
            else:
                message = f"{which} was not ready after {app.ready.timeout:g} s ({reason})."
            raise StackFailed(
                "app", message, log=self.engine.logs(container, tail=25), exited=exited
            )

    # -- while it runs ------------------------------------------------------------------------

    @property
    def app_url(self) -> str | None:
        app = self.endpoints.get("app")
        return f"http://127.0.0.1:{app['port']}" if app else None

    @property
    def app_urls(self) -> list[str]:
        """One URL per running replica of the app, replica 1 first."""
        return [
            f"http://127.0.0.1:{self.endpoints[name]['port']}"
            for name in replica_names(self.exercise)
            if name in self.endpoints
        ]

    def activity(self) -> tuple[float, int] | None:
        """The app's (CPU seconds, bytes sent) so far, summed over its replicas, if it runs."""
        totals: tuple[float, int] | None = None
        for name in replica_names(self.exercise):
            if name not in self.endpoints:
                continue
            seen = self.engine.activity(self.endpoints[name]["container"])
            if seen is not None:
                totals = seen if totals is None else (totals[0] + seen[0], totals[1] + seen[1])
        return totals

    def app_log(self, lines: int) -> str | None:
        """The end of the app's log; of each replica's, under its name, when there are several."""
        names = [n for n in replica_names(self.exercise) if n in self.endpoints]
        if not names:
            return None
        if len(names) == 1:
            return str(self.engine.logs(self.endpoints[names[0]]["container"], tail=lines))
        share = max(5, lines // len(names))
        return "\n".join(
            f"── {name} ──\n{self.engine.logs(self.endpoints[name]['container'], tail=share)}"
            for name in names
        )

    # -- the end --------------------------------------------------------------------------------

    def close(self, *, keep_image: bool = True) -> bool:
        """Remove what the grade started (warm services stay, marked as used now); True if
        done. A failing engine gets a few retries; teardown never raises."""
        done = False
        for attempt in range(3):
            try:
                self.engine.remove_grade(self.grade_id)
                if not keep_image:
                    self.engine.remove_image(self.tag)
                done = True
                break
            except Exception:  # noqa: BLE001 - teardown must never hide the grade's own outcome
                time.sleep(0.5 * (attempt + 1))
        if self.is_warm:
            state = warm.WarmState.load(self._warm_key)
            if state is not None:
                with contextlib.suppress(OSError):
                    state.last_used = time.time()
                    state.save()
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        return done

    # -- plumbing -------------------------------------------------------------------------------

    def _wait_ready(
        self, container: str, readiness: Readiness, port: int, deadline: float
    ) -> tuple[str | None, bool]:
        from bb.stack.probes import wait_ready

        return wait_ready(
            readiness, port, exited=lambda: self.engine.has_exited(container), deadline=deadline
        )

    def _open_networks(self) -> None:
        """Create the grade's network (the warm stack's, when services are kept warm). Under
        strict isolation it is internal, and a relay container, the only one also on an
        ordinary bridge, publishes the app's and the services' ports on 127.0.0.1 (the host
        has no address on the internal network, so a port published there would lead
        nowhere)."""
        if self.isolation is not Isolation.STRICT:
            if self._warm_key:
                self.network = f"bb-warm-{self._warm_key}"
                with contextlib.suppress(Exception):  # a leftover of a vanished warm stack
                    self.engine.remove_labelled(f"{WARM}={self._warm_key}")
                self.engine.create_network(self.network, labels=self._warm_labels())
            else:
                self.engine.create_network(self.network, self.grade_id)
            return
        from bb.stack.images import relay_image_tag

        self.engine.create_internal_network(self.network, self.grade_id)
        edge = f"{self.network}-edge"
        self.engine.create_network(edge, self.grade_id)
        # By endpoint: the network alias and port the relay forwards to.
        targets = {name: (name, s.port) for name, s in self.exercise.services.items()}
        for replica, endpoint in enumerate(replica_names(self.exercise), start=1):
            targets[endpoint] = (f"app-{replica}", self.exercise.app.port)
        forwards, published = [], {}
        for offset, (endpoint, (alias, port)) in enumerate(targets.items()):
            listen = _RELAY_FIRST_PORT + offset
            forwards.append(f"{listen}={alias}:{port}")
            published[listen] = self._relayed[endpoint] = free_port()
        self.engine.run(
            ContainerSpec(
                name=f"bb-{self.grade_id}-relay",
                image=relay_image_tag(),
                environment={},
                command=forwards,
                ports=published,
                # One process per open connection: the graders' bursts open a hundred at once.
                memory="256m",
                cpus=1.0,
                pids=1024,
                confinement=Confinement(writable=()),
                also_on=(self.network,),
                # The relay looks its targets up per connection; while one is down (a restart,
                # a crash) the name is unknown, and must not be asked of the world.
                outside_names=False,
            ),
            network=edge,
            grade_id=self.grade_id,
        )

    def _publish(self, alias: str, container_port: int) -> tuple[dict[int, int], int]:
        """How a container's port reaches the host: the ports to publish on the container
        itself, and the host port the graders use (the relay's, under strict isolation)."""
        if self.isolation is Isolation.STRICT:
            return {}, self._relayed[alias]
        port = self._ports.get(alias) or free_port()
        return {container_port: port}, port

    def _outside_names(self) -> bool:
        """Whether names outside the grade resolve: not under strict isolation, where no
        lookup may leave (a DNS query is a way out too)."""
        return self.isolation is not Isolation.STRICT

    def _confinement(self) -> Confinement | None:
        """The lock-down of the learner's own containers (app, migrations)."""
        return Confinement() if self.isolation is Isolation.STRICT else None


def require_relay(engine: Engine) -> None:
    from bb.stack.images import relay_image_tag

    if not engine.has_image(relay_image_tag()):
        raise EnvironmentProblem(
            f"Strict isolation needs bb's relay image ({relay_image_tag()}), which is not "
            "built yet.",
            hint="Run `bb setup` once; after it, grading works offline.",
        )


def sweep_leftovers(engine: Engine) -> int:
    """Remove what killed grades left behind (containers, networks, scratch), warm stacks that
    sat idle too long or whose project is gone, and app images that are stale: untagged by a
    rebuild, or built from a workspace that no longer exists."""
    from bb.stack import journal

    journal.sweep_scratch()
    removed = engine.sweep() + warm.sweep(engine)
    engine.prune_dangling(f"{APP_IMAGE}=1")
    for image_id, labels in engine.images_labelled(f"{APP_IMAGE}=1"):
        if not Path(labels.get(WORKSPACE, "/")).is_dir():
            engine.remove_image(image_id)
    for entry in journal.stale_entries():
        with contextlib.suppress(OSError):
            entry.unlink(missing_ok=True)
    return removed
