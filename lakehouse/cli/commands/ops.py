"""``lakehouse ops``: show a run's metrics (ops.run_metrics), or record a dbt run's (its
metrics, and the change audit of the gold models it rebuilt: ops.table_changes)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from lakehouse.core.config import Settings
from lakehouse.observability import run_metrics, table_changes
from lakehouse.observability.watchdog_report import count

log = logging.getLogger(__name__)


def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "record-dbt":
        if not args.target_dir:
            print("record-dbt needs --target-dir", file=sys.stderr)
            return 2
        recorded = run_metrics.record_dbt(settings, Path(args.target_dir))
        log.info(
            f"{recorded} dbt job(s) recorded in {run_metrics.TABLE} (run {run_metrics.run_id()})"
        )
        # the same build's change audit (Airflow's producer records through here)
        changes = table_changes.record_dbt(settings, Path(args.target_dir))
        log.info(f"{len(changes)} gold table change(s) recorded in {table_changes.TABLE}")
        return 0
    rows = run_metrics.read(settings)
    run_id = args.run or (rows[-1]["run_id"] if rows else None)
    rows = [r for r in rows if r["run_id"] == run_id]
    if not rows:
        print("no run recorded yet" if run_id is None else f"no run {run_id}", file=sys.stderr)
        return 1
    print(f"run {run_id}")
    for r in rows:
        print(
            f"  {r['step']:<8} {r['job']:<42} {r['status']:<8} {r['duration_s']:>7.1f}s "
            f"read {count(r['rows_read']):>9} written {count(r['rows_written']):>9} "
            f"quarantined {count(r['rows_quarantined']):>6} "
            f"cost {r['compute_cost']:.5f} {r['currency']}"
        )
    total = sum(r["compute_cost"] for r in rows)
    print(f"  {len(rows)} jobs, compute cost {total:.4f} {rows[0]['currency']}")
    return 0
