"""Schema-on-write at the door of bronze: declared columns, the unknown-column policy, quarantine.

Every loader declares the columns of each bronze table. Before dlt sees a record, ``guard``
checks it against that declaration and the source's ``schema_policy`` (lakehouse.yml):

- ``schema_on_read``: unknown columns evolve the bronze table (dlt adds them).
- ``schema_on_write`` + ``unknown_columns``:
  - ``quarantine``: the whole record goes to the dataset's ``quarantine`` table with its source,
    table, reason and raw payload; the bronze table never sees it.
  - ``drop``: the unknown values are discarded (and counted), the record is kept.
  - ``fail``: the load raises before anything is written, so bronze stays exactly as it was.

Records that are malformed (a required key missing, a value that is not of its declared type,
JSON that does not parse) are quarantined with a reason under every policy.

Why here and not only in dlt's schema contracts: dlt's column contract guards tables that already
exist (a new table takes whatever columns the first load brings), and its ``discard_row`` mode
drops records silently. The dlt contract is still set as a backstop (``dlt_schema_contract``).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import dlt
from dlt.common.schema.typing import TColumnSchema
from dlt.common.schema.utils import new_table

from lakehouse.config import SchemaPolicy

QUARANTINE_TABLE = "quarantine"

QUARANTINE_COLUMNS: dict[str, TColumnSchema] = {
    "quarantine_id": {"data_type": "text", "nullable": False},
    "source": {"data_type": "text", "nullable": False},
    "source_table": {"data_type": "text", "nullable": False},
    "reason": {"data_type": "text", "nullable": False},
    "raw_payload": {"data_type": "text", "nullable": False},
    "quarantined_at": {"data_type": "timestamp", "timezone": True, "nullable": False},
}

# Load metadata every bronze row carries besides dlt's own _dlt_load_id / _dlt_id.
METADATA_COLUMNS: dict[str, TColumnSchema] = {
    "_source": {"data_type": "text", "nullable": False},
    "_loaded_at": {"data_type": "timestamp", "timezone": True, "nullable": False},
}


class SchemaContractViolation(ValueError):
    """A record brought columns the contract does not know and the policy is ``fail``."""


@dataclass(frozen=True)
class TableContract:
    """The declared shape of one bronze table: dlt column hints plus the keys that must be set."""

    name: str
    columns: Mapping[str, TColumnSchema]
    required: tuple[str, ...] = ()

    def dlt_columns(self) -> dict[str, TColumnSchema]:
        return {**self.columns, **METADATA_COLUMNS}

    def register(self, schema: Any) -> None:
        """Declare this table's columns in a dlt schema before the first load.

        The columns live in the schema, not in the resource's hints, for two reasons: dlt's
        column contract (freeze) then applies from the very first load, and quarantine records
        (a dlt table variant of the resource) do not inherit the source table's columns.
        """
        columns = [{"name": name, **column} for name, column in self.dlt_columns().items()]
        schema.update_table(new_table(self.name, columns=columns))


@dataclass
class GuardStats:
    """What the guard saw, per table: rows read, quarantined (by reason), values dropped."""

    read: Counter = field(default_factory=Counter)
    quarantined: Counter = field(default_factory=Counter)
    dropped_values: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "read": dict(self.read),
            "quarantined": dict(self.quarantined),
            "dropped_values": dict(self.dropped_values),
        }


def dlt_schema_contract(policy: SchemaPolicy) -> dict[str, str]:
    """The dlt schema contract matching a policy (the backstop behind ``guard``)."""
    if policy.mode == "schema_on_read":
        return {"tables": "evolve", "columns": "evolve", "data_type": "evolve"}
    return {"tables": "evolve", "columns": "freeze", "data_type": "freeze"}


def _coerce(value: Any, column: TColumnSchema) -> Any:
    """Check (and lightly normalise) a value against its declared dlt type; raise if it is not."""
    if value is None:
        return None
    kind = column.get("data_type")
    if kind == "bigint":
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(f"expected an integer, got {value!r}")
        return int(value)
    if kind in ("double", "decimal"):
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got {value!r}")
        return float(value) if kind == "double" else Decimal(str(value))
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"expected a boolean, got {value!r}")
        return value
    if kind == "text":
        return value if isinstance(value, str) else str(value)
    if kind == "date":
        return value if isinstance(value, date) else date.fromisoformat(str(value))
    if kind == "timestamp":
        ts = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        # Naive timestamps would become timestampNtz in Delta: make every one tz-aware UTC.
        return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    return value


def _payload(record: Any) -> str:
    if isinstance(record, bytes | bytearray):
        return record.decode("utf-8", errors="replace")
    if isinstance(record, str):
        return record
    return json.dumps(record, default=str, sort_keys=True)


def quarantine_record(source: str, table: str, reason: str, record: Any, at: datetime) -> Any:
    """A record for the dataset's quarantine table, routed there by dlt table hints.

    Its id hashes the payload and reason, and the table is merged insert-only on it, so a rerun or
    replay never quarantines the same record twice.
    """
    raw = _payload(record)
    digest = hashlib.sha256(f"{source}|{table}|{reason}|{raw}".encode()).hexdigest()[:32]
    row = {
        "quarantine_id": digest,
        "source": source,
        "source_table": table,
        "reason": reason,
        "raw_payload": raw,
        "quarantined_at": at,
    }
    hints = dlt.mark.make_hints(
        table_name=QUARANTINE_TABLE,
        write_disposition={"disposition": "merge", "strategy": "insert-only"},
        primary_key="quarantine_id",
        columns=QUARANTINE_COLUMNS,
    )
    return dlt.mark.with_hints(row, hints, create_table_variant=True)


def guarded(
    source: str,
    contract: TableContract,
    policy: SchemaPolicy,
    stats: GuardStats,
    loaded_at: datetime,
) -> Callable[[Any], Iterator[Any]]:
    """``guard`` for one record at a time, as a dlt yield map (``resource.add_yield_map``).

    One argument on purpose: dlt passes item metadata to callables that take two.
    """

    def check(record: Any) -> Iterator[Any]:
        return guard([record], source=source, contract=contract, policy=policy, stats=stats,
                     loaded_at=loaded_at)  # fmt: skip

    return check


def guard(
    records: Iterable[Any],
    *,
    source: str,
    contract: TableContract,
    policy: SchemaPolicy,
    stats: GuardStats,
    loaded_at: datetime,
    parse: Callable[[Any], dict] | None = None,
    raw: Callable[[Any], Any] | None = None,
) -> Iterator[Any]:
    """Yield clean rows (with load metadata) and quarantine records; raise on a ``fail`` policy.

    ``parse`` turns a raw record into a dict (e.g. a Kafka message with JSON bytes); a parse error
    quarantines ``raw(record)`` (default: the record itself).
    """
    table = contract.name
    known = set(contract.columns)
    for record in records:
        stats.read[table] += 1
        try:
            row = parse(record) if parse else dict(record)
            if not isinstance(row, dict):
                raise ValueError(f"expected an object, got {type(row).__name__}")
        except ValueError as exc:
            stats.quarantined[f"{table}: malformed"] += 1
            payload = raw(record) if raw else record
            yield quarantine_record(source, table, f"malformed record: {exc}", payload, loaded_at)
            continue

        unknown = sorted(set(row) - known)
        if unknown and policy.mode == "schema_on_write":
            if policy.unknown_columns == "fail":
                raise SchemaContractViolation(
                    f"{source}.{table}: unknown columns {unknown} (schema_policy: fail); "
                    "nothing was loaded"
                )
            if policy.unknown_columns == "quarantine":
                stats.quarantined[f"{table}: unknown columns"] += 1
                reason = f"unknown columns: {', '.join(unknown)}"
                yield quarantine_record(source, table, reason, row, loaded_at)
                continue
            for name in unknown:
                stats.dropped_values[f"{table}.{name}"] += 1
                del row[name]

        missing = [key for key in contract.required if row.get(key) in (None, "")]
        if missing:
            stats.quarantined[f"{table}: missing key"] += 1
            reason = f"missing required value: {', '.join(missing)}"
            yield quarantine_record(source, table, reason, row, loaded_at)
            continue
        try:
            for name, column in contract.columns.items():
                if name in row:
                    row[name] = _coerce(row[name], column)
        except (ValueError, TypeError, ArithmeticError) as exc:
            stats.quarantined[f"{table}: bad value"] += 1
            reason = f"bad value for {name}: {exc}"
            yield quarantine_record(source, table, reason, row, loaded_at)
            continue
        row["_source"] = source
        row["_loaded_at"] = loaded_at
        yield row
