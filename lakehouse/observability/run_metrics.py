"""Run metrics: one row per job of every ingest, dbt run and publish, in the Delta table
``<lake>/ops/run_metrics`` (registered in the engine as ``ops.run_metrics``).

Counts are taken from what each tool already reports, never re-counted: dlt's load info and the
guard's counts for ingestion, dbt's ``run_results.json`` plus the Delta commit metrics of each
model's table (Spark records ``numOutputRows`` / ``numOutputBytes`` / MERGE counts in every commit)
for dbt, the reconciliation counts for publish. Each row also carries a cost estimate from the
prices in ``lakehouse.yml`` (``ops.cost``): compute = duration x cores x price per core-hour, and
storage = the bytes the job's output keeps x price per GB-month. Writes go through delta-rs, so a
job records its row without the engine. docs/operations.md explains every column.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake.exceptions import TableNotFoundError

from lakehouse.core.config import Settings
from lakehouse.core.storage import (
    Location,
    as_location,
    delta_table,
    ensure_delta_table,
    write_delta,
)

RUN_ID_ENV = "LAKEHOUSE_RUN_ID"
TABLE = "ops.run_metrics"

SCHEMA = pa.schema([
    ("run_id", pa.string()),          # one pipeline run: `make run`, one Airflow DAG run, ...
    ("step", pa.string()),            # ingest | dbt | publish
    ("job", pa.string()),             # bronze_<source> | <schema>.<model> | <warehouse>.<table>
    ("started_at", pa.timestamp("us", tz="UTC")),
    ("ended_at", pa.timestamp("us", tz="UTC")),
    ("duration_s", pa.float64()),
    ("status", pa.string()),          # success | error | skipped (dbt's words for its nodes)
    ("rows_read", pa.int64()),        # null where the tool does not say (a dbt CTAS)
    ("rows_written", pa.int64()),
    ("rows_quarantined", pa.int64()),
    ("bytes_written", pa.int64()),
    ("bytes_stored", pa.int64()),     # size of the job's output table after it ran
    ("cores", pa.float64()),
    ("compute_cost", pa.float64()),
    ("storage_cost_month", pa.float64()),
    ("currency", pa.string()),
    ("error", pa.string()),
    ("details", pa.string()),         # JSON: per-table counts, dbt's message, ...
])  # fmt: skip


@dataclass
class JobMetrics:
    """One job's row, before the cost is priced in."""

    step: str
    job: str
    started_at: datetime
    ended_at: datetime
    status: str
    rows_read: int | None = None
    rows_written: int | None = None
    rows_quarantined: int | None = None
    bytes_written: int | None = None
    bytes_stored: int | None = None
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def table_path(settings: Settings) -> Location:
    return settings.lake / "ops" / "run_metrics"


def run_id() -> str:
    """This run's id: ``LAKEHOUSE_RUN_ID`` when a caller (Airflow, ``make run``) set one, else a
    new one, kept in the environment so every step and child process of this run shares it."""
    if not os.environ.get(RUN_ID_ENV):
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        os.environ[RUN_ID_ENV] = f"cli-{stamp}-{uuid.uuid4().hex[:8]}"
    return os.environ[RUN_ID_ENV]


def ensure_table(settings: Settings) -> Location:
    """Create the (empty) table once, so the engine can register it before any job ran."""
    return ensure_delta_table(table_path(settings), SCHEMA)


def record(settings: Settings, jobs: Iterable[JobMetrics]) -> int:
    """Price and append ``jobs`` to the table; returns how many rows were written."""
    cost = settings.ops.cost
    rows = []
    for job in jobs:
        duration = (job.ended_at - job.started_at).total_seconds()
        cores = cost.cores.get(job.step, 1.0)
        row = asdict(job)
        row.update(
            run_id=run_id(),
            duration_s=duration,
            cores=cores,
            compute_cost=duration / 3600 * cores * cost.per_core_hour,
            storage_cost_month=(job.bytes_stored or 0) / 1e9 * cost.per_gb_month,
            currency=cost.currency,
            details=json.dumps(job.details, default=str, sort_keys=True),
        )
        rows.append(row)
    if not rows:
        return 0
    path = ensure_table(settings)
    write_delta(path, pa.Table.from_pylist(rows, schema=SCHEMA), mode="append")
    return len(rows)


@contextmanager
def recording(settings: Settings, step: str, job: str) -> Iterator[JobMetrics]:
    """Record one job's row as it ends: the caller fills in the counts on the yielded row; an
    exception marks it ``error`` with the message, is recorded, and goes on up."""
    row = JobMetrics(step, job, datetime.now(UTC), datetime.now(UTC), "success")
    try:
        yield row
    except Exception as exc:
        row.status, row.error = "error", str(exc)[:2000]
        raise
    finally:
        row.ended_at = datetime.now(UTC)
        record(settings, [row])


def read(settings: Settings, run: str | None = None) -> list[dict[str, Any]]:
    """Every recorded row (of one run), oldest first."""
    try:
        table = delta_table(table_path(settings)).to_pyarrow_table()
    except TableNotFoundError:
        return []
    rows = sorted(table.to_pylist(), key=lambda r: (r["started_at"], r["job"]))
    return [r for r in rows if run is None or r["run_id"] == run]


# --- Delta facts -------------------------------------------------------------------------------


def stored_bytes(path: Location | Path) -> int | None:
    """Bytes of the current version's data files of the Delta table at ``path``."""
    try:
        actions = delta_table(path).get_add_actions(flatten=True)
    except TableNotFoundError:
        return None
    return sum(pa.table(actions).column("size_bytes").to_pylist())


def added_bytes(path: Location | Path, versions: Iterable[int]) -> int:
    """Bytes of the data files the commits ``versions`` added: what a load wrote to disk."""
    total = 0
    for version in versions:
        log = as_location(path) / "_delta_log" / f"{version:020d}.json"
        for line in log.read_text().splitlines():
            action = json.loads(line)
            total += int(action.get("add", {}).get("size", 0))
    return total


def _commits_between(path: Location | Path, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Delta commits of the table at ``path`` made in [start, end] (with a second of slack)."""
    try:
        history = delta_table(path).history(20)
    except TableNotFoundError:
        return []
    lo, hi = start - timedelta(seconds=1), end + timedelta(seconds=1)
    return [c for c in history if lo <= datetime.fromtimestamp(c["timestamp"] / 1000, UTC) <= hi]


def commit_counts(commits: list[dict[str, Any]]) -> dict[str, int | None]:
    """Rows read/written and bytes written, summed over Spark's commit metrics."""
    read = written = written_bytes = 0
    saw_source = False
    for commit in commits:
        m = {k: int(v) for k, v in (commit.get("operationMetrics") or {}).items()
             if str(v).isdigit()}  # fmt: skip
        if "numSourceRows" in m:  # MERGE: the source rows it compared, the rows it changed
            saw_source = True
            read += m["numSourceRows"]
            written += sum(m.get(k, 0) for k in ("numTargetRowsInserted", "numTargetRowsUpdated",
                                                 "numTargetRowsDeleted"))  # fmt: skip
            written_bytes += m.get("numTargetBytesAdded", 0)
        else:
            written += m.get("numOutputRows", 0)
            written_bytes += m.get("numOutputBytes", 0)
    return {"rows_read": read if saw_source else None, "rows_written": written,
            "bytes_written": written_bytes}  # fmt: skip


# --- dbt -----------------------------------------------------------------------------------------


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def dbt_jobs(
    settings: Settings, run_results: dict[str, Any], manifest: dict[str, Any]
) -> list[JobMetrics]:
    """One row per model, seed and snapshot dbt ran, from run_results.json and Delta's commits;
    rows a quarantine test (store_failures) kept are counted on the model it tested."""
    quarantined: dict[str, int] = defaultdict(int)
    nodes = manifest["nodes"]
    for result in run_results["results"]:
        node = nodes.get(result["unique_id"]) or {}
        config = node.get("config", {})
        stored = config.get("store_failures") or config.get("store_failures_as") == "table"
        if node.get("resource_type") == "test" and stored and node.get("attached_node"):
            quarantined[node["attached_node"]] += int(result.get("failures") or 0)
    jobs = []
    for result in run_results["results"]:
        node = nodes.get(result["unique_id"]) or {}
        if node.get("resource_type") not in ("model", "seed", "snapshot"):
            continue
        timing = {t["name"]: t for t in result.get("timing", [])}
        execute = timing.get("execute") or timing.get("compile")
        if execute and execute.get("started_at"):
            start, end = _parse_time(execute["started_at"]), _parse_time(execute["completed_at"])
        else:  # skipped: dbt records no timing
            start = end = _parse_time(run_results["metadata"]["generated_at"])
        path = settings.warehouse / f"{node['schema']}.db" / node["alias"]
        counts = commit_counts(_commits_between(path, start, end)) if execute else {}
        status = result["status"]
        jobs.append(JobMetrics(
            step="dbt", job=f"{node['schema']}.{node['alias']}", started_at=start, ended_at=end,
            status=status, rows_quarantined=quarantined.get(result["unique_id"], 0),
            bytes_stored=stored_bytes(path) if status == "success" else None,
            error=result.get("message") if status == "error" else None,
            details={"invocation_id": run_results["metadata"]["invocation_id"],
                     "materialized": node.get("config", {}).get("materialized"),
                     "execution_time_s": result.get("execution_time")},
            **counts,
        ))  # fmt: skip
    return jobs


def record_dbt(settings: Settings, target_dir: Path) -> int:
    """Record the dbt invocation whose artifacts are in ``target_dir``."""
    run_results = json.loads((target_dir / "run_results.json").read_text())
    manifest = json.loads((target_dir / "manifest.json").read_text())
    return record(settings, dbt_jobs(settings, run_results, manifest))
