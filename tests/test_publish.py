"""Publishing gold to the warehouses: idempotent, exact on change, safe to kill, reconciled.

Runs against the local stand-ins (the fakesnow Snowflake emulator, PostgreSQL for Redshift) with
the real connectors and the real dbt adapters; the SQL only a real Snowflake or Redshift would
run (transactions, dist/sort keys) is compiled for those targets and asserted on.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psycopg2
import pyarrow as pa
import pytest
import snowflake.connector
import sqlalchemy as sa
import yaml

from lakehouse.core import pii
from lakehouse.core.config import DEFAULT_CONFIG_FILE, REPO_ROOT, Settings
from lakehouse.core.dbt_paths import target_dir
from lakehouse.pipeline import steps
from lakehouse.publish import publisher as publishing
from lakehouse.publish import snapshot as snapshots
from lakehouse.publish.errors import PublishError
from lakehouse.publish.reconcile import reconcile
from lakehouse.publish.warehouses import WAREHOUSES, warehouse
from lakehouse.stack import source_systems as systems
from lakehouse.stack.sample_data import fill
from lakehouse.stack.services import postgres
from lakehouse.stack.services import snowflake as snowflake_service
from lakehouse.transform.sql import query

KEY = "customer_id"


def _snowflake(settings: Settings):
    return snowflake.connector.connect(
        **snowflake_service.connect_args(settings.services.snowflake_port), database="ANALYTICS"
    )


def _snowflake_rows(settings: Settings, sql: str) -> list[dict]:
    conn = _snowflake(settings)
    try:
        cur = conn.cursor()
        cur.execute(sql)
        names = [d[0].lower() for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    finally:
        conn.close()


def _mirror(settings: Settings) -> dict[int, dict]:
    """Snowflake's gold.customer_360, every column (metadata included), by customer."""
    return {r[KEY]: r for r in _snowflake_rows(settings, "select * from gold.customer_360")}


def _redshift_rows(settings: Settings, sql: str) -> list[tuple]:
    return _redshift_result(settings, sql)[1]


def _redshift_result(settings: Settings, sql: str) -> tuple[list[str], list[tuple]]:
    """Column names and rows of ``sql`` in the Redshift stand-in's warehouse database."""
    conn = psycopg2.connect(
        host=postgres.HOST, port=settings.services.postgres_port, user=postgres.ROLE,
        password=postgres.PASSWORD, dbname=postgres.WAREHOUSE_DATABASE, sslmode="disable",
    )  # fmt: skip
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return [d[0] for d in cur.description], cur.fetchall()
    finally:
        conn.close()


def _batches(settings: Settings, table: str = "customer_360") -> Counter:
    """Rows per batch in Redshift's history of ``table``."""
    rows = _redshift_rows(
        settings, f"select _batch_id, count(*) from gold.{table}_history group by 1"
    )
    return Counter(dict(rows))


def _lake_rows(snapshot: snapshots.Snapshot) -> dict[int, dict]:
    return {r[KEY]: r for r in snapshot.data.to_pylist()}


def _empty_warehouses(settings: Settings) -> None:
    """Drop every served table (and Snowflake's staging copy) from both stand-ins: whatever
    published to the session's warehouses before this module (another module's pipeline run, an
    earlier session on the same lake home), its first publish is a first publish."""
    conn = _snowflake(settings)
    try:
        for table in settings.publish.tables:
            for schema in ("gold", "publish_staging"):
                conn.cursor().execute(f"drop table if exists {schema}.{table}")
    finally:
        conn.close()
    conn = psycopg2.connect(
        host=postgres.HOST, port=settings.services.postgres_port, user=postgres.ROLE,
        password=postgres.PASSWORD, dbname=postgres.WAREHOUSE_DATABASE, sslmode="disable",
    )  # fmt: skip
    redshift = warehouse("redshift", settings)
    try:
        with conn, conn.cursor() as cur:
            for table in settings.publish.tables:
                cur.execute(f"drop table if exists {redshift.served_table(table)}")
    finally:
        conn.close()


@pytest.fixture(scope="module")
def published(dbt_built, warehouses: Settings) -> list[publishing.PublishResult]:
    """Gold published once to both warehouses, emptied first: the module's own first publish."""
    _empty_warehouses(warehouses)
    return publishing.publish(warehouses)


def test_first_publish_serves_every_gold_row(published, warehouses: Settings) -> None:
    snapshot = snapshots.read_snapshot(warehouses, "customer_360")
    assert snapshot.data.num_rows > 0
    mirror = _mirror(warehouses)
    assert set(mirror) == set(_lake_rows(snapshot))
    assert {r["_batch_id"] for r in mirror.values()} == {snapshot.batch_id}
    assert _batches(warehouses) == {snapshot.batch_id: snapshot.data.num_rows}
    for result in published:
        assert result.tables["customer_360"]["rows"] == snapshot.data.num_rows
        assert result.tables["product_perf"]["rows"] > 0


def test_every_served_value_equals_the_lake(published, warehouses: Settings) -> None:
    """Every column of every row, not only the checksum columns: the staging path (Parquet
    PUT + COPY for Snowflake, batch INSERTs for Redshift) keeps each type's values (decimals,
    timestamps, dates, booleans, NULLs) as the lake holds them."""
    for table, key in (("customer_360", (KEY,)), ("product_perf", _perf_key(warehouses))):
        snapshot = snapshots.read_snapshot(warehouses, table)
        columns = snapshot.data.column_names

        def canonical(rows, columns=columns, key=key):
            return {
                tuple(snapshots._canonical(r[k]) for k in key): tuple(
                    snapshots._canonical(r[c]) for c in columns
                )
                for r in rows
            }

        lake = canonical(snapshot.data.to_pylist())
        mirror = canonical(_snowflake_rows_nulls_kept(warehouses, table, snapshot))
        names, rows = _redshift_result(
            warehouses,
            f"select * from gold.{table}_history where _batch_id = '{snapshot.batch_id}'",
        )
        history = canonical(dict(zip(names, r, strict=True)) for r in rows)
        assert len(lake) == snapshot.data.num_rows > 0
        assert mirror == lake, f"snowflake gold.{table} differs from the lake"
        assert history == lake, f"redshift gold.{table}_history differs from the lake"


def _snowflake_rows_nulls_kept(
    settings: Settings, table: str, snapshot: snapshots.Snapshot
) -> list[dict]:
    """Every row of Snowflake's gold.<table>. fakesnow 0.12 returns a NULL TIMESTAMP_NTZ as
    1970-01-01 (its Arrow result conversion; the stored value is NULL, as `is null` says), so
    each timestamp column comes with its null flag and a flagged value is read as NULL."""
    stamps = [f.name for f in snapshot.data.schema if pa.types.is_timestamp(f.type)]
    flags = "".join(f", {c} is null as {c}__is_null" for c in stamps)
    rows = _snowflake_rows(settings, f"select *{flags} from gold.{table}")
    for row in rows:
        for column in stamps:
            if row.pop(f"{column}__is_null"):
                row[column] = None
    return rows


def _perf_key(settings: Settings) -> tuple[str, ...]:
    return tuple(settings.publish.tables["product_perf"].unique_key)


def test_each_result_says_its_phases_and_whether_an_emulator_staged(published) -> None:
    by_name = {r.warehouse: r for r in published}
    assert by_name["snowflake"].emulator == "fakesnow"
    assert by_name["redshift"].emulator is None
    for result in published:
        assert set(publishing.PHASES) <= set(result.seconds)
        assert result.warehouse_s == sum(result.seconds[p] for p in publishing.PHASES)
        assert result.summary().startswith(result.warehouse)
    # Only the emulator's staging is set beside the totals; PostgreSQL is a real database.
    assert publishing.emulator_staging_s(published) == by_name["snowflake"].seconds["stage"]
    assert "fakesnow emulator" in by_name["snowflake"].summary()


def test_publishing_twice_changes_nothing(published, warehouses: Settings) -> None:
    mirror, batches = _mirror(warehouses), _batches(warehouses)
    perf = _batches(warehouses, "product_perf")
    again = publishing.publish(warehouses)
    # Every column, _published_at included: no row was rewritten, no batch added.
    assert _mirror(warehouses) == mirror
    assert _batches(warehouses) == batches
    assert _batches(warehouses, "product_perf") == perf
    # The staging tables already held these batches whole: nothing was staged again.
    for result in again:
        assert {t: info["restaged"] for t, info in result.tables.items()} == {
            "customer_360": False,
            "product_perf": False,
        }


def test_published_tables_hold_no_personal_data_in_clear(published, warehouses: Settings) -> None:
    """Every value the generator seeded as personal data, searched in every text cell the two
    warehouses serve; the masked columns hold 64-hex hashes (docs/governance.md)."""
    known = systems.world(warehouses, 1).personal_data()
    served = {
        "snowflake gold.customer_360": _snowflake_rows(
            warehouses, "select * from gold.customer_360"
        ),
        "snowflake gold.product_perf": _snowflake_rows(
            warehouses, "select * from gold.product_perf"
        ),
    }
    for table in ("customer_360_history", "product_perf_history"):
        names, rows = _redshift_result(warehouses, f"select * from gold.{table}")
        served[f"redshift gold.{table}"] = [dict(zip(names, r, strict=True)) for r in rows]
    assert all(served.values())
    leaks = {
        (table, column)
        for table, rows in served.items()
        for row in rows
        for column, value in row.items()
        if isinstance(value, str) and value.strip().lower() in known
    }
    assert leaks == set(), f"personal data in clear in the warehouses: {sorted(leaks)}"
    for table in ("snowflake gold.customer_360", "redshift gold.customer_360_history"):
        for column in ("email", "full_name", "crm_owner_email"):
            values = {row[column] for row in served[table]} - {None}
            assert values and all(len(v) == 64 and int(v, 16) >= 0 for v in values), column


def _rebuild_gold(settings: Settings) -> snapshots.Snapshot:
    """Re-ingest the Snowflake source and rebuild gold from it: the pipeline, minus Kafka & co."""
    steps.ingest(settings, ["snowflake"])
    gold = ("+customer_360", "+product_perf")
    result = steps.dbt(settings, "run", "--select", *gold, check=False)
    assert result.returncode == 0
    return snapshots.read_snapshot(settings, "customer_360")


def test_changed_customers_update_exactly_those_rows(published, warehouses: Settings) -> None:
    settings = warehouses
    # Gold as the lake's current sources say (earlier tests moved some of them on), published.
    before = _rebuild_gold(settings)
    publishing.publish(settings)
    mirror_before, batches_before = _mirror(settings), _batches(settings)

    # Some customers change their name in the source system; the pipeline runs again.
    engine = sa.create_engine(fill.snowflake_url(systems.snowflake_file(settings)))
    with engine.begin() as conn:
        named = ("select customer_id, first_name, last_name from customers"
                 " where last_name is not null order by 1")  # fmt: skip
        picked = list(conn.execute(sa.text(named)))[::9][:6]
        ids = [r[0] for r in picked]
        rename = "update customers set last_name = last_name || '-Renamed' where customer_id = :id"
        conn.execute(sa.text(rename), [{"id": i} for i in ids])
    engine.dispose()
    after = _rebuild_gold(settings)
    old, new = _lake_rows(before), _lake_rows(after)
    changed = {k for k, row in new.items() if old.get(k) != row}
    assert changed == set(ids), "gold changed exactly for the renamed customers"

    publishing.publish(settings)

    mirror = _mirror(settings)
    assert set(mirror) == set(new)
    rewritten = {k for k, row in mirror.items() if row["_batch_id"] == after.batch_id}
    assert rewritten == set(ids)
    salt = pii.salt(settings)  # names are served as salted hashes (docs/governance.md)
    for key, first, last in picked:
        assert mirror[key]["full_name"] == pii.digest(
            f"{first.strip()} {last.strip()}-Renamed", salt
        )
    for key in set(new) - set(ids):
        assert mirror[key] == mirror_before[key], f"unchanged customer {key} was rewritten"
    # Redshift: exactly one new batch, the whole new snapshot; the earlier ones as they were.
    assert _batches(settings) == batches_before + Counter({after.batch_id: len(new)})


def _gold_version_with_changes(settings: Settings) -> snapshots.Snapshot:
    """A new gold snapshot in which some customers' values changed (a quick UPDATE in the lake,
    standing in for a rebuild with changed sources)."""
    query(settings, f"update gold.customer_360 set orders = orders + 1 where {KEY} % 4 = 0")
    query(settings, "update gold.product_perf set units = units + 1 where product_id % 3 = 0")
    return snapshots.read_snapshot(settings, "customer_360")


def _start_publish(tmp_path: Path, settings: Settings, batch_rows: int) -> subprocess.Popen:
    """`lakehouse publish` in its own process group, staging ``batch_rows`` rows per INSERT
    (Redshift) and per Parquet file loaded (Snowflake)."""
    config = yaml.safe_load(DEFAULT_CONFIG_FILE.read_text())
    config["publish"]["insert_batch_rows"] = batch_rows
    config["publish"]["stage_file_rows"] = batch_rows
    config_file = tmp_path / f"lakehouse-{batch_rows}.yml"
    config_file.write_text(yaml.safe_dump(config))
    env = {**os.environ, "LAKEHOUSE_CONFIG": str(config_file), "LAKEHOUSE_HOME": str(settings.home)}
    return subprocess.Popen(
        [sys.executable, "-m", "lakehouse", "publish"], env=env, cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip


def _kill_when(proc: subprocess.Popen, condition, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the publish finished before the moment to kill it"
        if condition():
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail("the moment to kill the publish never came")


def _staged(settings: Settings, table: str, batch_id: str) -> int:
    try:
        rows = _snowflake_rows(
            settings,
            f"select count(*) as n from publish_staging.{table} where _batch_id = '{batch_id}'",
        )
    except snowflake.connector.errors.ProgrammingError:
        return 0  # being replaced
    return rows[0]["n"]


def _dbt_serving(since: float) -> bool:
    """True once the publish's dbt has begun running a publish model: dbt writes each model's
    runtime SQL just before it sends it (a stage, not a time: a dbt start-up's length varies)."""
    for wh in WAREHOUSES:
        run = target_dir() / f"publish_{wh}" / "run"
        if any(f.stat().st_mtime >= since for f in run.rglob("*.sql") if f.is_file()):
            return True
    return False


def _assert_exact(settings: Settings, snapshot: snapshots.Snapshot) -> None:
    """Warehouses equal the snapshot: reconciled, no duplicate, no missing row."""
    rows = _snowflake_rows(settings, f"select {KEY} from gold.customer_360")
    assert len(rows) == len({r[KEY] for r in rows}) == snapshot.data.num_rows
    assert _batches(settings)[snapshot.batch_id] == snapshot.data.num_rows
    for name in ("snowflake", "redshift"):
        wh = warehouse(name, settings)
        with wh.session():
            reconcile(settings, wh, snapshot)


def test_killed_publish_then_rerun_is_exact(published, warehouses: Settings, tmp_path) -> None:
    settings = warehouses
    # 1. Killed while staging: Snowflake's staging table is half-filled.
    snapshot = _gold_version_with_changes(settings)
    perf = snapshots.read_snapshot(settings, "product_perf")
    proc = _start_publish(tmp_path, settings, batch_rows=5)
    _kill_when(
        proc, lambda: 0 < _staged(settings, "product_perf", perf.batch_id) < perf.data.num_rows
    )
    wh = warehouse("snowflake", settings)
    with wh.session(), pytest.raises(PublishError, match="does not reconcile"):
        reconcile(settings, wh, snapshot)
    publishing.publish(settings)
    _assert_exact(settings, snapshot)

    # 2. Killed while dbt serves the new snapshot.
    snapshot = _gold_version_with_changes(settings)
    started = time.time()
    proc = _start_publish(tmp_path, settings, batch_rows=1000)
    _kill_when(proc, lambda: _dbt_serving(started))
    publishing.publish(settings)
    _assert_exact(settings, snapshot)


def test_a_warehouse_that_drifted_fails_reconciliation_until_repaired(
    published, warehouses: Settings
) -> None:
    settings = warehouses
    conn = _snowflake(settings)
    try:  # someone edits the served table by hand; its row hash still says "unchanged"
        conn.cursor().execute(
            f"update gold.customer_360 set orders = orders + 100 where {KEY} = "
            f"(select min({KEY}) from gold.customer_360)"
        )
    finally:
        conn.close()
    with pytest.raises(PublishError, match=r"does not reconcile.*checksum"):
        publishing.publish(settings, warehouses=["snowflake"], tables=["customer_360"])
    publishing.publish(settings, ["snowflake"], ["customer_360"], full_refresh=True)
    snapshot = snapshots.read_snapshot(settings, "customer_360")
    assert _mirror(settings).keys() == _lake_rows(snapshot).keys()


# --- the real targets' SQL, which the stand-ins cannot run --------------------------------------
