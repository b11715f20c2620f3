"""The Spark standalone cluster of ``engine.mode: standalone``: a master and workers on this box.

Why: in ``local`` mode the Thrift server's own JVM runs every task (``local[*]``), so nothing
ever exercises what a real cluster does: tasks shipped to other JVMs, shuffle files fetched
across processes, an executor lost and its tasks run again elsewhere, jars and environment that
must reach executors. ``standalone`` runs the same engine as a driver that submits to a Spark
master with ``workers`` workers, each its own JVM with its own executor, so those paths are
tested here before a team meets them on EMR, Dataproc or Kubernetes (docs/deploy.md).

pyspark ships the Master and Worker classes but not Spark's ``sbin`` scripts, so each daemon is
launched through ``spark-class`` detached in its own process group, as the engine launches the
Thrift server: pid files in the state dir, logs in the log dir, scratch and work dirs under the
lake home, every port bound to ``engine.bind_address``.

The PII salt (lakehouse/core/pii.py) reaches the executors through the workers' environment (an
executor inherits its worker's): the dbt macro ``pii`` reads it with ``System.getenv`` inside the
query, which runs on the executors. So it is in no Spark setting, where the application's
environment page and event log would show it.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import subprocess
import urllib.request
from pathlib import Path

from lakehouse.core import pii
from lakehouse.core.config import Settings, StandaloneConfig
from lakehouse.stack import processes
from lakehouse.stack.jars import engine_jars

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
LOCAL_MASTER = "local[*]"

log = logging.getLogger(__name__)


class ClusterError(RuntimeError):
    """The master or a worker failed to start; the message points at its log."""


def standalone(settings: Settings) -> bool:
    return settings.engine.mode == "standalone"


def _conf(settings: Settings) -> StandaloneConfig:
    return settings.engine.standalone


def cluster_host(settings: Settings) -> str:
    """The address the daemons bind and advertise: the engine's bind address, or the machine's
    name when that is a wildcard (nothing can connect to 0.0.0.0)."""
    address = settings.engine.bind_address
    return socket.gethostname() if _is_wildcard(address) else address


def _is_wildcard(address: str) -> bool:
    return address in ("0.0.0.0", "::")


def master_url(settings: Settings) -> str:
    """The ``--master`` the Thrift server submits to: ``local[*]`` or the standalone master."""
    if not standalone(settings):
        return LOCAL_MASTER
    return f"spark://{cluster_host(settings)}:{_conf(settings).master_port}"


def master_ui(settings: Settings) -> str:
    """The master's web UI; ``<it>/json/`` lists the workers, their used cores and the apps."""
    return f"http://{cluster_host(settings)}:{_conf(settings).master_ui_port}"


def worker_ui(settings: Settings, index: int) -> str:
    """Worker ``index``'s web UI; ``<it>/json/`` lists the executors it runs."""
    return f"http://{cluster_host(settings)}:{_conf(settings).worker_ui_port + index}"


def executor_conf(settings: Settings) -> dict[str, str]:
    """The Thrift server's Spark settings for its executors; none in local mode.

    One executor per worker (``executor_cores`` of a worker's ``worker_cores``), and no more
    cores in all than the workers offer. Executors load Delta's classes from the jars on their
    own classpath: the same files on this one machine. A real cluster ships them instead
    (``spark.jars`` / ``--jars``, or an image that has them; docs/deploy.md).
    """
    if not standalone(settings):
        return {}
    conf = _conf(settings)
    return {
        "spark.executor.cores": str(conf.executor_cores),
        "spark.executor.memory": conf.executor_memory,
        "spark.cores.max": str(conf.workers * conf.worker_cores),
        "spark.executor.extraClassPath": ":".join(str(j) for j in engine_jars()),
    }


def _spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def _spark_class() -> str:
    return str(_spark_home() / "bin" / "spark-class")


def master_command(settings: Settings) -> list[str]:
    conf = _conf(settings)
    return [_spark_class(), MASTER_CLASS, "--host", cluster_host(settings),
            "--port", str(conf.master_port), "--webui-port", str(conf.master_ui_port)]  # fmt: skip


def worker_command(settings: Settings, index: int) -> list[str]:
    conf = _conf(settings)
    return [
        _spark_class(), WORKER_CLASS, "--host", cluster_host(settings),
        "--webui-port", str(conf.worker_ui_port + index),
        "--cores", str(conf.worker_cores), "--memory", conf.worker_memory,
        "--work-dir", str(work_dir(settings, index)),
        master_url(settings),
    ]  # fmt: skip


def work_dir(settings: Settings, index: int) -> Path:
    """Where worker ``index`` keeps its executors' stdout/stderr (and any shipped files)."""
    return settings.home / "spark-cluster" / f"worker-{index}"


def daemon_env(settings: Settings) -> dict[str, str]:
    """The environment of the master and the workers (and so of the executors)."""
    env = {
        **os.environ,
        "SPARK_HOME": str(_spark_home()),
        "SPARK_DAEMON_MEMORY": _conf(settings).daemon_memory,
        # The master's REST submission server: on by default, on the fixed port 6066, taking
        # unauthenticated submissions. The engine submits through the master's RPC port.
        "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false",
        # A port taken fails the daemon instead of moving it to the next one: the engine would
        # then submit to whatever holds the configured port (another lake's master).
        "SPARK_DAEMON_JAVA_OPTS": "-Dspark.port.maxRetries=0",
        # Executors' shuffle and spill files: under the lake home, as the driver's.
        "SPARK_LOCAL_DIRS": str(settings.home / "tmp"),
        # Read by the dbt macro `pii` on the executors; never written into a Spark setting.
        pii.SALT_ENV: pii.salt(settings),
        # A lake on S3: s3a on the executors reads its credentials and endpoint from the
        # environment (EnvironmentVariableCredentialsProvider), as the driver's does.
        **settings.storage_env(),
    }
    if not _is_wildcard(settings.engine.bind_address):
        env["SPARK_LOCAL_IP"] = settings.engine.bind_address
    return env


def _pid_file(settings: Settings, name: str) -> Path:
    return settings.state_dir / f"spark-{name}-{_conf(settings).master_port}.pid"


def log_file(settings: Settings, name: str) -> Path:
    """``name``: ``master`` or ``worker-<i>``."""
    return settings.log_dir / f"spark-{name}-{_conf(settings).master_port}.log"


def _daemon_names(settings: Settings) -> list[str]:
    return [f"worker-{i}" for i in range(_conf(settings).workers)]


def _is_daemon(pid: int) -> bool:
    return processes.cmdline_has(pid, MASTER_CLASS) or processes.cmdline_has(pid, WORKER_CLASS)


def pid(settings: Settings, name: str) -> int | None:
    """The pid of the running master or worker ``name``, or None."""
    return processes.live_pid(_pid_file(settings, name), _is_daemon)


def state(settings: Settings) -> dict:
    """The master's own report (``/json/``): workers, their cores in use, applications."""
    with urllib.request.urlopen(master_ui(settings) + "/json/", timeout=5) as response:
        return json.load(response)


def executors_by_worker(settings: Settings, app_name: str) -> dict[str, set[str]]:
    """Per live worker (the master's report), the executors of application ``app_name`` it runs
    (the worker's own report): which node does the work of the engine, while it works."""
    master = state(settings)
    apps = {a["id"] for a in master.get("activeapps", []) if a["name"] == app_name}
    seen: dict[str, set[str]] = {}
    for worker in master["workers"]:
        if worker["state"] != "ALIVE":
            continue
        with urllib.request.urlopen(worker["webuiaddress"] + "/json/", timeout=15) as response:
            report = json.load(response)
        seen[worker["id"]] = {f"{e['appid']}/{e['id']}" for e in report["executors"]
                              if e["appid"] in apps}  # fmt: skip
    return seen


def _master_answers(settings: Settings) -> bool:
    """True once the master's UI serves its report. While its Jetty starts, a request can
    also end in a cut-off response (HTTPException) or a page that is not yet JSON (ValueError):
    not ready yet, like a refused connection."""
    try:
        state(settings)
    except (OSError, ValueError, http.client.HTTPException):
        return False
    return True


def _port_taken(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def _spawn(settings: Settings, name: str, cmd: list[str]) -> subprocess.Popen:
    return processes.spawn_detached(cmd, log_file(settings, name), _pid_file(settings, name),
                                    cwd=settings.state_dir, env=daemon_env(settings))  # fmt: skip


def start(settings: Settings) -> None:
    """Start the master (waiting until it answers) and the workers that are not running.

    Returns before the workers have registered: they do while the driver boots (10-20 s), and
    the driver's jobs wait for executors. Nothing to do in local mode.
    """
    if not standalone(settings):
        return
    for folder in (settings.state_dir, settings.log_dir, settings.home / "tmp"):
        folder.mkdir(parents=True, exist_ok=True)
    if pid(settings, "master") is None:
        conf = _conf(settings)
        for port in (conf.master_port, conf.master_ui_port):
            if _port_taken(cluster_host(settings), port):
                raise ClusterError(f"port {port} of the Spark master is taken (another lake's "
                                   "cluster?): set engine.standalone's ports")  # fmt: skip
        log.info(f"  Spark master on {master_url(settings)} (UI {master_ui(settings)})")
        proc = _spawn(settings, "master", master_command(settings))
        try:
            answered = processes.wait_ready(proc, lambda: _master_answers(settings),
                                            _conf(settings).startup_timeout_s, 0.3)  # fmt: skip
        except processes.ExitedAtStartup as exc:
            raise ClusterError(f"Spark master {exc}; see {log_file(settings, 'master')}") from exc
        if not answered:
            stop(settings)
            raise ClusterError(f"Spark master did not answer within "
                               f"{_conf(settings).startup_timeout_s}s; see "
                               f"{log_file(settings, 'master')}")  # fmt: skip
    for index, name in enumerate(_daemon_names(settings)):
        if pid(settings, name) is None:
            work_dir(settings, index).mkdir(parents=True, exist_ok=True)
            _spawn(settings, name, worker_command(settings, index))


def stop(settings: Settings, timeout_s: float = 30.0) -> bool:
    """Stop the workers, then the master (whatever the mode: a cluster left by an earlier
    ``standalone`` run is stopped too); return False if none was running."""
    stopped = False
    for name in [*_daemon_names(settings), "master"]:
        stopped |= processes.stop_by_pid_file(_pid_file(settings, name), _is_daemon, timeout_s)
    return stopped
