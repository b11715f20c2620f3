"""Alerts for failed tasks and missed deadlines, through the channels the settings name.

- ``log`` (always on): one JSON line appended to ``<home>/alerts/alerts.jsonl``: the local
  default, and the audit trail a test or an operator reads;
- ``webhook``: the same JSON POSTed to ``$LAKEHOUSE_ALERT_WEBHOOK_URL`` (Slack-, Teams- or
  PagerDuty-style receivers; the URL is a secret, so it lives in the environment);
- ``email``: to ``alerts.email_to`` through Airflow's ``smtp_default`` connection (defined in
  the environment, e.g. ``AIRFLOW_CONN_SMTP_DEFAULT``).

A channel that fails is logged and does not stop the others: an alert must not be lost because
one receiver is down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lakehouse_airflow.settings import load

log = logging.getLogger(__name__)


def _deliver(alert: dict[str, Any]) -> None:
    """Send ``alert`` to every configured channel."""
    conf = load().alerts
    alert = {"at": datetime.now(UTC).isoformat(), **alert}
    path = Path(conf["log_file"])
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(json.dumps(alert, default=str) + "\n")
    log.error("ALERT %s", json.dumps(alert, default=str))
    for channel in conf["channels"]:
        try:
            if channel == "webhook":
                _webhook(alert)
            elif channel == "email":
                _email(alert, conf["email_to"])
        except Exception:  # one broken receiver must not swallow the alert
            log.exception("alert channel %s failed", channel)


def _webhook(alert: dict[str, Any]) -> None:
    target = os.environ.get("LAKEHOUSE_ALERT_WEBHOOK_URL")
    if not target:
        raise RuntimeError("alerts.channels has webhook but LAKEHOUSE_ALERT_WEBHOOK_URL is unset")
    request = urllib.request.Request(
        target,
        data=json.dumps(alert, default=str).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()


def _email(alert: dict[str, Any], to: list[str]) -> None:
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    if not to:
        raise RuntimeError("alerts.channels has email but alerts.email_to is empty")
    subject = f"[lakehouse] {alert['kind']}: {alert['dag_id']}"
    body = "<br>".join(f"<b>{k}</b>: {v}" for k, v in alert.items())
    with SmtpHook(smtp_conn_id="smtp_default") as smtp:
        smtp.send_email_smtp(to=to, subject=subject, html_content=body)


def task_failed(context: Any) -> None:
    """``on_failure_callback``: a task failed after its last retry."""
    ti = context["ti"]
    _deliver({
        "kind": "task_failed",
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "task_id": ti.task_id,
        "try_number": ti.try_number,
        "error": str(context.get("exception") or ""),
        "log_url": getattr(ti, "log_url", None),
    })  # fmt: skip


async def deadline_missed(context: dict[str, Any], promise: str) -> None:
    """Deadline Alert callback (runs in the triggerer): a DAG run outlived its promise."""
    run = context.get("dag_run") or {}
    deadline = context.get("deadline") or {}
    alert = {
        "kind": "deadline_missed",
        "dag_id": run.get("dag_id"),
        "run_id": run.get("dag_run_id") or run.get("run_id"),
        "state": run.get("state"),
        "queued_at": run.get("queued_at"),
        "deadline_time": deadline.get("deadline_time"),
        "promise": promise,
    }
    await asyncio.to_thread(_deliver, alert)
