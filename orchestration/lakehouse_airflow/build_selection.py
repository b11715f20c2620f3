"""build_analytics builds what changed, as ``lakehouse build`` does
(lakehouse/transform/build_selection.py).

``select_changed`` runs as the Cosmos WATCHER producer's ``on_execute_callback``, right before
its ``dbt build``: it asks the platform (``lakehouse build --plan``, in the dbt environment)
what changed since the last successful build (bronze Delta versions read from the lake's
transaction logs, ``state:modified``, the time-based tests), narrows the producer's build to
those nodes, and marks every model task it leaves out ``skipped`` (its model and its tests), so
no watcher waits for a node the build will never report. ``remember_build`` runs after the
producer's build succeeded and records it as the state the next build compares with. If the
plan fails, Airflow logs the callback's error and runs the task as it is: the producer builds
everything and, with no bronze versions kept, records nothing (never too little is built).
"""

from __future__ import annotations

import json
import logging
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from lakehouse_airflow.settings import load

log = logging.getLogger(__name__)
PRODUCER_TASK = "dbt_producer_watcher"  # cosmos.constants.PRODUCER_WATCHER_TASK_ID's suffix
SKIPPED = "skipped"
# The bronze versions the producer's build was planned on, kept for remember_build (same task,
# same process, one DAG run).
_LAKE_STATE: dict[str, Path] = {}


def _key(unique_id: str, suffix: str) -> str:
    """Cosmos' XCom keys for a node's status (cosmos.operators._watcher.state, .aggregation)."""
    return f"{unique_id.replace('.', '__')}_{suffix}"


def _vars(producer: Any) -> dict[str, Any]:
    """The run's --vars (the DAG's ``dbt_vars`` param, rendered: a dict, or none)."""
    value = getattr(producer, "vars", None)
    return value if isinstance(value, dict) else {}


def select_changed(context: Any) -> None:
    """The producer's ``on_execute_callback``: narrow its build to what changed."""
    cfg = load()
    ti = context["ti"]
    producer = ti.task
    kept = Path(tempfile.mkdtemp(prefix="build-lake-")) / "lake.json"
    argv = [str(cfg.lakehouse), "build", "--plan", "--lake-state", str(kept),
            "--vars", json.dumps(_vars(producer))]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    _LAKE_STATE[ti.run_id] = kept
    plan = json.loads(done.stdout.strip().splitlines()[-1])
    for reason in plan["reasons"]:
        log.info("build selection: %s", reason)
    if plan["everything"]:
        return
    # Every node by name, unit tests too; none added by dbt's eager indirect selection (a
    # model's unit tests run only when code changed: lakehouse/transform/build_selection.py).
    producer.select = " ".join(plan["select"])
    producer.indirect_selection = "empty"
    selected = set(plan["selected"])
    graph = getattr(producer.task_group, "dbt_graph", None)  # the DbtTaskGroup's rendered graph
    left_out = sorted(
        uid
        for uid in (getattr(graph, "nodes", None) or {})
        if uid.startswith("model.") and uid not in selected
    )
    log.info("build selection: %d node(s) to build; %d model task(s) skipped: %s",
             len(selected), len(left_out), ", ".join(left_out) or "none")  # fmt: skip
    for uid in left_out:
        # What the producer would report, had it run the node; its tests too (their aggregated
        # status would never come: they do not all run).
        ti.xcom_push(key=_key(uid, "status"), value={"status": SKIPPED, "outlet_uris": []})
        ti.xcom_push(key=_key(uid, "tests_status"), value=SKIPPED)


def remember_build(project_dir: str, lakehouse: str, context: Any = None, **_: Any) -> None:
    """Cosmos callback after a dbt command: once the producer's ``dbt build`` succeeded, its
    manifest and the bronze versions read before it become the state the next build compares
    with."""
    if context is None or not context["ti"].task_id.endswith(PRODUCER_TASK):
        return
    target = Path(project_dir) / "target"
    results = target / "run_results.json"
    lake_state = _LAKE_STATE.pop(context["ti"].run_id, None)
    if lake_state is None or not results.is_file():
        return  # a build that was never planned, or never started
    statuses = {r["status"] for r in json.loads(results.read_text())["results"]}
    if statuses & {"error", "fail", "runtime error"}:
        log.info("build failed: the next build compares with the same state again")
        return
    run_vars = json.dumps(_vars(context["ti"].task))
    argv = [lakehouse, "build", "--remember", "--target-dir", str(target),
            "--lake-state", str(lake_state), "--vars", run_vars]  # fmt: skip
    subprocess.run(argv, check=True)
