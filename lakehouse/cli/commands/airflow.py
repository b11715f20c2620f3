"""``lakehouse airflow``: start, stop or describe the local Airflow, or trigger a DAG run."""

from __future__ import annotations

import argparse
import logging
import sys

from lakehouse.core.config import Settings
from lakehouse.stack.services import airflow

log = logging.getLogger(__name__)


def run(settings: Settings, args: argparse.Namespace) -> int:
    action = args.action
    try:
        if action == "trigger":
            return trigger(settings, args)
        if action == "up":
            lines = airflow.start(settings)
        elif action == "down":
            lines = airflow.stop(settings) or ["Airflow was not running"]
        else:
            up = airflow.is_up(settings)
            running = airflow.running_components(settings)
            lines = [
                f"Airflow {'up' if up else 'down'} on {airflow.url(settings)}; "
                f"running: {', '.join(running) or 'nothing'}"
            ]
    except airflow.AirflowError as exc:
        print(f"airflow: {exc}", file=sys.stderr)
        return 1
    for line in lines:
        log.info(line)
    return 0 if action != "status" or airflow.is_up(settings) else 1


def trigger(settings: Settings, args: argparse.Namespace) -> int:
    """Trigger a DAG run through Airflow's REST API; with ``--wait``, exit 1 unless it succeeds."""
    if not args.dag_id:
        print("airflow trigger: name the DAG", file=sys.stderr)
        return 2
    client = airflow.Client(settings)
    run_id = client.trigger(args.dag_id, args.conf)
    log.info(f"{args.dag_id}: queued {run_id} (UI: {airflow.url(settings)})")
    if not args.wait:
        return 0
    state = client.wait(args.dag_id, run_id)["state"]
    log.info(f"{args.dag_id}: {run_id} {state}")
    return 0 if state == "success" else 1
