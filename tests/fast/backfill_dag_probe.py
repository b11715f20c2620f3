"""Run by tests/fast/test_backfill_dag.py with the Airflow environment's Python: load the
``lakehouse_backfill`` DAG file into a DagBag and, for each conf given, do what Airflow does when
a run is triggered with it (the DAG's params updated with the conf, each validated against its
JSON Schema), then render the environment each task's command reads. One JSON document out.

Usage: ``python backfill_dag_probe.py <dag file> <confs.json> <output.json>``.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any


def trigger(dag: Any, conf: dict[str, Any]) -> dict[str, Any]:
    """Airflow's validation of a run's conf, and what the tasks' ``env`` renders to."""
    from airflow.sdk.definitions.param import ParamValidationError

    params = copy.deepcopy(dag.params)
    try:
        for key, value in conf.items():
            params[key] = value
        resolved = params.validate()
    except ParamValidationError as exc:
        return {"valid": False, "error": str(exc)}
    env = dag.get_template_env()
    tasks = {
        task.task_id: {
            "bash_command": task.bash_command,
            "env": {
                k: env.from_string(v).render(params=resolved)
                for k, v in task.env.items()
                if k.startswith("BACKFILL_")
            },
        }
        for task in dag.tasks
    }
    return {"valid": True, "params": resolved, "tasks": tasks}


def main(dag_file: str, confs: str, output: str) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=dag_file)
    found: dict[str, Any] = {
        "import_errors": {path: str(error) for path, error in bag.import_errors.items()}
    }
    dag = bag.dags.get("lakehouse_backfill")
    if dag is not None:
        found["schedule"] = type(dag.timetable).__name__
        found["upstream"] = {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks}
        found["schemas"] = {k: p.schema for k, p in dag.params.items()}
        found["runs"] = [trigger(dag, conf) for conf in json.loads(Path(confs).read_text())]
    with open(output, "w") as out:
        json.dump(found, out, default=str)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
