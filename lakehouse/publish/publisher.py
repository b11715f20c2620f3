"""Publish gold to the warehouses: stage a lake snapshot, let dbt serve it, then reconcile.

Per warehouse, three steps, each safe to repeat (a retried Airflow task is the normal case):

1. **Stage.** Read the current Delta snapshot of each gold table straight from the lake
   (delta-rs; no Spark job) and copy it into the warehouse's ``publish_staging.<table>``, every
   row stamped with the snapshot's batch id. The staging table is replaced whole, unless it
   already holds exactly that batch (a repeated publish of the same snapshot). A publish
   killed here leaves a partial staging table, which step 2 never sees: its row count is checked
   against the snapshot first, and the next publish replaces it.
2. **Serve.** ``dbt build`` of the warehouse's publish models (dbt_project/models/publish) on its
   dbt target: in Snowflake a MERGE on the table's key (new rows in, changed rows updated,
   unchanged rows untouched, vanished keys deleted), in Redshift an append of the batch unless
   that batch is already there. The SQL lives in the dbt project, the only place it is written.
3. **Reconcile.** Row count and a checksum of the configured key columns in the warehouse must
   equal the snapshot's; otherwise the publish fails with both numbers.

A batch id names one Delta snapshot (version and commit time), so publishing the same snapshot
twice is the same batch, and a lake rebuilt from scratch (versions restart) never reuses an id.

Local default: the fakesnow emulator for Snowflake and the project's PostgreSQL for Redshift
(lakehouse/publish/warehouses.py says how production endpoints are chosen).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from lakehouse.core import naming
from lakehouse.core.config import Settings
from lakehouse.core.datasets import Dataset
from lakehouse.observability import run_metrics
from lakehouse.observability.lineage import emit
from lakehouse.observability.lineage.registry import Served
from lakehouse.publish.errors import PublishError
from lakehouse.publish.reconcile import reconcile
from lakehouse.publish.serve import serve
from lakehouse.publish.snapshot import GOLD_SCHEMA, Snapshot, read_snapshot
from lakehouse.publish.stage import stage
from lakehouse.publish.warehouses import Warehouse, warehouse

log = logging.getLogger(__name__)

PHASES = ("stage", "serve", "reconcile")


@dataclass
class PublishResult:
    """One warehouse's publish: per table its rows, checksum and batch; per phase its wall time.

    ``seconds`` holds ``read`` (the lake snapshots, read once and shared by every warehouse of
    the call) and the warehouse's own ``stage``, ``serve`` and ``reconcile``. ``emulator`` names
    the local emulator that stood in for the warehouse (None for a real one): its staging time
    measures the emulator, not the platform, so reports show it beside the totals.
    """

    warehouse: str
    seconds: dict[str, float] = field(default_factory=dict)
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    emulator: str | None = None

    @property
    def warehouse_s(self) -> float:
        """This warehouse's own time: stage + serve + reconcile (not the shared read)."""
        return sum(self.seconds.get(phase, 0.0) for phase in PHASES)

    @property
    def emulator_staging_s(self) -> float:
        """Seconds spent staging into an emulator; 0 for a real warehouse or database."""
        return self.seconds.get("stage", 0.0) if self.emulator else 0.0

    def summary(self) -> str:
        """``snowflake (fakesnow emulator): stage 1.2s, serve 8.0s, reconcile 0.9s``."""
        target = f" ({self.emulator} emulator)" if self.emulator else ""
        phases = ", ".join(f"{p} {self.seconds[p]:.1f}s" for p in PHASES if p in self.seconds)
        return f"{self.warehouse}{target}: {phases}"


@contextmanager
def _metrics(
    settings: Settings, result: PublishResult, snapshots: dict[str, Snapshot]
) -> Iterator[None]:
    """Record the warehouse's publish in ops.run_metrics, as it ended (success or error)."""
    with run_metrics.recording(settings, "publish", result.warehouse) as job:
        job.rows_read = sum(s.data.num_rows for s in snapshots.values())
        try:
            yield
        finally:
            job.rows_written = sum(
                t.get("staged", 0) for t in result.tables.values() if t.get("restaged")
            )
            job.details = {
                "tables": result.tables,
                "seconds": result.seconds,
                "emulator": result.emulator,
            }


def _gold_dataset(settings: Settings, snapshot: Snapshot) -> Dataset:
    columns = {f.name: str(f.type) for f in snapshot.data.schema}
    table = f"{GOLD_SCHEMA}.{snapshot.table}"
    # named by location, as every producer names a lake table; the catalog name as its alias
    return Dataset(naming.lake_table(settings, table), columns,
                   symlink=naming.catalog_table(settings, table))  # fmt: skip


def _served_dataset(wh: Warehouse, gold: Dataset, rows: int) -> Dataset:
    """A served table: every gold column lands unchanged (plus the batch columns publish adds)."""
    table = PurePosixPath(gold.id.name).name  # <warehouse>/gold.db/<table>
    return Dataset(
        id=wh.dataset(table),
        columns=gold.columns,
        system=wh.name,
        lineage={c: [(gold.id, c)] for c in gold.columns},
        rows=rows,
    )


def publish(
    settings: Settings,
    warehouses: Sequence[str] | None = None,
    tables: Sequence[str] | None = None,
    full_refresh: bool = False,
) -> list[PublishResult]:
    """Publish ``tables`` (default: all configured) to ``warehouses`` (default: all)."""
    names = list(tables or settings.publish.tables)
    unknown = sorted(set(names) - set(settings.publish.tables))
    if unknown:
        raise PublishError(
            f"not configured for publishing (lakehouse.yml publish.tables): {unknown}"
        )
    started = time.perf_counter()
    snapshots = {table: read_snapshot(settings, table) for table in names}
    read_s = time.perf_counter() - started
    for s in snapshots.values():
        log.info(f"lake gold.{s.table}: {s.data.num_rows:,} rows, batch {s.batch_id}")
    results = []
    for name in warehouses or settings.publish.warehouses:
        wh = warehouse(name, settings)
        result = PublishResult(name, {"read": read_s}, emulator=wh.emulator)
        results.append(result)
        gold = {s.table: _gold_dataset(settings, s) for s in snapshots.values()}
        with (
            _metrics(settings, result, snapshots),
            emit.job_run(
                settings, f"publish.{name}", "LAKEHOUSE", list(gold.values()), "lakehouse"
            ) as run,
            wh.session(),
        ):
            t0 = time.perf_counter()
            for s in snapshots.values():
                staged, written = stage(wh, s, restage=full_refresh)
                result.tables[s.table] = {"staged": staged, "restaged": written}
            result.seconds["stage"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            serve(settings, wh, snapshots, full_refresh)
            result.seconds["serve"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            for s in snapshots.values():
                fp = reconcile(settings, wh, s)
                result.tables[s.table].update(rows=fp.rows, checksum=fp.checksum, batch=s.batch_id)
            result.seconds["reconcile"] = time.perf_counter() - t0
            run.outputs = [
                _served_dataset(wh, gold[t], info["rows"]) for t, info in result.tables.items()
            ]
        for table, info in result.tables.items():
            log.info(f"{name}: {wh.served_table(table)} reconciled: {info['rows']:,} rows of "
                     f"{info['batch']}, checksum {info['checksum'][:12]}")  # fmt: skip
        log.info(result.summary())
    return results


def emulator_staging_s(results: Iterable[PublishResult]) -> float:
    """Seconds the publish spent staging into emulators: reported beside run totals, not in
    them, since they measure the local stand-in rather than the platform."""
    return sum(r.emulator_staging_s for r in results)


def served(settings: Settings) -> list[Served]:
    """Every gold table as each configured warehouse serves it (for the lineage registry)."""
    return [
        Served(name, table, wh.dataset(table), wh.local)
        for name in settings.publish.warehouses
        for wh in [warehouse(name, settings)]
        for table in settings.publish.tables
    ]
