"""A gold table's snapshot, read whole from the lake, and the fingerprint publish reconciles by.

The snapshot is read straight from its Delta log with delta-rs (no Spark job); the engine only
says where the table lives. A batch id names one snapshot (Delta version and commit time), so
publishing the same snapshot twice is the same batch. The fingerprint (row count and an
order-independent checksum) is computed the same way from the lake and from each warehouse.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, urlparse

import pyarrow as pa

from lakehouse.core.config import Settings
from lakehouse.core.storage import Location, delta_table, is_s3
from lakehouse.transform import catalog

GOLD_SCHEMA = "gold"


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


def _local_path(location: str) -> str:
    """A Spark table location (``file:/x``, ``file:///x`` or a path) as delta-rs wants it."""
    parsed = urlparse(location)
    return unquote(parsed.path) if parsed.scheme in ("", "file") else location


def _lake_location(settings: Settings, location: str) -> Location:
    """A Spark table location as delta-rs reads it: ``s3a://`` as ``s3://`` with the lake's
    credentials, a local one as a path."""
    if is_s3(location):
        return Location.of(location, settings.storage_env())
    return Location.of(_local_path(location))


def read_snapshot(settings: Settings, table: str) -> Snapshot:
    """The current snapshot of ``gold.<table>``; the engine says where it lives."""
    location = catalog.table_detail(settings, f"{GOLD_SCHEMA}.{table}")["location"]
    delta = delta_table(_lake_location(settings, location))
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
