"""DAG integrity without a running Airflow: every DAG file loads into a DagBag in the Airflow
environment, against the precompiled dbt manifest Cosmos renders build_analytics from, and holds
the tasks, dependencies, retries, deadlines and alert notifiers it declares.

No engine, no service, no JVM: the manifest comes from ``dbt parse`` (which connects to nothing),
the settings file from the same function ``lakehouse airflow up`` writes it with, and the DagBag
(tests/fast/dagbag_probe.py) runs in ``.venv-airflow``'s Python, as the DAG processor would, with
the components' environment. A few seconds in all.
"""

from __future__ import annotations

import ast
import json
import subprocess
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from ingestion.registry import SOURCES
from lakehouse.core import naming
from lakehouse.core.config import AlertConfig, Settings, load_settings
from lakehouse.core.dbt_paths import DBT_PROFILES_DIR, DBT_PROJECT_DIR
from lakehouse.stack.services import airflow
from lakehouse.transform.dbt_cli import dbt

PROBE = Path(__file__).with_name("dagbag_probe.py")
PYTHON = airflow.VENV / "bin" / "python"
# Its own target folder: never the manifest a running Airflow of this checkout reads.
MANIFEST_TARGET = "target/dag_integrity"
DAG_IDS = {"ingest_sources", "build_analytics", "dq_watchdog", "lakehouse_backfill"}
WATCHDOG_TASKS = {"source_freshness", "volume", "quarantine_growth", "gold_changes", "report"}
PRODUCER, PRODUCER_DONE = "dbt.dbt_producer_watcher", "dbt.dbt_producer_watcher_done"
NOTIFIERS = {
    "log": "lakehouse_airflow.alerts.AuditLogNotifier",
    "webhook": "lakehouse_airflow.alerts.WebhookNotifier",
    "email": "airflow.providers.smtp.notifications.smtp.SmtpNotifier",
}
LINEAGE_ENV = {
    "OPENLINEAGE_PARENT_ID": "{{ lineage_parent_id(task_instance) }}",
    "LAKEHOUSE_RUN_ID": "{{ dag.dag_id }}/{{ run_id }}",
}
PLATFORM_PACKAGES = {"lakehouse", "ingestion"}


@dataclass
class Loaded:
    settings: Settings
    manifest: dict[str, Any]
    bag: dict[str, Any]

    def tasks(self, dag_id: str) -> dict[str, dict[str, Any]]:
        return self.bag["dags"][dag_id]["tasks"]

    def models(self) -> dict[str, dict[str, Any]]:
        nodes = self.manifest["nodes"]
        return {n["name"]: n for n in nodes.values() if n["resource_type"] == "model"}

    def model_parents(self, model: dict[str, Any]) -> set[str]:
        nodes = self.manifest["nodes"]
        return {nodes[p]["name"] for p in model["depends_on"]["nodes"] if p.startswith("model.")}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    home = tmp_path_factory.mktemp("dag integrity")  # a space: Asset URIs must not escape it
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAKEHOUSE_HOME", str(home))
        base = load_settings()
        # every channel, so every notifier is built and checked
        alerts = AlertConfig(channels=["log", "webhook", "email"], email_to=["data@example.com"])
        settings = base.model_copy(update={
            "orchestration": base.orchestration.model_copy(update={"alerts": alerts}),
        })  # fmt: skip
        # what `lakehouse airflow up` does before the components start: dbt parse, the settings
        dbt(settings, "parse", "--target-path", MANIFEST_TARGET, "--quiet", capture=True)
        manifest = DBT_PROJECT_DIR / MANIFEST_TARGET / "manifest.json"
        airflow.write_dag_settings(settings, manifest)
        env = airflow.environment(settings)
        env["AIRFLOW__COSMOS__CACHE_DIR"] = str(home / "cosmos")
        output = home / "dagbag.json"
        done = subprocess.run(
            [str(PYTHON), str(PROBE), str(airflow.DAGS_DIR), str(output)],
            env=env, cwd=home, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        yield Loaded(settings, json.loads(manifest.read_text()), json.loads(output.read_text()))


def test_every_dag_file_imports_without_errors_and_parse_times_are_reported(
    loaded: Loaded, capsys: pytest.CaptureFixture[str]
) -> None:
    assert loaded.bag["import_errors"] == {}
    assert set(loaded.bag["dags"]) == DAG_IDS
    for dag_id, fileloc in loaded.bag["dag_files"].items():
        assert Path(fileloc).name == f"{dag_id}.py"
    parse_s = loaded.bag["parse_s"]
    assert {Path(f).name for f in parse_s} == {f"{d}.py" for d in DAG_IDS}
    with capsys.disabled():
        times = ", ".join(f"{Path(f).name} {s:.2f} s" for f, s in sorted(parse_s.items()))
        print(f"\nDAG file parse times (DagBag, first file pays the imports): {times}; "
              f"whole DagBag {loaded.bag['load_s']:.2f} s")  # fmt: skip


def test_ingest_sources_runs_one_load_command_per_source(loaded: Loaded) -> None:
    tasks = loaded.tasks("ingest_sources")
    assert set(tasks) == {f"load_{source}" for source in SOURCES}
    lakehouse = airflow.LAKEHOUSE_VENV_BIN / "lakehouse"
    for source in SOURCES:
        task = tasks[f"load_{source}"]
        assert task["upstream"] == []
        assert task["operator"] == "lakehouse_airflow.commands.PlatformCommand"
        assert task["bash_command"] == f"{lakehouse} ingest --source {source}"
        assert task["env"] == LINEAGE_ENV and task["append_env"] is True
    assert loaded.bag["dags"]["ingest_sources"]["macros"] == ["lineage_parent_id"]


def test_build_analytics_renders_every_model_in_manifest_order_then_publishes(
    loaded: Loaded,
) -> None:
    tasks = loaded.tasks("build_analytics")
    models = loaded.models()
    assert models
    warehouses = loaded.settings.publish.warehouses
    expected = {f"dbt.{m}.{kind}" for m in models for kind in ("run", "test")}
    publishes = {f"publish_{w}" for w in warehouses}
    assert set(tasks) == expected | {PRODUCER, PRODUCER_DONE} | publishes
    # each model's task waits on its parent models' tests; its test on the model
    for name, model in models.items():
        parents = loaded.model_parents(model)
        assert tasks[f"dbt.{name}.run"]["upstream"] == sorted(f"dbt.{p}.test" for p in parents)
        assert tasks[f"dbt.{name}.test"]["upstream"] == [f"dbt.{name}.run"]
    assert tasks[PRODUCER]["upstream"] == []
    assert tasks[PRODUCER_DONE]["upstream"] == [PRODUCER]
    # publish follows the whole dbt group: its leaves are the tests of the models nothing reads
    read = set().union(*(loaded.model_parents(m) for m in models.values()))
    leaves = sorted({f"dbt.{m}.test" for m in set(models) - read} | {PRODUCER_DONE})
    lakehouse = airflow.LAKEHOUSE_VENV_BIN / "lakehouse"
    for warehouse in warehouses:
        task = tasks[f"publish_{warehouse}"]
        assert task["upstream"] == leaves
        assert task["bash_command"] == f"{lakehouse} publish --warehouse {warehouse}"
        assert task["env"] == LINEAGE_ENV and task["append_env"] is True


def test_dq_watchdog_runs_its_checks_side_by_side_with_run_overrides(loaded: Loaded) -> None:
    tasks = loaded.tasks("dq_watchdog")
    assert set(tasks) == WATCHDOG_TASKS
    assert all(task["upstream"] == [] for task in tasks.values())
    lakehouse = airflow.LAKEHOUSE_VENV_BIN / "lakehouse"
    assert tasks["source_freshness"]["bash_command"] == (
        f"{airflow.LAKEHOUSE_VENV_BIN / 'dbt'} source freshness --project-dir {DBT_PROJECT_DIR} "
        f"--profiles-dir {DBT_PROFILES_DIR} --target-path target/watchdog"
    )
    assert tasks["report"]["bash_command"] == (
        f"{lakehouse} report --html-only && {lakehouse} docs --lineage-only"
    )
    # the command tests/fast/test_change_alert.py runs through the notifiers (change_alert_probe)
    assert tasks["gold_changes"]["bash_command"] == f"{lakehouse} watchdog changes"
    rendered = loaded.bag["dags"]["dq_watchdog"]["rendered"]
    assert rendered == {
        "volume": {
            "defaults": f"{lakehouse} watchdog volume",
            "overridden": f"{lakehouse} watchdog volume --volume-tolerance 0.25",
        },
        "quarantine_growth": {
            "defaults": f"{lakehouse} watchdog quarantine",
            "overridden": f"{lakehouse} watchdog quarantine --quarantine-max-share 0.25",
        },
    }


def test_every_task_retries_and_alerts_as_the_defaults_say(loaded: Loaded) -> None:
    orch = loaded.settings.orchestration
    retry = orch.retry
    channels = [NOTIFIERS[c] for c in ("log", "webhook", "email")]  # the order they run in
    for dag_id in DAG_IDS:
        for task_id, task in loaded.tasks(dag_id).items():
            where = f"{dag_id}.{task_id}"
            # a breach is not transient, nor is a backfill request the check refused
            final = dag_id == "dq_watchdog" or where == "lakehouse_backfill.check"
            retries = 0 if final else retry.retries
            assert task["retries"] == retries, where
            assert task["retry_delay_s"] == retry.delay_s, where
            assert task["retry_exponential_backoff"] == retry.backoff_multiplier, where
            assert task["max_retry_delay_s"] == retry.max_delay_s, where
            # a notifier per channel (Cosmos' producer adds a callback of its own after them)
            assert task["on_failure_callback"][: len(channels)] == channels, where


def test_ingest_and_build_promise_a_deadline_alerting_every_channel(loaded: Loaded) -> None:
    orch = loaded.settings.orchestration
    promises = {"ingest_sources": orch.ingest_deadline_s, "build_analytics": orch.build_deadline_s}
    log_file = str(loaded.settings.home / "alerts" / "alerts.jsonl")
    for dag_id, seconds in promises.items():
        deadlines = loaded.bag["dags"][dag_id]["deadlines"]
        assert {d["reference"] for d in deadlines} == {"DagRunQueuedAtDeadline"}
        assert {d["interval_s"] for d in deadlines} == {seconds}
        by_channel = {d["callback"]: d["kwargs"] for d in deadlines}
        assert set(by_channel) == set(NOTIFIERS.values())
        promise = by_channel[NOTIFIERS["log"]]["promise"]
        assert promise.startswith(f"{dag_id} within ")
        assert by_channel[NOTIFIERS["log"]] == {"path": log_file, "promise": promise}
        assert by_channel[NOTIFIERS["webhook"]] == {"promise": promise}
        email = by_channel[NOTIFIERS["email"]]
        assert email["to"] == "data@example.com"
        assert promise in email["html_content"] and "dag_run.dag_id" in email["subject"]
    assert loaded.bag["dags"]["dq_watchdog"]["deadlines"] == []


def test_no_dag_file_imports_platform_code(loaded: Loaded) -> None:
    """The DAGs reach the platform through its executables only (two environments that do not
    resolve together): nothing of lakehouse/ or ingestion/ is imported, at parse or in the code."""
    assert loaded.bag["platform_modules"] == []
    orchestration = airflow.ORCHESTRATION_DIR
    files = [*orchestration.glob("dags/*.py"), *orchestration.glob("lakehouse_airflow/*.py")]
    assert files
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not [n for n in names if n.split(".")[0] in PLATFORM_PACKAGES], path


def test_bronze_assets_reach_openlineage_as_the_dataset_the_load_and_dbt_emit(
    loaded: Loaded,
) -> None:
    """Airflow's OpenLineage provider translates each Asset (an outlet of ingest_sources, a
    schedule of build_analytics) into the very namespace and name lakehouse gives the table
    (naming.bronze_location, what the dlt load emits): one identity, not a third."""
    expected = {}
    for source in SOURCES:
        outlets = loaded.tasks("ingest_sources")[f"load_{source}"]["outlets"]
        assert outlets, source
        for outlet in outlets:
            table = outlet["name"].removeprefix(f"bronze_{source}.")
            dataset = naming.bronze_location(loaded.settings, source, table)
            assert outlet["openlineage"] == asdict(dataset), outlet
            expected[outlet["name"]] = asdict(dataset)
    scheduled_on = loaded.bag["dags"]["build_analytics"]["scheduled_on"]
    assert {a["name"]: a["openlineage"] for a in scheduled_on} == {
        name: dataset for name, dataset in expected.items() if not name.endswith(".quarantine")
    }
    assert all(d["namespace"] == "file" and d["name"].startswith("/") for d in expected.values())


def test_a_lake_on_s3_gets_asset_uris_the_s3_converter_names_as_lakehouse_does(
    tmp_settings: Settings,
) -> None:
    """``s3://<bucket>/<key>``: the amazon provider's converter (not installed here) gives
    namespace ``s3://<bucket>`` and the key as name, as location_dataset does."""
    on_s3 = tmp_settings.model_copy(update={
        "storage": tmp_settings.storage.model_copy(update={"root": "s3://lake/dev"}),
    })  # fmt: skip
    dataset = naming.bronze_location(on_s3, "crm", "contacts")
    uri = airflow.asset_uri(dataset)
    assert uri == f"{dataset.namespace}/{dataset.name}"
    parts = urlsplit(uri)
    assert (f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/")) == (
        dataset.namespace,
        dataset.name,
    )


def test_a_time_scheduled_dag_runs_its_most_recent_due_time_at_first_start(
    loaded: Loaded,
) -> None:
    """As the README says: on the first `make airflow` each cron-scheduled DAG runs the latest
    time its cron was due, at once, not the next one (Airflow 3's default for a cron schedule
    with no start_date): the first run is due already and the next is still to come."""
    schedules = loaded.settings.orchestration.schedules.model_dump()
    assert {d for d, cron in schedules.items() if cron} == {"ingest_sources", "dq_watchdog"}
    for dag_id, cron in schedules.items():
        runs = loaded.bag["dags"][dag_id]["first_runs"]
        assert runs["timetable"].endswith("CronTriggerTimetable"), dag_id
        asked_at, first, second = (
            datetime.fromisoformat(runs[k]) for k in ("asked_at", "first", "second")
        )
        assert first <= asked_at < second, (dag_id, cron, runs)
    assert loaded.bag["dags"]["build_analytics"]["first_runs"] is None  # on assets, not time
