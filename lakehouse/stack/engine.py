"""The local engine: one long-running Spark Thrift Server with Delta Lake and one metastore.

Why a server and not a Spark session per process: Spark start-up costs 10-25 s, and dbt, Cosmos
(one process per task) and the tests would each pay it, and OpenLineage's dbt integration does
not support dbt-spark's ``session`` method. One JVM serves every dbt invocation through
dbt-spark's ``thrift`` method. Its metastore is shared (lakehouse/stack/metastore.py): other
engines of the home may run beside it.

pyspark ships the Thrift-server jars but no start script, so we launch the server class through
``spark-submit`` ourselves, detached in its own process group, and keep its pid in the state dir.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from lakehouse.core import pii
from lakehouse.core.config import Settings
from lakehouse.observability import run_metrics, table_changes
from lakehouse.stack import metastore, spark_cluster
from lakehouse.stack.jars import engine_jars
from lakehouse.stack.object_store import storage_conf
from lakehouse.stack.processes import cmdline_has, pid_alive, reap, stop_group
from lakehouse.transform import warmup
from lakehouse.transform.sql import query

THRIFT_SERVER_CLASS = "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2"


class EngineError(RuntimeError):
    """The engine failed to start or stop; the message points at its log."""


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def spark_conf(settings: Settings) -> dict[str, str]:
    """Spark settings of the engine: Delta, one metastore and the lake at absolute paths."""
    return {
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.warehouse.dir": settings.warehouse.spark,
        **metastore.metastore_conf(settings),
        "spark.local.dir": str(settings.home / "tmp"),
        "spark.sql.shuffle.partitions": str(settings.engine.shuffle_partitions),
        # Delta rebuilds a table's snapshot from its log with 50 tasks by default: on small
        # local tables that was ~400 stages of 50 tasks per `make run`, most of the dbt time.
        "spark.databricks.delta.snapshotPartitions": str(settings.engine.shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        # Delta answers min/max/count from its log stats with java.time values, which the Thrift
        # server cannot serialise (ClassCastException: LocalDate cannot be cast to java.sql.Date)
        # for `select max(some_date) from t`. Reading the data instead costs little here.
        "spark.databricks.delta.optimizeMetadataQuery.enabled": "false",
        # A URL repeating a query parameter must not fail str_to_map: the last value wins.
        "spark.sql.mapKeyDedupPolicy": "LAST_WIN",
        "spark.ui.showConsoleProgress": "false",
        # dbt threads and Cosmos tasks share this one server: FAIR stops a long job from
        # queueing every short test query behind it.
        "spark.scheduler.mode": "FAIR",
        # Run each statement inside the Thrift call that submits it. dbt-spark submits
        # asynchronously, then sleeps `poll_interval` (whole seconds: 1 is its least but 0, a
        # busy loop) before asking again: a statement of 0.1 s cost dbt 1 s. Answered at once,
        # its first poll finds the statement finished. Statements here take seconds, never the
        # minutes after which an idle Thrift call could be dropped.
        "spark.sql.hive.thriftServer.async": "false",
        **spark_cluster.executor_conf(settings),
        **_extra_conf(),
        # Read back by dbt (macro `lake_dir`) so models never hard-code where bronze lives.
        "spark.lakehouse.lake.dir": settings.lake.spark,
        **storage_conf(settings),
        **_bind_conf(settings.engine.bind_address),
    }


def is_wildcard(address: str) -> bool:
    """0.0.0.0 or :: : every interface of the machine."""
    return ipaddress.ip_address(address).is_unspecified


def _bind_conf(address: str) -> dict[str, str]:
    """Where the driver's RPC server and block manager listen and what executors are told.

    Without these Spark binds both to the address the machine's host name resolves to (an
    external one). A wildcard keeps Spark's default advertised host (the machine's name), since
    nothing can connect to 0.0.0.0.
    """
    conf = {"spark.driver.bindAddress": address}
    if not is_wildcard(address):
        conf["spark.driver.host"] = address
    return conf


def bind_env(address: str) -> dict[str, str]:
    """The environment that binds the Spark UI: Spark 4's WebUI reads only SPARK_LOCAL_IP
    (no spark.ui.* setting) and listens on every interface without it."""
    return {} if is_wildcard(address) else {"SPARK_LOCAL_IP": address}


def _extra_conf() -> dict[str, str]:
    """Extra Spark settings from LAKEHOUSE_SPARK_CONF ("k=v,k=v"), for tuning experiments."""
    raw = os.environ.get("LAKEHOUSE_SPARK_CONF", "")
    return dict(item.split("=", 1) for item in raw.split(",") if "=" in item)


# Spark's own default of ``spark.redaction.regex``: the settings it hides in its UI and logs.
SECRET_SETTING = re.compile(r"(?i)secret|password|token|access[.]?key")


def secrets_file(settings: Settings) -> Path:
    """Where the engine's secret settings (the metastore's password) are kept for spark-submit:
    a 0600 properties file, so they never appear on a command line every user's ``ps`` shows."""
    return settings.state_dir / f"engine-{settings.engine.port}.properties"


def write_secrets(settings: Settings) -> Path:
    """Write the secret settings of ``spark_conf`` to ``secrets_file`` (owner-only)."""
    path = secrets_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    lines = [f"{key}={_escaped(value)}\n" for key, value in spark_conf(settings).items()
             if SECRET_SETTING.search(key)]  # fmt: skip
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.writelines(lines)
    return path


def _escaped(value: str) -> str:
    """A value as java.util.Properties reads it back unchanged."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")


def server_command(settings: Settings) -> list[str]:
    """The spark-submit command line that starts the Thrift server; its secret settings are in
    ``secrets_file`` (written by ``launch``), never on the line."""
    cmd = [
        str(spark_home() / "bin" / "spark-submit"),
        "--class", THRIFT_SERVER_CLASS,
        "--name", "lakehouse-engine",
        "--master", spark_cluster.master_url(settings),
        "--driver-memory", settings.engine.driver_memory,
        # On the driver's own classpath, not --jars: the Thrift server resolves data sources
        # through the system class loader, which does not see --jars (DATA_SOURCE_NOT_FOUND).
        "--driver-class-path", ":".join(str(j) for j in engine_jars()),
        "--properties-file", str(secrets_file(settings)),
    ]  # fmt: skip
    for key, value in spark_conf(settings).items():
        if not SECRET_SETTING.search(key):
            cmd += ["--conf", f"{key}={value}"]
    cmd += [
        "spark-internal",
        "--hiveconf", f"hive.server2.thrift.port={settings.engine.port}",
        "--hiveconf", f"hive.server2.thrift.bind.host={settings.engine.host}",
    ]  # fmt: skip
    return cmd


def _pid_file(settings: Settings) -> Path:
    return settings.state_dir / f"engine-{settings.engine.port}.pid"


def log_file(settings: Settings) -> Path:
    return settings.log_dir / f"engine-{settings.engine.port}.log"


def _running_pid(settings: Settings) -> int | None:
    """Our server's pid if its pid file names a live process, else None."""
    try:
        pid = int(_pid_file(settings).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    reap(pid)  # killed while our child: a zombie until reaped
    # A pid file left by a killed engine may name a recycled pid by now: signal only our server.
    return pid if pid_alive(pid) and cmdline_has(pid, THRIFT_SERVER_CLASS) else None


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def is_up(settings: Settings) -> bool:
    """True when something answers SQL on the engine's port."""
    if not port_open(settings.engine.host, settings.engine.port):
        return False
    try:
        return query(settings, "SELECT 1") == [(1,)]
    except Exception:
        return False


def discard_unfinished_metastore(metastore_dir: Path) -> bool:
    """Remove a Derby metastore whose creation was interrupted; return True if there was one.

    An engine stopped during its very first start-up (a run that fails while the JVM boots stops
    it) can leave ``metastore_db`` without Derby's ``service.properties``. Derby then refuses to
    open or create it (XBM0A) and every later start fails. Such a folder holds no table yet (the
    catalog is written after creation completes), so removing it loses nothing.
    """
    database = metastore_dir / "metastore_db"
    if not database.is_dir() or (database / "service.properties").exists():
        return False
    shutil.rmtree(database)
    return True


def launch(settings: Settings) -> subprocess.Popen:
    """Launch the server detached and return at once; ``wait_ready`` waits for it to answer."""
    if is_up(settings):
        raise EngineError(
            f"an engine already answers on {settings.engine.host}:{settings.engine.port}"
        )
    lake = [loc.path for loc in (settings.warehouse, settings.lake) if loc.is_local]
    for folder in (settings.state_dir, settings.log_dir, settings.metastore_dir,
                   *lake, settings.home / "tmp"):  # fmt: skip
        folder.mkdir(parents=True, exist_ok=True)
    discard_unfinished_metastore(settings.metastore_dir)
    run_metrics.ensure_table(settings)  # dbt registers it as ops.run_metrics: it must exist first
    table_changes.ensure_table(settings)  # ... and this one as ops.table_changes
    metastore.ensure(settings)  # PostgreSQL up (the catalog lives there) before the JVM starts
    spark_cluster.start(settings)  # standalone mode: the master and workers it submits to
    env = {
        **os.environ,
        "SPARK_HOME": str(spark_home()),
        "HIVE_SERVER2_THRIFT_PORT": str(settings.engine.port),
        "HIVE_SERVER2_THRIFT_BIND_HOST": settings.engine.host,
        **bind_env(settings.engine.bind_address),
        # Read while queries run by the dbt macro `pii` (System.getenv), never written into SQL.
        pii.SALT_ENV: pii.salt(settings),
        **settings.storage_env(),
    }
    write_secrets(settings)
    with log_file(settings).open("ab") as out:
        proc = subprocess.Popen(
            server_command(settings),  # after write_secrets, above
            cwd=settings.state_dir,  # stray derby.log / spark-warehouse never land in the repo
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _pid_file(settings).write_text(str(proc.pid))
    return proc


def wait_ready(settings: Settings, proc: subprocess.Popen) -> int:
    """Wait until the launched server answers SQL; return its pid, or raise naming the log."""
    log = log_file(settings)
    deadline = time.monotonic() + settings.engine.startup_timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _pid_file(settings).unlink(missing_ok=True)
            metastore.release(settings)
            raise EngineError(f"engine exited with code {proc.returncode} at start-up; see {log}")
        if is_up(settings):
            metastore.adopt_derby_tables(settings)  # once, for a home made with Derby
            return proc.pid
        time.sleep(0.5)
    stop(settings)
    raise EngineError(
        f"engine did not answer within {settings.engine.startup_timeout_s}s; see {log}"
    )


def start(settings: Settings) -> int:
    """Start the server detached, wait until it answers SQL and warm it up; return its pid."""
    pid = wait_ready(settings, launch(settings))
    warmup.warm_up(settings)
    return pid


def stop(settings: Settings, timeout_s: float = 60.0) -> bool:
    """Stop our server and its process group; return False if none was running."""
    pid = _running_pid(settings)
    pid_file = _pid_file(settings)
    if pid is not None:
        stop_group(pid, timeout_s, poll_s=0.5)
    pid_file.unlink(missing_ok=True)
    spark_cluster.stop(settings)
    metastore.release(settings)  # the PostgreSQL this engine started, if it did
    return pid is not None


class _Booting(threading.Thread):
    """``wait_ready`` and the warm-up in a background thread; ``join`` re-raises its error."""

    def __init__(self, settings: Settings, proc: subprocess.Popen) -> None:
        super().__init__(name="engine-boot", daemon=True)
        self._settings, self._proc = settings, proc
        self._error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            wait_ready(self._settings, self._proc)
            warmup.warm_up(self._settings)
        except BaseException as exc:  # handed to the caller of join()
            self._error = exc

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout)
        if self._error is not None:
            raise self._error


@contextlib.contextmanager
def starting(settings: Settings) -> Iterator[Callable[[], bool]]:
    """Like ``running``, but do not wait: yield a ``ready()`` to call when SQL is needed.

    The JVM boots (10-20 s) while the caller does other work, such as ingestion, which needs no
    engine. ``ready()`` returns True when this call started the engine. Stops what it started.
    """
    proc = None if is_up(settings) else launch(settings)
    # Waits for the server, then warms it up, while the caller works: ready() joins it.
    booting = None if proc is None else _Booting(settings, proc)

    def ready() -> bool:
        if booting is not None:
            booting.join()
        return proc is not None

    try:
        yield ready
    finally:
        if proc is not None:
            stop(settings)


@contextlib.contextmanager
def running(settings: Settings) -> Iterator[bool]:
    """Use the engine if it is up; otherwise start it and stop it afterwards (no stray process).

    Yields True when this call started the engine.
    """
    if is_up(settings):
        yield False
        return
    start(settings)
    try:
        yield True
    finally:
        stop(settings)
