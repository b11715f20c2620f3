"""Load all or some sources into bronze, each with its own strategy and schema policy."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from ingestion import bronze, lineage
from ingestion.contracts import GuardStats
from ingestion.crm import crm_source
from ingestion.fx_rates import fx_source
from ingestion.kafka_events import kafka_source
from ingestion.redshift import redshift_source
from ingestion.snowflake import snowflake_source
from lakehouse import ops
from lakehouse.config import Settings
from lakehouse.lineage import emit

SOURCES = ("snowflake", "crm", "redshift", "fx", "kafka")


@dataclass(frozen=True)
class Window:
    """A backfill: re-read exactly these days of a source that supports it (FX rates)."""

    start: date
    end: date


@dataclass(frozen=True)
class Replay:
    """Re-read Kafka from an offset (every partition) or from a point in time."""

    from_offset: int | None = None
    from_time: datetime | None = None


def build(
    name: str,
    settings: Settings,
    endpoints: Any,
    stats: GuardStats,
    replay: Replay | None = None,
    window: Window | None = None,
) -> Any:
    """The dlt source for ``name``, configured from settings and this run's endpoints."""
    conf = getattr(settings.sources, name)
    policy = conf.schema_policy
    builders: dict[str, Callable[[], Any]] = {
        "snowflake": lambda: snowflake_source(endpoints.snowflake_url, conf.tables, policy, stats),
        "crm": lambda: crm_source(
            endpoints.crm_base_url, endpoints.crm_token, conf.page_size, policy, stats
        ),
        "redshift": lambda: redshift_source(
            endpoints.redshift_url, conf.schema_, conf.tables, policy, stats, conf.chunk_size
        ),
        "fx": lambda: fx_source(
            endpoints.fx_base_url,
            conf.currencies,
            window.start if window else settings.sample_data.start_date,
            window.end if window else _fx_end(settings),
            conf.base_currency,
            policy,
            stats,
            backfill=window is not None,
        ),
        "kafka": lambda: kafka_source(
            endpoints.kafka_bootstrap,
            conf.topic,
            conf.group_id,
            policy,
            stats,
            conf.batch_size,
            replay.from_offset if replay else None,
            replay.from_time if replay else None,
        ),
    }
    return builders[name]()


def _fx_end(settings: Settings) -> date:
    """Rates are requested up to today; locally, up to the last day of the sample world."""
    from lakehouse import systems

    return date.today() if os.environ.get("FX_BASE_URL") else systems.world(settings).end_date


def ingest(
    settings: Settings,
    endpoints: Any,
    sources: Iterable[str] = SOURCES,
    replay: Replay | None = None,
    report: Callable[[str], None] = print,
    window: Window | None = None,
) -> list[bronze.LoadSummary]:
    """Load ``sources`` in order; one summary per source, one OpenLineage run per load."""
    summaries = []
    for name in sources:
        if name not in SOURCES:
            raise ValueError(f"unknown source {name!r}; choose from {', '.join(SOURCES)}")
        stats = GuardStats()
        read = lineage.inputs(name, settings, endpoints)
        job = f"dlt.{bronze.pipeline_name(name)}"
        with ops.recording(settings, "ingest", bronze.pipeline_name(name)) as metrics:
            with emit.job_run(settings, job, "DLT", list(read.values()), engine="dlt") as run:
                source = build(name, settings, endpoints, stats, replay, window)
                summary = bronze.run(settings, name, source, stats)
                run.outputs = lineage.outputs(name, settings, summary, read)
            _fill_metrics(metrics, settings, summary)
        report(summary.line())
        summaries.append(summary)
    return summaries


def _fill_metrics(metrics: ops.JobMetrics, settings: Settings, summary: bronze.LoadSummary) -> None:
    """The load's counts in ops.run_metrics, from dlt's and the guard's counts and Delta's log."""
    dataset_dir = settings.bronze_dir / summary.source
    metrics.rows_read, metrics.rows_written = summary.read, summary.rows
    metrics.rows_quarantined = summary.quarantined
    metrics.bytes_written = sum(ops.added_bytes(dataset_dir / name, t.versions)
                                for name, t in summary.tables.items())  # fmt: skip
    # every Delta table of the dataset (data and quarantine): what the source keeps in bronze
    metrics.bytes_stored = sum(ops.stored_bytes(p.parent) or 0
                               for p in dataset_dir.glob("*/_delta_log"))  # fmt: skip
    metrics.details = {"load_ids": summary.load_ids, "rows_by_table": summary.rows_by_table}
