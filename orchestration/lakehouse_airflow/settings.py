"""The DAGs' view of the platform, read from ``$LAKEHOUSE_AIRFLOW_SETTINGS``.

``lakehouse airflow up`` (lakehouse/stack/services/airflow.py) writes that file from the validated
``lakehouse.yml``, so the DAG files parse no YAML and repeat no default.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class DagSettings:
    home: Path
    lakehouse: Path  # the platform's CLI, in the dbt environment
    dbt: Path  # dbt of the dbt environment; Cosmos runs it as a subprocess
    dbt_project_dir: Path
    profiles_yml: Path
    manifest: Path  # precompiled: Cosmos renders the graph without running dbt
    bronze_tables: dict[str, list[str]]  # source system -> its bronze tables
    # source system -> bronze table -> Asset URI (file:///<path> or s3://bucket/<key>), chosen so
    # that the OpenLineage provider names the Asset as the dlt load and dbt name the table
    bronze_assets: dict[str, dict[str, str]]
    gold_tables: list[str]
    warehouses: list[str]
    schedules: dict[str, str | None]
    ingest_deadline: timedelta
    build_deadline: timedelta
    retry: dict[str, Any]
    alerts: dict[str, Any]


@functools.cache
def load() -> DagSettings:
    path = os.environ.get("LAKEHOUSE_AIRFLOW_SETTINGS")
    if not path:
        raise RuntimeError(
            "LAKEHOUSE_AIRFLOW_SETTINGS is not set: start Airflow with `make airflow`, which "
            "writes the settings file and points the variable at it"
        )
    raw = json.loads(Path(path).read_text())
    paths = ("home", "lakehouse", "dbt", "dbt_project_dir", "profiles_yml", "manifest")
    return DagSettings(
        **{key: Path(raw[key]) for key in paths},
        bronze_tables=raw["bronze_tables"],
        bronze_assets=raw["bronze_assets"],
        gold_tables=raw["gold_tables"],
        warehouses=raw["warehouses"],
        schedules=raw["schedules"],
        ingest_deadline=timedelta(seconds=raw["ingest_deadline_s"]),
        build_deadline=timedelta(seconds=raw["build_deadline_s"]),
        retry=raw["retry"],
        alerts=raw["alerts"],
    )
