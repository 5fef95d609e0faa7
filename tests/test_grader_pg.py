"""The Postgres grader tools against the course's postgres image, started through bb's runtime."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from bb.grader import Failure
from bb.grader.pg import (
    GRADER_APPLICATION,
    Index,
    Postgres,
    expect_same_rows,
    injected_trigger,
    parse_lock_waits,
    parse_plans,
    slow_writes,
)
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def postgres(engine: Any) -> Iterator[tuple[str, Any]]:
    """A course postgres container on a network of its own: (DSN of its superuser, logs)."""
    from bb.pack.manifest import PostgresProbe, Readiness, load_pack
    from bb.stack.engine import ContainerSpec, free_port
    from bb.stack.probes import wait_ready

    grade_id = "pgtest" + secrets.token_hex(3)
    port = free_port()
    try:
        engine.create_network(f"bb-{grade_id}", grade_id)
        container = engine.run(
            ContainerSpec(
                name=f"bb-{grade_id}-db",
                image=load_pack(ROOT).image_tag("postgres"),
                environment={"POSTGRES_USER": "app", "POSTGRES_PASSWORD": "app",
                             "POSTGRES_DB": "app"},
                ports={5432: port},
                tmpfs=("/var/lib/postgresql/data",),
                memory="1g",
                cpus=1.0,
            ),
            network=f"bb-{grade_id}",
            grade_id=grade_id,
        )  # fmt: skip
        readiness = Readiness(postgres=PostgresProbe(user="app", password="app", dbname="app"))
        reason, _ = wait_ready(readiness, port, exited=lambda: engine.has_exited(container),
                               deadline=time.monotonic() + 60)  # fmt: skip
        assert reason is None, engine.logs(container)
        yield (
            f"postgresql://app:app@127.0.0.1:{port}/app",
            lambda tail: engine.logs(container, tail=tail),
        )
    finally:
        engine.remove_grade(grade_id)


@pytest.fixture
def pg(postgres: tuple[str, Any]) -> Iterator[Postgres]:
    dsn, logs = postgres
    with Postgres(dsn, logs=logs) as instrument:
        yield instrument


def app_connection(dsn: str) -> psycopg.Connection[Any]:
    """A connection as the learner's app makes one: its own user, its own name."""
    return psycopg.connect(dsn, autocommit=True, application_name="learner-app")


pytestmark = pytest.mark.docker


def test_the_image_ships_the_extensions_graders_use(pg: Postgres) -> None:
    preloaded = pg.scalar("SHOW shared_preload_libraries")
    assert {"pg_stat_statements", "auto_explain"} <= {p.strip() for p in preloaded.split(",")}
    assert pg.scalar("SHOW auto_explain.log_min_duration") == "-1"  # silent by default
    for extension in ("pg_stat_statements", "pg_trgm", "btree_gist"):
        pg.ensure_extension(extension)
    installed = {r["extname"] for r in pg.rows("SELECT extname FROM pg_extension")}
    assert {"pg_stat_statements", "pg_trgm", "btree_gist"} <= installed


def test_statement_counts_are_the_apps_only(pg: Postgres, postgres: tuple[str, Any]) -> None:
    dsn, _ = postgres
    with app_connection(dsn) as app:
        app.execute("CREATE TABLE IF NOT EXISTS counted (id int PRIMARY KEY, note text)")
        app.execute("TRUNCATE counted")
        with pg.count_statements() as counted:
            with app.transaction():
                for n in range(3):
                    app.execute("INSERT INTO counted VALUES (%s, 'x')", (n,))
            app.execute("SELECT * FROM counted WHERE id = %s", (1,))
            pg.rows("SELECT count(*) FROM counted")  # the grader's own: not counted
    assert counted.calls == 4, counted.summary()
    assert counted.calls_matching(r"^INSERT INTO counted") == 3
    assert counted.calls_matching(r"^SELECT \* FROM counted") == 1
    assert counted.calls_matching("count\\(\\*\\)") == 0
    # BEGIN and COMMIT were executed, and are there when asked for.
    assert len(counted.queries(include_utility=True)) > len(counted.queries())


def test_data_calls_leave_out_pings_and_connect_probes(
    pg: Postgres, postgres: tuple[str, Any]
) -> None:
    dsn, _ = postgres
    with app_connection(dsn) as app:
        app.execute("CREATE TABLE IF NOT EXISTS counted (id int PRIMARY KEY, note text)")
        app.execute("TRUNCATE counted")
        app.execute("INSERT INTO counted VALUES (1, 'x'), (2, 'y')")
        with pg.count_statements() as counted:
            app.execute("SELECT 1")  # a pool's pre-ping
            app.execute("select pg_catalog.version()")  # what a driver asks a new connection
            app.execute("select current_schema()")
            app.execute("SELECT t.oid, typarray FROM pg_type t WHERE typname = 'hstore'")
            app.execute("SELECT id, note FROM counted ORDER BY id")
            app.execute("SELECT 1 FROM counted WHERE id = %s", (2,))
    assert counted.calls == 6, counted.summary()
    assert counted.data_calls == 2, counted.summary()
    assert counted.data_rows == 3
    assert "pg_type" not in counted.summary(chatter=False)


def test_plans_show_seq_scans_and_indexes(pg: Postgres, postgres: tuple[str, Any]) -> None:
    dsn, _ = postgres
    with app_connection(dsn) as app:
        app.execute("DROP TABLE IF EXISTS planned")
        app.execute("CREATE TABLE planned (id int PRIMARY KEY, author int, title text)")
        app.execute("CREATE INDEX planned_author_idx ON planned (author)")
    columns = {"id": "i", "author": "i % 500", "title": "'post ' || i"}
    seeded = pg.insert_series("planned", 20_000, columns)
    assert seeded == 20_000
    pg.analyze("planned")
    with app_connection(dsn) as app, pg.capture_plans() as captured:
        app.execute("SELECT * FROM planned WHERE author = %s", (7,)).fetchall()
        app.execute("SELECT * FROM planned WHERE title = %s", ("post 7",)).fetchall()
        pg.rows("SELECT * FROM planned WHERE title = 'post 9'")  # the grader's: left out
    assert len(captured.plans) == 2, captured.summary()
    by_author, by_title = captured.matching("WHERE author"), captured.matching("WHERE title")
    assert len(by_author) == len(by_title) == 1
    assert "planned_author_idx" in by_author[0].index_names()
    assert not by_author[0].seq_scans("planned")
    assert by_title[0].seq_scans("planned") and captured.seq_scans("planned") == by_title
    assert by_title[0].user == "app" and by_title[0].application == "learner-app"
    # Silent again afterwards, for new sessions and old ones.
    with app_connection(dsn) as app:
        assert app.execute("SHOW auto_explain.log_min_duration").fetchone() == ("-1",)


def test_buffers_count_the_pages_a_query_touched(pg: Postgres, postgres: tuple[str, Any]) -> None:
    dsn, _ = postgres
    with app_connection(dsn) as app:
        app.execute("DROP TABLE IF EXISTS buffered")
        app.execute("CREATE TABLE buffered (id int PRIMARY KEY, note text)")
    pg.insert_series("buffered", 50_000, {"id": "i", "note": "repeat('x', 100)"})
    pg.analyze("buffered")
    pages = int(pg.scalar("SELECT relpages FROM pg_class WHERE relname = 'buffered'"))
    with app_connection(dsn) as app, pg.count_statements() as counted:
        app.execute("SELECT count(*) FROM buffered WHERE note <> ''").fetchall()
        app.execute("SELECT * FROM buffered WHERE id = %s", (7,)).fetchall()
    whole, one = counted.matching("count"), counted.matching("WHERE id")
    # A scan reads every page of the table; a primary-key lookup a handful.
    assert whole[0].buffers >= pages > 500
    assert one[0].buffers < 10
    assert counted.buffers == whole[0].buffers + one[0].buffers


def test_indexes_as_pg_index_describes_them(pg: Postgres, postgres: tuple[str, Any]) -> None:
    dsn, _ = postgres
    with app_connection(dsn) as app:
        app.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        app.execute("DROP TABLE IF EXISTS shop")
        app.execute("CREATE TABLE shop (id int PRIMARY KEY, customer int, status text, "
                    "created_at timestamptz, email text, name text)")
        app.execute("CREATE INDEX shop_customer ON shop (customer)")
        app.execute("CREATE INDEX shop_customer_status_created ON shop "
                    "(customer, status, created_at DESC)")
        app.execute("CREATE UNIQUE INDEX shop_lower_email ON shop (lower(email))")
        app.execute("CREATE INDEX shop_name_trgm ON shop USING gin (name gin_trgm_ops)")
        app.execute("CREATE INDEX shop_recent ON shop (customer) WHERE status = 'new'")
    found = {index.name: index for index in pg.indexes("shop")}
    assert set(found) == {"shop_pkey", "shop_customer", "shop_customer_status_created",
                          "shop_lower_email", "shop_name_trgm", "shop_recent"}
    assert found["shop_pkey"].primary and found["shop_pkey"].unique
    wide = found["shop_customer_status_created"]
    assert wide.columns == ("customer", "status", "created_at")  # DESC is not a column
    assert wide.column_types == ("integer", "text", "timestamp with time zone")
    assert found["shop_lower_email"].columns == ("lower(email)",)
    assert found["shop_lower_email"].column_types == ("",)
    assert found["shop_name_trgm"].method == "gin"
    assert found["shop_name_trgm"].opclasses == ("gin_trgm_ops",)
    assert found["shop_recent"].predicate == "(status = 'new'::text)"
    # Only the plain B-tree is redundant: the partial index answers other queries.
    assert [i.name for i in found.values() if any(i.prefix_of(o) for o in found.values())] == [
        "shop_customer"
    ]


def test_prefix_needs_same_method_and_no_uniqueness() -> None:
    def index(name: str, *columns: str, method: str = "btree", unique: bool = False) -> Index:
        return Index(table="t", name=name, method=method, primary=False, unique=unique,
                     columns=columns, column_types=("",) * len(columns),
                     opclasses=("",) * len(columns), predicate=None, definition="")
    wide = index("wide", "a", "b")
    assert index("a", "a").prefix_of(wide) and index("same", "a", "b").prefix_of(wide)
    assert not index("b", "b").prefix_of(wide)
    assert not index("u", "a", unique=True).prefix_of(wide)
    assert not index("g", "a", method="gin").prefix_of(wide)
    assert not wide.prefix_of(wide) and not wide.prefix_of(index("a", "a"))


def test_lock_waits_of_one_session_are_logged(pg: Postgres, postgres: tuple[str, Any]) -> None:
    dsn, _ = postgres
    with app_connection(dsn) as app:
        app.execute("CREATE TABLE IF NOT EXISTS locked (id int)")
    with psycopg.connect(dsn, autocommit=True) as waiter, psycopg.connect(dsn) as holder:
        waiter.execute("SET log_lock_waits = on")
        waiter.execute("SET deadlock_timeout = '200ms'")
        row = waiter.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        with pg.capture_log() as log:
            holder.execute("LOCK TABLE locked IN SHARE MODE")  # what plain CREATE INDEX takes

            def release() -> None:
                time.sleep(0.6)
                holder.commit()

            releaser = threading.Thread(target=release)
            releaser.start()
            waiter.execute("INSERT INTO locked VALUES (1)")
            releaser.join()
    waits = parse_lock_waits(log.text, pid=row[0])
    assert [w.acquired for w in waits] == [False, True], log.text[-2000:]
    assert waits[0].mode == "RowExclusiveLock" and waits[0].target.startswith("relation ")
    assert 200 <= waits[0].ms < waits[1].ms
    assert parse_lock_waits(log.text, pid=row[0] + 100_000) == []


def test_connections_of_the_app_not_the_graders(pg: Postgres, postgres: tuple[str, Any]) -> None:
    dsn, _ = postgres
    with app_connection(dsn) as idle, psycopg.connect(dsn, application_name="learner-app") as busy:
        idle.execute("SELECT 1")
        busy.execute("SELECT 1")  # opens a transaction and leaves it open
        with psycopg.connect(dsn, application_name=GRADER_APPLICATION):
            backends = pg.app_connections()
    assert len(backends) == 2
    states = sorted(b.state or "" for b in backends)
    assert states == ["idle", "idle in transaction"]
    in_transaction = next(b for b in backends if b.state == "idle in transaction")
    assert in_transaction.in_transaction_seconds is not None


def test_injected_faults_apply_inside_the_block_only(
    pg: Postgres, postgres: tuple[str, Any]
) -> None:
    dsn, _ = postgres
    with app_connection(dsn) as app:
        app.execute("CREATE TABLE IF NOT EXISTS faulty (id int PRIMARY KEY, n int)")
        app.execute("TRUNCATE faulty")
        refuse = "RAISE EXCEPTION 'injected'; RETURN NEW;"
        with (
            pg.injected_trigger("bb_grader_refuse", table="faulty", before="INSERT", body=refuse),
            pytest.raises(psycopg.errors.RaiseException, match="injected"),
        ):
            app.execute("INSERT INTO faulty VALUES (1, 0)")
        app.execute("INSERT INTO faulty VALUES (1, 0)")
        with pytest.raises(ValueError), injected_trigger(pg.conn, "x", table="faulty", body=""):
            pass
        with slow_writes(pg.conn, "faulty", 0.3):
            began = time.monotonic()
            app.execute("UPDATE faulty SET n = n + 1")
            assert time.monotonic() - began >= 0.3
    assert pg.scalar("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'bb_grader%%'") == 0
    assert pg.scalar("SELECT count(*) FROM pg_proc WHERE proname LIKE 'bb_grader%%'") == 0


def test_copy_rows_and_ground_truth(pg: Postgres, postgres: tuple[str, Any]) -> None:
    dsn, _ = postgres
    with app_connection(dsn) as app:
        app.execute("DROP TABLE IF EXISTS copied")
        app.execute("CREATE TABLE copied (id int PRIMARY KEY, name text, score numeric)")
    rows = [(n, f"name {n}", n / 2) for n in range(1000)]
    assert pg.copy_rows("copied", ["id", "name", "score"], rows) == 1000
    truth = pg.rows("SELECT id, name, score FROM copied WHERE id < 3 ORDER BY id")
    # As an API would answer in JSON: numbers as floats, in any order.
    answer = [{"id": 2, "name": "name 2", "score": 1.0}, {"id": 0, "name": "name 0", "score": 0},
              {"id": 1, "name": "name 1", "score": 0.5}]  # fmt: skip
    expect_same_rows(answer, truth, what="GET /copied", key="id")
    expect_same_rows(answer, truth, what="GET /copied")
    with pytest.raises(Failure, match="ordered|row 0"):
        expect_same_rows(answer, truth, what="GET /copied", ordered=True)
    answer[0]["name"] = "renamed"
    with pytest.raises(Failure) as caught:
        expect_same_rows(answer, truth, what="GET /copied", key="id")
    assert "id=2: {id: 2, name: 'renamed', score: 1.0} instead of" in caught.value.message


def test_ground_truth_compares_as_json_would_carry_it() -> None:
    import datetime
    from decimal import Decimal

    truth = [{"id": 1, "at": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
              "price": Decimal("9.50")}]  # fmt: skip
    expect_same_rows([{"id": 1, "at": "2026-01-02T03:04:05Z", "price": 9.5}], truth,
                     what="GET /x", key="id")  # fmt: skip
    with pytest.raises(Failure, match="missing"):
        expect_same_rows([], truth, what="GET /x")


def test_plans_are_parsed_from_the_log_format() -> None:
    log = (
        "2026-01-01 00:00:00.000 UTC [42] app@app/learner-app LOG:  duration: 0.050 ms  plan:\n"
        '\t{\n\t  "Query Text": "SELECT 1",\n\t  "Plan": {"Node Type": "Result",\n'
        '\t    "Plans": [{"Node Type": "Index Scan", "Relation Name": "t", "Index Name": "t_pk"}]}'
        "\n\t}\n"
        "2026-01-01 00:00:00.000 UTC [43] app@app/x LOG:  duration: 1.0 ms  plan:\n\t{ broken\n"
    )
    plans = parse_plans(log)
    assert len(plans) == 1
    assert plans[0].node_types() == ["Result", "Index Scan"]
    assert plans[0].index_names() == {"t_pk"} and plans[0].duration_ms == 0.05
