"""Volume and quarantine checks of the bronze layer: the hourly dq_watchdog DAG runs them.

Both read Delta's own commit history of each bronze table (every dlt load is one or more
commits carrying ``num_added_rows`` / merge metrics), not the rows themselves, so they cost
milliseconds, and they judge replace, append and upsert tables alike: a replaced table's rows
all carry the last load's time, but its history still says how many rows each load wrote.
Freshness is dbt's job (``dbt source freshness``), run by the same DAG.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from deltalake.exceptions import TableNotFoundError

from ingestion.bronze import commit_rows
from ingestion.contracts import QUARANTINE_TABLE
from lakehouse.core.config import Settings, WatchdogConfig
from lakehouse.core.storage import Location, delta_table


@dataclass(frozen=True)
class Finding:
    """One table's (or source's) verdict; ``breach`` findings fail the check."""

    subject: str
    breach: bool
    message: str


def commits(path: Location | Path) -> list[tuple[datetime, int]]:
    """(commit time, rows written) of every commit of the Delta table at ``path``."""
    try:
        history = delta_table(path).history()
    except TableNotFoundError:
        return []
    return [
        (datetime.fromtimestamp(c["timestamp"] / 1000, UTC), commit_rows(c))
        for c in history
        if c.get("timestamp") is not None
    ]


def bronze_tables(settings: Settings) -> dict[str, list[Location]]:
    """Source -> its bronze data tables (quarantine and dlt's bookkeeping tables left out)."""
    tables: dict[str, list[Location]] = {}
    for source_dir in settings.bronze.dirs():
        tables[source_dir.name] = [
            p for p in source_dir.delta_tables(1) if p.name != QUARANTINE_TABLE
        ]
    return tables


def judge_volume(daily: dict[date, int], conf: WatchdogConfig) -> tuple[bool, str]:
    """Rows of the latest load day vs the average of the ``trailing_days`` days before it.

    Days without a load inside the window count as zero (a missed load is a drop in volume),
    but only from the table's first load on. With fewer than ``min_history_days`` days of
    history the volume is reported, not judged.
    """
    if not daily:
        return False, "never loaded"
    latest = max(daily)
    first = min(daily)
    window = [
        latest - timedelta(days=d)
        for d in range(1, conf.trailing_days + 1)
        if latest - timedelta(days=d) >= first
    ]
    today = daily[latest]
    if len(window) < conf.min_history_days:
        return False, f"{today:,} rows on {latest}; {len(window)} day(s) of history, not judged"
    average = sum(daily.get(d, 0) for d in window) / len(window)
    if average == 0:
        return today > 0, f"{today:,} rows on {latest} after {len(window)} days without any"
    change = (today - average) / average
    verdict = abs(change) > conf.volume_tolerance
    return verdict, (
        f"{today:,} rows on {latest} vs a trailing average of {average:,.0f} "
        f"({change:+.0%}, tolerance ±{conf.volume_tolerance:.0%})"
    )


def volume(settings: Settings, conf: WatchdogConfig | None = None) -> list[Finding]:
    conf = conf or settings.orchestration.watchdog
    findings = []
    for source, tables in bronze_tables(settings).items():
        for table in tables:
            daily: dict[date, int] = defaultdict(int)
            for at, rows in commits(table):
                daily[at.date()] += rows
            breach, message = judge_volume(daily, conf)
            findings.append(Finding(f"bronze_{source}.{table.name}", breach, message))
    return findings


def quarantine_growth(
    settings: Settings, conf: WatchdogConfig | None = None, now: datetime | None = None
) -> list[Finding]:
    """Per source: rows quarantined in the window as a share of all rows it read then."""
    conf = conf or settings.orchestration.watchdog
    since = (now or datetime.now(UTC)) - timedelta(hours=conf.quarantine_window_h)
    findings = []
    for source, tables in bronze_tables(settings).items():
        loaded = sum(rows for t in tables for at, rows in commits(t) if at >= since)
        quarantine = settings.bronze / source / QUARANTINE_TABLE
        quarantined = sum(rows for at, rows in commits(quarantine) if at >= since)
        read = loaded + quarantined
        share = quarantined / read if read else 0.0
        findings.append(Finding(
            f"bronze_{source}.{QUARANTINE_TABLE}",
            share > conf.quarantine_max_share,
            f"{quarantined:,} of {read:,} rows read in the last {conf.quarantine_window_h} h "
            f"quarantined ({share:.1%}, limit {conf.quarantine_max_share:.1%})",
        ))  # fmt: skip
    return findings
