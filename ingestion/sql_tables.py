"""A dlt ``sql_table`` held to a bronze contract: the wiring the SQL sources share."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import dlt
import sqlalchemy as sa
from dlt.sources.sql_database import sql_table
from sqlalchemy.engine import make_url

from ingestion.contracts import GuardStats, TableContract, attach_guard, dlt_schema_contract
from lakehouse.core.config import SchemaPolicy


def contracted_sql_table(
    source: str,
    contract: TableContract,
    policy: SchemaPolicy,
    stats: GuardStats,
    loaded_at: datetime,
    **sql_table_args: Any,
) -> Any:
    """``sql_table`` for ``contract.name`` whose columns come from the contract, not reflection.

    Call inside a ``@dlt.source``. Reflection stays minimal and its column hints are cleared, so
    a column the upstream table gained but the contract does not declare meets the source's
    unknown-column policy in the guard, which every row passes through first (before the
    incremental cursor, for the tables that have one).
    """
    contract.register(dlt.current.source_schema())
    resource = sql_table(
        table=contract.name,
        backend="sqlalchemy",
        reflection_level="minimal",
        table_adapter_callback=_raw_values,
        **sql_table_args,
    )
    resource.apply_hints(
        columns={},
        primary_key=contract.required[0],
        schema_contract=dlt_schema_contract(policy),
    )
    return attach_guard(resource, source, contract, policy, stats, loaded_at, _locator(contract))


def _raw_values(table: sa.Table) -> sa.Table:
    """Read every column as the driver returns it, with no SQLAlchemy result processing.

    SQLAlchemy parses some types itself (SQLite keeps DATETIME as text and SQLAlchemy parses it
    while fetching): one unparseable value would then fail the fetch of the whole chunk, before
    any guard sees a row. Typed as ``NullType`` the value reaches the guard as stored, and the
    guard types it or quarantines that one row.
    """
    for column in table.columns:
        column.type = sa.types.NullType()
    return table


def _locator(contract: TableContract) -> Any:
    """Where a row sits: its table, its key and its position in this run's read."""
    position = 0

    def locate(page: int, index: int, row: Any, params: dict[str, Any]) -> dict[str, Any]:
        nonlocal position
        position += 1
        key = {k: row.get(k) for k in contract.required[:1]} if isinstance(row, dict) else None
        return {"table": contract.name, "key": key, "position": position - 1}

    return locate


def with_timeouts(url: str, timeout_s: float) -> str:
    """A SQLAlchemy URL whose driver gives up on a silent server after ``timeout_s``.

    Without it a connect to a host that does not answer waits for the operating system (minutes)
    and SQLite waits 5 s for a lock. A timeout already in the URL is kept.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        key, value = "connect_timeout", str(max(2, round(timeout_s)))  # libpq's minimum is 2 s
    elif parsed.get_backend_name() == "sqlite":
        key, value = "timeout", str(timeout_s)
    else:
        return url
    if key in parsed.query:
        return url
    return parsed.update_query_dict({key: value}).render_as_string(hide_password=False)


def safe_url(url: str) -> str:
    """The URL as a failure message shows it: without the password."""
    parsed = make_url(url)
    return parsed.render_as_string(hide_password=True).replace(":***@", "@")
