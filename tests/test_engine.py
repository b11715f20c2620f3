"""The local engine: a real Spark Thrift Server reading and writing Delta through its log."""

from __future__ import annotations

import os
import socket

import deltalake
import pytest

from lakehouse.core.config import load_settings
from lakehouse.stack import engine
from lakehouse.transform import catalog, warmup
from lakehouse.transform.sql import SqlError, connect, query


def test_engine_answers_sql_with_delta_catalog(spark) -> None:
    assert query(spark, "select 1 + 1") == [(2,)]
    conf = dict(query(spark, "set spark.sql.catalog.spark_catalog"))
    assert conf["spark.sql.catalog.spark_catalog"].endswith("DeltaCatalog")
    assert dict(query(spark, "set spark.lakehouse.lake.dir")) == {
        "spark.lakehouse.lake.dir": str(spark.lake_dir)
    }


def test_the_thrift_server_can_load_what_closing_a_session_needs(spark) -> None:
    """Closing a Thrift session may initialise Hive's FunctionRegistry, which needs a class of
    hive-llap-common (dropped from Spark 4's jars; engine/pom.xml adds it). Without it, a dbt
    node whose connection closes at the wrong moment errors with NoClassDefFoundError."""
    signable = "org.apache.hadoop.hive.llap.security.LlapSigner$Signable"
    [(loaded,)] = query(spark, f"select reflect('java.lang.Class', 'forName', '{signable}')")
    assert loaded == f"interface {signable}"
    # and the UDTF built on it, which the registry instantiates
    udtf = "org.apache.hadoop.hive.ql.udf.generic.GenericUDTFGetSplits"
    [(loaded,)] = query(spark, f"select reflect('java.lang.Class', 'forName', '{udtf}')")
    assert loaded == f"class {udtf}"


def test_running_reuses_an_engine_that_is_up(spark) -> None:
    with engine.running(spark) as started_here:
        assert started_here is False
    assert engine.is_up(spark), "leaving the block must not stop an engine it did not start"


def test_sql_errors_are_short_and_spark_s_own(spark) -> None:
    with pytest.raises(SqlError, match="TABLE_OR_VIEW_NOT_FOUND") as err:
        query(spark, "select * from no_such_table")
    assert "\tat " not in str(err.value)


def test_bronze_is_read_through_the_delta_log(spark, ingested) -> None:
    """Spark sees exactly the rows of the current Delta version dlt wrote, not loose parquet."""
    fx = next(summary for summary in ingested if summary.source == "fx")
    assert fx.rows_by_table["rates"] > 0
    # register bronze the way dbt does (on-run-start) without depending on a dbt run here
    location = spark.bronze_dir / "fx" / "rates"
    query(spark, "create schema if not exists bronze_fx")
    query(spark, f"create table if not exists bronze_fx.rates using delta location '{location}'")
    assert catalog.table_format(spark, "bronze_fx.rates") == "delta"

    delta = deltalake.DeltaTable(str(location))
    spark_rows = query(spark, "select count(*) from bronze_fx.rates")[0][0]
    assert spark_rows == delta.to_pyarrow_table().num_rows

    # An upsert rewrites files: the folder then holds more parquet than the current version
    # references, and only a Delta reader still counts each row once.
    from lakehouse.pipeline import steps

    steps.ingest(spark, ["fx"])
    live_files = len(deltalake.DeltaTable(str(location)).file_uris())
    on_disk = len(list(location.glob("*.parquet")))
    assert on_disk > live_files
    assert query(spark, "select count(*) from bronze_fx.rates")[0][0] == spark_rows


def test_a_statement_has_finished_when_its_submission_returns(spark) -> None:
    """dbt-spark submits asynchronously and sleeps `poll_interval` (a whole second) whenever the
    first poll finds its statement still running; the engine runs statements synchronously, so
    that first poll always finds it done (spark.sql.hive.thriftServer.async=false)."""
    from TCLIService.ttypes import TOperationState

    from lakehouse.transform.sql import connect

    with connect(spark) as conn:
        cursor = conn.cursor()
        try:
            cursor.execute("select count(distinct id % 7919) from range(3000000)", async_=True)
            assert cursor.poll().operationState == TOperationState.FINISHED_STATE
            assert cursor.fetchall() == [(7919,)]
        finally:
            cursor.close()


def test_the_warm_up_leaves_nothing_behind(spark) -> None:
    """The engine of this session warmed up when it started; so does a second warm-up, and
    neither leaves its scratch schema in the catalog."""
    assert warmup.warm_up(spark) > 0
    schemas = {row[0] for row in query(spark, "show databases")}
    assert warmup.SCHEMA not in schemas
    assert {"default"} <= schemas


def test_the_warm_up_loads_every_delta_table_of_the_catalog(spark) -> None:
    """A restarted engine replays each table's Delta log when a build first reads it: the
    warm-up loads them all, Delta tables only (a view is passed over, not an error)."""
    schema = "warmup_probe"
    try:
        query(spark, f"create schema if not exists {schema}")
        query(spark, f"create or replace table {schema}.t using delta as select 1 as id")
        query(spark, f"create or replace view {schema}.v as select id from {schema}.t")
        with connect(spark) as conn:
            cursor = conn.cursor()
            try:
                loaded = warmup.load_snapshots(cursor)
            finally:
                cursor.close()
        assert f"{schema}.t" in loaded
        assert f"{schema}.v" not in loaded
    finally:
        query(spark, f"drop schema if exists {schema} cascade")


def test_engine_lifecycle_leaves_no_process(tmp_path, monkeypatch) -> None:
    """Start and stop a second engine on another port: up, answering, then fully gone."""
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path))
    monkeypatch.setenv("LAKEHOUSE_THRIFT_PORT", str(_free_port()))
    settings = load_settings()
    with engine.running(settings) as started_here:
        assert started_here is True
        pid = int(next(settings.state_dir.glob("engine-*.pid")).read_text())
        assert query(settings, "select 'up'") == [("up",)]
    assert not engine.port_open(settings.engine.host, settings.engine.port)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not list(settings.state_dir.glob("engine-*.pid"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
