"""Volume and quarantine checks of the bronze layer, and the gold change alert: the hourly
dq_watchdog DAG runs them.

The bronze checks read Delta's own commit history of each bronze table (every dlt load is one or
more commits carrying ``num_added_rows`` / merge metrics), not the rows themselves, so they cost
milliseconds, and they judge replace, append and upsert tables alike: a replaced table's rows
all carry the last load's time, but its history still says how many rows each load wrote.
Freshness is dbt's job (``dbt source freshness``), run by the same DAG.

The gold change alert reads ``ops.table_changes`` (one row per build and gold table: how many rows
the build added, removed and changed, and whether that share of the table is over the configured
``alert_share``) and raises each (build, table) over its threshold once: the (build, table) pairs
already raised are kept in ``ops.table_change_alerts``, so an hourly watchdog does not page again
for a build it already reported.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake.exceptions import TableNotFoundError

from ingestion.bronze import commit_rows
from ingestion.contracts import QUARANTINE_TABLE
from lakehouse.core.config import Settings, WatchdogConfig
from lakehouse.core.storage import Location, delta_table, write_delta
from lakehouse.observability import table_changes as table_changes_audit

CHANGES_TABLE = "ops.table_changes"
# The (build, table) pairs the change alert already raised, so that each is raised once.
ALERTED_SCHEMA = pa.schema([
    ("alerted_at", pa.timestamp("us", tz="UTC")),
    ("build_id", pa.string()),
    ("table", pa.string()),
    ("change_share", pa.float64()),
    ("alert_share", pa.float64()),
])  # fmt: skip


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


# --- gold changes (ops.table_changes) ------------------------------------------------------------


def changes_path(settings: Settings) -> Location:
    """Where the gold change audit records one row per (build, gold table)."""
    return table_changes_audit.table_path(settings)


def alerted_path(settings: Settings) -> Location:
    return settings.lake / "ops" / "table_change_alerts"


def table_changes(settings: Settings) -> list[dict[str, Any]]:
    """Every row of ``ops.table_changes``, oldest build first; ``columns`` and ``examples`` parsed
    from their JSON (a value that is not what the schema says reads as empty, never an error: the
    report and the alert must not fail on one bad row). No table yet: no rows."""
    rows = table_changes_audit.read(settings)
    for row in rows:
        row["columns"] = changed_columns(row.get("columns"))
        row["examples"] = _examples(row.get("examples"))
    return rows


def changed_columns(raw: Any) -> dict[str, int]:
    """``columns`` (JSON object: column -> rows whose value changed), most changed first (ties by
    name); counts that are not positive whole numbers are left out."""
    try:
        parsed = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return {}
    if not isinstance(parsed, dict):
        return {}
    counts = {}
    for column, rows in parsed.items():
        try:
            n = int(rows)
        except (TypeError, ValueError):
            continue
        if n > 0:  # a column no row changed in is not a changed column
            counts[str(column)] = n
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _examples(raw: Any) -> list[dict[str, Any]]:
    try:
        parsed = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return []
    return [e for e in parsed if isinstance(e, dict)] if isinstance(parsed, list) else []


def changed_rows(row: dict[str, Any]) -> int:
    return sum(int(row.get(kind) or 0) for kind in ("added", "removed", "changed"))


def over_threshold(row: dict[str, Any]) -> bool:
    """The row's own verdict (the audit judged it against the threshold configured then); a
    table's first build (no version before it) changed nothing that existed, so never."""
    if row.get("from_version") is None:
        return False
    if row.get("over_threshold") is not None:
        return bool(row["over_threshold"])
    share, limit = row.get("change_share"), row.get("alert_share")
    return share is not None and limit is not None and share > limit


def describe_change(row: dict[str, Any]) -> str:
    """One line for a person (and the alert's last output line)."""
    share, limit = row.get("change_share") or 0.0, row.get("alert_share")
    top = ", ".join(f"{c} ({n:,})" for c, n in list(row["columns"].items())[:3])
    return (
        f"{changed_rows(row):,} of {int(row.get('rows_before') or 0):,} rows changed in build "
        f"{row.get('build_id')} ({share:.1%}"
        + ("" if limit is None else f", limit {limit:.1%}")
        + f"): {int(row.get('added') or 0):,} added, {int(row.get('removed') or 0):,} removed, "
        f"{int(row.get('changed') or 0):,} changed"
        + (f"; most changed columns: {top}" if top else "")
    )


def alerted(settings: Settings) -> set[tuple[str, str]]:
    """(build id, table) of every change alert already raised."""
    try:
        table = delta_table(alerted_path(settings)).to_pyarrow_table(columns=["build_id", "table"])
    except TableNotFoundError:
        return set()
    return set(zip(table["build_id"].to_pylist(), table["table"].to_pylist(), strict=True))


def gold_changes(
    settings: Settings, now: datetime | None = None, remember: bool = True
) -> list[Finding]:
    """A breach per (build, gold table) over its threshold not raised before, then remembered
    (``remember``) so the next watchdog run does not raise it again; and per table, its last
    build's change as a passing finding when that build is not a new breach."""
    rows = table_changes(settings)
    raised = alerted(settings)
    findings, new = [], []
    for row in rows:
        pair = (str(row.get("build_id")), str(row.get("table")))
        if over_threshold(row) and pair not in raised:
            findings.append(Finding(pair[1], True, describe_change(row)))
            new.append(row)
            raised.add(pair)
    last = {str(row.get("table")): row for row in rows}
    new_ids = {id(row) for row in new}
    for table, row in sorted(last.items()):
        if id(row) not in new_ids:
            note = " (over the limit, alerted before)" if over_threshold(row) else ""
            findings.append(Finding(table, False, describe_change(row) + note))
    if remember and new:
        _remember(settings, new, now or datetime.now(UTC))
    return findings


def _remember(settings: Settings, rows: list[dict[str, Any]], now: datetime) -> None:
    data = pa.Table.from_pylist([{
        "alerted_at": now, "build_id": str(r.get("build_id")), "table": str(r.get("table")),
        "change_share": r.get("change_share"), "alert_share": r.get("alert_share"),
    } for r in rows], schema=ALERTED_SCHEMA)  # fmt: skip
    path = alerted_path(settings)
    path.mkdir()
    write_delta(path, data, mode="append")
