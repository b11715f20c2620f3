"""Airflow DAG ``dq_watchdog``: is bronze fresh, of the usual volume, and not quarantining much?
Did a build change more of a gold table than it should?

Hourly. Four checks, each failing its task (and so alerting) on a breach:
- freshness: ``dbt source freshness`` against the ``freshness`` each bronze source declares;
- volume: rows of the latest load day per bronze table vs its trailing daily average, within
  ``watchdog.volume_tolerance`` (``lakehouse watchdog volume``, from Delta commit history);
- quarantine growth: quarantined rows as a share of rows read over the last window, at most
  ``watchdog.quarantine_max_share`` (``lakehouse watchdog quarantine``);
- gold changes: a build that changed a larger share of a gold table's rows than the change
  audit's threshold (``ops.table_changes``' ``over_threshold``), raised once per build and table
  (``lakehouse watchdog changes``: the next run does not raise it again).
A breach is not transient, so these tasks do not retry: they alert at once. Thresholds can be
overridden per run (trigger with conf ``{"volume_tolerance": 0.3}``). A fifth task refreshes
the HTML watchdog report (``lakehouse report``: freshness, volume, DQ failures, changes in gold,
quarantine, run durations, cost) and the lineage page, beside the checks rather than after them,
so the run still fails on a breach and the report still shows it.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param

from lakehouse_airflow.commands import MACROS, PlatformCommand, command, commands
from lakehouse_airflow.defaults import default_args
from lakehouse_airflow.schedules import timetable
from lakehouse_airflow.settings import load

cfg = load()


def _override(flag: str, param: str) -> str:
    """`` <flag> <value>`` when the run sets the param, nothing otherwise (rendered per run; the
    params' schema admits only numbers)."""
    return f"{{% if params.{param} is not none %}} {flag} {{{{ params.{param} }}}}{{% endif %}}"


with DAG(
    dag_id="dq_watchdog",
    description="bronze freshness (dbt), volume vs trailing average, quarantine growth, "
    "gold changes over their threshold",
    schedule=timetable(cfg.schedules["dq_watchdog"]),
    catchup=False,
    max_active_runs=1,
    default_args={**default_args(cfg), "retries": 0},
    params={
        "volume_tolerance": Param(None, type=["null", "number"]),
        "quarantine_max_share": Param(None, type=["null", "number"]),
    },
    user_defined_macros=MACROS,
    tags=["lakehouse", "data-quality", "watchdog"],
    doc_md=__doc__,
):
    PlatformCommand(
        task_id="source_freshness",
        doc_md="dbt source freshness: error-level staleness fails the task.",
        bash_command=command(cfg.dbt, "source", "freshness",
                             "--project-dir", cfg.dbt_project_dir,
                             "--profiles-dir", cfg.profiles_yml.parent,
                             "--target-path", "target/watchdog"),
    )  # fmt: skip
    PlatformCommand(
        task_id="volume",
        bash_command=command(cfg.lakehouse, "watchdog", "volume")
        + _override("--volume-tolerance", "volume_tolerance"),
    )
    PlatformCommand(
        task_id="quarantine_growth",
        bash_command=command(cfg.lakehouse, "watchdog", "quarantine")
        + _override("--quarantine-max-share", "quarantine_max_share"),
    )
    PlatformCommand(
        task_id="gold_changes",
        doc_md="Each (build, gold table) of ops.table_changes over its threshold fails the task "
        "once; later runs pass on it (it is remembered in ops.table_change_alerts).",
        bash_command=command(cfg.lakehouse, "watchdog", "changes"),
    )
    PlatformCommand(
        task_id="report",
        doc_md="Refresh the HTML watchdog report and the lineage page. Independent of the checks "
        "(it judges bronze itself), so a breach never stops the page that shows it.",
        bash_command=commands(
            [cfg.lakehouse, "report", "--html-only"], [cfg.lakehouse, "docs", "--lineage-only"]
        ),
    )
