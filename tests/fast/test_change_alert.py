"""A gold change over its threshold alerts once, through the watchdog's channels.

The dq_watchdog's ``gold_changes`` task (its operator and command line, run by
tests/fast/change_alert_probe.py in ``.venv-airflow``) runs the real ``lakehouse watchdog changes``
on a lake home holding ``ops.table_changes`` rows (tests/fast/change_rows.py); its failure goes
through the task runner's loop over the alert notifiers to the audit log, as any watchdog breach
does. tests/fast/test_dag_integrity.py checks the DAG has that task with that command line and
every channel's notifier.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from change_rows import change, write_changes

from lakehouse.core.config import Settings
from lakehouse.stack.services import airflow

PROBE = Path(__file__).with_name("change_alert_probe.py")
COMMAND = f"{airflow.LAKEHOUSE_VENV_BIN / 'lakehouse'} watchdog changes"


def _run_task(settings: Settings, tmp_path: Path, runs: int) -> tuple[list[dict], list[dict]]:
    """The task's state per run, and the alerts that reached the audit log."""
    tmp_path.mkdir(exist_ok=True)
    audit, output = tmp_path / "alerts.jsonl", tmp_path / "runs.json"
    env = {"PATH": os.environ["PATH"], "AIRFLOW_HOME": str(tmp_path / "airflow"),
           "PYTHONPATH": str(airflow.ORCHESTRATION_DIR),
           "LAKEHOUSE_HOME": str(settings.home)}  # fmt: skip
    argv = [str(airflow.VENV / "bin" / "python"), str(PROBE), str(output), str(audit), str(runs),
            COMMAND]  # fmt: skip
    done = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    alerts: list[dict[str, Any]] = []
    if audit.exists():
        alerts = [json.loads(line) for line in audit.read_text().splitlines()]
    return json.loads(output.read_text()), alerts


def test_a_change_over_the_threshold_alerts_once_and_one_under_it_never(
    tmp_settings: Settings, tmp_path: Path
) -> None:
    write_changes(tmp_settings, [
        change(1, changed=5, columns={"lifetime_value": 5}),  # 5%: within 20%
        change(2, changed=30, added=6, columns={"lifetime_value": 30, "segment": 2}),  # 36%
        change(2, table="gold.fx_rates_daily", changed=3, rows_before=400),  # 0.75%
    ])  # fmt: skip
    runs, alerts = _run_task(tmp_settings, tmp_path, runs=2)
    states = [r["state"] for r in runs]
    assert states == ["failed", "success"], ("raised once, then remembered", runs)
    (alert,) = alerts
    assert alert["kind"] == "task_failed" and alert["task_id"] == "gold_changes"
    assert alert["run_id"] == "scheduled__1"
    # the alert carries the command's last line: which table, which build, how much
    assert "gold.customer_360" in alert["error"] and "build-02" in alert["error"]
    assert "36 of 100 rows changed" in alert["error"] and "36.0%, limit 20.0%" in alert["error"]
    assert "lifetime_value (30)" in alert["error"]
    assert "build-01" not in alert["error"] and "gold.fx_rates_daily" not in alert["error"]

    # a later build over the threshold is a new alert; the old one stays quiet
    write_changes(tmp_settings, [change(3, removed=25, columns={})])
    runs, alerts = _run_task(tmp_settings, tmp_path / "again", runs=1)
    assert [r["state"] for r in runs] == ["failed"]
    (alert,) = alerts
    assert "build-03" in alert["error"] and "build-02" not in alert["error"]


def test_changes_under_the_threshold_or_no_audit_yet_never_alert(
    tmp_settings: Settings, tmp_path: Path
) -> None:
    runs, alerts = _run_task(tmp_settings, tmp_path / "empty", runs=1)
    assert [r["state"] for r in runs] == ["success"] and alerts == [], runs
    write_changes(tmp_settings, [change(1, changed=20), change(2, added=19, removed=1)])  # 20%
    runs, alerts = _run_task(tmp_settings, tmp_path / "under", runs=1)
    assert [r["state"] for r in runs] == ["success"] and alerts == [], runs
