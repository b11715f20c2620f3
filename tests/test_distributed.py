"""The whole pipeline off one machine's defaults: the lake on S3, the engine a Spark cluster.

Two lake homes fed the same sample data (same seed, scale and generation), each through
``make run``'s steps (ingest, dbt build, publish, report):

1. the default a user who configures nothing gets: a local folder, ``engine.mode: local``;
2. ``storage.root`` on the local S3-compatible server (dlt and delta-rs write bronze through
   ``s3://``, Spark reads and writes through ``s3a://``), ``engine.mode: standalone`` (a master
   and two workers), the catalog in the home's PostgreSQL.

Both must serve the same gold: per published table and warehouse, the same row count and the same
reconcile checksum (publish computes it over the lake's snapshot and checks the warehouse
against it). Both homes share one PII salt (the second gets a copy of the first's generated one),
as two deployments of one lake would: hashed columns are in the checksums.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from executor_watch import ExecutorWatch

from lakehouse.core import pii
from lakehouse.core.config import Settings, load_settings
from lakehouse.core.dbt_paths import target_dir
from lakehouse.observability import run_metrics
from lakehouse.pipeline import steps
from lakehouse.stack import object_store, spark_cluster

ROOT = "s3://lakehouse/distributed"
PORTS = (
    "LAKEHOUSE_THRIFT_PORT", "LAKEHOUSE_POSTGRES_PORT", "LAKEHOUSE_SNOWFLAKE_PORT",
    "LAKEHOUSE_KAFKA_PORT", "LAKEHOUSE_KAFKA_CONTROLLER_PORT", "LAKEHOUSE_S3_PORT",
    "LAKEHOUSE_ENGINE__STANDALONE__MASTER_PORT", "LAKEHOUSE_ENGINE__STANDALONE__MASTER_UI_PORT",
)  # fmt: skip
PRODUCTION_ENDPOINTS = ("SNOWFLAKE_URL", "CRM_BASE_URL", "CRM_API_TOKEN", "REDSHIFT_URL",
                        "FX_BASE_URL", "KAFKA_BOOTSTRAP_SERVERS")  # fmt: skip


@dataclass
class Run:
    settings: Settings
    timings: dict[str, float]
    # (warehouse, table) -> rows and reconcile checksum, as publish recorded them in ops
    published: dict[tuple[str, str], dict[str, object]]
    # worker id -> the engine's executors seen on it while the pipeline ran
    executors: dict[str, set[str]] = field(default_factory=dict)


def _published(settings: Settings) -> dict[tuple[str, str], dict[str, object]]:
    recorded = run_metrics.read(settings, run=run_metrics.run_id())
    rows = [r for r in recorded if r["step"] == "publish"]
    assert rows, "publish recorded nothing in ops.run_metrics"
    out = {}
    for row in rows:
        for table, info in json.loads(row["details"])["tables"].items():
            out[(row["job"], table)] = {"rows": info["rows"], "checksum": info["checksum"]}
    return out


def _run(settings: Settings) -> Run:
    watch = ExecutorWatch(settings) if spark_cluster.standalone(settings) else None
    try:
        timings = steps.run(settings)
    finally:
        executors = watch.finish() if watch is not None else {}
    print(f"{settings.engine.mode} on {settings.storage_root}: "
          + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))  # fmt: skip
    with object_store.running(settings):  # the run stopped the S3 server it started
        published = _published(settings)
    return Run(settings, timings, published, executors)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, free_ports) -> Iterator[dict[str, Run]]:
    root = tmp_path_factory.mktemp("distributed")
    ports = free_ports(len(PORTS) + 2)
    worker_ui = next(p for p in ports[len(PORTS) :] if p + 1 not in ports)
    env = {
        "LAKEHOUSE_HOME": str(root / "local"),
        "LAKEHOUSE_SCALE": "0.05",
        "LAKEHOUSE_DIRTY_SHARE": "0.03",
        **dict(zip(PORTS, map(str, ports), strict=False)),
        "LAKEHOUSE_ENGINE__STANDALONE__WORKER_UI_PORT": str(worker_ui),
        "DBT_TARGET_PATH": str(root / "dbt-target"),
        "DBT_LOG_PATH": str(root / "dbt-logs"),
    }
    partial_parse = target_dir() / "partial_parse.msgpack"
    if partial_parse.exists():  # dbt re-parses if it does not fit; a saved parse if it does
        (root / "dbt-target").mkdir()
        shutil.copy(partial_parse, root / "dbt-target" / partial_parse.name)
    result: dict[str, Run] = {}
    with pytest.MonkeyPatch.context() as mp:
        for name in (*PRODUCTION_ENDPOINTS, "LAKEHOUSE_STORAGE__ROOT", "LAKEHOUSE_ENGINE__MODE",
                     pii.SALT_ENV):  # fmt: skip
            mp.delenv(name, raising=False)
        for name, value in env.items():
            mp.setenv(name, value)
        local = load_settings()
        mp.setenv(run_metrics.RUN_ID_ENV, "distributed-test-local")
        result["local"] = _run(local)

        mp.setenv("LAKEHOUSE_HOME", str(root / "distributed"))
        mp.setenv("LAKEHOUSE_STORAGE__ROOT", ROOT)
        mp.setenv("LAKEHOUSE_ENGINE__MODE", "standalone")
        mp.setenv(run_metrics.RUN_ID_ENV, "distributed-test-s3-standalone")
        distributed = load_settings()
        salt = pii.salt_file(distributed)
        salt.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(pii.salt_file(local), salt)  # one lake's salt, as its two deployments share
        result["distributed"] = _run(distributed)
        yield result


def test_the_pipeline_on_s3_and_a_cluster_serves_the_gold_of_the_local_default(runs) -> None:
    local, distributed = runs["local"].published, runs["distributed"].published
    assert {table for _, table in local} == {"customer_360", "product_perf"}
    assert all(info["rows"] for info in local.values()), local
    assert distributed == local


def test_the_cluster_ran_the_build_on_both_workers(runs) -> None:
    seen = runs["distributed"].executors
    assert len(seen) == 2, f"the master reported {len(seen)} live workers: {seen}"
    assert all(seen.values()), f"a worker ran no executor of the engine: {seen}"


def test_the_distributed_lake_lives_on_s3_and_the_local_one_in_folders(runs) -> None:
    local, distributed = runs["local"].settings, runs["distributed"].settings
    assert (local.home / "lake" / "bronze").is_dir()
    assert (local.home / "warehouse" / "gold.db" / "customer_360" / "_delta_log").is_dir()
    assert distributed.lake.uri.startswith(ROOT)
    assert not (distributed.home / "lake").exists()
    assert not (distributed.home / "warehouse").exists()
    # make run stopped the S3 server it started, which saved every object under the home
    saved = Path(distributed.home) / "s3" / "objects" / "lakehouse" / "distributed"
    assert (saved / "warehouse" / "gold.db" / "customer_360" / "_delta_log").is_dir()
    assert (saved / "lake" / "bronze" / "crm" / "contacts" / "_delta_log").is_dir()
