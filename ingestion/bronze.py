"""Where and how every loader writes: dlt's filesystem destination as Delta tables under the lake.

Bronze tables live at ``<lake>/bronze/<dataset>/<table>``: one dlt dataset per source system, one
Delta table per resource. dbt registers the same paths as external tables (macro
``register_bronze_sources``), so Spark reads exactly what dlt wrote, through the Delta log.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import dlt
from dlt.common.pipeline import LoadInfo

from lakehouse.config import Settings

# dlt reports anonymous usage to its cloud by default; this platform runs offline.
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")


def pipeline(settings: Settings, source_name: str) -> dlt.Pipeline:
    """A dlt pipeline writing the ``source_name`` dataset, its state kept under the lake home."""
    return dlt.pipeline(
        pipeline_name=f"bronze_{source_name}",
        destination=dlt.destinations.filesystem(bucket_url=settings.bronze_dir.as_uri()),
        dataset_name=source_name,
        pipelines_dir=str(settings.state_dir / "dlt"),
        progress="log" if os.environ.get("LAKEHOUSE_DLT_PROGRESS") else None,
    )


@dataclass(frozen=True)
class LoadSummary:
    """What one load did, read from dlt's own trace rather than re-counted."""

    source: str
    rows_by_table: dict[str, int]
    load_ids: list[str]

    @property
    def rows(self) -> int:
        return sum(self.rows_by_table.values())


def run(settings: Settings, source_name: str, source: Any) -> LoadSummary:
    """Extract, normalise and load one source into bronze; raise if any load job failed."""
    pipe = pipeline(settings, source_name)
    info: LoadInfo = pipe.run(source, table_format="delta")
    info.raise_on_failed_jobs()
    normalize = pipe.last_trace.last_normalize_info
    counts = {
        table: n
        for table, n in (normalize.row_counts if normalize else {}).items()
        if not table.startswith("_dlt")
    }
    return LoadSummary(source=source_name, rows_by_table=counts, load_ids=list(info.loads_ids))
