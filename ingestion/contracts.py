"""Schema-on-write at the door of bronze: declared columns, the unknown-column policy, quarantine.

Every loader declares the columns of each bronze table. Before dlt (or anything else, such as an
incremental cursor) looks at a record, ``guard`` checks it against that declaration and the
source's ``schema_policy`` (lakehouse.yml):

- ``schema_on_read``: unknown columns evolve the bronze table (dlt adds them).
- ``schema_on_write`` + ``unknown_columns``:
  - ``quarantine``: the whole record goes to the dataset's ``quarantine`` table with its source,
    table, reason, raw payload and coordinates; the bronze table never sees it.
  - ``drop``: the unknown values are discarded (and counted), the record is kept.
  - ``fail``: the load raises before anything is written, so bronze stays exactly as it was.

Every other way a record can be wrong is quarantined with a reason under every policy, whatever
exception it raises: a payload that does not parse, a shape that is not an object, a required key
missing, a value not of its declared type, or a value of the right type that dlt's normalizer or
delta-rs could not write (an integer beyond int64, a string with lone surrogates, a float that is
not finite, a structured value where a scalar is declared...). A row the guard lets through is
therefore certain to be writable: one record can never fail a load. The only deliberate stop is
the ``fail`` policy (``SchemaContractViolation``).

Accounting, per table and per run (``GuardStats``): every record read is counted once, and ends
either quarantined or passed on to dlt; of the passed rows, dlt's incremental may skip those it
already loaded (its boundary de-duplication), the rest are ``loaded``. So
``read == loaded + quarantined + skipped`` holds exactly; dropped values are counted apart.

Why here and not only in dlt's schema contracts: dlt's column contract guards tables that already
exist (a new table takes whatever columns the first load brings), and its ``discard_row`` mode
drops records silently. The dlt contract is still set as a backstop (``dlt_schema_contract``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from binascii import b2a_base64
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from hashlib import shake_128
from itertools import repeat
from operator import itemgetter
from typing import Any, ClassVar

import dlt
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.json import PUA_CHARACTER_MAX, PUA_START
from dlt.common.normalizers.json.helpers import get_row_hash
from dlt.common.normalizers.naming.snake_case import NamingConvention
from dlt.common.normalizers.utils import DLT_ID_LENGTH_BYTES
from dlt.common.schema.typing import TColumnSchema
from dlt.common.schema.utils import new_table
from dlt.extract.items_transform import ItemTransform

from lakehouse.core.config import SchemaPolicy

QUARANTINE_TABLE = "quarantine"

QUARANTINE_COLUMNS: dict[str, TColumnSchema] = {
    "quarantine_id": {"data_type": "text", "nullable": False},
    "source": {"data_type": "text", "nullable": False},
    "source_table": {"data_type": "text", "nullable": False},
    "reason": {"data_type": "text", "nullable": False},
    "raw_payload": {"data_type": "text", "nullable": False},
    "quarantined_at": {"data_type": "timestamp", "timezone": True, "nullable": False},
    # Added after the first release: nullable, so lakes quarantined before keep loading (dlt and
    # delta-rs add a nullable column to an existing table; old rows read it as null).
    "payload_encoding": {"data_type": "text"},  # utf-8 | base64 | json | null (see _payload)
    "locator": {"data_type": "text"},  # JSON: where to find the record again in its source
    "kafka_topic": {"data_type": "text"},
    "kafka_partition": {"data_type": "bigint"},
    "kafka_offset": {"data_type": "bigint"},
    "kafka_key": {"data_type": "text"},
    "kafka_key_encoding": {"data_type": "text"},  # utf-8 | base64 (null when the key is null)
    "kafka_timestamp": {"data_type": "timestamp", "timezone": True},
    "kafka_headers": {"data_type": "text"},  # JSON list of [name, value, value_encoding]
}

QUARANTINE_CONTRACT = {"tables": "evolve", "columns": "evolve", "data_type": "freeze"}

# Load metadata every bronze row carries besides dlt's own _dlt_load_id / _dlt_id.
METADATA_COLUMNS: dict[str, TColumnSchema] = {
    "_source": {"data_type": "text", "nullable": False},
    "_loaded_at": {"data_type": "timestamp", "timezone": True, "nullable": False},
}

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# dlt's default decimal precision and scale: what its parquet writer accepts without rescaling
DECIMAL_PRECISION, DECIMAL_SCALE = 38, 9
REASON_MAX_CHARS = 500
# How far ahead of the loader's clock a cursor value may be (clocks of two systems differ).
CLOCK_SKEW = timedelta(days=1)
_NAMING = NamingConvention()

# How ArrowRows hands each declared dlt type to dlt.
ARROW_TYPES: dict[str, pa.DataType] = {
    "text": pa.string(),
    "bigint": pa.int64(),
    "double": pa.float64(),
    "decimal": pa.decimal128(DECIMAL_PRECISION, DECIMAL_SCALE),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}


class SchemaContractViolation(ValueError):
    """A record brought columns the contract does not know and the policy is ``fail``."""


class BadValue(ValueError):
    """A value that cannot be stored in its declared column as it is."""


@dataclass(frozen=True)
class TableContract:
    """The declared shape of one bronze table: dlt column hints plus the keys that must be set."""

    name: str
    columns: Mapping[str, TColumnSchema]
    required: tuple[str, ...] = ()
    # The incremental cursor (a date or timestamp column), if the load keeps a watermark on it.
    # A value later than the load's own time (plus CLOCK_SKEW) is quarantined: passed on, it
    # would move the watermark past every record still to come and stop the source for good.
    cursor: str | None = None

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

    def arrow_schema(self) -> pa.Schema:
        """The table as ``ArrowRows`` hands it to dlt: declared and metadata columns, then dlt's."""
        fields = [
            pa.field(name, ARROW_TYPES[column["data_type"]],
                     nullable=column.get("nullable", True) is not False)
            for name, column in self.dlt_columns().items()
        ]  # fmt: skip
        return pa.schema([*fields, pa.field("_dlt_load_id", pa.string(), nullable=False),
                          pa.field("_dlt_id", pa.string(), nullable=False)])  # fmt: skip

    def register_arrow(self, schema: Any) -> None:
        """``register`` for a table loaded as Arrow (``ArrowRows``): each column declared as dlt
        reads it off the Arrow schema (nullability explicit, timestamps with their precision).

        dlt's frozen ``data_type`` contract compares a declared column with the one an item
        brings property by property, so ``{"data_type": "text"}`` against the Arrow column's
        ``{"data_type": "text", "nullable": True}`` would count as a change of type.
        """
        from dlt.common.libs.pyarrow import py_arrow_to_table_schema_columns

        arrow = py_arrow_to_table_schema_columns(self.arrow_schema())
        columns = [{"name": name, **column, **arrow[name]}
                   for name, column in self.dlt_columns().items()]  # fmt: skip
        schema.update_table(new_table(self.name, columns=columns))


@dataclass
class GuardStats:
    """What became of every record, per table: read, quarantined (by reason), loaded, skipped.

    ``read`` and ``quarantined`` are counted by the guard, ``loaded`` at the very end of the dlt
    pipe (after any incremental filter), ``passed`` is what the guard handed on; ``skipped`` (rows
    an incremental recognised as already loaded) is ``passed - loaded``.
    """

    read: Counter = field(default_factory=Counter)
    quarantined: Counter = field(default_factory=Counter)
    passed: Counter = field(default_factory=Counter)
    loaded: Counter = field(default_factory=Counter)
    dropped_values: Counter = field(default_factory=Counter)
    # quarantine ids issued in this run: the n-th equal bad record of a run gets the n-th id
    occurrences: Counter = field(default_factory=Counter)

    def quarantined_by_table(self) -> Counter:
        by_table: Counter = Counter()
        for key, count in self.quarantined.items():
            by_table[key.split(": ", 1)[0]] += count
        return by_table

    def skipped(self) -> Counter:
        return Counter({t: self.passed[t] - self.loaded[t] for t in self.passed
                        if self.passed[t] > self.loaded[t]})  # fmt: skip

    def unbalanced(self) -> dict[str, tuple[int, int, int, int]]:
        """Tables where read != loaded + quarantined + skipped: (read, loaded, quarantined,
        skipped). Empty when every record is accounted for; a non-empty answer is a bug."""
        quarantined, skipped = self.quarantined_by_table(), self.skipped()
        tables = set(self.read) | set(self.loaded) | set(quarantined)
        counts = {t: (self.read[t], self.loaded[t], quarantined[t], skipped[t]) for t in tables}
        return {t: c for t, c in counts.items() if c[0] != c[1] + c[2] + c[3]}

    def as_dict(self) -> dict[str, Any]:
        return {
            "read": dict(self.read),
            "loaded": dict(self.loaded),
            "quarantined": dict(self.quarantined),
            "skipped": dict(self.skipped()),
            "dropped_values": dict(self.dropped_values),
        }


def dlt_schema_contract(policy: SchemaPolicy) -> dict[str, str]:
    """The dlt schema contract matching a policy (the backstop behind ``guard``)."""
    if policy.mode == "schema_on_read":
        return {"tables": "evolve", "columns": "evolve", "data_type": "evolve"}
    return {"tables": "evolve", "columns": "freeze", "data_type": "freeze"}


# ---- values: what each declared dlt type accepts, so that dlt and delta-rs can write it --------


def _text(value: str) -> str:
    """A string as it can be written: UTF-8 encodable and not mistaken by dlt for a typed value.

    dlt's intermediate files mark decimals, dates... as strings starting with a private-use
    character (``dlt.common.json`` PUA markers); a text value starting with one would come back
    as another type (or another string), so it is refused rather than altered.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadValue(f"text is not valid Unicode ({exc.reason} at {exc.start})") from None
    if value and 0 <= ord(value[0]) - PUA_START <= PUA_CHARACTER_MAX:
        raise BadValue(f"text starts with U+{ord(value[0]):04X}, a marker dlt reserves")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
        raise BadValue(f"expected an integer, got {type(value).__name__}")
    if isinstance(value, Decimal) and (not value.is_finite() or value != value.to_integral_value()):
        raise BadValue("expected an integer, got a fraction")
    number = int(value)
    if not INT64_MIN <= number <= INT64_MAX:
        raise BadValue("integer out of the 64-bit range")
    return number


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise BadValue(f"expected a number, got {type(value).__name__}")
    number = float(value)  # OverflowError for an int beyond the double range
    if not math.isfinite(number):
        raise BadValue("number is not finite (NaN or infinity)")
    return number


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise BadValue(f"expected a number, got {type(value).__name__}")
    number = Decimal(str(value))
    if not number.is_finite():
        raise BadValue("number is not finite (NaN or infinity)")
    if number != number.quantize(Decimal(1).scaleb(-DECIMAL_SCALE)):
        raise BadValue(f"more than {DECIMAL_SCALE} decimal places")
    if abs(number) >= Decimal(10) ** (DECIMAL_PRECISION - DECIMAL_SCALE):
        raise BadValue(f"more than {DECIMAL_PRECISION} digits")
    return number


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, dict | list | tuple):
        raise BadValue(f"structured value ({type(value).__name__}) where text is declared")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        _int(value)  # beyond int64 is more likely a wrong column than an id: refuse it
        return str(value)
    if isinstance(value, float | Decimal):
        return repr(_float(value)) if isinstance(value, float) else str(_decimal(value))
    if isinstance(value, bytes | bytearray):
        try:
            return _text(bytes(value).decode("utf-8"))
        except UnicodeDecodeError:
            raise BadValue("bytes that are not UTF-8 where text is declared") from None
    if isinstance(value, date):
        return value.isoformat()
    raise BadValue(f"expected text, got {type(value).__name__}")


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        if value.timetz().replace(tzinfo=None) != datetime.min.time():
            raise BadValue("a timestamp with a time of day where a date is declared")
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        return date.fromisoformat(_text(value))
    raise BadValue(f"expected a date, got {type(value).__name__}")


def _as_timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        ts = value
    elif isinstance(value, date):
        ts = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        ts = datetime.fromisoformat(_text(value))
    else:
        raise BadValue(f"expected a timestamp, got {type(value).__name__}")
    # Naive timestamps would become timestampNtz in Delta: make every one tz-aware UTC.
    # astimezone raises OverflowError when the UTC instant falls outside years 1..9999.
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _as_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise BadValue(f"expected a boolean, got {type(value).__name__}")
    return value


_COERCE: dict[str, Callable[[Any], Any]] = {
    "bigint": _int,
    "double": _float,
    "decimal": _decimal,
    "bool": _as_bool,
    "text": _as_text,
    "date": _as_date,
    "timestamp": _as_timestamp,
}


def _coerce(value: Any, column: TColumnSchema) -> Any:
    """The value as its declared dlt type, certain to be writable; raise if it cannot be."""
    if value is None:
        if column.get("nullable", True) is False:
            raise BadValue("null where the column is not nullable")
        return None
    kind = column.get("data_type", "")
    if kind not in _COERCE:
        raise BadValue(f"the contract declares {kind!r}, which the guard cannot check")
    return _COERCE[kind](value)


def _evolving(value: Any) -> Any:
    """A value of a column the contract does not declare (``schema_on_read``) as dlt can write
    it: a scalar it infers a column type from. Structured values and bytes are refused (dlt
    would spread them over nested tables and binary columns no contract speaks of)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return _int(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, Decimal):
        return _decimal(value)
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, date):
        return _as_timestamp(value) if isinstance(value, datetime) else value
    raise BadValue(f"{type(value).__name__} in a column the contract does not declare")


def _evolving_names(unknown: list[str], reserved: set[str]) -> None:
    """Refuse unknown column names dlt would mangle into a clash (``a b`` and ``a_b``) or into
    one of its own or the contract's columns."""
    seen: set[str] = set()
    for name in unknown:
        normalized = _NAMING.normalize_identifier(_text(name))
        if normalized in reserved or normalized in seen or normalized.startswith("_dlt"):
            raise BadValue(f"column name {name!r} clashes with another once normalised")
        seen.add(normalized)


# ---- quarantine rows ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Origin:
    """What quarantine keeps of a record: its raw payload and where it came from.

    ``locator`` says where to find the record again (endpoint and page, table and key, requested
    day...); ``columns`` fills typed coordinate columns (Kafka's topic, partition, offset...);
    ``identity`` goes into the quarantine id: for sources whose coordinates are stable (Kafka) two
    equal payloads at two places are two records, for the others the payload is the identity (a
    CRM record re-read in the late-update window is the same record, quarantined once).
    """

    payload: Any
    locator: Mapping[str, Any] = field(default_factory=dict)
    columns: Mapping[str, Any] = field(default_factory=dict)
    identity: str = ""


def safe_text(value: Any, limit: int | None = None) -> str:
    """Any value as text that is valid UTF-8 (lone surrogates escaped), at most ``limit`` chars."""
    text = value if isinstance(value, str) else repr(value)
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return {"base64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return repr(value)


def encode_bytes(value: bytes) -> tuple[str, str]:
    """Bytes kept losslessly as text: the UTF-8 text itself when they decode, else base64."""
    try:
        return _text(value.decode("utf-8")), "utf-8"
    except (UnicodeDecodeError, BadValue):
        return base64.b64encode(value).decode("ascii"), "base64"


def _payload(record: Any) -> tuple[str, str]:
    """The raw payload as text and how it is encoded.

    ``utf-8``: the bytes as received, decoded. ``base64``: bytes that are not UTF-8.
    ``json``: a value the loader received already parsed (a CRM record, a SQL row) rendered as
    ASCII JSON, so lone surrogates and every code point survive as escapes; bytes inside it as
    ``{"base64": ...}``, dates in ISO format. ``null``: there was no payload (a Kafka tombstone).
    """
    if record is None:
        return "", "null"
    if isinstance(record, bytes | bytearray):
        return encode_bytes(bytes(record))
    try:
        return json.dumps(record, default=_json_default, sort_keys=True), "json"
    except (TypeError, ValueError, RecursionError):
        # too deep for the recursive encoder this far down the stack, or keys that do not sort
        return _json_iterative(record), "json"


class _Token(str):
    """Literal JSON text on ``_json_iterative``'s stack (as opposed to a value to encode)."""


def _json_iterative(record: Any) -> str:
    """ASCII JSON of any nesting depth, with an explicit stack instead of recursion."""
    out: list[str] = []
    stack: list[Any] = [record]
    while stack:
        item = stack.pop()
        if isinstance(item, _Token):
            out.append(item)
        elif isinstance(item, dict | list | tuple):
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            parts: list[Any] = []
            for i, (key, value) in enumerate(pairs):
                if i:
                    parts.append(_Token(","))
                if isinstance(item, dict):
                    parts.append(
                        _Token(json.dumps(key if isinstance(key, str) else repr(key)) + ":")
                    )
                parts.append(value)
            opening, closing = ("{", "}") if isinstance(item, dict) else ("[", "]")
            out.append(opening)
            stack.append(_Token(closing))
            stack.extend(reversed(parts))
        else:
            out.append(json.dumps(item, default=_json_default))
    return "".join(out)


def quarantine_record(
    source: str,
    table: str,
    reason: str,
    record: Any,
    at: datetime,
    origin: Origin | None = None,
    occurrences: Counter | None = None,
) -> Any:
    """A record for the dataset's quarantine table, routed there by dlt table hints.

    Its id hashes the payload, the reason and the origin's identity, and the table is merged
    insert-only on it, so a rerun or replay never quarantines the same record twice. Equal bad
    records within one run (``occurrences`` counts them) are told apart by their rank: the
    second copy is a second row, and the next run's second copy is that same row again.
    """
    origin = origin or Origin(payload=record)
    raw, encoding = _payload(origin.payload)
    reason = safe_text(reason, REASON_MAX_CHARS)
    key = f"{source}|{table}|{reason}|{origin.identity}|{raw}"
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    if occurrences is not None:
        rank = occurrences[digest]
        occurrences[digest] += 1
        if rank:
            digest = hashlib.sha256(f"{digest}#{rank}".encode()).hexdigest()[:32]
    row = {
        "quarantine_id": digest,
        "source": source,
        "source_table": table,
        "reason": reason,
        "raw_payload": raw,
        "payload_encoding": encoding,
        "locator": json.dumps(dict(origin.locator), default=safe_text, sort_keys=True),
        "quarantined_at": at,
        **origin.columns,
    }
    hints = dlt.mark.make_hints(
        table_name=QUARANTINE_TABLE,
        write_disposition={"disposition": "merge", "strategy": "insert-only"},
        primary_key="quarantine_id",
        columns=QUARANTINE_COLUMNS,
        # its own contract, not the source's: a quarantine table written before a column was
        # added to QUARANTINE_COLUMNS gains it (frozen columns would refuse every new row)
        schema_contract=QUARANTINE_CONTRACT,
    )
    return dlt.mark.with_hints(row, hints, create_table_variant=True)


def quarantine_batch(records: list[Any]) -> Any:
    """Quarantine records (from ``quarantine_record``) as one dlt item.

    dlt computes and validates an item's table hints once per item, a few milliseconds each: a
    stream that quarantines thousands of records hands them over together. Every quarantine
    record carries the same hints, so the first one's stand for all.
    """
    return dlt.mark.with_hints([record.data for record in records], records[0].meta.hints,
                               create_table_variant=True)  # fmt: skip


# ---- the guard ----------------------------------------------------------------------------------


def _check(
    row: dict, contract: TableContract, policy: SchemaPolicy, stats: GuardStats, now: datetime
) -> dict:
    """The clean row for ``row``; raise ``BadValue`` (quarantine) or ``SchemaContractViolation``."""
    table, known = contract.name, contract.columns
    if not all(isinstance(name, str) for name in row):
        raise BadValue("a column name that is not text")
    unknown = sorted(name for name in row if name not in known)
    if unknown and policy.mode == "schema_on_write":
        if policy.unknown_columns == "fail":
            raise SchemaContractViolation(
                f"{contract.name}: unknown columns {[safe_text(n) for n in unknown]} "
                "(schema_policy: fail); nothing was loaded"
            )
        if policy.unknown_columns == "quarantine":
            raise BadValue(f"unknown columns: {', '.join(safe_text(n) for n in unknown)}")
    missing = [key for key in contract.required if row.get(key) is None or row.get(key) == ""]
    if missing:
        raise BadValue(f"missing required value: {', '.join(missing)}")
    clean: dict[str, Any] = {}
    for name, column in known.items():
        if name in row:
            try:
                clean[name] = _coerce(row[name], column)
            except Exception as exc:
                raise BadValue(f"bad value for {name}: {safe_text(str(exc))}") from exc
        elif column.get("nullable", True) is False:
            raise BadValue(f"missing required value: {name}")
    if contract.cursor is not None:
        _cursor_not_ahead(contract.cursor, clean.get(contract.cursor), now)
    if unknown and policy.mode == "schema_on_write":  # drop
        for name in unknown:
            stats.dropped_values[f"{table}.{safe_text(name)}"] += 1
    elif unknown:  # schema_on_read: dlt evolves the table, with values it can write
        _evolving_names(unknown, set(known) | set(METADATA_COLUMNS))
        for name in unknown:
            try:
                clean[name] = _evolving(row[name])
            except Exception as exc:
                raise BadValue(f"bad value for {safe_text(name)}: {safe_text(str(exc))}") from exc
    return clean


def _cursor_not_ahead(name: str, value: Any, now: datetime) -> None:
    """Refuse a cursor value from the future (see ``TableContract.cursor``)."""
    limit = now + CLOCK_SKEW
    ahead = (
        value > limit
        if isinstance(value, datetime)
        else isinstance(value, date) and value > limit.date()
    )
    if ahead:
        raise BadValue(
            # no load time in the reason: it is part of the quarantine id, which must not change
            # when the same record is read again
            f"cursor in the future: {name} {value.isoformat()} is more than {CLOCK_SKEW} past "
            "the time of the load; it would move the watermark past every later record"
        )


def guard_one(
    record: Any,
    *,
    source: str,
    contract: TableContract,
    policy: SchemaPolicy,
    stats: GuardStats,
    loaded_at: datetime,
    parse: Callable[[Any], Any] | None = None,
    origin: Origin | None = None,
) -> Iterator[Any]:
    """One record: yield its clean row or its quarantine record; raise only on a ``fail`` policy.

    ``parse`` turns a raw record into a dict (e.g. a Kafka message with JSON bytes); ``origin``
    is what quarantine keeps (default: the record itself, no coordinates).
    """
    table = contract.name
    stats.read[table] += 1
    try:
        try:
            row = parse(record) if parse else record
        except BadValue:
            raise  # the parser said what is wrong, in its own words
        except Exception as exc:
            raise BadValue(f"malformed record: {safe_text(str(exc))}") from exc
        if not isinstance(row, dict):
            raise BadValue(f"malformed record: expected an object, got {type(row).__name__}")
        clean = _check(row, contract, policy, stats, loaded_at)
    except SchemaContractViolation:
        raise
    except Exception as exc:
        reason = str(exc) if isinstance(exc, BadValue) else f"{type(exc).__name__}: {exc}"
        kind = reason.split(":", 1)[0] if isinstance(exc, BadValue) else "unexpected error"
        stats.quarantined[f"{table}: {kind}"] += 1
        yield quarantine_record(source, table, reason, record, loaded_at, origin, stats.occurrences)
        return
    clean["_source"] = source
    clean["_loaded_at"] = loaded_at
    stats.passed[table] += 1
    yield clean


def guard(
    records: Iterable[Any],
    *,
    source: str,
    contract: TableContract,
    policy: SchemaPolicy,
    stats: GuardStats,
    loaded_at: datetime,
    parse: Callable[[Any], Any] | None = None,
    origin: Callable[[Any], Origin] | None = None,
) -> Iterator[Any]:
    """``guard_one`` over ``records``; ``origin(record)`` says what quarantine keeps of each."""
    for record in records:
        yield from guard_one(record, source=source, contract=contract, policy=policy,
                             stats=stats, loaded_at=loaded_at, parse=parse,
                             origin=origin(record) if origin else None)  # fmt: skip


class GuardStep(ItemTransform):
    """The guard as the first step of a dlt resource's pipe, before any incremental cursor.

    dlt hands a step whole pages (lists) from paged sources; the step numbers them, so each
    quarantined record keeps ``locate(page, index, record, params)`` as its coordinates, ``params``
    being the query parameters of the request that fetched the page, when dlt attaches it.
    """

    placement_affinity: ClassVar[float] = -1  # stick to the start

    def __init__(
        self,
        source: str,
        contract: TableContract,
        policy: SchemaPolicy,
        stats: GuardStats,
        loaded_at: datetime,
        locate: Callable[[int, int, Any, Any], Mapping[str, Any]],
    ) -> None:
        super().__init__(lambda item: item)
        self.args = {"source": source, "contract": contract, "policy": policy, "stats": stats,
                     "loaded_at": loaded_at}  # fmt: skip
        self.locate, self.pages = locate, 0

    def __call__(self, item: Any, meta: Any = None) -> Iterator[Any]:
        # numbered now: dlt may start the next page's generator before this one is drained
        # so are the request's parameters (dlt's REST client reuses and advances the request)
        self.pages += 1
        request = getattr(item, "request", None)
        return self._guard(item, self.pages, dict(getattr(request, "params", None) or {}))

    def _guard(self, item: Any, page: int, params: dict[str, Any]) -> Iterator[Any]:
        records = item if isinstance(item, list) else [item]
        for index, record in enumerate(records):
            locator = self.locate(page, index, record, params)
            yield from guard_one(record, origin=Origin(record, locator), **self.args)


# ---- the guard over a batch, as Arrow -----------------------------------------------------------


class ArrowRows:
    """Clean rows of one table gathered column by column, handed to dlt as one Arrow table.

    Why: dlt writes an Arrow table as it is, where it would normalise a dict row by row (the
    larger part of a load's time for a stream of small events). The guard's rules do not change:
    ``take_many`` accepts a row only when it can vouch that ``_check`` would pass it and make
    exactly the same clean values of it; every other row it hands back, and the caller runs the
    per-row guard (``guard_one``) on it, which decides, says why, and quarantines. Rows
    ``guard_one`` passes are added with ``add``.

    The table carries dlt's own columns as dlt's row-by-row normaliser would have made them:
    ``_dlt_load_id`` and ``_dlt_id``, the latter the hash of ``row_key`` (dlt's ``key_hash`` row
    id, which it uses for the merge strategies ``insert-only`` and ``upsert``).
    """

    def __init__(
        self,
        contract: TableContract,
        source: str,
        stats: GuardStats,
        loaded_at: datetime,
        row_key: tuple[str, ...],
        load_id: str,
    ) -> None:
        self.contract, self.source, self.stats, self.loaded_at = contract, source, stats, loaded_at
        self.row_key, self.load_id = row_key, load_id
        self.known = frozenset(contract.columns)
        required = set(contract.required)
        self.plan = [
            (name, column.get("data_type", ""), column.get("nullable", True) is not False,
             name in required)
            for name, column in contract.columns.items()
        ]  # fmt: skip
        self._key_at = [list(contract.columns).index(name) for name in row_key]
        self.schema = contract.arrow_schema()
        # a required key the contract does not declare: only the per-row guard checks it
        self.vouches = required <= self.known
        self.clear()

    def clear(self) -> None:
        self.chunks: list[pa.Table] = []  # batches taken column by column (``take_many``)
        self.columns: list[list[Any]] = [[] for _ in self.plan]  # rows added one by one
        self.ids: list[str] = []
        self.rows = 0

    def __len__(self) -> int:
        return self.rows

    def take_many(
        self, rows: list[dict], preset: Mapping[str, pa.Array] | None = None
    ) -> list[int]:
        """Add the rows it can vouch for; return the indexes of the others, in order, for
        ``guard_one``.

        ``preset``: columns the caller has already vouched for, as Arrow arrays aligned with
        ``rows`` (which then do not carry them): Kafka's coordinates, read off the messages.
        The rest is checked column by column (a type check over a whole column, a conversion
        to Arrow in C); a batch with a column it cannot vouch for as a whole is split in halves
        until the rows at fault are alone, so one odd value costs speed, never a different
        outcome.
        """
        preset = dict(preset or {})
        if not self.vouches or self.contract.cursor is not None or not preset.keys() <= self.known:
            return list(range(len(rows)))
        free = self.known - preset.keys()
        fit = [i for i, row in enumerate(rows) if row.keys() <= free]
        taken = set(self._take(rows, preset, fit)) if fit else set()
        return [i for i in range(len(rows)) if i not in taken]

    def _take(self, rows: list[dict], preset: dict[str, pa.Array], at: list[int]) -> list[int]:
        """Take ``rows[at]`` as a whole if it can, else each half; return what it took."""
        picked = pa.array(at, type=pa.int64())
        given = {name: array.take(picked) for name, array in preset.items()}
        arrays = self._arrays([rows[i] for i in at], given)
        if arrays is None:
            if len(at) == 1:
                return []
            half = len(at) // 2
            return self._take(rows, preset, at[:half]) + self._take(rows, preset, at[half:])
        self.chunks.append(self._with_metadata(arrays, self._row_ids(arrays)))
        self.rows += len(at)
        table = self.contract.name
        self.stats.read[table] += len(at)
        self.stats.passed[table] += len(at)
        return at

    def _arrays(self, batch: list[dict], given: dict[str, pa.Array]) -> list[pa.Array] | None:
        """Each declared column of ``batch`` as Arrow, or None when a column has a value it
        cannot vouch for.

        Taken as they are, as ``_coerce`` would leave them: ASCII text, ints in range, finite
        floats, ISO timestamps in ASCII made UTC as ``_as_timestamp`` makes them, UTC
        datetimes. A float is taken only where a double is declared: a parser may widen an
        integer beyond 64 bits to a float, which Python's json (the per-row guard's) reads as
        that integer.
        """
        arrays = []
        names = [name for name, *_ in self.plan if name not in given]
        columns: dict[str, Any] = {}
        if len(names) > 1:
            try:  # every row sets every column (as a producer writing a struct does): at once
                values = zip(*map(itemgetter(*names), batch), strict=True)
                columns = dict(zip(names, values, strict=True))
            except KeyError:
                pass
        if not columns:  # some rows lack a column (an older event version's): column by column
            columns = {name: _column(batch, name) for name in names}
        for name, kind, nullable, required in self.plan:
            if name in given:
                arrays.append(given[name])
                continue
            values = columns[name]
            if (required or not nullable) and None in values:
                return None
            if required and "" in values:
                return None
            types = set(map(type, values))
            types.discard(type(None))
            try:
                if kind == "text":
                    if not types <= {str} or not all(map(str.isascii, filter(None, values))):
                        return None
                elif kind == "bigint":
                    if not types <= {int}:
                        return None
                elif kind == "double":
                    if not types <= {float} or not all(map(math.isfinite, filter(None, values))):
                        return None
                elif kind == "timestamp" and types <= {str}:
                    if (utc := _iso_z(values)) is not None:
                        arrays.append(utc)
                        continue
                    if not all(map(str.isascii, filter(None, values))):
                        return None
                    values = [None if v is None else _iso_utc(v) for v in values]
                elif kind == "timestamp" and types <= {datetime}:
                    if {v.tzinfo for v in values if v is not None} - {UTC}:
                        return None
                else:
                    return None
                arrays.append(pa.array(values, type=ARROW_TYPES[kind]))
            except (ValueError, OverflowError, pa.ArrowException):
                return None  # out of range (int64, years 1..9999) or not ISO: row by row
        return arrays

    def _row_ids(self, arrays: list[pa.Array]) -> list[str]:
        """dlt's key-hash row ids of a batch: ``get_row_hash`` over ``row_key``, that is the
        shake-128 of the key's JSON (sorted keys, compact, as dlt's orjson writes it).

        The JSON is put together by Arrow for integer and text keys (text quoted by orjson,
        once per distinct value); any other key, or a null in one, is left to ``get_row_hash``.
        """
        parts: list[Any] = []
        for name, i in sorted(zip(self.row_key, self._key_at, strict=True)):
            array = arrays[i]
            if array.null_count:
                parts = []
                break
            if pa.types.is_integer(array.type):
                text = pc.cast(array, pa.string())
            elif pa.types.is_string(array.type):
                encoded = array.dictionary_encode()
                quoted = [orjson.dumps(v).decode() for v in encoded.dictionary.to_pylist()]
                text = pa.array(quoted, pa.string()).take(encoded.indices)
            else:
                parts = []
                break
            parts += [("," if parts else "{") + orjson.dumps(name).decode() + ":", text]
        if not parts:
            keys = zip(*(arrays[i].to_pylist() for i in self._key_at), strict=True)
            return [get_row_hash(dict(zip(self.row_key, key, strict=True)), list(self.row_key))
                    for key in keys]  # fmt: skip
        keys = pc.binary_join_element_wise(*parts, "}", "").cast(pa.binary()).to_pylist()
        return [b2a_base64(shake_128(key).digest(DLT_ID_LENGTH_BYTES), newline=False)
                .decode("ascii").rstrip("=") for key in keys]  # fmt: skip

    def _with_metadata(self, arrays: list[pa.Array], ids: list[str]) -> pa.Table:
        n = len(ids)
        columns = [
            *arrays,
            pa.repeat(pa.scalar(self.source, pa.string()), n),
            pa.repeat(pa.scalar(self.loaded_at, ARROW_TYPES["timestamp"]), n),
            pa.repeat(pa.scalar(self.load_id, pa.string()), n),
            pa.array(ids, type=pa.string()),
        ]
        return pa.Table.from_arrays(columns, schema=self.schema)

    def add(self, clean: dict) -> None:
        """Add a row ``guard_one`` passed (already counted by it)."""
        for column, (name, *_) in zip(self.columns, self.plan, strict=True):
            column.append(clean.get(name))
        self.ids.append(get_row_hash(clean, subset=list(self.row_key)))
        self.rows += 1

    def table(self) -> pa.Table:
        """The rows gathered so far as one Arrow table (then cleared)."""
        chunks = self.chunks
        if self.ids:
            arrays = [pa.array(values, type=self.schema.field(i).type)
                      for i, values in enumerate(self.columns)]  # fmt: skip
            chunks = [*chunks, self._with_metadata(arrays, self.ids)]
        self.clear()
        return pa.concat_tables(chunks)


def _column(batch: list[dict], name: str) -> list[Any]:
    """``[row.get(name) for row in batch]``, in C: ``itemgetter`` while every row has the
    column, ``dict.get`` from the first row that lacks it."""
    try:
        return list(map(itemgetter(name), batch))
    except KeyError:
        return list(map(dict.get, batch, repeat(name)))


# An ISO timestamp in UTC as producers write it: Arrow parses these as fromisoformat does (both
# refuse an impossible date or time; tests/fast/test_kafka_arrow.py holds them to the same values).
ISO_Z = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z$"


def _iso_z(values: Any) -> pa.Array | None:
    """``values`` parsed by Arrow when every one is an ``ISO_Z`` timestamp (or null), else None
    (then ``_iso_utc`` parses them one by one)."""
    text = pa.array(values, pa.string())
    if not pc.all(pc.match_substring_regex(text, ISO_Z), min_count=0).as_py():
        return None
    try:
        return text.cast(ARROW_TYPES["timestamp"])
    except pa.ArrowInvalid:
        return None


def _iso_utc(text: str) -> datetime:
    """``_as_timestamp`` of an ASCII string (which ``_text`` passes unchanged)."""
    ts = datetime.fromisoformat(text)
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


class CountLoaded(ItemTransform):
    """The last step of a resource's pipe: counts the clean rows that reach dlt (``loaded``).

    After dlt's incremental (affinity 1) and limit (1.1) steps, before a fork (2).
    """

    placement_affinity: ClassVar[float] = 1.2

    def __init__(self, table: str, stats: GuardStats) -> None:
        super().__init__(lambda item: item)
        self.table, self.stats = table, stats

    def __call__(self, item: Any, meta: Any = None) -> Any:
        rows = item if isinstance(item, list) else [item]
        self.stats.loaded[self.table] += sum(map(_clean_rows, rows))
        return item


def _clean_rows(item: Any) -> int:
    """Clean rows in one item: a guarded dict row, or an Arrow table of them (``ArrowRows``)."""
    if isinstance(item, pa.Table | pa.RecordBatch):
        return item.num_rows if "_source" in item.schema.names else 0
    return int(isinstance(item, dict) and "_source" in item)


def attach_guard(
    resource: Any,
    source: str,
    contract: TableContract,
    policy: SchemaPolicy,
    stats: GuardStats,
    loaded_at: datetime,
    locate: Callable[[int, int, Any, Any], Mapping[str, Any]],
) -> Any:
    """Put the guard first in ``resource``'s pipe (right after the data comes out of the source)
    and the ``loaded`` counter last."""
    resource.add_step(GuardStep(source, contract, policy, stats, loaded_at, locate), insert_at=1)
    resource.add_step(CountLoaded(contract.name, stats))
    return resource
