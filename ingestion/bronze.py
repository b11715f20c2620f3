"""Where and how every loader writes: dlt's filesystem destination as Delta tables under the lake.

Bronze tables live at ``<lake>/bronze/<dataset>/<table>``: one dlt dataset per source system, one
Delta table per resource, plus a ``quarantine`` table per dataset (ingestion/contracts.py). dbt
registers the same paths as external tables (macro ``register_bronze_sources``), so Spark reads
exactly what dlt wrote, through the Delta log.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dlt
import pyarrow as pa
from deltalake.exceptions import TableNotFoundError

from ingestion.contracts import QUARANTINE_COLUMNS, QUARANTINE_TABLE, GuardStats
from lakehouse.core.config import Settings
from lakehouse.core.storage import Location, delta_table, write_delta

logger = logging.getLogger(__name__)

# dlt reports anonymous usage to its cloud by default; this platform runs offline.
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")


ARROW_TYPES = {
    "text": pa.string(),
    "bigint": pa.int64(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}


def pipeline_name(source_name: str) -> str:
    return f"bronze_{source_name}"


def pipeline(settings: Settings, source_name: str) -> dlt.Pipeline:
    """A dlt pipeline writing the ``source_name`` dataset, its state kept under the lake home."""
    return dlt.pipeline(
        pipeline_name=pipeline_name(source_name),
        destination=destination(settings.bronze),
        dataset_name=source_name,
        pipelines_dir=str(settings.state_dir / "dlt"),
        progress="log" if os.environ.get("LAKEHOUSE_DLT_PROGRESS") else None,
    )


def destination(bronze: Location) -> Any:
    """dlt's filesystem destination at ``bronze``: a local folder, or S3 through s3fs (files)
    and delta-rs (tables), both given the same credentials and endpoint."""
    if bronze.is_local:
        return dlt.destinations.filesystem(bucket_url=bronze.url)
    from dlt.common.configuration.specs import AwsCredentials

    aws = bronze.aws()
    credentials = AwsCredentials(
        aws_access_key_id=aws.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=aws.get("AWS_SECRET_ACCESS_KEY"),
        aws_session_token=aws.get("AWS_SESSION_TOKEN"),
        region_name=aws.get("AWS_REGION") or "us-east-1",
        endpoint_url=aws.get("AWS_ENDPOINT_URL"),
    )
    return dlt.destinations.filesystem(bucket_url=bronze.url, credentials=credentials)


@dataclass
class TableLoad:
    """What one load did to one bronze table, from Delta's own commit metrics."""

    written: int = 0  # rows dlt handed to the destination (normalize row count)
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    versions: list[int] = field(default_factory=list)


@dataclass
class LoadSummary:
    """One source's load: dlt's counts, the guard's counts and Delta's insert/update metrics."""

    source: str
    seconds: float
    load_ids: list[str]
    tables: dict[str, TableLoad]
    guard: dict[str, Any]
    # every data table of the dataset as dlt's schema now declares it: column -> dlt data type
    columns: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def rows_by_table(self) -> dict[str, int]:
        return {name: t.written for name, t in self.tables.items() if name != QUARANTINE_TABLE}

    @property
    def rows(self) -> int:
        return sum(self.rows_by_table.values())

    @property
    def read(self) -> int:
        return sum(self.guard.get("read", {}).values())

    @property
    def quarantined(self) -> int:
        return sum(self.guard.get("quarantined", {}).values())

    @property
    def loaded(self) -> int:
        """Rows handed to dlt after the guard and any incremental filter."""
        return sum(self.guard.get("loaded", {}).values())

    @property
    def skipped(self) -> int:
        """Rows an incremental recognised as already loaded (its boundary window)."""
        return sum(self.guard.get("skipped", {}).values())

    @property
    def balanced(self) -> bool:
        """Every record read is accounted for: read == loaded + quarantined + skipped."""
        return self.read == self.loaded + self.quarantined + self.skipped

    def line(self) -> str:
        inserted = sum(t.inserted for n, t in self.tables.items() if n != QUARANTINE_TABLE)
        updated = sum(t.updated for n, t in self.tables.items() if n != QUARANTINE_TABLE)
        rate = self.read / self.seconds if self.seconds else 0.0
        return (
            f"{self.source}: read {self.read:,}, inserted {inserted:,}, updated {updated:,}, "
            f"quarantined {self.quarantined:,} in {self.seconds:.1f}s ({rate:,.0f} rows/s)"
        )


def _version(path: Location | Path) -> int | None:
    try:
        return delta_table(path).version()
    except TableNotFoundError:
        return None


def commit_rows(commit: dict[str, Any]) -> int:
    """Rows one Delta commit wrote: added by a WRITE, inserted or updated by a MERGE."""
    metrics = commit.get("operationMetrics") or {}
    if commit.get("operation") == "MERGE":
        return int(metrics.get("num_target_rows_inserted", 0)) + int(
            metrics.get("num_target_rows_updated", 0)
        )
    return int(metrics.get("num_added_rows", 0))


def _delta_metrics(path: Location | Path, since: int | None) -> TableLoad:
    """Sum Delta's operation metrics over the versions committed after ``since``."""
    load = TableLoad()
    try:
        history = delta_table(path).history()
    except TableNotFoundError:
        return load
    for commit in history:
        version = commit.get("version")
        if version is None or (since is not None and version <= since):
            continue
        metrics = commit.get("operationMetrics") or {}
        load.versions.append(version)
        if commit.get("operation") == "MERGE":
            load.inserted += int(metrics.get("num_target_rows_inserted", 0))
            load.updated += int(metrics.get("num_target_rows_updated", 0))
            load.deleted += int(metrics.get("num_target_rows_deleted", 0))
        else:  # WRITE: append, first write, or replace (overwrite)
            load.inserted += int(metrics.get("num_added_rows", 0))
    return load


def ensure_quarantine_table(path: Location | Path) -> None:
    """Create the dataset's quarantine table, empty, if nothing was ever quarantined.

    Every dataset then has one, so "what was quarantined?" always has a table to answer it and
    dbt can declare it as a source (registering a missing Delta path would fail).
    """
    if _version(path) is not None:
        return
    dlt_columns = {"_dlt_load_id": {"data_type": "text", "nullable": False},
                   "_dlt_id": {"data_type": "text", "nullable": False}}  # fmt: skip
    columns = [
        pa.field(name, ARROW_TYPES[column["data_type"]], nullable=column.get("nullable", True))
        for name, column in {**QUARANTINE_COLUMNS, **dlt_columns}.items()
    ]
    write_delta(path, pa.schema(columns).empty_table(), mode="error")


def run(
    settings: Settings,
    source_name: str,
    source: Any,
    stats: GuardStats | None = None,
    **run_kwargs: Any,
) -> LoadSummary:
    """Extract, normalise and load one source into bronze; raise if any load job failed."""
    started = time.perf_counter()
    pipe = pipeline(settings, source_name)
    dataset_dir = settings.bronze / source_name
    before = {p.name: _version(p) for p in dataset_dir.dirs()}
    info = pipe.run(source, table_format="delta", **run_kwargs)
    if stats is not None and (unbalanced := stats.unbalanced()):
        # a record the guard lost track of: a bug, said loudly, after the load committed
        logger.error("%s: records not accounted for (read, loaded, quarantined, skipped): %s",
                     source_name, unbalanced)  # fmt: skip
    info.raise_on_failed_jobs()
    ensure_quarantine_table(dataset_dir / QUARANTINE_TABLE)
    normalize = pipe.last_trace.last_normalize_info
    tables: dict[str, TableLoad] = {}
    for table, written in (normalize.row_counts if normalize else {}).items():
        if table.startswith("_dlt"):
            continue
        load = _delta_metrics(dataset_dir / table, before.get(table))
        load.written = written
        tables[table] = load
    return LoadSummary(
        source=source_name,
        seconds=time.perf_counter() - started,
        load_ids=list(info.loads_ids),
        tables=tables,
        guard=stats.as_dict() if stats else {},
        columns={
            table: {name: col.get("data_type", "") for name, col in columns.items()}
            for table, columns in (
                (t, pipe.default_schema.get_table_columns(t))
                for t in pipe.default_schema.data_table_names()
            )
        },
    )
