"""Airflow DAG ``ingest_sources``: load the five sources into bronze, one task per source.

Each task runs the source's dlt loader (``lakehouse ingest --source <name>``, as a
``PlatformCommand``: lakehouse_airflow/commands.py) and, when it succeeds, updates the Airflow
Asset of every bronze table that load writes; build_analytics is scheduled on those assets.
The run promises to finish within ``ingest_deadline_s`` of being queued (a Deadline Alert;
Airflow 3 has no SLAs).
"""

from __future__ import annotations

from airflow.sdk import DAG

from lakehouse_airflow import assets
from lakehouse_airflow.commands import MACROS, PlatformCommand, command
from lakehouse_airflow.defaults import deadline, default_args
from lakehouse_airflow.schedules import timetable
from lakehouse_airflow.settings import load

cfg = load()

with DAG(
    dag_id="ingest_sources",
    description="dlt loads of Snowflake, CRM, Redshift, FX and Kafka into bronze Delta tables",
    schedule=timetable(cfg.schedules["ingest_sources"]),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(cfg),
    deadline=deadline(cfg, cfg.ingest_deadline, f"ingest_sources within {cfg.ingest_deadline}"),
    user_defined_macros=MACROS,
    tags=["lakehouse", "bronze", "dlt"],
    doc_md=__doc__,
):
    for source in cfg.bronze_tables:
        PlatformCommand(
            task_id=f"load_{source}",
            bash_command=command(cfg.lakehouse, "ingest", "--source", source),
            doc_md="dlt: extract, normalise, contract-check and load one source into bronze.",
            outlets=assets.bronze_of(cfg, source),
        )
