"""Run by tests/fast/test_alert_notifiers.py with the Airflow environment's Python: send one task
failure and one missed deadline through every channel's notifier, the way Airflow calls them,
to receivers in this process (a webhook receiver, an SMTP receiver), and write what arrived.

- task failure: the notifiers of ``alerts.on_failure`` go through the task runner's own loop over
  ``on_failure_callback`` with a task's context (the task and task instance are plain objects
  here: the loop and the notifiers read their attributes, nothing else);
- missed deadline: each Deadline Alert of ``alerts.deadline_alerts`` runs through Airflow's own
  ``CallbackTrigger``, as in the triggerer, with the simple context the scheduler sends (the DAG
  run and the deadline as JSON-ready dicts).

Twice: with every receiver up, then with the webhook's receiver down (the other channels must
still deliver). Usage: ``python alerts_probe.py <output.json> <folder for the audit logs>``.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import threading
from datetime import timedelta
from email import message_from_string
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any, ClassVar

import structlog

PROMISE = "build_analytics within 0:00:20"


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        self.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


async def _smtp_session(mails: list[str], reader: Any, writer: Any) -> None:
    """Just enough SMTP for smtplib and aiosmtplib: greet, accept every command, keep DATA."""

    async def say(line: str) -> None:
        writer.write(line.encode() + b"\r\n")
        await writer.drain()

    await say("220 probe ESMTP")
    while line := (await reader.readline()).decode().strip():
        verb = line.split(" ", 1)[0].upper()
        if verb in ("EHLO", "HELO"):
            await say("250-probe")
            await say("250 8BITMIME")
        elif verb == "DATA":
            await say("354 end with <CRLF>.<CRLF>")
            body = []
            while (data := (await reader.readline()).decode()) not in (".\r\n", ""):
                body.append(data)
            mails.append("".join(body))
            await say("250 OK queued")
        elif verb == "QUIT":
            await say("221 bye")
            break
        else:
            await say("250 OK")
    writer.close()


def _task_context() -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="dq_watchdog", run_id="manual__1", task_id="quarantine_growth",
                         try_number=1, log_url="http://airflow/log")  # fmt: skip
    error = RuntimeError("`lakehouse watchdog quarantine` exited 1: bronze_kafka.quarantine <b>")
    return {"ti": ti, "task_instance": ti, "exception": error}


def _deadline_context() -> dict[str, Any]:
    run = {"dag_id": "build_analytics", "dag_run_id": "asset_triggered__2", "state": "running",
           "queued_at": "2026-01-01T00:00:00Z"}  # fmt: skip
    return {"dag_run": run, "deadline": {"id": "1", "deadline_time": "2026-01-01T00:00:20Z"}}


def _html(mail: Message) -> str:
    part = next(p for p in mail.walk() if p.get_content_type() == "text/html")
    return part.get_payload(decode=True).decode()


async def _send_both(alerts: dict[str, Any]) -> list[dict[str, Any]]:
    """One task failure, one missed deadline; the deadline callbacks' final states."""
    from airflow.sdk.execution_time.task_runner import _run_task_state_change_callbacks
    from airflow.triggers.callback import CallbackTrigger

    from lakehouse_airflow.alerts import deadline_alerts, on_failure

    # the task runner's own loop over on_failure_callback (each callback's error logged, the
    # next still called); blocking SMTP and HTTP, off this loop, which serves the SMTP receiver
    task = SimpleNamespace(on_failure_callback=on_failure(alerts))
    log = structlog.get_logger("probe")  # the task runner logs with keywords
    await asyncio.to_thread(_run_task_state_change_callbacks, task, "on_failure_callback",
                            _task_context(), log)  # fmt: skip
    states = []
    for alert in deadline_alerts(alerts, timedelta(seconds=20), PROMISE):
        kwargs = {**alert.callback.kwargs, "context": _deadline_context()}
        trigger = CallbackTrigger(callback_path=alert.callback.path, callback_kwargs=kwargs)
        states.extend([event.payload["state"] async for event in trigger.run()][-1:])
    return states


async def main(output: str, home: str) -> None:
    mails: list[str] = []
    smtp = await asyncio.start_server(lambda r, w: _smtp_session(mails, r, w), "127.0.0.1", 0)
    smtp_port = smtp.sockets[0].getsockname()[1]
    http = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    os.environ["AIRFLOW_CONN_SMTP_DEFAULT"] = json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": smtp_port,
        "extra": {"from_email": "airflow@example.com", "disable_ssl": True, "disable_tls": True,
                  "retry_limit": 0, "timeout": 10},
    })  # fmt: skip
    with socket.socket() as closed:  # a port nothing listens on: the webhook receiver is down
        closed.bind(("127.0.0.1", 0))
        down = closed.getsockname()[1]
    receivers = {"up": f"http://127.0.0.1:{http.server_port}/alerts",
                 "down": f"http://127.0.0.1:{down}/alerts"}  # fmt: skip
    found = {}
    for name, url in receivers.items():
        os.environ["LAKEHOUSE_ALERT_WEBHOOK_URL"] = url
        log_file = os.path.join(home, name, "alerts.jsonl")
        alerts = {"channels": ["log", "webhook", "email"], "email_to": ["data@example.com"],
                  "log_file": log_file}  # fmt: skip
        states = await _send_both(alerts)
        emails = [message_from_string(m) for m in mails]
        with open(log_file) as audit:
            found[name] = {
                "deadline_callbacks": states,
                "audit": [json.loads(line) for line in audit],
                "webhook": list(_Receiver.received),
                "emails": [{"subject": e["Subject"], "to": e["To"], "from": e["From"],
                            "body": _html(e)} for e in emails],
            }  # fmt: skip
        mails.clear()
        _Receiver.received.clear()
    smtp.close()
    http.shutdown()
    with open(output, "w") as out:
        json.dump(found, out, default=str)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
