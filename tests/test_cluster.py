"""``engine.mode: standalone``: the same dbt build on a Spark master and two workers.

One ingestion (scale 0.05) in a lake home of its own, then three full builds of it
(``dbt build --full-refresh``, so every model, incremental ones too, is computed in that mode):

1. in local mode (``local[*]``, as `make run` by default),
2. in standalone mode, the master's own report polled throughout: each worker runs an executor
   of the engine's application,
3. in standalone mode again, one worker and its executor killed with SIGKILL part-way through,
   while that executor runs a task:
   Spark runs the lost tasks again on the other worker and the build succeeds.

All three give the same gold: row counts of every gold table, and for customer_360 and
product_perf a checksum per column and over whole rows (customer_360 holds salted PII hashes,
computed on the executors in standalone mode: equal only if the salt reached them). The wall
time of each build is printed (with ``-s``) and recorded in docs/performance.md.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from executor_watch import ExecutorWatch

from lakehouse.core.config import Settings, load_settings
from lakehouse.core.dbt_paths import target_dir
from lakehouse.pipeline import steps
from lakehouse.stack import engine, source_systems, spark_cluster
from lakehouse.transform.dbt_cli import dbt
from lakehouse.transform.sql import records

GOLD = ("customer_360", "orders", "fx_rates_daily", "product_perf")
CHECKSUMMED = ("customer_360", "product_perf")
APP_NAME = "lakehouse-engine"
# The kill comes this far into the build (as a share of the unkilled build's wall time).
KILL_AT = 0.4
BUSY_WAIT_S = 120  # ... once its executor runs a task, waiting at most this long
BUILD_TIMEOUT_S = 1800
PRODUCTION_ENDPOINTS = ("SNOWFLAKE_URL", "CRM_BASE_URL", "CRM_API_TOKEN", "REDSHIFT_URL",
                        "FX_BASE_URL", "KAFKA_BOOTSTRAP_SERVERS")  # fmt: skip


@dataclass
class Build:
    seconds: float
    gold: dict[str, dict[str, str]]
    # worker id -> the ids of the engine's executors it was seen running during the build
    executors: dict[str, set[str]] = field(default_factory=dict)
    killed: Kill | None = None  # the worker killed, if any
    master_after: dict | None = None  # the master's report once the build ended
    driver_after: list | None = None  # the engine's report of every executor it had


def _port_pair(free_ports) -> int:
    """A free port whose next port is free too (the two workers' UIs)."""
    for port in free_ports(20):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port + 1)) != 0:
                return port
    raise RuntimeError("no two consecutive free ports")


def _columns(settings: Settings, table: str) -> list[str]:
    names = []
    for row in records(settings, f"describe {table}"):
        if not row["col_name"] or row["col_name"].startswith("#"):
            break
        names.append(row["col_name"])
    return names


def _gold(settings: Settings) -> dict[str, dict[str, str]]:
    """Rows of every gold table; per-column and whole-row checksums (sums of xxhash64, order
    independent) of the checksummed ones."""
    gold: dict[str, dict[str, str]] = {}
    for table in GOLD:
        parts = ["count(*) as `rows`"]
        if table in CHECKSUMMED:
            columns = [f"`{c}`" for c in _columns(settings, f"gold.{table}")]
            parts += [f"sum(cast(xxhash64(cast({c} as string)) as decimal(38, 0))) as {c}"
                      for c in columns]  # fmt: skip
            parts.append(f"sum(cast(xxhash64({', '.join(columns)}) as decimal(38, 0))) as `*`")
        row = records(settings, f"select {', '.join(parts)} from gold.{table}")[0]
        gold[table] = {k: str(v) for k, v in row.items()}
    return gold


def _get(url: str, timeout_s: float = 15) -> dict:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return json.load(response)


def _driver_api(settings: Settings) -> str:
    """The engine's REST API (its Spark UI: the port it found free, as its log says last)."""
    ports = re.findall(r"service 'SparkUI' on port (\d+)", engine.log_file(settings).read_text())
    return f"http://{settings.engine.bind_address}:{ports[-1]}/api/v1/applications"


@dataclass
class Kill:
    worker: str  # the master's id of the worker
    executor: str  # the engine's executor id on it
    active_tasks: int  # tasks that executor was running when killed


def _kill_a_busy_worker_after(settings: Settings, delay_s: float, kills: list[Kill]) -> None:
    """After ``delay_s``, once worker 0's executor runs a task, SIGKILL the worker and that
    executor (its process group): a node lost with work in flight."""
    time.sleep(delay_s)
    pid = spark_cluster.pid(settings, "worker-0")
    assert pid is not None, "worker 0 is not running"
    ui = spark_cluster.worker_ui(settings, 0)
    [worker_0] = [w["id"] for w in spark_cluster.state(settings)["workers"]
                  if w["state"] == "ALIVE" and w["webuiaddress"] == ui]  # fmt: skip
    [app] = [a["id"] for a in spark_cluster.state(settings)["activeapps"] if a["name"] == APP_NAME]
    [executor] = [str(e["id"]) for e in _get(ui + "/json/")["executors"] if e["appid"] == app]
    deadline = time.monotonic() + BUSY_WAIT_S
    active = 0
    while time.monotonic() < deadline:
        try:
            executors = _get(f"{_driver_api(settings)}/{app}/executors", timeout_s=30)
        except OSError:  # a driver busy under load answers late: ask again
            continue
        active = next((e["activeTasks"] for e in executors if e["id"] == executor), 0)
        if active:
            break
        time.sleep(0.1)
    os.killpg(pid, signal.SIGKILL)
    kills.append(Kill(worker_0, executor, active))


def _build(settings: Settings, kill_after_s: float | None = None) -> Build:
    """A full `dbt build` (every model recomputed); with ``kill_after_s``, worker 0 is killed
    that long after it starts."""
    watch = ExecutorWatch(settings) if spark_cluster.standalone(settings) else None
    kills: list[Kill] = []
    killer = None
    if kill_after_s is not None:
        killer = threading.Thread(target=_kill_a_busy_worker_after,
                                  args=(settings, kill_after_s, kills))  # fmt: skip
        killer.start()
    started = time.monotonic()
    result = dbt(settings, "build", "--full-refresh", check=False, capture=True,
                 timeout_s=BUILD_TIMEOUT_S)  # fmt: skip
    seconds = time.monotonic() - started
    if killer is not None:
        killer.join()
    assert result.returncode == 0, f"dbt build failed:\n{result.stdout[-6000:]}"
    executors = watch.finish() if watch is not None else {}
    print(f"{settings.engine.mode} build{' with a worker killed' if kills else ''}: "
          f"{seconds:.1f}s (load average {os.getloadavg()[0]:.2f})")  # fmt: skip
    build = Build(seconds, _gold(settings), executors)
    if kill_after_s is not None:
        build.killed = kills[0] if kills else None
        build.master_after = spark_cluster.state(settings)
        [app] = [a["id"] for a in build.master_after["activeapps"] if a["name"] == APP_NAME]
        build.driver_after = _get(f"{_driver_api(settings)}/{app}/allexecutors")
    return build


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory, free_ports) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("cluster")
    thrift, postgres, snowflake, kafka, controller, master, master_ui = free_ports(7)
    env = {
        "LAKEHOUSE_HOME": str(root / "home"),
        "LAKEHOUSE_SCALE": "0.05",
        "LAKEHOUSE_DIRTY_SHARE": "0.03",
        "LAKEHOUSE_THRIFT_PORT": str(thrift),
        "LAKEHOUSE_POSTGRES_PORT": str(postgres),
        "LAKEHOUSE_SNOWFLAKE_PORT": str(snowflake),
        "LAKEHOUSE_KAFKA_PORT": str(kafka),
        "LAKEHOUSE_KAFKA_CONTROLLER_PORT": str(controller),
        "LAKEHOUSE_ENGINE__STANDALONE__MASTER_PORT": str(master),
        "LAKEHOUSE_ENGINE__STANDALONE__MASTER_UI_PORT": str(master_ui),
        "LAKEHOUSE_ENGINE__STANDALONE__WORKER_UI_PORT": str(_port_pair(free_ports)),
        "DBT_TARGET_PATH": str(root / "dbt-target"),
        "DBT_LOG_PATH": str(root / "dbt-logs"),
    }
    partial_parse = target_dir() / "partial_parse.msgpack"
    if partial_parse.exists():  # dbt re-parses if it does not fit; a saved parse if it does
        (root / "dbt-target").mkdir()
        (root / "dbt-target" / partial_parse.name).write_bytes(partial_parse.read_bytes())
    result: dict = {}
    with pytest.MonkeyPatch.context() as mp:
        for name in PRODUCTION_ENDPOINTS:
            mp.delenv(name, raising=False)
        for name, value in env.items():
            mp.setenv(name, value)
        local = load_settings()
        with source_systems.running(local):
            steps.ingest(local)
        with engine.running(local):
            result["local"] = _build(local)
        mp.setenv("LAKEHOUSE_ENGINE__MODE", "standalone")
        cluster = load_settings()
        try:
            with engine.running(cluster):
                result["standalone"] = _build(cluster)
                kill_after = KILL_AT * result["standalone"].seconds
                result["killed"] = _build(cluster, kill_after_s=kill_after)
            daemons = ["master", "worker-0", "worker-1"]
            result["left running"] = [d for d in daemons if spark_cluster.pid(cluster, d)]
        finally:
            engine.stop(cluster)  # the cluster too, even if the engine never answered
        yield result


def test_the_master_reports_an_executor_of_the_engine_on_each_worker(builds) -> None:
    seen = builds["standalone"].executors
    assert len(seen) == 2, f"the master reported {len(seen)} live workers: {seen}"
    assert all(seen.values()), f"a worker ran no executor of the engine: {seen}"
    assert not set.intersection(*seen.values()), "one executor on two workers?"


def test_a_standalone_build_gives_the_gold_of_a_local_build(builds) -> None:
    assert builds["standalone"].gold == builds["local"].gold
    assert int(builds["local"].gold["customer_360"]["rows"]) > 0


def test_a_worker_killed_mid_build_leaves_the_build_whole(builds) -> None:
    """The executor was running tasks when it died: the build succeeding means they ran again."""
    build = builds["killed"]
    kill = build.killed
    assert kill is not None, "the worker was never killed"
    assert kill.active_tasks > 0, f"executor {kill.executor} ran no task in {BUSY_WAIT_S}s"
    alive = {w["id"] for w in build.master_after["workers"] if w["state"] == "ALIVE"}
    assert kill.worker not in alive, "the master still counts the killed worker as alive"
    assert len(alive) == 1
    [lost] = [e for e in build.driver_after if e["id"] == kill.executor]
    assert not lost["isActive"], f"the engine still uses the killed executor: {lost}"
    assert build.gold == builds["local"].gold


def test_pii_is_masked_the_same_on_executors_as_in_local_mode(builds) -> None:
    """The salt reaches executors through the workers' environment: a missing salt would make
    every hash null (or the build fail at assert_pii_salt), a different one every hash differ."""
    for build in ("standalone", "killed"):
        for column in ("email", "full_name", "crm_owner_email"):
            assert (builds[build].gold["customer_360"][column]
                    == builds["local"].gold["customer_360"][column])  # fmt: skip


def test_the_cluster_is_stopped_with_the_engine(builds) -> None:
    assert builds["left running"] == [], "the engine stopped but left daemons of its cluster"
