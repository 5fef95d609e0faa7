"""Postgres instrumentation for graders: what the learner's app really asks of its database.

    from bb.grader.pg import Postgres, expect_same_rows

    def test_list_uses_the_index(stack, http):
        with Postgres.of(stack) as pg:
            pg.insert_series("posts", 50_000, {"title": "'post ' || i", "author_id": "i % 100"})
            pg.analyze("posts")
            with pg.count_statements() as counted, pg.capture_plans() as captured:
                http.get("/posts?author=7")
            expect(counted.calls <= 2, "one query per request, not one per row (N+1)", ...)
            expect(not captured.seq_scans("posts"), "GET /posts?author= should use an index", ...)

:meth:`Postgres.of` connects as a superuser role of the grader's own (``bb_grader``, created on
first use), so its queries never count as the app's: statement counts, plans and connections
are filtered to the app's user and database (those of the service's DSN). Queries made through
the ``db`` fixture run as the app's user: keep them out of a measurement window.

Everything needs the course's postgres image: pg_stat_statements and auto_explain are preloaded
(auto_explain silent until :meth:`Postgres.capture_plans` turns it on with ALTER SYSTEM), and its
log lines carry ``user@database/application``. pg_trgm and btree_gist are available to
``CREATE EXTENSION`` (:meth:`Postgres.ensure_extension`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from bb.grader import Failure, HintText, expect

#: The application_name of every connection the grader makes (the ``db`` fixture's too).
GRADER_APPLICATION = "bb-grader"
#: The grader's own superuser role, so that its queries are not counted as the app's.
GRADER_ROLE = "bb_grader"

#: Statements a transaction or session is made of, not the app's queries proper.
_UTILITY = re.compile(
    r"^\s*(BEGIN|COMMIT|ROLLBACK|END|START\s+TRANSACTION|SAVEPOINT|RELEASE|SET|RESET|SHOW|"
    r"DISCARD|DEALLOCATE|SELECT\s+pg_advisory_unlock_all)\b",
    re.IGNORECASE,
)
#: What a connection pool or a driver runs by itself, whatever the request: liveness pings
#: (SQLAlchemy's pool_pre_ping sends SELECT 1) and the catalog probes of a new connection.
_CHATTER = re.compile(
    r"^\s*SELECT\s+(\$1|1)\s*;?\s*$"
    r"|\bpg_catalog\.version\s*\(|^\s*SELECT\s+current_schema\s*\(\s*\)\s*;?\s*$"
    r"|\bFROM\s+(pg_catalog\.)?pg_(type|namespace|settings)\b",
    re.IGNORECASE,
)
_PLAN_HEADER = re.compile(
    r"\[(?P<pid>\d+)\] (?P<user>[^@\s]*)@(?P<database>[^/\s]*)/(?P<application>.*?) "
    r"LOG:\s+duration: (?P<ms>[\d.]+) ms\s+plan:\s*$"
)
_LOG_TAIL = 20_000

Params = Sequence[Any] | Mapping[str, Any]


def connect(dsn: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """An autocommit connection named :data:`GRADER_APPLICATION`."""
    return psycopg.connect(
        dsn, autocommit=True, application_name=GRADER_APPLICATION, connect_timeout=10, **kwargs
    )


# -- pg_stat_statements -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Statement:
    """One normalised statement of pg_stat_statements (constants shown as $1, $2, …)."""

    query: str
    calls: int
    rows: int
    total_ms: float
    #: Shared buffers (8 KB pages) the statement touched: hit in memory plus read. Unlike
    #: milliseconds, a busy machine does not change them.
    buffers: int = 0

    @property
    def utility(self) -> bool:
        """BEGIN, COMMIT, SET, …: part of how a client talks, not a query of the app's."""
        return bool(_UTILITY.match(self.query))

    @property
    def chatter(self) -> bool:
        """A pool's ping or a driver's connect-time probe: not caused by what a request asks."""
        return self.utility or bool(_CHATTER.search(self.query))


@dataclasses.dataclass
class StatementCounts:
    """What :meth:`Postgres.count_statements` saw; filled when its block ends."""

    statements: list[Statement] = dataclasses.field(default_factory=list)

    def queries(self, *, include_utility: bool = False) -> list[Statement]:
        return [s for s in self.statements if include_utility or not s.utility]

    @property
    def calls(self) -> int:
        """Statements the app executed (BEGIN, COMMIT, SET and the like not counted)."""
        return sum(s.calls for s in self.queries())

    @property
    def data_calls(self) -> int:
        """Statements that read or write the app's data: :attr:`calls` without the pool's
        liveness pings (``SELECT 1``) and a driver's catalog probes on a new connection, so
        that a per-request budget counts only what the request itself asked for."""
        return sum(s.calls for s in self.statements if not s.chatter)

    @property
    def data_rows(self) -> int:
        """Rows those statements returned or changed: what crossed from Postgres to the app."""
        return sum(s.rows for s in self.statements if not s.chatter)

    @property
    def buffers(self) -> int:
        """Shared buffers the app's queries touched (BEGIN, COMMIT, SET and the like not
        counted)."""
        return sum(s.buffers for s in self.queries())

    def matching(self, pattern: str) -> list[Statement]:
        """The statements whose text matches the regular expression ``pattern`` (any case)."""
        found = re.compile(pattern, re.IGNORECASE | re.DOTALL)
        return [s for s in self.statements if found.search(s.query)]

    def calls_matching(self, pattern: str) -> int:
        """Calls of the statements whose text matches the regular expression ``pattern``
        (case-insensitive), e.g. ``r"^SELECT .* FROM comments"``."""
        found = re.compile(pattern, re.IGNORECASE | re.DOTALL)
        return sum(s.calls for s in self.statements if found.search(s.query))

    def summary(self, limit: int = 8, *, chatter: bool = True) -> str:
        """The busiest statements, for failure messages (without pings and probes when
        ``chatter`` is false)."""
        shown = self.queries() if chatter else [s for s in self.statements if not s.chatter]
        top = sorted(shown, key=lambda s: -s.calls)[:limit]
        return "; ".join(f"{s.calls}× {_shorten(s.query)}" for s in top) or "(no statements)"


# -- auto_explain ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Plan:
    """The plan Postgres used for one of the app's statements, as auto_explain logged it."""

    query: str
    duration_ms: float
    tree: dict[str, Any]
    user: str
    database: str
    application: str

    def nodes(self) -> Iterator[dict[str, Any]]:
        """Every node of the plan, depth first (init plans and subplans included)."""
        yield from plan_nodes(self.tree)

    def node_types(self) -> list[str]:
        return [str(n.get("Node Type")) for n in self.nodes()]

    def scans(self, relation: str | None = None) -> list[dict[str, Any]]:
        """Nodes that read a table (of ``relation``, when given)."""
        return [
            n
            for n in self.nodes()
            if "Relation Name" in n and (relation is None or n["Relation Name"] == relation)
        ]

    def seq_scans(self, relation: str | None = None) -> list[dict[str, Any]]:
        return [n for n in self.scans(relation) if n.get("Node Type") == "Seq Scan"]

    def index_names(self) -> set[str]:
        """The indexes this plan uses (Index Scan, Index Only Scan, Bitmap Index Scan)."""
        return {str(n["Index Name"]) for n in self.nodes() if "Index Name" in n}


def plan_nodes(node: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Walk a plan node (a dict with ``Node Type``) and its children, depth first."""
    yield dict(node)
    for child in node.get("Plans") or ():
        yield from plan_nodes(child)


def parse_plans(log: str) -> list[Plan]:
    """The auto_explain JSON plans in ``log`` (the course postgres image's stderr log)."""
    plans: list[Plan] = []
    lines = log.splitlines()
    index = 0
    while index < len(lines):
        header = _PLAN_HEADER.search(lines[index])
        index += 1
        if header is None:
            continue
        body: list[str] = []
        while index < len(lines) and lines[index].startswith("\t"):
            body.append(lines[index][1:])
            index += 1
        try:
            document = json.loads("\n".join(body))
        except ValueError:
            continue  # a plan interleaved with another process's lines: not trustworthy
        if not isinstance(document, dict) or "Plan" not in document:
            continue
        plans.append(
            Plan(
                query=str(document.get("Query Text", "")),
                duration_ms=float(header["ms"]),
                tree=dict(document["Plan"]),
                user=header["user"],
                database=header["database"],
                application=header["application"],
            )
        )
    return plans


@dataclasses.dataclass
class PlanCapture:
    """What :meth:`Postgres.capture_plans` saw; filled when its block ends."""

    plans: list[Plan] = dataclasses.field(default_factory=list)

    def matching(self, pattern: str) -> list[Plan]:
        """Plans whose query text matches the regular expression ``pattern`` (any case)."""
        found = re.compile(pattern, re.IGNORECASE | re.DOTALL)
        return [p for p in self.plans if found.search(p.query)]

    def seq_scans(self, relation: str) -> list[Plan]:
        """Plans that read all of ``relation`` with a Seq Scan."""
        return [p for p in self.plans if p.seq_scans(relation)]

    def index_names(self) -> set[str]:
        return set().union(*(p.index_names() for p in self.plans)) if self.plans else set()

    def summary(self, limit: int = 5) -> str:
        return (
            "; ".join(
                f"{_shorten(p.query)} → {', '.join(dict.fromkeys(p.node_types()))}"
                for p in self.plans[:limit]
            )
            or "(no plans)"
        )


@dataclasses.dataclass
class LogCapture:
    """What :meth:`Postgres.capture_log` saw: the server's log lines, filled when its block
    ends."""

    text: str = ""


_LOCK_WAIT = re.compile(
    r"\[(?P<pid>\d+)\] .*?LOG:\s+process (?P<process>\d+) (?P<state>still waiting for|acquired) "
    r"(?P<mode>\w+) on (?P<what>.+?) after (?P<ms>[\d.]+) ms"
)


@dataclasses.dataclass(frozen=True)
class LockWait:
    """One lock wait that lasted at least ``deadlock_timeout``, as ``log_lock_waits`` logs it:
    while it goes on ("still waiting for"), and once more when it ends ("acquired")."""

    pid: int
    mode: str
    #: What was locked, as Postgres names it: ``relation 16402 of database 16384``, …
    target: str
    ms: float
    acquired: bool


def parse_lock_waits(log: str, *, pid: int | None = None) -> list[LockWait]:
    """The lock waits in ``log`` (of backend ``pid``, when given). A session logs them once it
    has set ``log_lock_waits = on``; ``deadlock_timeout`` is how long a wait must last to be
    logged, so the evidence does not depend on how busy the machine is."""
    waits = []
    for line in log.splitlines():
        found = _LOCK_WAIT.search(line)
        if found is None or (pid is not None and int(found["process"]) != pid):
            continue
        waits.append(LockWait(int(found["process"]), found["mode"], found["what"],
                              float(found["ms"]), found["state"] == "acquired"))  # fmt: skip
    return waits


# -- pg_index -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Index:
    """One index, as pg_index and pg_get_indexdef describe it."""

    table: str
    name: str
    #: btree, gin, gist, hash, brin, …
    method: str
    primary: bool
    unique: bool
    #: The key columns or expressions, in order, without ASC/DESC: ``("customer_id",
    #: "lower(email)")``.
    columns: tuple[str, ...]
    #: The type of each key column (``citext``, ``text``, …); ``""`` for an expression.
    column_types: tuple[str, ...]
    #: The operator class of each key column (``text_ops``, ``gin_trgm_ops``, …).
    opclasses: tuple[str, ...]
    #: The WHERE of a partial index, or None.
    predicate: str | None
    #: CREATE INDEX … as pg_get_indexdef writes it.
    definition: str

    def prefix_of(self, other: Index) -> bool:
        """This index's columns lead ``other``'s, in the same kind of index, so ``other``
        answers every query this one does: this one only costs writes. A unique index is never
        redundant (it enforces a rule), nor is one with another WHERE."""
        return (
            self.name != other.name
            and not self.unique
            and self.method == other.method == "btree"
            and self.predicate == other.predicate
            and len(self.columns) <= len(other.columns)
            and other.columns[: len(self.columns)] == self.columns
        )


# -- pg_stat_activity -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Backend:
    """One connection of the app's, from pg_stat_activity."""

    pid: int
    application: str
    state: str | None
    query: str
    wait_event_type: str | None
    in_transaction_seconds: float | None


# -- the instrument ---------------------------------------------------------------------------


class Postgres:
    """Instruments one Postgres service of a grade (see the module's documentation).

    Args:
        dsn: a superuser connection string (``stack.dsn(service)``).
        logs: returns the last ``n`` lines of the server's log (``stack.logs``); needed by
            :meth:`capture_plans` only.
    """

    def __init__(self, dsn: str, *, logs: Callable[[int], str] | None = None) -> None:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
        self.dsn = dsn
        self.app_user = str(info.get("user") or "postgres")
        self.app_database = str(info.get("dbname") or self.app_user)
        self._logs = logs
        self._conn: psycopg.Connection[Any] | None = None

    @classmethod
    def of(cls, stack: Any, service: str = "db") -> Postgres:
        """The instrument for ``service`` of the running grade (``stack`` is the fixture)."""
        return cls(stack.dsn(service), logs=lambda tail: str(stack.logs(service, tail=tail)))

    def __enter__(self) -> Postgres:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @property
    def conn(self) -> psycopg.Connection[Any]:
        """The grader's own connection (role :data:`GRADER_ROLE`, autocommit)."""
        if self._conn is None:
            self._conn = self._grader_connection()
        return self._conn

    def _grader_connection(self) -> psycopg.Connection[Any]:
        password = secrets.token_hex(16)
        with connect(self.dsn) as admin:
            exists = admin.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", (GRADER_ROLE,)
            ).fetchone()
            verb = sql.SQL("ALTER" if exists else "CREATE")
            admin.execute(
                sql.SQL("{} ROLE {} SUPERUSER LOGIN PASSWORD {}").format(
                    verb, sql.Identifier(GRADER_ROLE), sql.Literal(password)
                )
            )
        return connect(self.dsn, user=GRADER_ROLE, password=password)

    # -- queries of the grader's own (ground truth) -------------------------------------------

    def rows(self, query: str, params: Params = ()) -> list[dict[str, Any]]:
        """The rows of ``query`` as dicts (run as the grader: not counted as the app's)."""
        with self.conn.cursor(row_factory=dict_row) as cursor:
            cursor.execute(query, params)
            return list(cursor.fetchall())

    def scalar(self, query: str, params: Params = ()) -> Any:
        row = self.conn.execute(query, params).fetchone()
        return None if row is None else row[0]

    def ensure_extension(self, name: str) -> None:
        """``CREATE EXTENSION IF NOT EXISTS`` in the app's database."""
        self.conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(name)))

    # -- statements ---------------------------------------------------------------------------

    def reset_statements(self) -> None:
        self.ensure_extension("pg_stat_statements")
        self.conn.execute("SELECT pg_stat_statements_reset()")

    def statements(self) -> list[Statement]:
        """pg_stat_statements' rows for the app's user and database, busiest first."""
        self.ensure_extension("pg_stat_statements")
        found = self.conn.execute(
            """
            SELECT s.query, s.calls, s.rows, s.total_exec_time,
                   s.shared_blks_hit + s.shared_blks_read
            FROM pg_stat_statements s
            JOIN pg_roles r ON r.oid = s.userid
            JOIN pg_database d ON d.oid = s.dbid
            WHERE r.rolname = %s AND d.datname = %s
            ORDER BY s.calls DESC, s.query
            """,
            (self.app_user, self.app_database),
        ).fetchall()
        return [Statement(str(q), int(c), int(r), float(t), int(b)) for q, c, r, t, b in found]

    @contextlib.contextmanager
    def count_statements(self) -> Iterator[StatementCounts]:
        """Count what the app executes inside the block (pg_stat_statements is reset first)."""
        counts = StatementCounts()
        self.reset_statements()
        yield counts
        counts.statements = self.statements()

    # -- plans --------------------------------------------------------------------------------

    def set_auto_explain(self, enabled: bool, *, analyze: bool = False) -> None:
        """Log (or stop logging) the plan of every statement, as JSON, server-wide.

        Backends pick a reload up before their next statement; the short wait lets the signal
        reach them first.
        """
        settings = {
            "auto_explain.log_min_duration": "0" if enabled else "-1",
            "auto_explain.log_analyze": "on" if enabled and analyze else "off",
        }
        for name, value in settings.items():
            self.conn.execute(
                sql.SQL("ALTER SYSTEM SET {} = {}").format(
                    sql.Identifier(*name.split(".")), sql.Literal(value)
                )
            )
        self.conn.execute("SELECT pg_reload_conf()")
        time.sleep(0.3)

    def _mark(self, label: str) -> str:
        marker = f"bb-grader-{label}-{secrets.token_hex(6)}"
        self.conn.execute(sql.SQL("DO {}").format(sql.Literal(f"BEGIN RAISE LOG '{marker}'; END")))
        return marker

    @contextlib.contextmanager
    def capture_log(self) -> Iterator[LogCapture]:
        """Collect what the server logs inside the block (all sessions'), e.g. the lock waits
        of a session that set ``log_lock_waits`` (:func:`parse_lock_waits`).

        Raises:
            LookupError: this instrument has no access to the server's log.
        """
        if self._logs is None:
            raise LookupError("capture_log needs the server's log: use Postgres.of(stack)")
        capture = LogCapture()
        start = self._mark("log-start")
        try:
            yield capture
        finally:
            end = self._mark("log-end")
            capture.text = self._log_between(start, end)

    @contextlib.contextmanager
    def capture_plans(self, *, analyze: bool = False) -> Iterator[PlanCapture]:
        """Collect the plans of the app's statements run inside the block.

        ``analyze`` adds actual row counts and timings (the app's queries get slower).

        Raises:
            LookupError: this instrument has no access to the server's log.
        """
        if self._logs is None:
            raise LookupError("capture_plans needs the server's log: use Postgres.of(stack)")
        capture = PlanCapture()
        with self.capture_log() as log:
            self.set_auto_explain(True, analyze=analyze)
            try:
                yield capture
            finally:
                self.set_auto_explain(False)
        capture.plans = [
            p
            for p in parse_plans(log.text)
            if p.user == self.app_user
            and p.database == self.app_database
            and p.application != GRADER_APPLICATION
        ]

    # -- the schema -----------------------------------------------------------------------------

    def indexes(self, table: str | None = None) -> list[Index]:
        """The indexes of ``table`` (of every table in the public schema, when not given), as
        pg_index describes them, by table and name."""
        found = self.conn.execute(
            """
            SELECT t.relname, i.relname, am.amname, x.indisprimary, x.indisunique,
                   x.indnkeyatts, pg_get_indexdef(x.indexrelid),
                   pg_get_expr(x.indpred, x.indrelid),
                   ARRAY(SELECT pg_get_indexdef(x.indexrelid, k, true)
                         FROM generate_series(1, x.indnkeyatts) AS k ORDER BY k),
                   ARRAY(SELECT coalesce(format_type(a.atttypid, NULL), '')
                         FROM generate_series(1, x.indnkeyatts) AS k
                         LEFT JOIN pg_attribute a
                           ON a.attrelid = x.indrelid AND a.attnum = x.indkey[k - 1]
                         ORDER BY k),
                   ARRAY(SELECT o.opcname FROM generate_series(1, x.indnkeyatts) AS k
                         JOIN pg_opclass o ON o.oid = x.indclass[k - 1] ORDER BY k)
            FROM pg_index x
            JOIN pg_class i ON i.oid = x.indexrelid
            JOIN pg_class t ON t.oid = x.indrelid
            JOIN pg_namespace n ON n.oid = t.relnamespace
            JOIN pg_am am ON am.oid = i.relam
            WHERE n.nspname = 'public' AND (%s::text IS NULL OR t.relname = %s)
            ORDER BY t.relname, i.relname
            """,
            (table, table),
        ).fetchall()
        return [
            Index(table=str(t), name=str(n), method=str(m), primary=bool(p), unique=bool(u),
                  columns=tuple(map(str, cols)), column_types=tuple(map(str, types)),
                  opclasses=tuple(map(str, ops)), predicate=pred, definition=str(d))
            for t, n, m, p, u, _, d, pred, cols, types, ops in found
        ]  # fmt: skip

    def _log_between(self, start: str, end: str) -> str:
        assert self._logs is not None
        deadline = time.monotonic() + 5
        while True:
            # The log reaches Docker a moment after Postgres writes it.
            log = self._logs(_LOG_TAIL)
            if end in log or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if start not in log:
            raise Failure(
                "The database's log did not keep the plans of this check (over "
                f"{_LOG_TAIL} lines were logged); capture fewer requests at a time."
            )
        after = log.split(start, 1)[1]
        return after.split(end, 1)[0]

    # -- connections ----------------------------------------------------------------------------

    def app_connections(self) -> list[Backend]:
        """The app's connections now (not the grader's), from pg_stat_activity."""
        found = self.conn.execute(
            """
            SELECT pid, application_name, state, query, wait_event_type,
                   extract(epoch FROM now() - xact_start)::float8
            FROM pg_stat_activity
            WHERE backend_type = 'client backend' AND usename = %s AND datname = %s
              AND application_name <> %s AND pid <> pg_backend_pid()
            ORDER BY pid
            """,
            (self.app_user, self.app_database, GRADER_APPLICATION),
        ).fetchall()
        return [Backend(int(p), str(a), s, str(q or ""), w, x) for p, a, s, q, w, x in found]

    # -- faults ---------------------------------------------------------------------------------

    def injected_trigger(
        self, name: str, *, table: str, body: str, before: str | None = None,
        after: str | None = None,
    ) -> contextlib.AbstractContextManager[None]:  # fmt: skip
        """See :func:`injected_trigger`."""
        return injected_trigger(self.conn, name, table=table, body=body, before=before,
                                after=after)  # fmt: skip

    # -- seeding --------------------------------------------------------------------------------

    def insert_series(self, table: str, count: int, columns: Mapping[str, str]) -> int:
        """See :func:`insert_series`."""
        return insert_series(self.conn, table, count, columns)

    def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """See :func:`copy_rows`."""
        return copy_rows(self.conn, table, columns, rows)

    def analyze(self, table: str) -> None:
        """Refresh the planner's statistics of ``table`` (do it after seeding)."""
        self.conn.execute(sql.SQL("ANALYZE {}").format(_table(table)))


# -- functions on any connection (the ``db`` fixture's too) -----------------------------------


@contextlib.contextmanager
def injected_trigger(
    conn: psycopg.Connection[Any],
    name: str,
    *,
    table: str,
    body: str,
    before: str | None = None,
    after: str | None = None,
) -> Iterator[None]:
    """Run the PL/pgSQL ``body`` for every row of ``table`` ``before`` (or ``after``) the
    given events ("INSERT", "UPDATE OR DELETE", …), for the length of the block. The trigger
    and its function are removed on the way out, whatever happened. A fault:

        with injected_trigger(db, "bb_fail_ledger", table="ledger_entries", before="INSERT",
                              body="RAISE EXCEPTION 'injected'; RETURN NEW;"):
            ...
    """
    if (before is None) == (after is None):
        raise ValueError("give exactly one of before or after")
    timing, events = ("BEFORE", before) if before is not None else ("AFTER", after)
    assert events is not None
    if not re.fullmatch(r"[A-Za-z]+(\s+OR\s+[A-Za-z]+)*", events.strip()):
        raise ValueError(f"events should look like 'INSERT OR UPDATE', not {events!r}")
    function = sql.Identifier(name)
    conn.execute(
        sql.SQL("CREATE OR REPLACE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS {}").format(
            function, sql.Literal(f"BEGIN {body} END")
        )
    )
    try:
        conn.execute(
            sql.SQL("CREATE TRIGGER {} {} {} ON {} FOR EACH ROW EXECUTE FUNCTION {}()").format(
                sql.Identifier(name),
                sql.SQL(timing),
                sql.SQL(events.upper()),
                _table(table),
                function,
            )  # fmt: skip
        )
        yield
    finally:
        conn.execute(sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(sql.Identifier(name),
                                                                       _table(table)))  # fmt: skip
        conn.execute(sql.SQL("DROP FUNCTION IF EXISTS {}()").format(function))


def slow_writes(
    conn: psycopg.Connection[Any], table: str, seconds: float, *, events: str = "UPDATE"
) -> contextlib.AbstractContextManager[None]:
    """Make each ``events`` of a row of ``table`` take ``seconds`` longer: keeps a race's
    window open so that a read-modify-write race shows on every run."""
    body = f"PERFORM pg_sleep({float(seconds)}); RETURN NEW;"
    name = f"bb_grader_slow_{table.replace('.', '_')}"
    return injected_trigger(conn, name, table=table, before=events, body=body)


def insert_series(
    conn: psycopg.Connection[Any], table: str, count: int, columns: Mapping[str, str]
) -> int:
    """Insert ``count`` rows generated by the database itself: ``columns`` maps each column
    to an SQL expression of ``i`` (1 … count), e.g. ``{"email": "'user' || i || '@x.test'"}``.
    Returns the rows inserted. About a second per million narrow rows."""
    if not 0 < count <= 10_000_000:
        raise ValueError("count must be in [1, 10,000,000]")
    statement = sql.SQL(
        "INSERT INTO {} ({}) SELECT {} FROM generate_series(1, {}) AS series(i)"
    ).format(
        _table(table),
        sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        sql.SQL(", ").join(sql.SQL(e) for e in columns.values()),
        sql.Literal(count),
    )
    return conn.execute(statement).rowcount


def copy_rows(
    conn: psycopg.Connection[Any], table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> int:
    """Load rows made in Python with COPY (far faster than INSERTs); returns how many."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        _table(table), sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    )
    written = 0
    with conn.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
            written += 1
    return written


def expect_same_rows(
    actual: Iterable[Mapping[str, Any]],
    expected: Iterable[Mapping[str, Any]],
    *,
    what: str,
    key: str | None = None,
    fields: Sequence[str] | None = None,
    ordered: bool = False,
    hint: HintText | None = None,
) -> None:
    """Fail unless the app's answer (``actual``, e.g. a JSON list) holds the same rows as the
    ground truth (``expected``, e.g. :meth:`Postgres.rows`), compared on ``fields`` (default:
    the ground truth's columns), matched by ``key`` or, with ``ordered``, by position."""
    actual_rows, expected_rows = list(actual), list(expected)
    names = list(fields or (expected_rows[0].keys() if expected_rows else ()))

    def pick(row: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(_comparable(row.get(n)) for n in names)

    problems: list[str] = []
    if ordered:
        if [pick(r) for r in actual_rows] != [pick(r) for r in expected_rows]:
            for n, (a, e) in enumerate(zip(actual_rows, expected_rows, strict=False)):
                if pick(a) != pick(e):
                    problems.append(f"row {n}: {_show(a, names)} instead of {_show(e, names)}")
            if len(actual_rows) != len(expected_rows):
                problems.append(f"{len(actual_rows)} rows instead of {len(expected_rows)}")
    elif key is not None:
        by_key = {_comparable(r.get(key)): r for r in actual_rows}
        for row in expected_rows:
            found = by_key.pop(_comparable(row.get(key)), None)
            if found is None:
                problems.append(f"{key}={row.get(key)!r} is missing")
            elif pick(found) != pick(row):
                problems.append(f"{key}={row.get(key)!r}: {_show(found, names)} instead of "
                                f"{_show(row, names)}")  # fmt: skip
        problems += [f"{key}={k!r} should not be there" for k in by_key]
    else:
        missing = sorted(map(repr, set(map(pick, expected_rows)) - set(map(pick, actual_rows))))
        extra = sorted(map(repr, set(map(pick, actual_rows)) - set(map(pick, expected_rows))))
        problems += [f"missing {m}" for m in missing] + [f"unexpected {e}" for e in extra]
    expect(
        not problems,
        f"{what}: {len(problems)} difference{'s' if len(problems) != 1 else ''} from the "
        f"database: {'; '.join(problems[:5])}{' …' if len(problems) > 5 else ''}",
        expected=f"{len(expected_rows)} rows as in the database",
        actual=f"{len(actual_rows)} rows",
        hint=hint,
    )


def _comparable(value: Any) -> Any:
    # JSON turns numerics into floats and timestamps into ISO strings: compare on that ground.
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float) or type(value).__name__ == "Decimal":
        return float(value)
    if isinstance(value, list | dict):
        return json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, datetime.datetime):
        return _instant(value)
    if isinstance(value, str) and _ISO_INSTANT.match(value):
        with contextlib.suppress(ValueError):
            return _instant(datetime.datetime.fromisoformat(value))
    return str(value)


_ISO_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def _instant(moment: datetime.datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.UTC)
    return moment.isoformat()


def _show(row: Mapping[str, Any], names: Sequence[str]) -> str:
    return "{" + ", ".join(f"{n}: {row.get(n)!r}" for n in names) + "}"


def _table(name: str) -> sql.Composable:
    return sql.Identifier(*name.split("."))


def _shorten(text: str, limit: int = 90) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
