"""Load all or some sources into bronze, each with its own strategy and schema policy."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.engine import make_url

from ingestion import bronze, lineage, resume, retry
from ingestion.contracts import GuardStats
from ingestion.crm import crm_source
from ingestion.fx_rates import fx_source
from ingestion.kafka_events import kafka_source
from ingestion.redshift import redshift_source
from ingestion.registry import SOURCES
from ingestion.snowflake import snowflake_source
from lakehouse.core.config import Settings
from lakehouse.observability import run_metrics
from lakehouse.observability.lineage import emit
from lakehouse.stack import source_systems
from lakehouse.stack.source_systems import Endpoints


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
    endpoints: Endpoints,
    stats: GuardStats,
    replay: Replay | None = None,
    window: Window | None = None,
) -> Any:
    """The dlt source for ``name``, configured from settings and this run's endpoints."""
    conf = getattr(settings.sources, name)
    policy = conf.schema_policy
    builders: dict[str, Callable[[], Any]] = {
        "snowflake": lambda: snowflake_source(
            with_timeouts(endpoints.snowflake_url, settings.source_retry.timeout_s),
            conf.tables,
            policy,
            stats,
        ),
        "crm": lambda: crm_source(
            endpoints.crm_base_url, endpoints.crm_token, conf.page_size, policy, stats
        ),
        "redshift": lambda: redshift_source(
            with_timeouts(endpoints.redshift_url, settings.source_retry.timeout_s),
            conf.schema_,
            conf.tables,
            policy,
            stats,
            conf.chunk_size,
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
            timeout_s=settings.source_retry.timeout_s,
        ),
    }
    return builders[name]()


def system(name: str, endpoints: Any) -> str:
    """The system a source reads, as a failure message names it (no credentials)."""
    if name == "snowflake":
        return f"Snowflake database {_safe_url(endpoints.snowflake_url)}"
    if name == "redshift":
        return f"Redshift database {_safe_url(endpoints.redshift_url)}"
    if name == "kafka":
        return f"Kafka broker {endpoints.kafka_bootstrap}"
    return (
        f"{name.upper()} API {endpoints.crm_base_url if name == 'crm' else endpoints.fx_base_url}"
    )


def _safe_url(url: str) -> str:
    parsed = make_url(url)
    return parsed.render_as_string(hide_password=True).replace(":***@", "@")


def with_timeouts(url: str, timeout_s: float) -> str:
    """A SQLAlchemy URL whose driver gives up on a silent server after ``timeout_s``.

    Without it a connect to a host that does not answer waits for the operating system (minutes)
    and SQLite waits 5 s for a lock. A timeout already in the URL is kept.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        key, value = "connect_timeout", str(max(2, round(timeout_s)))  # libpq's minimum is 2 s
    elif parsed.get_backend_name() == "sqlite":
        key, value = "timeout", str(timeout_s)
    else:
        return url
    if key in parsed.query:
        return url
    return parsed.update_query_dict({key: value}).render_as_string(hide_password=False)


def _fx_end(settings: Settings) -> date:
    """Rates are requested up to today; locally, up to the last day of the sample world."""
    if os.environ.get("FX_BASE_URL"):
        return date.today()
    return source_systems.world(settings).end_date


def ingest(
    settings: Settings,
    endpoints: Endpoints,
    sources: Iterable[str] = SOURCES,
    replay: Replay | None = None,
    report: Callable[[str], None] = print,
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
    for name in sources:
        if name not in SOURCES:
            raise ValueError(f"unknown source {name!r}; choose from {', '.join(SOURCES)}")
        read = lineage.inputs(name, settings, endpoints)
        job = f"dlt.{bronze.pipeline_name(name)}"

        def load(name: str = name) -> bronze.LoadSummary:
            stats = GuardStats()  # fresh per attempt: a failed attempt's counts are void
            source = build(name, settings, endpoints, stats, replay, window)
            try:
                return bronze.run(settings, name, source, stats)
            except Exception:
                resume.discard_unfinished_extracts(settings, name)
                raise

        with run_metrics.recording(settings, "ingest", bronze.pipeline_name(name)) as metrics:
            with emit.job_run(settings, job, "DLT", list(read.values()), engine="dlt") as run:
                with retry.http_retries(policy):
                    resume.finish_pending(settings, name, report)
                    summary = retry.with_retries(
                        name, system(name, endpoints), policy, load, report
                    )
                run.outputs = lineage.outputs(name, settings, summary, read)
            _fill_metrics(metrics, settings, summary)
        report(summary.line())
        summaries.append(summary)
    return summaries


def _fill_metrics(
    metrics: run_metrics.JobMetrics, settings: Settings, summary: bronze.LoadSummary
) -> None:
    """The load's counts in ops.run_metrics, from dlt's and the guard's counts and Delta's log."""
    dataset_dir = settings.bronze_dir / summary.source
    metrics.rows_read, metrics.rows_written = summary.read, summary.rows
    metrics.rows_quarantined = summary.quarantined
    metrics.bytes_written = sum(run_metrics.added_bytes(dataset_dir / name, t.versions)
                                for name, t in summary.tables.items())  # fmt: skip
    # every Delta table of the dataset (data and quarantine): what the source keeps in bronze
    metrics.bytes_stored = sum(run_metrics.stored_bytes(p.parent) or 0
                               for p in dataset_dir.glob("*/_delta_log"))  # fmt: skip
    metrics.details = {"load_ids": summary.load_ids, "rows_by_table": summary.rows_by_table}
