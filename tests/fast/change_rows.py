"""Rows of ``ops.table_changes`` as the gold change audit writes them (the schema the audit and the
report agreed on), written with delta-rs where the report and the watchdog read them: fixtures for
tests/fast/test_change_report.py, tests/fast/test_change_alert.py and the Chromium screenshot in
tests/test_change_report_chromium.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from lakehouse.core.config import Settings
from lakehouse.core.storage import write_delta
from lakehouse.observability import table_changes, watchdog

SCHEMA = table_changes.SCHEMA  # what the audit writes
START = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)


def change(
    build: int,
    table: str = "gold.customer_360",
    added: int = 0,
    removed: int = 0,
    changed: int = 0,
    rows_before: int = 100,
    columns: dict[str, int] | str | None = None,
    examples: list[dict[str, Any]] | str | None = None,
    alert_share: float = 0.2,
    **overrides: Any,
) -> dict[str, Any]:
    """Build number ``build`` of ``table`` (one build a day from START), judged as the audit
    judges it: share = (added + removed + changed) / max(rows_before, 1), over when > alert_share.
    ``columns`` and ``examples`` given as strings are written as they are (malformed ones too)."""
    share = (added + removed + changed) / max(rows_before, 1)
    row = {
        "recorded_at": START + timedelta(days=build),
        "build_id": f"build-{build:02d}",
        "table": table,
        "key": "customer_id",
        "from_version": build,
        "to_version": build + 1,
        "rows_before": rows_before,
        "rows_after": rows_before + added - removed,
        "added": added,
        "removed": removed,
        "changed": changed,
        "change_share": share,
        "columns": columns if isinstance(columns, str) else json.dumps(columns or {}),
        "examples": examples if isinstance(examples, str) else json.dumps(examples or []),
        "alert_share": alert_share,
        "over_threshold": share > alert_share,
    }
    row.update(overrides)
    return row


def write_changes(settings: Settings, rows: list[dict[str, Any]]) -> None:
    """Append ``rows`` to ``ops.table_changes`` of ``settings``' lake."""
    path = watchdog.changes_path(settings)
    path.mkdir()
    write_delta(path, pa.Table.from_pylist(rows, schema=SCHEMA), mode="append")
