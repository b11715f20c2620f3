"""Airflow DAG ``dq_watchdog``: is bronze fresh, of the usual volume, and not quarantining much?

Hourly. Three checks, each failing its task (and so alerting) on a breach:
- freshness: ``dbt source freshness`` against the ``freshness`` each bronze source declares;
- volume: rows of the latest load day per bronze table vs its trailing daily average, within
  ``watchdog.volume_tolerance`` (``lakehouse watchdog volume``, from Delta commit history);
- quarantine growth: quarantined rows as a share of rows read over the last window, at most
  ``watchdog.quarantine_max_share`` (``lakehouse watchdog quarantine``).
A breach is not transient, so these tasks do not retry: they alert at once. Thresholds can be
overridden per run (trigger with conf ``{"volume_tolerance": 0.3}``). A fourth task refreshes
the HTML watchdog report (``lakehouse report``: freshness, volume, DQ failures, quarantine, run
durations, cost) and the lineage page, beside the checks rather than after them, so the run
still fails on a breach and the report still shows it.
"""

from __future__ import annotations

import logging

from airflow.sdk import DAG, Param, task

from lakehouse_airflow.defaults import default_args, run_cli
from lakehouse_airflow.settings import load

cfg = load()
log = logging.getLogger("dq_watchdog")


def _override(flag: str, value: float | None) -> list[str]:
    return [] if value is None else [flag, str(value)]


with DAG(
    dag_id="dq_watchdog",
    description="bronze freshness (dbt), volume vs trailing average, quarantine growth",
    schedule=cfg.schedules["dq_watchdog"],
    catchup=False,
    max_active_runs=1,
    default_args={**default_args(cfg), "retries": 0},
    params={
        "volume_tolerance": Param(None, type=["null", "number"]),
        "quarantine_max_share": Param(None, type=["null", "number"]),
    },
    tags=["lakehouse", "data-quality", "watchdog"],
    doc_md=__doc__,
):

    @task
    def source_freshness() -> None:
        """dbt source freshness: error-level staleness fails the task."""
        run_cli([str(cfg.dbt), "source", "freshness",
                 "--project-dir", str(cfg.dbt_project_dir),
                 "--profiles-dir", str(cfg.profiles_yml.parent),
                 "--target-path", "target/watchdog"], log)  # fmt: skip

    @task
    def volume(params: dict | None = None) -> None:
        tolerance = (params or {}).get("volume_tolerance")
        run_cli([str(cfg.lakehouse), "watchdog", "volume",
                 *_override("--volume-tolerance", tolerance)], log)  # fmt: skip

    @task
    def quarantine_growth(params: dict | None = None) -> None:
        share = (params or {}).get("quarantine_max_share")
        run_cli([str(cfg.lakehouse), "watchdog", "quarantine",
                 *_override("--quarantine-max-share", share)], log)  # fmt: skip

    @task
    def report() -> None:
        """Refresh the HTML watchdog report and the lineage page. Independent of the checks (it
        judges bronze itself), so a breach never stops the page that shows it."""
        run_cli([str(cfg.lakehouse), "report", "--html-only"], log)
        run_cli([str(cfg.lakehouse), "docs", "--lineage-only"], log)

    source_freshness()
    volume()
    quarantine_growth()
    report()
