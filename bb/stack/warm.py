"""Warm services: a project's services kept running between its grades.

Starting Postgres costs about a second per grade; a warm one costs a database reset. The
services of one project (found by its directory, its exercise and the exact service specs)
stay up on a network of their own, labelled with the warm stack's key instead of a grade's id,
so neither a grade's teardown nor the orphan sweep removes them. Every grade resets their
state first (a fresh database, the server's settings back to the image's) and never trusts
them blindly: a warm service that is gone, unhealthy or cannot be reset is replaced.

They go away with `bb down`, after :data:`IDLE_SECONDS` unused (a small detached reaper process
watches each warm stack), when the project directory is deleted (the reaper and every bb
command's sweep notice), and when the engine restarts (the next grade finds them gone).

Only services bb knows how to reset are kept warm (Postgres, by its readiness probe); any
other service starts fresh for every grade, as before. A grade holds the warm stack's lock;
a second grade of the same project at the same moment runs cold instead of sharing state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from bb import paths
from bb.stack.engine import WARM, WARM_ROLE, WARM_WORKSPACE, Engine

if TYPE_CHECKING:
    from bb.pack.manifest import Readiness, Service

#: How long a warm stack may sit unused before it stops by itself.
IDLE_SECONDS = 30 * 60
#: Overrides IDLE_SECONDS (tests, or a learner who wants another figure).
IDLE_ENV = "BB_WARM_IDLE"
#: How often the reaper looks (at most; it sleeps less when the idle limit is nearer).
_REAPER_PERIOD = 30.0


def idle_seconds() -> float:
    with contextlib.suppress(KeyError, ValueError):
        return max(1.0, float(os.environ[IDLE_ENV]))
    return float(IDLE_SECONDS)


def resettable(service: Service) -> bool:
    """Whether bb can wipe a service's state between grades (so it may be kept warm)."""
    ready = service.ready
    return ready.postgres is not None or ready.redis is not None or service.reset is not None


def stack_key(role: str, workspace: Path, exercise_id: str, specs: dict[str, Any]) -> str:
    """One key per project, role (grading or `bb up`) and exact service specs: a changed
    course (another image, another setting) gets a new warm stack, not a stale one."""
    material = json.dumps(
        [role, str(workspace.resolve()), exercise_id, specs], sort_keys=True, default=str
    )
    return hashlib.sha256(material.encode()).hexdigest()[:12]


def _directory() -> Path:
    return paths.home() / "warm"


@dataclasses.dataclass
class WarmState:
    """What bb remembers of one warm stack (its containers carry the same key as a label)."""

    key: str
    workspace: str
    network: str
    #: By service name: container id, host port and DSN (for Postgres).
    services: dict[str, dict[str, Any]]
    last_used: float
    reaper_pid: int = 0
    #: ``grade`` (reset every grade, idle after IDLE_SECONDS) or ``up`` (`bb up`'s, kept
    #: until `bb down` or until the project is gone).
    role: str = "grade"

    @classmethod
    def load(cls, key: str) -> WarmState | None:
        try:
            data = json.loads((_directory() / f"{key}.json").read_text(encoding="utf-8"))
            return cls(**data)
        except (OSError, ValueError, TypeError):
            return None

    def save(self) -> None:
        directory = _directory()
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / f"{self.key}.json"
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(dataclasses.asdict(self)), encoding="utf-8")
        partial.replace(target)


def forget(key: str) -> None:
    with contextlib.suppress(OSError):
        (_directory() / f"{key}.json").unlink(missing_ok=True)


def all_states() -> list[WarmState]:
    directory = _directory()
    if not directory.is_dir():
        return []
    states = (WarmState.load(p.stem) for p in sorted(directory.glob("*.json")))
    return [s for s in states if s is not None]


@contextlib.contextmanager
def try_lock(key: str) -> Iterator[bool]:
    """Hold the warm stack's lock if nobody else does; yields whether it is held."""
    directory = _directory()
    directory.mkdir(parents=True, exist_ok=True)
    handle: IO[str] = (directory / f"{key}.lock").open("a")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        yield True
    finally:
        handle.close()


def reset(service: Service, port: int) -> str | None:
    """Wipe a warm service's state; None when done, else why it could not be (the service is
    then replaced by a fresh one)."""
    if service.ready.postgres is not None:
        return _reset_postgres(service.ready, port)
    if service.ready.redis is not None:
        return _reset_redis(service.ready, port)
    if service.reset is not None:
        return _reset_by_post(service.reset.post, port)
    return "bb cannot reset this kind of service"


def _reset_by_post(path: str, port: int) -> str | None:
    """The service's own reset endpoint (a mock's), which must answer 2xx."""
    from bb.stack.probes import http_status

    status = http_status("127.0.0.1", port, "POST", path, timeout=5.0)
    if isinstance(status, str):
        return status
    return None if 200 <= status < 300 else f"POST {path} answered {status}"


def _reset_redis(ready: Readiness, port: int) -> str | None:
    """Every key of every database, every loaded script and function, and the counters
    (INFO stats, which graders read for hit ratios) gone; clients of the last grade cut off.
    A few milliseconds."""
    import redis

    assert ready.redis is not None
    client = redis.Redis(
        host="127.0.0.1", port=port, password=ready.redis.password,
        socket_connect_timeout=3, socket_timeout=3,
    )  # fmt: skip
    try:
        with client:
            client.flushall()
            client.script_flush()
            client.function_flush()
            client.config_resetstat()
            client.client_kill_filter(_type="normal", skipme=True)
    except redis.RedisError as exc:
        return f"Redis: {str(exc).strip() or type(exc).__name__}"
    return None


def _reset_postgres(ready: Readiness, port: int) -> str | None:
    """A fresh database per grade: every database but the maintenance ones dropped (closing
    their connections), the grade's own created again, roles that migrations made dropped,
    and the server's settings back to its configuration files (graders change them with
    ALTER SYSTEM). About 0.1-0.3 s on tmpfs."""
    import psycopg
    from psycopg import sql

    pg = ready.postgres
    assert pg is not None
    try:
        with psycopg.connect(
            host="127.0.0.1",
            port=port,
            user=pg.user,
            password=pg.password,
            dbname="postgres" if pg.dbname != "postgres" else "template1",
            connect_timeout=3,
            autocommit=True,
        ) as conn:
            conn.execute("ALTER SYSTEM RESET ALL")
            conn.execute("SELECT pg_reload_conf()")
            databases = [
                str(row[0])
                for row in conn.execute(
                    "SELECT datname FROM pg_database WHERE datname NOT IN "
                    "('postgres', 'template0', 'template1')"
                )
            ]
            for name in databases:
                conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
            roles = [
                str(row[0])
                for row in conn.execute(
                    "SELECT rolname FROM pg_roles WHERE rolname !~ '^pg_' "
                    "AND rolname <> current_user"
                )
            ]
            for role in roles:
                conn.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(role)))
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
            if pg.dbname not in ("postgres", "template1"):
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(pg.dbname), sql.Identifier(pg.user)
                    )
                )
            else:  # the maintenance database itself: empty its public schema
                conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    except psycopg.Error as exc:
        text = str(exc).strip()
        return f"Postgres: {text.splitlines()[0] if text else type(exc).__name__}"
    return None


def remove(engine: Engine, key: str) -> int:
    """Stop and remove a warm stack's containers and network, and forget it."""
    removed = engine.remove_labelled(f"{WARM}={key}")
    forget(key)
    return removed


def remove_for_workspace(
    engine: Engine, workspace: Path, *, role: str | None = None, keep: str = ""
) -> int:
    """Remove the warm stacks of one project (of one ``role``, or all; never ``keep``):
    `bb down`, or a course change that made a new one."""
    where = str(workspace.resolve())
    keys = {
        labels.get(WARM, "")
        for _, _, labels in engine.labelled(f"{WARM_WORKSPACE}={where}")
        if role is None or labels.get(WARM_ROLE) == role
    }
    keys |= {s.key for s in all_states() if s.workspace == where and role in (None, s.role)}
    return sum(remove(engine, key) for key in sorted(keys - {"", keep}))


def expired(state: WarmState, now: float | None = None) -> bool:
    if not Path(state.workspace).is_dir():
        return True
    now = time.time() if now is None else now
    return state.role == "grade" and now - state.last_used > idle_seconds()


def sweep(engine: Engine) -> int:
    """Remove warm stacks that are idle too long or whose project is gone, and warm
    containers no state names whose project directory is gone. Stacks in use are skipped."""
    removed = 0
    for state in all_states():
        if expired(state):
            with try_lock(state.key) as mine:
                if mine:
                    removed += remove(engine, state.key)
    known = {s.key for s in all_states()}
    for _, _, labels in engine.labelled(WARM):
        key = labels.get(WARM, "")
        if key not in known and not Path(labels.get(WARM_WORKSPACE, "/nonexistent")).is_dir():
            removed += remove(engine, key)
    return removed


def ensure_reaper(state: WarmState) -> None:
    """Start the detached process that stops this warm stack once it sits idle, unless one
    already watches it. It outlives bb (its own session) and exits with the stack."""
    if state.reaper_pid and _alive(state.reaper_pid):
        return
    process = subprocess.Popen(
        [sys.executable, "-m", "bb.stack.warm", state.key],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
        env={**os.environ, "PYTHONPATH": _import_root()},
    )
    state.reaper_pid = process.pid
    state.save()


def _import_root() -> str:
    import bb

    return str(Path(bb.__file__).resolve().parent.parent)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child (ours, not reaped yet) counts as gone.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rpartition(")")[2].split()[0] != "Z"
    return True


def reap(key: str) -> None:
    """The reaper's loop: wait until the warm stack is idle too long or its project is gone,
    then remove it. Exits when the stack is gone by other means (`bb down`, a replacement)."""
    engine: Engine | None = None
    while True:
        state = WarmState.load(key)
        if state is None:
            return
        if state.reaper_pid not in (0, os.getpid()) and _alive(state.reaper_pid):
            return  # another reaper took over (this one's pid was not saved in time)
        if expired(state):
            with try_lock(key) as mine:
                if mine:
                    engine = engine or Engine.connect()
                    remove(engine, key)
                    return
        left = state.last_used + idle_seconds() - time.time()
        time.sleep(min(_REAPER_PERIOD, max(1.0, left)) if state.role == "grade" else _REAPER_PERIOD)


if __name__ == "__main__":  # pragma: no cover - runs detached, see ensure_reaper
    with contextlib.suppress(Exception):
        reap(sys.argv[1])
