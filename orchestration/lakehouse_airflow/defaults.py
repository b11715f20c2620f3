"""Task defaults every lakehouse DAG shares: retries with exponential backoff, alert on failure
(a notifier per channel, lakehouse_airflow/alerts.py), a deadline alerting the same channels."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DeadlineAlert

from lakehouse_airflow.alerts import deadline_alerts, on_failure
from lakehouse_airflow.settings import DagSettings


def default_args(cfg: DagSettings) -> dict[str, Any]:
    retry = cfg.retry
    return {
        "owner": "data-platform",
        "retries": retry["retries"],
        "retry_delay": timedelta(seconds=retry["delay_s"]),
        # Airflow 3: a float multiplier, the wait grows delay, delay*m, delay*m^2 ...
        "retry_exponential_backoff": retry["backoff_multiplier"],
        "max_retry_delay": timedelta(seconds=retry["max_delay_s"]),
        "on_failure_callback": on_failure(cfg.alerts),
    }


def deadline(cfg: DagSettings, within: timedelta, promise: str) -> list[DeadlineAlert]:
    """Airflow 3's replacement for SLAs: alert through every channel when a run is not done
    ``within`` of queueing."""
    return deadline_alerts(cfg.alerts, within, promise)


def record_dbt_metrics(
    project_dir: str, lakehouse: str, log_file: str, context: Any = None, **_: Any
) -> None:
    """Cosmos callback after a dbt command: record its models in ops.run_metrics under the DAG
    run's id, as ``lakehouse dbt`` does for the CLI (lakehouse/observability/run_metrics.py),
    and the change audit of the gold models it rebuilt in ops.table_changes, as ``lakehouse
    build`` does (lakehouse/observability/table_changes.py: ``ops record-dbt`` records both).

    Only the task that ran dbt has a run_results.json. The artifacts are copied (Cosmos deletes
    its temporary project when the callback returns) and recorded by a detached process, so the
    task does not wait for a Python start-up; the recorder's output goes to ``log_file``, and a
    copy it could not record stays for a person to look at."""
    target = Path(project_dir) / "target"
    if not (target / "run_results.json").is_file():
        return
    keep = Path(tempfile.mkdtemp(prefix="dbt-metrics-"))
    for name in ("run_results.json", "manifest.json"):
        shutil.copy2(target / name, keep / name)
    env = dict(os.environ)
    if context:
        env["LAKEHOUSE_RUN_ID"] = f"{context['dag'].dag_id}/{context['run_id']}"
    script = '"$0" ops record-dbt --target-dir "$1" && rm -rf "$1"'
    Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as out:
        # niced: it must not slow the watcher tasks still finishing beside it
        argv = ["nice", "-n", "19", "/bin/sh", "-c", script, lakehouse, str(keep)]
        subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out,
                         stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
