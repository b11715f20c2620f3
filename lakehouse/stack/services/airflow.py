"""The local Airflow: API server (with the UI), scheduler, DAG processor and triggerer.

Airflow lives in its own environment (``.venv-airflow``, from ``orchestration/uv.lock``) because
Airflow 3.3 + Cosmos 1.15 and dbt + pyspark do not resolve together. This module, in the dbt
environment, is the one place that knows how to run it: it resolves the platform's settings into
``<home>/airflow/lakehouse.json`` (what the DAGs read: paths, deadlines, retries, alert channels,
the bronze tables), precompiles the dbt manifest Cosmos renders the graph from, migrates the
metadata database (a database ``airflow`` in the project's PostgreSQL) and starts the four
components, each detached in its own process group with a pid file, so ``lakehouse down`` stops
every one of them and the executor's children with them.

Why not ``airflow standalone``: it is one parent over unmanaged children (a SIGTERM to it alone
orphans them), it runs on SQLite, and it prints a generated password to a terminal nobody reads.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from lakehouse.core import naming
from lakehouse.core.config import REPO_ROOT, Settings
from lakehouse.core.dbt_paths import DBT_PROFILES_DIR, DBT_PROJECT_DIR
from lakehouse.observability.lineage import emit
from lakehouse.stack.processes import (
    ExitedAtStartup,
    live_pid,
    spawn_detached,
    stop_by_pid_file,
    wait_ready,
)
from lakehouse.stack.services import postgres
from lakehouse.transform.dbt_cli import dbt

VENV = REPO_ROOT / ".venv-airflow"
AIRFLOW = VENV / "bin" / "airflow"
ORCHESTRATION_DIR = REPO_ROOT / "orchestration"
DAGS_DIR = ORCHESTRATION_DIR / "dags"
LAKEHOUSE_VENV_BIN = REPO_ROOT / ".venv" / "bin"
# Started in this order; the API server last, so "it answers" means the others were launched.
COMPONENTS = ("scheduler", "dag-processor", "triggerer", "api-server")
# The scheduler and the triggerer would each start a log server on every interface (Airflow
# hard-codes the host; ports 8793/8794). LocalExecutor's tasks write their logs to files the
# API server reads on this same machine, so nothing needs them.
ARGUMENTS = {"scheduler": ["--skip-serve-logs"], "triggerer": ["--skip-serve-logs"]}
USER = "admin"
# The metadata database in the project's PostgreSQL (lakehouse/stack/services/postgres.py).
DATABASE = "airflow"
MANIFEST_TARGET = "target/airflow"


class AirflowError(RuntimeError):
    """A component failed to start, or the environment is missing; the message says which log."""


def home(settings: Settings) -> Path:
    """AIRFLOW_HOME: logs, generated secrets and the settings file, inside the lakehouse home."""
    return settings.home / "airflow"


def url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.orchestration.api_port}"


def manifest_path() -> Path:
    return DBT_PROJECT_DIR / MANIFEST_TARGET / "manifest.json"


def lineage_file(settings: Settings) -> Path:
    """OpenLineage events of Airflow-run tasks (the provider's file transport)."""
    return settings.home / "lineage" / "airflow.jsonl"


def lineage_transport(settings: Settings) -> str:
    """The provider's transport: the one the user set (AIRFLOW__OPENLINEAGE__TRANSPORT, else the
    client's variables), else the file, wrapped in the platform's transformer as every emitter's
    is (lakehouse/observability/lineage/transform.py; docs/lineage.md)."""
    chosen = os.environ.get("AIRFLOW__OPENLINEAGE__TRANSPORT")
    inner = json.loads(chosen) if chosen else emit.user_transport()
    if inner is None:
        inner = {"type": "file", "log_file_path": str(lineage_file(settings)), "append": True}
    return json.dumps(emit.transport_config(settings, inner))


def _pid_file(settings: Settings, component: str) -> Path:
    return settings.state_dir / f"airflow-{component}.pid"


def _log_file(settings: Settings, component: str) -> Path:
    return settings.log_dir / f"airflow-{component}.log"


def _is_ours(pid: int) -> bool:
    """A component we spawned: a session leader running Airflow. The API server retitles itself
    (setproctitle: ``airflow api_server -- ...``), so its command line no longer names the
    executable; the words survive."""
    try:
        leader = os.getpgid(pid) == pid
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (ProcessLookupError, FileNotFoundError):
        return False
    return leader and b"airflow" in cmdline


def _secret(path: Path) -> str:
    """A random secret generated once per home (never in the repository), readable by us only."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(64))
        path.chmod(0o600)
    return path.read_text().strip()


def environment(settings: Settings) -> dict[str, str]:
    """The environment every Airflow component (and so every task) runs with.

    Production overrides any of these by exporting the variable (a real metadata database in
    AIRFLOW__DATABASE__SQL_ALCHEMY_CONN, an OpenLineage backend in AIRFLOW__OPENLINEAGE__...).
    """
    air_home = home(settings)
    api = url(settings)
    orch = settings.orchestration
    db_url = postgres.url(settings.services.postgres_port, DATABASE).replace(
        "postgresql://", "postgresql+psycopg2://", 1
    )
    defaults = {
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # Asset-scheduled DAGs must be live as soon as they are parsed.
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__PARALLELISM": str(orch.parallelism),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(orch.parallelism),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        "AIRFLOW__API__BASE_URL": api,
        "AIRFLOW__API__PORT": str(orch.api_port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(air_home / "passwords.json"),
        # New and changed DAG files are picked up within half a minute, not five.
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        # No network here, and no phoning home anywhere.
        "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
        "SCARF_ANALYTICS": "false",
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        "DO_NOT_TRACK": "1",
        "AIRFLOW__COSMOS__CACHE_DIR": str(settings.state_dir / "cosmos"),
        # Cosmos' WATCHER producer keeps a backup of every XCom it pushes (a node's status, its
        # dbt events, its compiled SQL) for its retry. "Reliable" writes the whole backup, again
        # compressed, to a Variable after every push: one more API call per push, and a growing
        # payload, in the loop that reads dbt's output while dbt waits on the pipe. Off, the
        # backup is written once, by the failure and retry callbacks (docs/orchestration.md).
        "AIRFLOW__COSMOS__ENABLE_WATCHER_RELIABLE_RETRY": "False",
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "lakehouse",
    }
    return {
        **defaults,
        **os.environ,
        "AIRFLOW_HOME": str(air_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
        "AIRFLOW__API_AUTH__JWT_SECRET": _secret(air_home / "jwt_secret"),
        "AIRFLOW__API__SECRET_KEY": _secret(air_home / "api_secret"),
        # lakehouse_airflow (alerts, settings) must import in every component, the triggerer
        # included (it runs the deadline callbacks).
        # The repository root too: the provider's transport loads the platform's transformer
        # (lakehouse/observability/lineage/transform.py imports openlineage and the standard
        # library only; no other module of the platform is imported in Airflow).
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ORCHESTRATION_DIR), str(REPO_ROOT), os.environ.get("PYTHONPATH")])
        ),
        # OpenLineage from every task (Cosmos-run dbt models carry column lineage), through the
        # platform's transformer, to the user's backend or a file.
        "AIRFLOW__OPENLINEAGE__TRANSPORT": lineage_transport(settings),
        "LAKEHOUSE_AIRFLOW_SETTINGS": str(air_home / "lakehouse.json"),
        "LAKEHOUSE_HOME": str(settings.home),
        "LAKEHOUSE_THRIFT_HOST": settings.engine.host,
        "LAKEHOUSE_THRIFT_PORT": str(settings.engine.port),
        "LAKEHOUSE_POSTGRES_PORT": str(settings.services.postgres_port),
        "LAKEHOUSE_SNOWFLAKE_PORT": str(settings.services.snowflake_port),
        "LAKEHOUSE_KAFKA_PORT": str(settings.services.kafka_port),
        "LAKEHOUSE_KAFKA_CONTROLLER_PORT": str(settings.services.kafka_controller_port),
    }


def bronze_tables(manifest: Path) -> dict[str, list[str]]:
    """Source system -> its bronze tables, from the dbt sources that declare them (the other
    sources, such as ops.run_metrics, are not loaded by ingest_sources)."""
    tables: dict[str, list[str]] = {}
    for source in json.loads(manifest.read_text())["sources"].values():
        if source["schema"].startswith("bronze_"):
            tables.setdefault(source["source_name"], []).append(source["name"])
    return tables


def asset_uri(dataset: naming.DatasetId) -> str:
    """The Asset URI that Airflow's OpenLineage provider translates back into ``dataset``: the
    ``file`` scheme's converter (common.io) gives namespace ``file`` and the URI's path as the
    name; the ``s3`` one (amazon, when installed) ``s3://<bucket>`` and the key. So an Asset,
    the dlt load and dbt name a lake table alike (docs/lineage.md)."""
    if dataset.namespace == "file":
        return f"file://{dataset.name}"
    return f"{dataset.namespace}/{dataset.name}"


def bronze_assets(settings: Settings, tables: dict[str, list[str]]) -> dict[str, dict[str, str]]:
    """Source system -> bronze table -> its Asset URI, from the table's OpenLineage identity."""
    return {
        source: {t: asset_uri(naming.bronze_location(settings, source, t)) for t in names}
        for source, names in tables.items()
    }


def write_dag_settings(settings: Settings, manifest: Path) -> Path:
    """Resolve what the DAGs need into one JSON file: the settings have been validated here, so
    the DAG files repeat no defaults and parse no YAML."""
    orch = settings.orchestration
    tables = bronze_tables(manifest)
    doc = {
        "home": str(settings.home),
        "lakehouse": str(LAKEHOUSE_VENV_BIN / "lakehouse"),
        "dbt": str(LAKEHOUSE_VENV_BIN / "dbt"),
        "dbt_project_dir": str(DBT_PROJECT_DIR),
        "profiles_yml": str(DBT_PROFILES_DIR / "profiles.yml"),
        "manifest": str(manifest),
        "bronze_tables": tables,
        "bronze_assets": bronze_assets(settings, tables),
        "gold_tables": sorted(settings.publish.tables),
        "warehouses": list(settings.publish.warehouses),
        "schedules": orch.schedules.model_dump(),
        "ingest_deadline_s": orch.ingest_deadline_s,
        "build_deadline_s": orch.build_deadline_s,
        "retry": orch.retry.model_dump(),
        "alerts": {
            **orch.alerts.model_dump(),
            "log_file": str(settings.home / "alerts" / "alerts.jsonl"),
        },
    }
    path = home(settings) / "lakehouse.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def compile_manifest(settings: Settings) -> Path:
    """``dbt parse`` into its own target folder: the manifest Cosmos renders the DAG from, so no
    DAG parse runs ``dbt ls`` (and no CLI run of dbt overwrites it mid-parse)."""
    dbt(settings, "parse", "--target-path", MANIFEST_TARGET, "--quiet", capture=True)
    return manifest_path()


def is_up(settings: Settings, timeout_s: float = 2) -> bool:
    """The API server answers and reports a healthy metadata database."""
    try:
        health_url = f"{url(settings)}/api/v2/monitor/health"
        with urllib.request.urlopen(health_url, timeout=timeout_s) as answer:
            health = json.load(answer)
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return health.get("metadatabase", {}).get("status") == "healthy"


def running_components(settings: Settings) -> list[str]:
    return [c for c in COMPONENTS if live_pid(_pid_file(settings, c), _is_ours)]


def _airflow(settings: Settings, *args: str, timeout_s: float = 600) -> None:
    log = _log_file(settings, "cli")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        done = subprocess.run([str(AIRFLOW), *args], env=environment(settings), stdout=out,
                              stderr=subprocess.STDOUT, timeout=timeout_s, check=False)  # fmt: skip
    if done.returncode != 0:
        raise AirflowError(f"`airflow {' '.join(args)}` failed ({done.returncode}); see {log}")


def start(settings: Settings, timeout_s: float = 240) -> list[str]:
    """Start whatever component is not running (PostgreSQL first, if it is not up)."""
    if not AIRFLOW.exists():
        raise AirflowError(f"{AIRFLOW} is missing: run `make airflow` (it installs .venv-airflow)")
    said = []
    if not postgres.is_up(settings.services.postgres_port):
        postgres.start(settings.home, settings.services.postgres_port)
        said.append(f"PostgreSQL up on port {settings.services.postgres_port}")
    postgres.ensure_database(settings.services.postgres_port, DATABASE)
    t0 = time.monotonic()
    manifest = compile_manifest(settings)
    write_dag_settings(settings, manifest)
    said.append(f"dbt manifest for Cosmos: {manifest} ({time.monotonic() - t0:.1f} s)")
    missing = [c for c in COMPONENTS if c not in running_components(settings)]
    if not missing:
        return [*said, f"Airflow already up on {url(settings)}"]
    if "api-server" in missing and is_up(settings):
        raise AirflowError(f"another Airflow answers on {url(settings)}: stop it or set "
                           "LAKEHOUSE_AIRFLOW_PORT")  # fmt: skip
    t0 = time.monotonic()
    _airflow(settings, "db", "migrate")
    said.append(f"metadata database migrated ({time.monotonic() - t0:.1f} s)")
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    lineage_file(settings).parent.mkdir(parents=True, exist_ok=True)
    env = environment(settings)
    t0 = time.monotonic()
    procs = {}
    for component in missing:
        log = _log_file(settings, component)
        cmd = [str(AIRFLOW), component, *ARGUMENTS.get(component, [])]
        procs[component] = spawn_detached(cmd, log,
                                          _pid_file(settings, component), env=env)  # fmt: skip
    try:
        ok = wait_ready(procs.get("api-server") or procs[missing[0]],
                        lambda: is_up(settings), timeout_s, poll_s=1)  # fmt: skip
    except ExitedAtStartup as exc:
        stop(settings)
        raise AirflowError(f"the API server exited at start-up ({exc}); see "
                           f"{_log_file(settings, 'api-server')}") from exc  # fmt: skip
    dead = [c for c, p in procs.items() if p.poll() is not None]
    if not ok or dead:
        stop(settings)
        culprit = dead[0] if dead else "api-server"
        raise AirflowError(f"Airflow did not come up ({culprit}); see "
                           f"{_log_file(settings, culprit)}")  # fmt: skip
    said.append(f"Airflow up on {url(settings)} ({time.monotonic() - t0:.1f} s): "
                f"user {USER}, password in {password_file(settings)}")  # fmt: skip
    return said


def password_file(settings: Settings) -> Path:
    """Where the simple auth manager writes the generated password of ``admin``."""
    return home(settings) / "passwords.json"


def stop(settings: Settings, timeout_s: float = 60) -> list[str]:
    """Stop every component (each with its process group: executor workers, API workers)."""
    stopped = [c for c in reversed(COMPONENTS)
               if stop_by_pid_file(_pid_file(settings, c), _is_ours, timeout_s)]  # fmt: skip
    return [f"Airflow stopped ({', '.join(stopped)})"] if stopped else []


class Client:
    """The Airflow REST API (v2) as ``admin``: what ``lakehouse airflow trigger`` and the tests
    use to trigger runs and read their state, as any external scheduler or CI job would."""

    def __init__(self, settings: Settings) -> None:
        self.base = url(settings)
        password = json.loads(password_file(settings).read_text())[USER]
        token = self._call("POST", "/auth/token", {"username": USER, "password": password})
        self._token = token["access_token"]

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        headers = {"Content-Type": "application/json"}
        if getattr(self, "_token", None):
            headers["Authorization"] = f"Bearer {self._token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return json.load(answer)
        except urllib.error.HTTPError as exc:
            raise AirflowError(f"{method} {path}: {exc.code} {exc.read().decode()[:500]}") from exc

    def get(self, path: str) -> dict:
        return self._call("GET", path)

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        """Queue a run of ``dag_id`` now; return its run id."""
        run = self._call("POST", f"/api/v2/dags/{dag_id}/dagRuns",
                         {"logical_date": None, "conf": conf or {}})  # fmt: skip
        return run["dag_run_id"]

    def run(self, dag_id: str, run_id: str) -> dict:
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")

    def runs(self, dag_id: str) -> list[dict]:
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns?order_by=-run_after&limit=100")["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=1000"
        return self.get(path)["task_instances"]

    def wait(self, dag_id: str, run_id: str, timeout_s: float = 1800, poll_s: float = 2) -> dict:
        """Block until the run is finished (success or failed); return it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            run = self.run(dag_id, run_id)
            if run["state"] in ("success", "failed"):
                return run
            time.sleep(poll_s)
        raise AirflowError(f"{dag_id} run {run_id} not finished after {timeout_s:.0f} s")
