"""Backfill: reload a date range of one source into bronze, then rebuild what depends on it.

For the case a daily incremental cannot cover: a publisher corrects a day older than the
revision window the loader re-reads every run. ``lakehouse backfill --source fx --from D --to D``

1. re-reads exactly those days (dlt's incremental with an ``end_value``: the stored watermark is
   neither read nor moved, so the next daily load continues where it was) and upserts them into
   bronze by key, so only the rows of those days can change;
2. runs ``dbt build --select source:<source>+``: every model downstream of the source, with its
   tests. Silver and gold recompute from bronze, so rows of other days come out as they were and
   only the rows that depend on the corrected days change (gold's ``fx_rates_daily`` for those
   days, and the orders converted with those rates, and the customers who placed them).

``make publish`` then carries the changed rows to the warehouses (the Snowflake MERGE touches only
them). Which sources can be backfilled by date, and what to do for the others, each source
declares (``SourceSpec.backfill`` in its module, ingestion/<source>.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

from ingestion import registry
from ingestion.bronze import LoadSummary
from lakehouse.core.config import Settings
from lakehouse.pipeline import home_record, loads
from lakehouse.stack import source_systems
from lakehouse.transform.dbt_cli import dbt

log = logging.getLogger(__name__)


class BackfillError(ValueError):
    """The backfill cannot run as asked; the message says why and what to do instead."""


@dataclass
class BackfillResult:
    load: LoadSummary
    rebuilt: bool


def validate(source: str, start: date, end: date) -> None:
    """Refuse a backfill that cannot run, before anything starts."""
    if source not in registry.names():
        reason = "it is not a source of this platform"
        raise BackfillError(f"{source} cannot be backfilled by date: {reason}")
    declared = registry.spec(source).backfill
    if declared.cursor is None:
        raise BackfillError(f"{source} cannot be backfilled by date: {declared.why_not}")
    if end < start:
        raise BackfillError(f"the range ends ({end}) before it starts ({start})")


def backfill(
    settings: Settings,
    source: str,
    start: date,
    end: date,
    rebuild: bool = True,
) -> BackfillResult:
    """Reload ``source`` for ``start``..``end`` (inclusive), then rebuild its downstream models."""
    validate(source, start, end)
    if adopted := home_record.check(settings):
        log.info(adopted)
    home_record.remember(settings)
    window = loads.Window(start, end)
    with source_systems.running(settings) as endpoints:
        [load] = loads.ingest(settings, endpoints, [source], window=window)
    if rebuild:
        result = dbt(settings, "build", "--select", f"source:{source}+", check=False)
        if result.returncode != 0:
            raise BackfillError(
                f"bronze {source} was reloaded for {start}..{end}, but the rebuild of its "
                f"downstream models failed (dbt exit {result.returncode}); fix it, then run "
                f"`lakehouse dbt build --select source:{source}+`"
            )
    return BackfillResult(load, rebuild)
