"""Every alert channel is an Airflow notifier, and each delivers on its own: a task failure goes
through the task runner's loop over ``on_failure_callback``, a missed deadline through Airflow's
``CallbackTrigger`` (as in the triggerer), to an audit log, a webhook receiver and an SMTP
receiver in the probe's process (tests/fast/alerts_probe.py, run with ``.venv-airflow``'s Python).
No Airflow component, no engine. tests/test_orchestration.py sees the same alerts arrive from a
real Airflow (log and webhook channels)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lakehouse.stack.services import airflow

PROBE = Path(__file__).with_name("alerts_probe.py")
TASK_FAILED = {"at", "kind", "dag_id", "run_id", "task_id", "try_number", "error", "log_url"}
DEADLINE_MISSED = {"at", "kind", "dag_id", "run_id", "state", "queued_at", "deadline_time",
                   "promise"}  # fmt: skip


@pytest.fixture(scope="module")
def delivered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("alerts")
    env = {"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(home),
           "PYTHONPATH": str(airflow.ORCHESTRATION_DIR)}  # fmt: skip
    output = home / "delivered.json"
    argv = [str(airflow.VENV / "bin" / "python"), str(PROBE), str(output), str(home)]
    done = subprocess.run(argv, env=env, cwd=home, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(output.read_text())


def test_every_channel_delivers_a_task_failure_and_a_missed_deadline(delivered: dict) -> None:
    up = delivered["up"]
    assert up["deadline_callbacks"] == ["success", "success", "success"]  # log, webhook, email
    failed, missed = up["audit"]
    # the audit trail's fields, which tests/test_orchestration.py and operators read
    assert set(failed) == TASK_FAILED and set(missed) == DEADLINE_MISSED
    assert failed["kind"] == "task_failed" and failed["task_id"] == "quarantine_growth"
    assert "bronze_kafka.quarantine" in failed["error"]
    assert missed["kind"] == "deadline_missed" and missed["run_id"] == "asset_triggered__2"
    assert missed["promise"] == "build_analytics within 0:00:20"
    # the webhook receives the same alerts (each notifier stamps its own ``at``)
    strip = lambda alert: {k: v for k, v in alert.items() if k != "at"}  # noqa: E731
    assert [strip(a) for a in up["webhook"]] == [strip(failed), strip(missed)]
    # and the mail (SmtpNotifier, sync in the task, async in the triggerer)
    task_mail, deadline_mail = up["emails"]
    assert task_mail["subject"] == "[lakehouse] task_failed: dq_watchdog"
    assert task_mail["to"] == "data@example.com" and task_mail["from"] == "airflow@example.com"
    assert "bronze_kafka.quarantine &lt;b&gt;" in task_mail["body"]  # the error, HTML-escaped
    assert deadline_mail["subject"] == "[lakehouse] deadline_missed: build_analytics"
    assert "build_analytics within 0:00:20" in deadline_mail["body"]
    assert "asset_triggered__2" in deadline_mail["body"]


def test_a_receiver_that_is_down_does_not_stop_the_other_channels(delivered: dict) -> None:
    down = delivered["down"]
    assert down["deadline_callbacks"] == ["success", "failed", "success"]
    assert [a["kind"] for a in down["audit"]] == ["task_failed", "deadline_missed"]
    assert down["webhook"] == []
    assert [m["subject"] for m in down["emails"]] == [
        "[lakehouse] task_failed: dq_watchdog", "[lakehouse] deadline_missed: build_analytics",
    ]  # fmt: skip
