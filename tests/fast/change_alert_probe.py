"""Run by tests/fast/test_change_alert.py with the Airflow environment's Python: the dq_watchdog's
``gold_changes`` task, run as Airflow runs it, against a lake home, with its failure sent through
the alert notifiers, the way a failed task's are.

The task is the DAG's operator (``PlatformCommand``) with the DAG's command line (the test passes
the one tests/fast/test_dag_integrity.py finds in the DAG); it runs the platform's real
``lakehouse watchdog changes``. Its failure goes through the task runner's own loop over
``on_failure_callback``, whose notifiers are ``alerts.on_failure``'s (the ``log`` channel: the
audit trail every other channel sends the same JSON of). Usage:
``python change_alert_probe.py <output.json> <audit log> <runs> <command line>``.
"""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace
from typing import Any

import structlog


def main(output: str, log_file: str, runs: int, bash_command: str) -> None:
    from airflow.sdk.exceptions import AirflowException
    from airflow.sdk.execution_time.task_runner import _run_task_state_change_callbacks

    from lakehouse_airflow.alerts import on_failure
    from lakehouse_airflow.commands import PlatformCommand

    alerts = {"channels": ["log"], "email_to": [], "log_file": log_file}
    task = PlatformCommand(task_id="gold_changes", bash_command=bash_command, env={},
                           on_failure_callback=on_failure(alerts))  # fmt: skip
    log = structlog.get_logger("probe")
    results: list[dict[str, Any]] = []
    for attempt in range(1, runs + 1):
        ti = SimpleNamespace(dag_id="dq_watchdog", run_id=f"scheduled__{attempt}",
                             task_id=task.task_id, try_number=1, log_url=None)  # fmt: skip
        try:
            task.execute({})
            results.append({"state": "success"})
        except AirflowException as exc:
            context = {"ti": ti, "task_instance": ti, "exception": exc}
            _run_task_state_change_callbacks(task, "on_failure_callback", context, log)
            results.append({"state": "failed", "error": str(exc)})
    with open(output, "w") as out:
        json.dump(results, out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
