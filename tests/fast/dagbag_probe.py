"""Run by tests/fast/test_dag_integrity.py with the Airflow environment's Python
(``.venv-airflow``): load every DAG file into a DagBag, as the DAG processor does, and write what
the test judges as one JSON document. No metadata database, scheduler or engine: a DagBag only
imports the files.

Usage: ``python dagbag_probe.py <dags folder> <output.json>``, in the environment the Airflow
components get (``lakehouse.stack.services.airflow.environment``: the settings file,
``PYTHONPATH``).
"""

from __future__ import annotations

import json
import sys
import time
from datetime import timedelta
from typing import Any


def _callable_name(callback: Any) -> str:
    kind = callback if isinstance(callback, type) else type(callback)
    return f"{kind.__module__}.{kind.__qualname__}"


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def first_runs(serialized: Any) -> dict[str, Any] | None:
    """When the scheduler would run a time-scheduled DAG that has never run (no start_date, as
    on the first ``make airflow``): its first run and the one after, beside the time asked. The
    scheduler's own timetable (the serialized DAG's), asked as the scheduler asks it."""
    from airflow.timetables.base import TimeRestriction
    from airflow.utils import timezone

    timetable = serialized.timetable
    if not timetable.periodic:
        return None
    restriction = TimeRestriction(serialized.start_date, serialized.end_date, serialized.catchup)
    now = timezone.utcnow()
    first = timetable.next_dagrun_info(last_automated_data_interval=None, restriction=restriction)
    second = timetable.next_dagrun_info(
        last_automated_data_interval=first.data_interval, restriction=restriction
    )
    return {
        "timetable": _callable_name(timetable),
        "asked_at": now.isoformat(),
        "first": first.run_after.isoformat(),
        "second": second.run_after.isoformat(),
    }


def openlineage_datasets(assets: Any) -> list[dict[str, Any]]:
    """Each Asset as Airflow's OpenLineage provider reports it (None: it cannot translate it)."""
    from airflow.providers.openlineage.utils.utils import translate_airflow_asset

    found = []
    for asset in assets:
        dataset = translate_airflow_asset(asset, None)
        found.append({"uri": asset.uri, "name": asset.name, "openlineage": None if dataset is None
                      else {"namespace": dataset.namespace, "name": dataset.name}})  # fmt: skip
    return found


def describe_dag(dag: Any) -> dict[str, Any]:
    from airflow.sdk import Asset
    from airflow.serialization.serialized_objects import DagSerialization

    # what the DAG processor stores: it must serialize (and the scheduler reads it back)
    serialized = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    tasks = {}
    for task in dag.tasks:
        tasks[task.task_id] = {
            "upstream": sorted(task.upstream_task_ids),
            "retries": task.retries,
            "retry_delay_s": _seconds(task.retry_delay),
            "retry_exponential_backoff": float(task.retry_exponential_backoff),
            "max_retry_delay_s": _seconds(task.max_retry_delay),
            "on_failure_callback": [_callable_name(c) for c in task.on_failure_callback or []],
            "operator": _callable_name(task),
            "bash_command": getattr(task, "bash_command", None),
            "env": getattr(task, "env", None),
            "append_env": getattr(task, "append_env", None),
            "outlets": openlineage_datasets(o for o in task.outlets if isinstance(o, Asset)),
        }
    deadlines = [
        {
            "reference": type(alert.reference).__name__,
            "interval_s": _seconds(alert.interval),
            "callback": alert.callback.path,
            "kwargs": alert.callback.kwargs,
        }
        for alert in dag.deadline or []
    ]
    env = dag.get_template_env()
    defaults = dag.params.dump()
    overrides = {name: 0.25 for name in defaults}
    rendered = {  # commands that take run parameters, rendered with the defaults and overridden
        task.task_id: {
            "defaults": env.from_string(task.bash_command).render(params=defaults),
            "overridden": env.from_string(task.bash_command).render(params=overrides),
        }
        for task in dag.tasks
        if "{%" in (getattr(task, "bash_command", None) or "")
    }
    condition = getattr(dag.timetable, "asset_condition", None)  # an asset-scheduled DAG's
    scheduled_on = openlineage_datasets(
        o for o in getattr(condition, "objects", []) if isinstance(o, Asset)
    )
    return {"tasks": tasks, "deadlines": deadlines, "rendered": rendered,
            "macros": sorted(dag.user_defined_macros or {}),
            "first_runs": first_runs(serialized), "scheduled_on": scheduled_on}  # fmt: skip


def main(dags_folder: str, output: str) -> None:
    from airflow.dag_processing.dagbag import DagBag

    started = time.monotonic()
    bag = DagBag(dag_folder=dags_folder)
    loaded_s = time.monotonic() - started
    platform = sorted(
        name
        for name in sys.modules
        if name.split(".")[0] in {"lakehouse", "ingestion"}  # not lakehouse_airflow
    )
    found = {
        "import_errors": {path: str(error) for path, error in bag.import_errors.items()},
        "parse_s": {stat.file: stat.duration.total_seconds() for stat in bag.dagbag_stats},
        "load_s": loaded_s,
        "platform_modules": platform,
        "dags": {dag_id: describe_dag(dag) for dag_id, dag in bag.dags.items()},
        "dag_files": {dag_id: dag.fileloc for dag_id, dag in bag.dags.items()},
    }
    with open(output, "w") as out:  # not stdout: Airflow and Cosmos may print there
        json.dump(found, out, default=str)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
