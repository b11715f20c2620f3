"""One catalog for every engine of a home: the Hive metastore in the project's PostgreSQL.

Two Spark Thrift servers on one lake home of the test's own (its own free ports) stand for the
engines a team runs at once (the platform's server and a second one, or a dbt ``session``):
each sees what the other creates, both answer the same query at the same time with the same
result. The first server starts PostgreSQL itself; stopping the second must leave it up,
stopping the first stops it. A home made with the embedded Derby metastore gets its warehouse
tables back in PostgreSQL at the first start, as managed tables dbt can replace and merge into.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakehouse.core.config import Settings, load_settings
from lakehouse.stack import engine, metastore
from lakehouse.stack.services import postgres
from lakehouse.transform.sql import query

# A query long enough (a few seconds) for the two engines' runs to overlap.
HEAVY = (
    "select count(*), sum(a.id % 7) from gold.shared_probe a "
    "cross join (select id from range(2000)) b where (a.id + b.id) % 3 = 0"
)


def _settings(home: Path, thrift_port: int, postgres_port: int) -> Settings:
    os.environ["LAKEHOUSE_HOME"] = str(home)
    os.environ["LAKEHOUSE_THRIFT_PORT"] = str(thrift_port)
    os.environ["LAKEHOUSE_POSTGRES_PORT"] = str(postgres_port)
    # One round is enough to prove the engine ready; the shared catalog is what is tested.
    return load_settings().model_copy(
        update={"engine": load_settings().engine.model_copy(update={"warmup_rounds": 0})}
    )


@pytest.fixture(scope="module")
def engines(tmp_path_factory, free_ports) -> Iterator[tuple[Settings, Settings]]:
    """Two Thrift servers on one home and one metastore; the first starts PostgreSQL."""
    saved = {k: os.environ.get(k) for k in
             ("LAKEHOUSE_HOME", "LAKEHOUSE_THRIFT_PORT", "LAKEHOUSE_POSTGRES_PORT")}  # fmt: skip
    home = tmp_path_factory.mktemp("shared-catalog")
    port_a, port_b, pg_port = free_ports(3)
    first, second = _settings(home, port_a, pg_port), _settings(home, port_b, pg_port)
    try:
        engine.start(first)
        engine.start(second)
        yield first, second
    finally:
        engine.stop(second)
        engine.stop(first)
        postgres.stop(home, pg_port)  # only if a failed test left it up
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_a_table_created_by_one_engine_is_seen_by_the_other(engines) -> None:
    first, second = engines
    query(first, "create schema if not exists gold")
    query(first, "create or replace table gold.shared_probe using delta as "
                 "select id, id * 2 as doubled from range(5000)")  # fmt: skip
    assert query(second, "select count(*), sum(doubled) from gold.shared_probe") == [
        (5000, 2 * sum(range(5000)))
    ]
    query(second, "create or replace table gold.made_by_second using delta as select 42 as x")
    assert ("gold", "made_by_second", False) in [
        tuple(row) for row in query(first, "show tables in gold")
    ]
    assert query(first, "select x from gold.made_by_second") == [(42,)]


def test_two_engines_query_the_same_gold_table_at_once(engines) -> None:
    answers: dict[int, tuple[float, float, list]] = {}

    def run(settings: Settings) -> None:
        started = time.monotonic()
        rows = query(settings, HEAVY)
        answers[settings.engine.port] = (started, time.monotonic(), rows)

    threads = [threading.Thread(target=run, args=(s,)) for s in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    (start_a, end_a, rows_a), (start_b, end_b, rows_b) = answers.values()
    assert rows_a == rows_b and rows_a[0][0] > 0
    assert max(start_a, start_b) < min(end_a, end_b), "the two queries did not overlap"


def test_stopping_an_engine_stops_only_the_postgres_it_started(engines) -> None:
    first, second = engines
    port = first.services.postgres_port
    assert engine.stop(second) is True
    assert postgres.is_up(port), "the second engine did not start PostgreSQL: it stays up"
    assert engine.stop(first) is True
    assert not postgres.is_up(port), "the first engine started PostgreSQL: it stops with it"


def test_a_derby_home_gets_its_warehouse_tables_back(tmp_path, free_ports) -> None:
    """Tables of a Derby-era home (data in the warehouse, catalog in metastore_db) are
    registered at the first start on PostgreSQL, managed, and dbt's statements work on them."""
    thrift, pg_port = free_ports(2)
    settings = _settings(tmp_path, thrift, pg_port)
    engine.start(settings)
    try:  # the warehouse data a Derby-era engine left (written here through a catalog we drop)
        query(settings, "create schema if not exists silver")
        query(settings, "create table silver.orders using delta as "
                        "select id, id % 5 as status from range(100)")  # fmt: skip
    finally:
        engine.stop(settings)
    with postgres.running(tmp_path, pg_port):
        conn = postgres.superuser_connection(pg_port, "postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE {settings.engine.metastore.database}")
        conn.close()
    derby = settings.metastore_dir / "metastore_db"
    derby.mkdir(parents=True)
    (derby / "service.properties").write_text("# a Derby database\n")

    engine.start(settings)
    try:
        assert query(settings, "select count(*) from silver.orders") == [(100,)]
        kind = {row[0]: row[1] for row in query(settings, "describe table extended silver.orders")}
        assert kind["Type"] == "MANAGED"
        # dbt's table materialisation and incremental merge on the adopted table
        query(settings, "create or replace table silver.orders using delta as "
                        "select id, id % 5 as status from range(120)")  # fmt: skip
        query(settings, "merge into silver.orders t using (select 500 as id, 1 as status) s "
                        "on t.id = s.id when not matched then insert *")  # fmt: skip
        assert query(settings, "select count(*) from silver.orders") == [(121,)]
    finally:
        engine.stop(settings)
    assert not derby.exists()
    assert (settings.metastore_dir / "metastore_db.migrated").is_dir()
    assert metastore.derby_to_adopt(settings.metastore_dir) is None
