"""The gold change audit: what a build changed in a table, row by row and column by column.

Every dbt build writes a new Delta version of each table it rebuilds; Delta keeps the old ones.
This module reads two versions of a table with delta-rs at its location (a local folder or S3,
no engine), joins them with duckdb on the table's unique key, taken from the dbt project (the
model's primary-key constraint, its ``unique_combination_of_columns`` test or a ``unique`` column
test, never hard-coded), and counts rows added, removed and changed, per column, with a bounded
number of examples in key order. ``lakehouse diff`` prints it; after each build the summary of
every gold model the build rebuilt is appended to the Delta table ``<lake>/ops/table_changes``
(``ops.table_changes``) and sent as an OpenLineage dataset facet (docs/change_audit.md).

What counts as a change: a key only in the newer version is added, only in the older removed; a
key in both is changed when any compared column differs (``IS DISTINCT FROM``: NULL vs NULL is no
change, NULL vs a value is; floats and decimals compare as stored, no tolerance). Columns that
change on every build by design (load timestamps) are left out of the comparison by
``audit.ignore_columns``. A key that is not unique in either version is refused, not diffed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from deltalake.exceptions import TableNotFoundError

from lakehouse.core.config import Settings
from lakehouse.core.storage import Location, delta_table, ensure_delta_table, write_delta
from lakehouse.observability.lineage import change_facet

log = logging.getLogger(__name__)

TABLE = "ops.table_changes"
AUDITED_SCHEMAS = ("gold",)  # the models a build's audit covers (lakehouse diff takes any)

SCHEMA = pa.schema(
    [
        ("recorded_at", pa.timestamp("us", tz="UTC")),
        ("build_id", pa.string()),  # dbt's invocation_id
        ("table", pa.string()),  # gold.customer_360
        ("key", pa.string()),  # key columns, comma-joined
        ("from_version", pa.int64()),
        ("to_version", pa.int64()),
        ("rows_before", pa.int64()),
        ("rows_after", pa.int64()),
        ("added", pa.int64()),
        ("removed", pa.int64()),
        ("changed", pa.int64()),
        ("change_share", pa.float64()),  # (added + removed + changed) / max(rows_before, 1)
        ("columns", pa.string()),  # JSON: column -> rows whose value changed, descending
        ("examples", pa.string()),  # JSON: [{"key", "kind", "columns": {col: [before, after]}}]
        ("alert_share", pa.float64()),
        ("over_threshold", pa.bool_()),
    ]
)

# Delta operations that change no row (Spark's and delta-rs' names): they belong to the build
# whose data commit they follow (dbt-spark sets NOT NULL and CHECK constraints after its CTAS).
METADATA_OPERATIONS = frozenset(
    {
        "SET TBLPROPERTIES",
        "UNSET TBLPROPERTIES",
        "CHANGE COLUMN",
        "CHANGE COLUMNS",
        "ADD CONSTRAINT",
        "DROP CONSTRAINT",
        "ADD COLUMNS",
        "REPLACE COLUMNS",
        "RENAME COLUMN",
        "OPTIMIZE",
        "VACUUM START",
        "VACUUM END",
        "SET TABLE PROPERTIES",
        "UPGRADE PROTOCOL",
        "UPDATE SCHEMA",
        "UPDATE FIELD METADATA",
        "SET COLUMN COMMENT",
        "ADD FEATURE",
    }
)
# A schema-only (re)creation: the write that fills it is part of the same build.
SCHEMA_ONLY_OPERATIONS = frozenset({"CREATE TABLE", "REPLACE TABLE", "CREATE OR REPLACE TABLE"})


class AuditError(ValueError):
    """A diff that cannot be made honestly: said to the person, never guessed around."""


# --- the table and its key ------------------------------------------------------------------


@dataclass(frozen=True)
class AuditedTable:
    """A table of the dbt project: its qualified name, where it lives, its unique key."""

    name: str  # schema.table
    location: Location
    key: tuple[str, ...]


def _models(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The project's models by ``schema.alias`` (as the engine's catalog names them)."""
    return {
        f"{n['schema']}.{n['alias']}": n
        for n in manifest.get("nodes", {}).values()
        if n.get("resource_type") == "model"
    }


def resolve(manifest: dict[str, Any], table: str) -> dict[str, Any]:
    """The model ``table`` names: ``schema.table``, or a table name alone when a gold model
    (then any one schema) has it. Refused when unknown or ambiguous."""
    models = _models(manifest)
    if table in models:
        return models[table]
    if "." not in table:
        if f"gold.{table}" in models:
            return models[f"gold.{table}"]
        found = sorted(q for q in models if q.split(".", 1)[1] == table)
        if len(found) == 1:
            return models[found[0]]
        if found:
            raise AuditError(f"{table!r} is ambiguous: {', '.join(found)}; name the schema")
    gold = ", ".join(sorted(q for q in models if q.startswith("gold.")))
    raise AuditError(f"unknown table {table!r}: the dbt project has no such model (gold: {gold})")


def _key_candidates(manifest: dict[str, Any], model: dict[str, Any]) -> list[tuple[str, ...]]:
    """Every unique key the project declares for ``model``, strongest first: a primary-key
    constraint, then error-severity tests (a combination, then a column), then warnings. A test
    with a ``where`` filter holds for some rows only: not a key."""
    found: list[tuple[int, tuple[str, ...]]] = []
    for constraint in model.get("constraints") or []:
        if constraint.get("type") == "primary_key" and constraint.get("columns"):
            found.append((0, tuple(constraint["columns"])))
    for name, column in (model.get("columns") or {}).items():
        for constraint in column.get("constraints") or []:
            if constraint.get("type") == "primary_key":
                found.append((0, (name,)))
    for node in manifest.get("nodes", {}).values():
        if node.get("resource_type") != "test" or node.get("attached_node") != model["unique_id"]:
            continue
        config = node.get("config") or {}
        if config.get("where") or not config.get("enabled", True):
            continue
        meta = node.get("test_metadata") or {}
        kwargs = meta.get("kwargs") or {}
        strength = 1 if str(config.get("severity", "error")).lower() == "error" else 3
        if meta.get("name") == "unique" and node.get("column_name"):
            found.append((strength + 1, (node["column_name"],)))
        elif meta.get("name") in (
            "unique_combination_of_columns",
            "expect_compound_columns_to_be_unique",
        ):
            columns = kwargs.get("combination_of_columns") or kwargs.get("column_list")
            if columns:
                found.append((strength, tuple(columns)))
    order = list((model.get("columns") or {}).keys())
    rank = {c: i for i, c in enumerate(order)}
    found.sort(key=lambda f: (f[0], len(f[1]), [rank.get(c, len(rank)) for c in f[1]], f[1]))
    keys: list[tuple[str, ...]] = []
    for _, key in found:
        if key not in keys:
            keys.append(key)
    return keys


def audited_table(settings: Settings, manifest: dict[str, Any], table: str) -> AuditedTable:
    """``table`` resolved against the dbt project, with its location and unique key."""
    model = resolve(manifest, table)
    name = f"{model['schema']}.{model['alias']}"
    keys = _key_candidates(manifest, model)
    if not keys:
        raise AuditError(
            f"{name} has no unique key in the dbt project (a primary_key constraint, a "
            f"unique_combination_of_columns test or a unique column test): rows cannot be "
            f"matched between versions"
        )
    location = settings.warehouse / f"{model['schema']}.db" / model["alias"]
    return AuditedTable(name, location, keys[0])


def audited_in(settings: Settings, table: str, *manifests: Path) -> AuditedTable:
    """``table`` resolved in the first of the dbt ``manifests`` that has it (a manifest of a
    warehouse target, say the last ``dbt`` command's, has no lake models)."""
    found = [p for p in manifests if p.is_file()]
    if not found:
        raise AuditError(f"no dbt manifest ({', '.join(map(str, manifests))}): run a build or "
                         f"`lakehouse dbt parse`")  # fmt: skip
    for path in found[:-1]:
        manifest = json.loads(path.read_text())
        with contextlib.suppress(AuditError):
            resolve(manifest, table)
            return audited_table(settings, manifest, table)
    return audited_table(settings, json.loads(found[-1].read_text()), table)


# --- versions -------------------------------------------------------------------------------


def history(location: Location) -> list[dict[str, Any]]:
    """The table's commits, oldest first."""
    try:
        commits = delta_table(location).history()
    except TableNotFoundError as exc:
        raise AuditError(f"no Delta table at {location}: the model was never built") from exc
    return sorted(commits, key=lambda c: int(c["version"]))


def _is_data(commit: dict[str, Any]) -> bool:
    return str(commit.get("operation", "")).upper() not in METADATA_OPERATIONS


def build_versions(commits: Sequence[dict[str, Any]]) -> list[int]:
    """The version each build left the table at, oldest first: a build starts with a commit
    that writes rows (its constraint and property commits follow it and belong to it; the write
    that fills a schema-only CREATE OR REPLACE TABLE too) and ends before the next one."""
    groups: list[list[dict[str, Any]]] = []
    for commit in sorted(commits, key=lambda c: int(c["version"])):
        previous = groups[-1] if groups else None
        first = str(previous[0].get("operation", "")).upper() if previous else ""
        fills_schema = (
            previous is not None and len(previous) == 1 and first in SCHEMA_ONLY_OPERATIONS
        )
        if previous is None or (_is_data(commit) and not fills_schema):
            groups.append([commit])
        else:
            previous.append(commit)
    return [int(g[-1]["version"]) for g in groups]


def default_versions(location: Location) -> tuple[int, int]:
    """``(from, to)``: the versions the last two builds left the table at."""
    builds = build_versions(history(location))
    if len(builds) < 2:
        raise AuditError(
            f"{location} has {len(builds)} build(s) in its Delta history: nothing to compare "
            f"(give --from and --to)"
        )
    return builds[-2], builds[-1]


def read_version(location: Location, version: int) -> pa.Table:
    """The table as version ``version`` left it (Delta time travel)."""
    if version < 0:
        raise AuditError(f"version {version} does not exist (versions start at 0)")
    try:
        table = delta_table(location)
    except TableNotFoundError as exc:
        raise AuditError(f"no Delta table at {location}: the model was never built") from exc
    latest = table.version()
    if version > latest:
        raise AuditError(f"version {version} of {location} does not exist (latest: {latest})")
    try:
        table.load_as_version(version)
        return table.to_pyarrow_table()
    except Exception as exc:  # a vacuumed or expired version: its files or log are gone
        raise AuditError(f"version {version} of {location} cannot be read: {exc}") from exc


# --- the diff -------------------------------------------------------------------------------


@dataclass
class Diff:
    """What changed between two versions of a table."""

    table: str
    key: tuple[str, ...]
    from_version: int
    to_version: int
    rows_before: int
    rows_after: int
    added: int
    removed: int
    changed: int
    columns: dict[str, int]  # column -> rows whose value changed, most first, then by name
    examples: list[dict[str, Any]]
    ignored: list[str] = field(default_factory=list)  # compared columns left out by config
    columns_added: list[str] = field(default_factory=list)  # schema changes: not row changes
    columns_removed: list[str] = field(default_factory=list)
    columns_retyped: list[str] = field(default_factory=list)  # compared across the new type

    @property
    def change_share(self) -> float:
        return (self.added + self.removed + self.changed) / max(self.rows_before, 1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "key": list(self.key),
            "from_version": self.from_version,
            "to_version": self.to_version,
            "rows_before": self.rows_before,
            "rows_after": self.rows_after,
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "change_share": self.change_share,
            "columns": self.columns,
            "examples": self.examples,
            "ignored": self.ignored,
            "columns_added": self.columns_added,
            "columns_removed": self.columns_removed,
            "columns_retyped": self.columns_retyped,
        }


IN = '"__lakehouse_audit_present"'  # marks a side's row in the full outer join


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def is_ignored(column: str, table: str, ignore: Iterable[str]) -> bool:
    """Whether ``audit.ignore_columns`` leaves ``column`` of ``table`` (``schema.table``) out:
    an entry names a column of every table, or ``table.column`` / ``schema.table.column``."""
    bare = table.split(".", 1)[-1]
    wanted = {column, f"{bare}.{column}", f"{table}.{column}"}
    return any(entry.lower() in {w.lower() for w in wanted} for entry in ignore)


def _duplicates(db: duckdb.DuckDBPyConnection, view: str, key: Sequence[str]) -> list[str]:
    cols = ", ".join(map(_quote, key))
    rows = db.execute(
        f"select {cols}, count(*) from {view} group by all having count(*) > 1 "
        f"order by {cols} nulls first limit 5"
    ).fetchall()
    return [
        ", ".join(f"{k}={_jsonable(v)!r}" for k, v in zip(key, r[:-1], strict=True))
        + f" ({r[-1]} rows)"
        for r in rows
    ]


def diff(
    table: str,
    key: Sequence[str],
    before: pa.Table,
    after: pa.Table,
    versions: tuple[int, int],
    ignore: Iterable[str] = (),
    examples: int = 10,
) -> Diff:
    """Compare ``before`` and ``after`` (two versions of ``table``) row by row on ``key``."""
    key = tuple(key)
    for side, data in (("before", before), ("after", after)):
        missing = [k for k in key if k not in data.column_names]
        if missing:
            raise AuditError(
                f"{table} version {versions[side == 'after']} has no key column "
                f"{', '.join(missing)}"
            )
    ignore = list(ignore)
    common = [c for c in after.column_names if c in before.column_names and c not in key]
    ignored = [c for c in common if is_ignored(c, table, ignore)]
    compared = [c for c in common if c not in ignored]
    db = duckdb.connect()
    db.register("a", before)
    db.register("b", after)
    for view, version in (("a", versions[0]), ("b", versions[1])):
        if dups := _duplicates(db, view, key):
            raise AuditError(
                f"{table} version {version} has duplicate keys ({', '.join(key)}): "
                f"{'; '.join(dups)}: the key is not unique, rows cannot be matched"
            )
    on = " and ".join(f"a.{_quote(k)} is not distinct from b.{_quote(k)}" for k in key)
    retyped = [c for c in compared
               if before.schema.field(c).type != after.schema.field(c).type]  # fmt: skip
    flags = (
        ", ".join(f"{_distinct(c, before, after)} as {_quote('d_' + c)}" for c in compared)
        or "true as _none"
    )
    keys_b = ", ".join(f"b.{_quote(k)} as {_quote('k_' + k)}" for k in key)
    keys_a = ", ".join(f"a.{_quote(k)} as {_quote('ka_' + k)}" for k in key)
    db.execute(f"""create temp table j as
        select {keys_a}, {keys_b}, a.{IN} is not null as in_a, b.{IN} is not null as in_b, {flags}
        from (select *, true as {IN} from a) a full outer join (select *, true as {IN} from b) b
        on {on}""")
    in_both = "in_a and in_b"
    changed_any = " or ".join(_quote("d_" + c) for c in compared) or "false"
    per_flag = "".join(
        f", count(*) filter (where {in_both} and {_quote('d_' + c)})" for c in compared
    )
    counts = db.execute(f"""select count(*) filter (where in_b and not in_a),
        count(*) filter (where in_a and not in_b),
        count(*) filter (where {in_both} and ({changed_any})){per_flag}
        from j""").fetchone()
    assert counts is not None
    added, removed, changed = (int(x) for x in counts[:3])
    per_column = {c: int(n) for c, n in zip(compared, counts[3:], strict=True) if n}
    columns = dict(sorted(per_column.items(), key=lambda kv: (-kv[1], kv[0])))
    samples = _examples(db, key, before, after, compared, changed_any, examples)
    return Diff(
        table=table,
        key=key,
        from_version=versions[0],
        to_version=versions[1],
        rows_before=before.num_rows,
        rows_after=after.num_rows,
        added=added,
        removed=removed,
        changed=changed,
        columns=columns,
        examples=samples,
        ignored=ignored,
        columns_added=[c for c in after.column_names if c not in before.column_names],
        columns_removed=[c for c in before.column_names if c not in after.column_names],
        columns_retyped=retyped,
    )


def _numeric(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)


def _distinct(column: str, before: pa.Table, after: pa.Table) -> str:
    """Whether ``column`` differs between the two sides of a joined row. Values of one type
    compare as stored; a column whose type changed compares by value when both types are
    numbers (a decimal's scale widened), else by its text (a type change is a change)."""
    old, new = before.schema.field(column).type, after.schema.field(column).type
    q = _quote(column)
    if old == new or (_numeric(old) and _numeric(new)):
        return f"a.{q} is distinct from b.{q}"
    return f"cast(a.{q} as varchar) is distinct from cast(b.{q} as varchar)"


def _examples(
    db: duckdb.DuckDBPyConnection,
    key: tuple[str, ...],
    before: pa.Table,
    after: pa.Table,
    compared: list[str],
    changed_any: str,
    limit: int,
) -> list[dict[str, Any]]:
    """Up to ``limit`` examples of each kind (changed, added, removed), each kind in key order
    (NULLs first): the same inputs give the same examples, whatever order the rows were in."""
    if limit <= 0:
        return []
    out: list[dict[str, Any]] = []
    kinds = (
        ("changed", f"in_a and in_b and ({changed_any})", "k_"),
        ("added", "in_b and not in_a", "k_"),
        ("removed", "in_a and not in_b", "ka_"),
    )
    for kind, where, prefix in kinds:
        order = ", ".join(f"{_quote(prefix + k)} nulls first" for k in key)
        cols = ", ".join(_quote(prefix + k) for k in key)
        flags = "".join(f", {_quote('d_' + c)}" for c in compared) if kind == "changed" else ""
        rows = db.execute(
            f"select {cols}{flags} from j where {where} order by {order} limit {int(limit)}"
        ).fetchall()
        if not rows:
            continue
        keys = [dict(zip(key, r[: len(key)], strict=True)) for r in rows]
        old = _rows_by_key(db, "a", key, keys) if kind != "added" else {}
        new = _rows_by_key(db, "b", key, keys) if kind != "removed" else {}
        for r, k in zip(rows, keys, strict=True):
            ident = tuple(_jsonable(v) for v in k.values())
            if kind == "changed":
                names = [c for c, flag in zip(compared, r[len(key) :], strict=True) if flag]
            else:
                names = [
                    c for c in (after if kind == "added" else before).column_names if c not in key
                ]
            o, n = old.get(_hashable(ident), {}), new.get(_hashable(ident), {})
            out.append(
                {
                    "key": {c: _jsonable(v) for c, v in k.items()},
                    "kind": kind,
                    "columns": {c: [_jsonable(o.get(c)), _jsonable(n.get(c))] for c in names},
                }
            )
    return out


def _rows_by_key(
    db: duckdb.DuckDBPyConnection, view: str, key: tuple[str, ...], keys: list[dict[str, Any]]
) -> dict[Any, dict[str, Any]]:
    """The full rows of ``view`` for ``keys`` (a handful: the examples)."""
    db.register("wanted", pa.Table.from_pylist(keys) if keys else pa.table({}))
    on = " and ".join(f"w.{_quote(k)} is not distinct from t.{_quote(k)}" for k in key)
    result = db.execute(f"select t.* from {view} t semi join wanted w on {on}")
    names = [d[0] for d in result.description]
    found = {}
    for row in result.fetchall():
        record = dict(zip(names, row, strict=True))
        found[_hashable(tuple(_jsonable(record[k]) for k in key))] = record
    db.unregister("wanted")
    return found


def _hashable(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _jsonable(value: Any) -> Any:
    """A value as JSON says it without losing what it was: decimals as their exact text,
    times in ISO 8601, non-finite floats as text, bytes as hex."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date | clock_time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)


def diff_versions(
    audited: AuditedTable,
    from_version: int | None,
    to_version: int | None,
    ignore: Iterable[str] = (),
    examples: int = 10,
) -> Diff:
    """Diff two versions of ``audited`` (default: those the last two builds left)."""
    if from_version is None or to_version is None:
        last_two = default_versions(audited.location)
        from_version = last_two[0] if from_version is None else from_version
        to_version = last_two[1] if to_version is None else to_version
    before = read_version(audited.location, from_version)
    after = read_version(audited.location, to_version)
    return diff(
        audited.name, audited.key, before, after, (from_version, to_version), ignore, examples
    )


# --- per build: ops.table_changes -----------------------------------------------------------


def table_path(settings: Settings) -> Location:
    return settings.lake / "ops" / "table_changes"


def row(diff_: Diff, build_id: str, alert_share: float, recorded_at: datetime) -> dict[str, Any]:
    """``diff_`` as the row ``ops.table_changes`` keeps."""
    share = diff_.change_share
    return {
        "recorded_at": recorded_at,
        "build_id": build_id,
        "table": diff_.table,
        "key": ",".join(diff_.key),
        "from_version": diff_.from_version,
        "to_version": diff_.to_version,
        "rows_before": diff_.rows_before,
        "rows_after": diff_.rows_after,
        "added": diff_.added,
        "removed": diff_.removed,
        "changed": diff_.changed,
        "change_share": share,
        "columns": json.dumps(diff_.columns),
        "examples": json.dumps(diff_.examples),
        "alert_share": alert_share,
        "over_threshold": share > alert_share,
    }


def ensure_table(settings: Settings) -> Location:
    """Create the (empty) table once, so the engine can register it (``ops.table_changes``)
    before any build was audited."""
    return ensure_delta_table(table_path(settings), SCHEMA)


def record(settings: Settings, rows: list[dict[str, Any]]) -> int:
    """Append ``rows`` to ``ops.table_changes``; returns how many were written."""
    if not rows:
        return 0
    write_delta(ensure_table(settings), pa.Table.from_pylist(rows, schema=SCHEMA), mode="append")
    return len(rows)


def read(settings: Settings) -> list[dict[str, Any]]:
    """Every recorded row, oldest first (a ``recorded_at`` without a zone, from a writer that
    dropped it, is UTC); no table yet: no rows."""
    try:
        rows = delta_table(table_path(settings)).to_pyarrow_table().to_pylist()
    except TableNotFoundError:
        return []
    for row in rows:
        at = row.get("recorded_at")
        if isinstance(at, datetime) and at.tzinfo is None:
            row["recorded_at"] = at.replace(tzinfo=UTC)
    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(rows, key=lambda r: (r.get("recorded_at") or epoch, str(r.get("table"))))


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def build_span(location: Location, start: datetime, end: datetime) -> tuple[int, int] | None:
    """``(from, to)`` of a build that ran in [start, end] (a second of slack each side): the
    version before its first commit and its last one. None when it committed nothing there, or
    when the table did not exist before it (a first build: nothing to compare with)."""
    lo, hi = start - timedelta(seconds=1), end + timedelta(seconds=1)
    commits = [
        c
        for c in history(location)
        if lo <= datetime.fromtimestamp(c["timestamp"] / 1000, UTC) <= hi
    ]
    if not commits:
        return None
    first = min(int(c["version"]) for c in commits)
    if first == 0:
        return None
    return first - 1, max(int(c["version"]) for c in commits)


def build_diffs(
    settings: Settings, run_results: dict[str, Any], manifest: dict[str, Any]
) -> list[Diff]:
    """The diff of every gold model the build of ``run_results`` rebuilt successfully."""
    audit = settings.audit
    diffs = []
    for result in run_results.get("results", []):
        node = manifest.get("nodes", {}).get(result["unique_id"]) or {}
        if node.get("resource_type") != "model" or node.get("schema") not in AUDITED_SCHEMAS:
            continue
        if result.get("status") != "success":
            continue
        timing = {t["name"]: t for t in result.get("timing", [])}
        execute = timing.get("execute") or {}
        if not execute.get("started_at"):
            continue
        name = f"{node['schema']}.{node['alias']}"
        try:
            audited = audited_table(settings, manifest, name)
            span = build_span(
                audited.location,
                _parse_time(execute["started_at"]),
                _parse_time(execute["completed_at"]),
            )
            if span is None:
                log.info(f"  change audit: {name} has no earlier build to compare with")
                continue
            diffs.append(diff_versions(audited, *span, audit.ignore_columns, audit.examples))
        except AuditError as exc:
            log.warning(f"  change audit: {name} not audited: {exc}")
    return diffs


def warn_over_threshold(diffs: Iterable[Diff], alert_share: float) -> None:
    for d in diffs:
        if d.change_share > alert_share:
            log.warning(
                f"  change audit: {d.table} changed {d.change_share:.1%} of its rows "
                f"(added {d.added}, removed {d.removed}, changed {d.changed} of "
                f"{d.rows_before}), over audit.alert_share {alert_share:.1%}"
            )


def record_dbt(settings: Settings, target_dir: Path) -> list[dict[str, Any]]:
    """Audit the dbt build whose artifacts are in ``target_dir``: one ``ops.table_changes`` row
    per gold model it rebuilt (none when it rebuilt none), the lineage facet, a warning for
    each table over ``audit.alert_share``. Returns the rows recorded."""
    run_results = json.loads((target_dir / "run_results.json").read_text())
    manifest = json.loads((target_dir / "manifest.json").read_text())
    build_id = run_results["metadata"]["invocation_id"]
    started = time.perf_counter()
    diffs = build_diffs(settings, run_results, manifest)
    share = settings.audit.alert_share
    now = datetime.now(UTC)
    rows = [row(d, build_id, share, now) for d in diffs]
    record(settings, rows)
    for d in diffs:
        log.info(
            f"  change audit: {d.table} v{d.from_version}->v{d.to_version}: added {d.added}, "
            f"removed {d.removed}, changed {d.changed} of {d.rows_before} rows"
        )
    if diffs:
        took = time.perf_counter() - started
        log.info(f"  change audit: {len(diffs)} gold table(s) in {took:.1f}s ({TABLE})")
    warn_over_threshold(diffs, share)
    change_facet.send(
        settings,
        build_id,
        [
            (d.table, change_facet.facet(r, d.key, d.columns))
            for d, r in zip(diffs, rows, strict=True)
        ],
    )
    return rows
