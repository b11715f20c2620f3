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
(lakehouse/warehouses.py says how production endpoints are chosen).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, urlparse

import pyarrow as pa
from deltalake import DeltaTable

from lakehouse import catalog, ops
from lakehouse.config import Settings
from lakehouse.dbt_cli import dbt, target_dir
from lakehouse.lineage import emit, naming
from lakehouse.lineage.emit import Dataset
from lakehouse.warehouses import Warehouse, warehouse

GOLD_SCHEMA = "gold"
# The batch id per table, JSON, for the publish models (dbt_project/macros/publish.sql).
BATCHES_ENV = "LAKEHOUSE_PUBLISH_BATCHES"


class PublishError(RuntimeError):
    """A publish step failed; the message says which warehouse, table and step."""


@dataclass(frozen=True)
class Fingerprint:
    """Row count and an order-independent checksum of a set of rows."""

    rows: int
    checksum: str


@dataclass(frozen=True)
class Snapshot:
    """One version of a gold Delta table, read whole."""

    table: str
    version: int
    committed_at: datetime
    data: pa.Table
    fingerprints: dict[tuple[str, ...], Fingerprint] = field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def batch_id(self) -> str:
        """The snapshot's identity: its Delta version and the commit's time (UTC, ms)."""
        return f"v{self.version}@{self.committed_at:%Y-%m-%dT%H:%M:%S.%f}"[:-3] + "Z"


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
    with ops.recording(settings, "publish", result.warehouse) as job:
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


# --- snapshots and fingerprints ----------------------------------------------------------------


def _local_path(location: str) -> str:
    """A Spark table location (``file:/x``, ``file:///x`` or a path) as delta-rs wants it."""
    parsed = urlparse(location)
    return unquote(parsed.path) if parsed.scheme in ("", "file") else location


def read_snapshot(settings: Settings, table: str) -> Snapshot:
    """The current snapshot of ``gold.<table>``; the engine says where it lives."""
    location = catalog.table_detail(settings, f"{GOLD_SCHEMA}.{table}")["location"]
    delta = DeltaTable(_local_path(location))
    commit = delta.history(1)[0]
    return Snapshot(
        table=table,
        version=delta.version(),
        committed_at=datetime.fromtimestamp(commit["timestamp"] / 1000, tz=UTC),
        data=delta.to_pyarrow_table(),
    )


def _canonical(value: Any) -> str:
    """One text form per value, whichever engine returned it (Spark, Snowflake, PostgreSQL).

    Numbers compare by value at 6 decimals (NUMBER(38,0) may come back as int or Decimal),
    timestamps as naive UTC with microseconds (the warehouses store TIMESTAMP_NTZ / timestamp).
    """
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return format(Decimal(str(value)).quantize(Decimal("0.000001")), "f")
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat(timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def fingerprint(rows: Iterable[Sequence[Any]]) -> Fingerprint:
    """Count and checksum: the sum (mod 2^128) of each row's MD5, so order does not matter and,
    unlike XOR, a duplicated row changes the result."""
    total = count = 0
    for row in rows:
        digest = hashlib.md5("\x1f".join(_canonical(v) for v in row).encode()).digest()
        total = (total + int.from_bytes(digest, "big")) % (1 << 128)
        count += 1
    return Fingerprint(count, f"{total:032x}")


def snapshot_fingerprint(snapshot: Snapshot, columns: Sequence[str]) -> Fingerprint:
    """The snapshot's fingerprint over ``columns``; computed once per snapshot and columns (a
    snapshot never changes, and every warehouse reconciles against the same one)."""
    key = tuple(columns)
    if key not in snapshot.fingerprints:
        data = snapshot.data.select(list(columns))
        snapshot.fingerprints[key] = fingerprint(tuple(row.values()) for row in data.to_pylist())
    return snapshot.fingerprints[key]


# --- the three steps ---------------------------------------------------------------------------


def stage(wh: Warehouse, snapshot: Snapshot, restage: bool = False) -> tuple[int, bool]:
    """Replace ``publish_staging.<table>`` with the snapshot; return the rows it now holds and
    whether it was (re)written.

    A staging table holding exactly this batch's rows and nothing else already is the snapshot
    (a batch id names one Delta version; every publish replaces staging whole), so it is kept,
    unless ``restage`` (a full refresh) asks for a fresh copy.
    """
    rows = snapshot.data.num_rows
    if not restage and wh.staging_holds_only(snapshot.table, snapshot.batch_id) == rows:
        return rows, False
    stamped = snapshot.data.append_column(
        "_batch_id", pa.array([snapshot.batch_id] * rows, pa.string())
    ).append_column("_lake_version", pa.array([snapshot.version] * rows, pa.int64()))
    wh.replace_staging(snapshot.table, stamped)
    staged = wh.staged_rows(snapshot.table, snapshot.batch_id)
    if staged != snapshot.data.num_rows:
        raise PublishError(
            f"{wh.name}: staging {snapshot.table} holds {staged} rows of batch "
            f"{snapshot.batch_id}, the snapshot has {snapshot.data.num_rows}; not publishing"
        )
    return staged, True


@contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    """``name=value`` in this process's environment for the block (dbt_cli.dbt passes it on)."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def serve(
    settings: Settings, wh: Warehouse, snapshots: dict[str, Snapshot], full_refresh: bool = False
) -> None:
    """Run the warehouse's publish models (and their tests) on its dbt target.

    ``full_refresh`` rebuilds the Snowflake mirrors from the snapshot (the repair after a
    reconciliation failure); Redshift histories refuse it (``full_refresh: false``).
    """
    batches = {table: s.batch_id for table, s in snapshots.items()}
    models = " ".join(wh.model_name(table) for table in snapshots)
    timeout_s = settings.publish.dbt_timeout_s
    try:
        # The batch ids go by environment, not --vars: dbt reparses the whole project whenever
        # --vars change, and every new gold snapshot is a new id (macros/publish.sql).
        with _environment(BATCHES_ENV, json.dumps(batches)):
            result = dbt(
                settings,
                "build",
                "--target", wh.dbt_target,
                "--select", models,
                # The lake build's artefacts (manifest, run results) in target/ stay untouched;
                # each warehouse target keeps its own partial parse, inside the target folder of
                # this process (DBT_TARGET_PATH: a run beside another has its own).
                "--target-path", str(target_dir() / f"publish_{wh.name}"),
                *(["--full-refresh"] if full_refresh else []),
                check=False,
                timeout_s=timeout_s,
            )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise PublishError(
            f"{wh.name}: dbt build of the publish models ran over {timeout_s}s and was killed "
            "(publish.dbt_timeout_s in lakehouse.yml)"
        ) from None
    if result.returncode != 0:
        raise PublishError(
            f"{wh.name}: dbt build of the publish models failed (exit {result.returncode}); "
            "its output is above"
        )


def reconcile(settings: Settings, wh: Warehouse, snapshot: Snapshot) -> Fingerprint:
    """Fail unless the warehouse holds exactly the snapshot's rows (count and checksum)."""
    columns = settings.publish.tables[snapshot.table].checksum_columns
    expected = snapshot_fingerprint(snapshot, columns)
    actual = fingerprint(wh.published_rows(snapshot.table, columns, snapshot.batch_id))
    if actual != expected:
        raise PublishError(
            f"{wh.name}: {wh.served_table(snapshot.table)} does not reconcile with lake "
            f"gold.{snapshot.table} {snapshot.batch_id}: warehouse {actual.rows} rows, checksum "
            f"{actual.checksum}; lake {expected.rows} rows, checksum {expected.checksum} "
            f"(checksum over {', '.join(columns)})"
        )
    return actual


def _gold_dataset(settings: Settings, snapshot: Snapshot) -> Dataset:
    columns = {f.name: str(f.type) for f in snapshot.data.schema}
    return Dataset(naming.lake_table(settings, f"{GOLD_SCHEMA}.{snapshot.table}"), columns)


def _served_dataset(wh: Warehouse, gold: Dataset, rows: int) -> Dataset:
    """A served table: every gold column lands unchanged (plus the batch columns publish adds)."""
    table = gold.id.name.split(".")[-1]
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
    report=print,
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
        report(f"lake gold.{s.table}: {s.data.num_rows:,} rows, batch {s.batch_id}")
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
            report(f"{name}: {wh.served_table(table)} reconciled: {info['rows']:,} rows of "
                   f"{info['batch']}, checksum {info['checksum'][:12]}")  # fmt: skip
        report(result.summary())
    return results


def emulator_staging_s(results: Iterable[PublishResult]) -> float:
    """Seconds the publish spent staging into emulators: reported beside run totals, not in
    them, since they measure the local stand-in rather than the platform."""
    return sum(r.emulator_staging_s for r in results)
