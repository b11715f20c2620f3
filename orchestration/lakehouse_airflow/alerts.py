"""Alerts for failed tasks and missed deadlines: one Airflow notifier per channel the settings name.

- ``log`` (always on): ``AuditLogNotifier`` appends one JSON line to ``<home>/alerts/alerts.jsonl``:
  the local default, and the audit trail a test or an operator reads;
- ``webhook``: ``WebhookNotifier`` POSTs the same JSON to ``$LAKEHOUSE_ALERT_WEBHOOK_URL`` (Slack-,
  Teams- or PagerDuty-style receivers; the URL is a secret, so it is read from the environment when
  the alert is sent and never lands in the serialized DAG). Over ``urllib``: the HTTP provider is
  not in the Airflow environment, and one POST does not justify a provider and a connection;
- ``email``: the smtp provider's ``SmtpNotifier``, to ``alerts.email_to`` through Airflow's
  ``smtp_default`` connection (defined in the environment, e.g. ``AIRFLOW_CONN_SMTP_DEFAULT``).

Every channel is its own callback, so Airflow keeps a failing channel from stopping the others: a
task runs each ``on_failure_callback`` of its list in turn and logs the one that raises; a DAG gets
one Deadline Alert per channel, each run by the triggerer as its own callback. A notifier is
called with the task's context (``notify``, in the task process) or awaited with the deadline's
context (``async_notify``, in the triggerer: ``AsyncCallback(<notifier class>, kwargs)``
instantiates the class with the kwargs and the context, then awaits it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.sdk import AsyncCallback, BaseNotifier, DeadlineAlert, DeadlineReference

log = logging.getLogger(__name__)
WEBHOOK_URL_ENV = "LAKEHOUSE_ALERT_WEBHOOK_URL"

# The email's subject and body, rendered by SmtpNotifier against the callback's context: a
# task's (``ti``, ``exception``) or a deadline's (``dag_run``, ``deadline``: plain dicts).
_TASK_FAILED_SUBJECT = "[lakehouse] task_failed: {{ ti.dag_id }}"
_TASK_FAILED_BODY = (
    "<b>kind</b>: task_failed<br><b>dag_id</b>: {{ ti.dag_id }}<br><b>run_id</b>: {{ ti.run_id }}"
    "<br><b>task_id</b>: {{ ti.task_id }}<br><b>try_number</b>: {{ ti.try_number }}"
    "<br><b>error</b>: {{ exception | e }}<br><b>log_url</b>: {{ ti.log_url }}"
)
_DEADLINE_MISSED_SUBJECT = "[lakehouse] deadline_missed: {{ dag_run.dag_id }}"
_DEADLINE_MISSED_BODY = (
    "<b>kind</b>: deadline_missed<br><b>dag_id</b>: {{ dag_run.dag_id }}"
    "<br><b>run_id</b>: {{ dag_run.dag_run_id }}<br><b>state</b>: {{ dag_run.state }}"
    "<br><b>queued_at</b>: {{ dag_run.queued_at }}"
    "<br><b>deadline_time</b>: {{ deadline.deadline_time }}<br><b>promise</b>: {promise}"
)


def describe(context: Any, promise: str | None = None) -> dict[str, Any]:
    """The alert as one JSON object, from a failed task's context or a missed deadline's (the
    triggerer's simple context: the DAG run and the deadline as dicts)."""
    now = datetime.now(UTC).isoformat()
    if "ti" in context:
        ti = context["ti"]
        return {
            "at": now,
            "kind": "task_failed",
            "dag_id": ti.dag_id,
            "run_id": ti.run_id,
            "task_id": ti.task_id,
            "try_number": ti.try_number,
            "error": str(context.get("exception") or ""),
            "log_url": getattr(ti, "log_url", None),
        }
    run = context.get("dag_run") or {}
    deadline = context.get("deadline") or {}
    return {
        "at": now,
        "kind": "deadline_missed",
        "dag_id": run.get("dag_id"),
        "run_id": run.get("dag_run_id") or run.get("run_id"),
        "state": run.get("state"),
        "queued_at": run.get("queued_at"),
        "deadline_time": deadline.get("deadline_time"),
        "promise": promise,
    }


class _AlertNotifier(BaseNotifier):
    """A channel that sends the alert as JSON (``describe``); ``promise`` names a deadline's."""

    def __init__(self, promise: str | None = None, context: Any = None) -> None:
        super().__init__(context)
        self.promise = promise

    def send(self, alert: dict[str, Any]) -> None:
        raise NotImplementedError

    def notify(self, context: Any) -> None:
        self.send(describe(context, self.promise))

    async def async_notify(self, context: Any) -> None:
        # blocking I/O, off the triggerer's event loop
        await asyncio.to_thread(self.send, describe(context, self.promise))


class AuditLogNotifier(_AlertNotifier):
    """``log``: one JSON line per alert in ``path`` (and the task's or triggerer's log)."""

    def __init__(self, path: str, promise: str | None = None, context: Any = None) -> None:
        super().__init__(promise, context)
        self.path = path

    def send(self, alert: dict[str, Any]) -> None:
        line = json.dumps(alert, default=str)
        path = Path(self.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as out:
            out.write(line + "\n")
        log.error("ALERT %s", line)


class WebhookNotifier(_AlertNotifier):
    """``webhook``: the alert's JSON POSTed to ``$LAKEHOUSE_ALERT_WEBHOOK_URL``."""

    def send(self, alert: dict[str, Any]) -> None:
        target = os.environ.get(WEBHOOK_URL_ENV)
        if not target:
            raise RuntimeError(f"alerts.channels has webhook but {WEBHOOK_URL_ENV} is unset")
        request = urllib.request.Request(
            target,
            data=json.dumps(alert, default=str).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()


def _email_to(alerts: dict[str, Any]) -> str:
    """SmtpNotifier's ``to``, as one string: a Deadline Alert's kwargs must be hashable."""
    return ", ".join(alerts["email_to"])


def on_failure(alerts: dict[str, Any]) -> list[BaseNotifier]:
    """A task's ``on_failure_callback``: a notifier per configured channel."""
    notifiers: list[BaseNotifier] = [AuditLogNotifier(alerts["log_file"])]
    if "webhook" in alerts["channels"]:
        notifiers.append(WebhookNotifier())
    if "email" in alerts["channels"]:
        notifiers.append(SmtpNotifier(to=_email_to(alerts), subject=_TASK_FAILED_SUBJECT,
                                      html_content=_TASK_FAILED_BODY))  # fmt: skip
    return notifiers


def deadline_alerts(alerts: dict[str, Any], within: timedelta, promise: str) -> list[DeadlineAlert]:
    """Airflow 3's replacement for SLAs: when a run is not done ``within`` of being queued, each
    configured channel's notifier runs in the triggerer (one Deadline Alert per channel)."""
    log_kwargs = {"path": alerts["log_file"], "promise": promise}
    callbacks = [AsyncCallback(AuditLogNotifier, kwargs=log_kwargs)]
    if "webhook" in alerts["channels"]:
        callbacks.append(AsyncCallback(WebhookNotifier, kwargs={"promise": promise}))
    if "email" in alerts["channels"]:
        body = _DEADLINE_MISSED_BODY.replace("{promise}", promise)
        callbacks.append(AsyncCallback(SmtpNotifier, kwargs={
            "to": _email_to(alerts), "subject": _DEADLINE_MISSED_SUBJECT, "html_content": body,
        }))  # fmt: skip
    return [
        DeadlineAlert(reference=DeadlineReference.DAGRUN_QUEUED_AT, interval=within, callback=cb)
        for cb in callbacks
    ]
