"""`bb up` and `bb down`: a project's whole stack kept running for the learner to poke at.

`bb up` builds the app, starts (or keeps) the services, runs the migrations and starts the
app, all on ports that stay the same for the project (so a curl line or a DSN keeps working
across `bb up`s, and failed checks can print commands that reproduce them there). The data
stays between `bb up`s unless asked to start fresh. `bb down` removes the project's stacks:
this one and the services grading keeps warm.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import secrets
import socket
import time
from collections.abc import Callable
from pathlib import Path

from bb import paths
from bb.errors import UserError
from bb.pack.manifest import Exercise, Pack
from bb.stack import warm
from bb.stack.engine import WARM, Engine
from bb.stack.lifecycle import ProjectStack, StackFailed, replica_names, sweep_leftovers

#: Stable ports are chosen in this range, starting at a place the project's path picks.
_PORT_RANGE = (21000, 29000)
#: How long `bb up` waits for the stack, all steps together.
UP_TIMEOUT = 600.0


@dataclasses.dataclass(frozen=True)
class UpStack:
    """Where the project's stack answers: the app's URL, and each service's address."""

    app_url: str
    #: By service name: a DSN (Postgres) or ``127.0.0.1:port``.
    services: dict[str, str]
    #: Whether the services were already up (their data kept).
    kept: bool


def _ports_file() -> Path:
    return paths.home() / "ports.json"


def stable_ports(workspace: Path, exercise: Exercise) -> dict[str, int]:
    """The host ports of the project's `bb up` stack: "app" and each service. Chosen once per
    project and kept in bb's home; a port something else took since is chosen again."""
    where = str(workspace.resolve())
    names = [*replica_names(exercise), *exercise.services]
    target = _ports_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / "ports.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        known: dict[str, dict[str, int]] = {}
        with contextlib.suppress(OSError, ValueError):
            known = dict(json.loads(target.read_text(encoding="utf-8")))
        mine = dict(known.get(where) or {})
        taken = {p for ports in known.values() for p in ports.values()}
        start = int(hashlib.sha256(where.encode()).hexdigest(), 16)
        for offset, name in enumerate(names):
            if name in mine:
                continue
            mine[name] = _free_from(start + offset * 7, taken)
            taken.add(mine[name])
        known[where] = mine
        partial = target.with_suffix(".tmp")
        partial.write_text(json.dumps(known, indent=1), encoding="utf-8")
        partial.replace(target)
    return {name: mine[name] for name in names}


def _free_from(start: int, taken: set[int]) -> int:
    low, high = _PORT_RANGE
    for step in range(high - low):
        port = low + (start + step) % (high - low)
        if port not in taken and _bindable(port):
            return port
    raise UserError("No free port is left between 21000 and 29000 on 127.0.0.1.")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def repro_targets(workspace: Path, exercise: Exercise) -> dict[str, str]:
    """Where `bb up` serves (or will serve) this project, for commands that reproduce a
    failed check: ``debug_url`` and, with a Postgres service, ``debug_dsn``."""
    ports = stable_ports(workspace, exercise)
    targets = {"debug_url": f"http://127.0.0.1:{ports['app']}"}
    for name, service in exercise.services.items():
        if service.ready.postgres is not None:
            pg = service.ready.postgres
            targets["debug_dsn"] = (
                f"postgresql://{pg.user}:{pg.password}@127.0.0.1:{ports[name]}/{pg.dbname}"
            )
            break
    return targets


def bring_up(
    pack: Pack,
    exercise: Exercise,
    workspace: Path,
    *,
    fresh: bool = False,
    on_progress: Callable[[str], None] | None = None,
) -> UpStack:
    """Build and start the project's stack on its stable ports, and leave it running.

    Raises:
        StackFailed: a step failed (its message and log say why).
        EnvironmentProblem: Docker or an image is missing.
    """
    say = on_progress or (lambda _message: None)
    engine = Engine.connect()
    sweep_leftovers(engine)
    ports = stable_ports(workspace, exercise)
    for name, port in ports.items():
        if not _bindable(port) and not _ours(engine, workspace):
            raise UserError(
                f"Port {port} (for {name}) is taken by something else on 127.0.0.1.",
                hint=f"Stop what listens there, or delete {_ports_file()} to choose new ports.",
            )
    if fresh:
        warm.remove_for_workspace(engine, workspace, role="up")
    stack = ProjectStack(
        pack,
        exercise,
        workspace,
        engine,
        grade_id=f"up{secrets.token_hex(3)}",
        keep_warm=True,
        role="up",
        ports=ports,
        reset_warm=False,
    )
    deadline = time.monotonic() + UP_TIMEOUT
    try:
        stack.build(deadline, say)
        stack.start_services(deadline, say)
        stack.migrate(deadline, say)
        stack.start_app(deadline, say, keep=True)
    except StackFailed:
        stack.close()
        raise
    kept = stack.reused
    stack.close()
    services = {
        name: str(
            stack.endpoints[name].get("dsn")
            or stack.endpoints[name].get("url")
            or f"127.0.0.1:{stack.endpoints[name]['port']}"
        )
        for name in exercise.services
    }
    for name in replica_names(exercise)[1:]:  # the other copies of the app, each on its own port
        services[name] = f"http://127.0.0.1:{ports[name]}"
    return UpStack(app_url=f"http://127.0.0.1:{ports['app']}", services=services, kept=kept)


def _ours(engine: Engine, workspace: Path) -> bool:
    """Whether the project's own `bb up` stack runs (its ports are about to be reused)."""
    where = str(workspace.resolve())
    state = next((s for s in warm.all_states() if s.workspace == where and s.role == "up"), None)
    return state is not None and bool(engine.labelled(f"{WARM}={state.key}"))


def bring_down(workspace: Path) -> int:
    """Remove every stack bb keeps for the project (`bb up`'s, and warm services); return
    how many containers and networks went."""
    engine = Engine.connect()
    return warm.remove_for_workspace(engine, workspace)
