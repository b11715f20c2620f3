"""The timetable of a time-scheduled DAG: its cron, and its most recent due run at first start.

Airflow 3 turns a cron ``schedule`` into a ``CronTriggerTimetable`` whose ``run_immediately``
defaults to False: a DAG with no run yet and no ``start_date`` waits for the next cron time
(unless the last one passed less than a tenth of the period ago, at least 5 minutes). So the
first ``make airflow`` ran nothing until then: ``dq_watchdog`` (hourly) the next hour,
``ingest_sources`` (02:00 daily) at the next 02:00. ``run_immediately=True`` runs the most recent
due time at once instead, as the README promises (an ingest, then a build, within a minute of the
first start). It only decides a DAG's first run: once a DAG has runs, the next one follows the
last (``catchup=False``: the latest due time, never a backlog).
"""

from __future__ import annotations

from airflow.sdk import CronTriggerTimetable

TIMEZONE = "UTC"  # Airflow's default_timezone: the crons in lakehouse.yml are UTC
NOT_CRON = {"@once", "@continuous"}  # presets Airflow gives timetables of their own


def timetable(cron: str | None) -> CronTriggerTimetable | str | None:
    """``cron`` (an expression or a preset such as ``@hourly``) run at once when first due;
    None (triggered runs only), ``@once`` and ``@continuous`` are left to Airflow."""
    if cron is None or cron in NOT_CRON:
        return cron
    return CronTriggerTimetable(cron, timezone=TIMEZONE, run_immediately=True)
