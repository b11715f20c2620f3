"""The lake on object storage: the local S3-compatible server, dlt, delta-rs and Spark's s3a.

One lake home of its own, on free ports, with ``storage.root`` on the local S3 server:
``lakehouse up`` starts the server (and creates the bucket) beside the engine, dlt loads two
sources into bronze there, the platform's readers (bronze versions, the watchdog, run metrics)
read them back from S3, the engine builds models from them into a warehouse on s3a, and nothing
lands in the home's local lake or warehouse folders. ``lakehouse down`` saves the server's
objects under the home, and a server started again serves the same tables.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from lakehouse.core import bronze_versions
from lakehouse.core.config import REPO_ROOT, Settings, load_settings
from lakehouse.core.storage import delta_table
from lakehouse.observability import run_metrics, watchdog
from lakehouse.pipeline import steps
from lakehouse.stack.services import s3
from lakehouse.transform.sql import query

ROOT = "s3://lake/test"
SOURCES = ["crm", "fx"]
PORTS = (
    "LAKEHOUSE_THRIFT_PORT",
    "LAKEHOUSE_POSTGRES_PORT",
    "LAKEHOUSE_SNOWFLAKE_PORT",
    "LAKEHOUSE_KAFKA_PORT",
    "LAKEHOUSE_KAFKA_CONTROLLER_PORT",
    "LAKEHOUSE_S3_PORT",
)


def _lakehouse(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lakehouse", *args], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=600)  # fmt: skip


@pytest.fixture(scope="module")
def s3_lake(
    tmp_path_factory: pytest.TempPathFactory, free_ports
) -> Iterator[tuple[Settings, dict[str, str]]]:
    """``lakehouse up`` on a home whose lake is on the local S3 server; ``down`` after."""
    root = tmp_path_factory.mktemp("object_storage")
    ports = free_ports(len(PORTS))
    env = {
        **os.environ,
        "LAKEHOUSE_HOME": str(root / "home"),
        "LAKEHOUSE_STORAGE__ROOT": ROOT,
        "LAKEHOUSE_SCALE": "0.01",
        "LAKEHOUSE_ENGINE__WARMUP_ROUNDS": "0",
        **dict(zip(PORTS, map(str, ports), strict=True)),
        "DBT_TARGET_PATH": str(root / "dbt-target"),
        "DBT_LOG_PATH": str(root / "dbt-logs"),
    }
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        settings = load_settings()
        up = _lakehouse(env, "up")
        try:
            assert up.returncode == 0, up.stdout + up.stderr
            yield settings, env
        finally:
            _lakehouse(env, "down")


@pytest.fixture(scope="module")
def loaded(s3_lake) -> Settings:
    settings, _ = s3_lake
    steps.ingest(settings, SOURCES)
    return settings


def test_up_starts_the_s3_server_with_the_lake_bucket(s3_lake) -> None:
    settings, _ = s3_lake
    port = settings.services.s3_port
    assert s3.is_up(port, settings.home)
    assert not s3.ensure_bucket(settings.home, port, "lake")  # created by `up` already


def test_dlt_writes_bronze_on_s3_and_the_readers_find_it_there(loaded: Settings) -> None:
    versions = bronze_versions.read(loaded.lake)["tables"]
    assert {"bronze/crm/contacts", "bronze/fx/rates", "bronze/crm/quarantine"} <= set(versions)
    tables = watchdog.bronze_tables(loaded)
    assert sorted(tables) == SOURCES
    assert all(t.uri.startswith(f"{ROOT}/lake/bronze/") for ts in tables.values() for t in ts)
    rates = delta_table(loaded.bronze / "fx" / "rates").to_pyarrow_table()
    assert rates.num_rows > 0
    ingest_rows = [r for r in run_metrics.read(loaded) if r["step"] == "ingest"]
    assert {r["job"] for r in ingest_rows} >= {f"bronze_{source}" for source in SOURCES}
    assert all(r["bytes_stored"] > 0 for r in ingest_rows)


def test_the_engine_builds_from_s3_into_a_warehouse_on_s3a(loaded: Settings) -> None:
    # a gold model of one source, and a source's silver models with the tests between them
    models = ("+fx_rates_daily", "stg_crm__accounts", "stg_crm__contacts")
    result = steps.dbt(loaded, "build", "--select", *models, check=False)
    assert result.returncode == 0, "dbt build on the s3 lake failed; see its output above"
    days = query(loaded, "select count(*) from gold.fx_rates_daily")[0][0]
    assert days > 0
    detail = query(loaded, "describe detail gold.fx_rates_daily")[0]
    assert detail[4] == "s3a://lake/test/warehouse/gold.db/fx_rates_daily"
    bronze = query(loaded, "describe detail bronze_fx.rates")[0]
    assert bronze[4] == "s3a://lake/test/lake/bronze/fx/rates"
    # the gold table's Delta log is where delta-rs reads it: the same table from both sides
    assert delta_table(loaded.warehouse / "gold.db" / "fx_rates_daily").to_pyarrow_table()\
        .num_rows == days  # fmt: skip


def test_nothing_lands_in_the_local_lake_or_warehouse(loaded: Settings) -> None:
    home = loaded.home
    assert not (home / "lake").exists()
    assert not (home / "warehouse").exists()


def test_down_saves_the_objects_and_a_new_server_serves_the_same_tables(
    s3_lake, loaded: Settings
) -> None:
    settings, env = s3_lake
    before = bronze_versions.read(settings.lake)["tables"]
    down = _lakehouse(env, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert not s3.port_open(settings.services.s3_port)
    saved = s3.objects_dir(settings.home) / "lake" / "test" / "lake" / "bronze" / "fx" / "rates"
    assert (saved / "_delta_log" / "00000000000000000000.json").exists()
    s3.start(settings.home, settings.services.s3_port)
    try:
        assert bronze_versions.read(settings.lake)["tables"] == before
    finally:
        s3.stop(settings.home, settings.services.s3_port)
