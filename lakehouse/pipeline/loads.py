"""Load all or some sources into bronze, each with its own strategy and schema policy."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date
from typing import Any

from ingestion import bronze, lineage, registry, resume, retry
from ingestion.contracts import GuardStats
from ingestion.locations import Locations
from ingestion.registry import SOURCES
from ingestion.spec import LoadRequest, Replay, Window
from lakehouse.core.config import Settings
from lakehouse.observability import run_metrics
from lakehouse.observability.lineage import emit
from lakehouse.stack import source_systems
from lakehouse.stack.source_systems import Endpoints

log = logging.getLogger(__name__)

__all__ = ["Replay", "Window", "build", "ingest", "system"]


def build(
    name: str,
    settings: Settings,
    where: Locations,
    stats: GuardStats,
    replay: Replay | None = None,
    window: Window | None = None,
) -> Any:
    """The dlt source for ``name``, configured from settings and this run's locations."""
    spec = registry.spec(name)
    request = LoadRequest(
        conf=registry.conf(name, settings),
        location=where.of(spec),
        stats=stats,
        timeout_s=settings.source_retry.timeout_s,
        first_day=settings.sample_data.start_date,
        last_day=_last_day(settings, name in where.local),
        window=window,
        replay=replay,
    )
    return spec.build(request)


def system(name: str, where: Locations) -> str:
    """The system a source reads, as a failure message names it (no credentials)."""
    spec = registry.spec(name)
    return spec.system(where.of(spec))


def _last_day(settings: Settings, local: bool) -> date:
    """Dated sources are read up to today; locally, up to the last day of the sample world."""
    return source_systems.world(settings).end_date if local else date.today()


def ingest(
    settings: Settings,
    endpoints: Endpoints | Locations,
    sources: Iterable[str] = SOURCES,
    replay: Replay | None = None,
    window: Window | None = None,
) -> list[bronze.LoadSummary]:
    """Load ``sources`` in order; one summary per source, one OpenLineage run per load.

    A source whose system keeps failing stops the run with ``retry.SourceUnavailable`` after
    the bounded retries of ``settings.source_retry`` (ingestion/retry.py); any other failure
    is raised at once. Either way nothing of that load is in bronze, and the sources after it
    are not loaded (a failed step stops the line; the next run starts again from the first).
    """
    summaries = []
    policy = settings.source_retry
    where = endpoints if isinstance(endpoints, Locations) else endpoints.locations()
    sources = list(sources)
    for name in sources:
        registry.spec(name)  # ValueError naming the choices, before anything is loaded
    registry.check(settings)
    for name in sources:
        read = lineage.inputs(name, settings, where)
        job = f"dlt.{bronze.pipeline_name(name)}"

        def load(name: str = name) -> bronze.LoadSummary:
            stats = GuardStats()  # fresh per attempt: a failed attempt's counts are void
            source = build(name, settings, where, stats, replay, window)
            try:
                return bronze.run(settings, name, source, stats)
            except Exception:
                resume.discard_unfinished_extracts(settings, name)
                raise

        with run_metrics.recording(settings, "ingest", bronze.pipeline_name(name)) as metrics:
            with emit.job_run(settings, job, "DLT", list(read.values()), engine="dlt") as run:
                with retry.http_retries(policy):
                    resume.finish_pending(settings, name)
                    summary = retry.with_retries(name, system(name, where), policy, load)
                run.outputs = lineage.outputs(name, settings, summary, read)
            _fill_metrics(metrics, settings, summary)
        log.info(summary.line())
        summaries.append(summary)
    return summaries


def _fill_metrics(
    metrics: run_metrics.JobMetrics, settings: Settings, summary: bronze.LoadSummary
) -> None:
    """The load's counts in ops.run_metrics, from dlt's and the guard's counts and Delta's log."""
    dataset_dir = settings.bronze / summary.source
    metrics.rows_read, metrics.rows_written = summary.read, summary.rows
    metrics.rows_quarantined = summary.quarantined
    metrics.bytes_written = sum(run_metrics.added_bytes(dataset_dir / name, t.versions)
                                for name, t in summary.tables.items())  # fmt: skip
    # every Delta table of the dataset (data and quarantine): what the source keeps in bronze
    metrics.bytes_stored = sum(run_metrics.stored_bytes(p) or 0
                               for p in dataset_dir.delta_tables(1))  # fmt: skip
    metrics.details = {"load_ids": summary.load_ids, "rows_by_table": summary.rows_by_table}
