"""Task defaults every lakehouse DAG shares: retries with exponential backoff, alert on failure."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference
from airflow.sdk.exceptions import AirflowException

from lakehouse_airflow.alerts import deadline_missed, task_failed
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
        "on_failure_callback": task_failed,
    }


def deadline(within: timedelta, promise: str) -> DeadlineAlert:
    """Airflow 3's replacement for SLAs: alert when a run is not done ``within`` of queueing."""
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=within,
        callback=AsyncCallback(deadline_missed, kwargs={"promise": promise}),
    )


def lineage_parent() -> dict[str, str]:
    """The running task's OpenLineage run, named so that the runs the command emits (its dlt
    loads, its publish) become children of the task's run in the lineage graph; and the DAG
    run's id, under which the command records its jobs' metrics."""
    from airflow.providers.openlineage.plugins.macros import lineage_parent_id
    from airflow.sdk import get_current_context

    context = get_current_context()
    return {
        "OPENLINEAGE_PARENT_ID": lineage_parent_id(context["ti"]),
        # ops.run_metrics groups the jobs of one DAG run under its run id
        # (lakehouse/observability/run_metrics.py).
        "LAKEHOUSE_RUN_ID": f"{context['dag'].dag_id}/{context['run_id']}",
    }


def run_cli(argv: Sequence[str], log: Any) -> str:
    """Run a platform command (in its own environment) as a child of the running task, stream
    its output to the task log and fail the task with the command's last words, so the alert
    says what went wrong."""
    lines: list[str] = []
    env = {**os.environ, **lineage_parent()}
    with subprocess.Popen(
        list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.info(line.rstrip())
            lines.append(line.rstrip())
    if proc.returncode != 0:
        tail = " | ".join(lines[-5:])
        raise AirflowException(f"`{' '.join(map(str, argv[1:]))}` exited {proc.returncode}: {tail}")
    return "\n".join(lines)


def record_dbt_metrics(
    project_dir: str, lakehouse: str, log_file: str, context: Any = None, **_: Any
) -> None:
    """Cosmos callback after a dbt command: record its models in ops.run_metrics under the DAG
    run's id, as ``lakehouse dbt`` does for the CLI (lakehouse/observability/run_metrics.py).

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
