"""Redshift web behaviour (sessions, page views), loaded append-only.

Strategy: event-like tables never change a written row, so each run reads only rows whose id is
above the watermark kept in dlt state (``sql_database`` incremental, pushed down as a WHERE
clause) and inserts them. The write is a merge with dlt's ``insert-only`` strategy on the row id:
old rows are never rewritten, and a rerun after a crash (same rows read again) inserts nothing
twice. Locally Redshift is a real PostgreSQL server (the protocol Redshift speaks); in
production ``REDSHIFT_URL`` points at the cluster.

Configuration: dlt injects ``credentials`` from ``SOURCES__REDSHIFT__CREDENTIALS`` (a SQLAlchemy
URL; ``REDSHIFT_URL`` is honoured by ingestion/locations.py), ``schema`` and ``tables`` from
``SOURCES__REDSHIFT__SCHEMA`` / ``__TABLES``; the platform passes them from lakehouse.yml.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import dlt

from ingestion.contracts import GuardStats, TableContract
from ingestion.spec import Backfill, LoadRequest, SourceSpec, Window
from ingestion.sql_tables import contracted_sql_table, safe_url, with_timeouts
from lakehouse.core import naming
from lakehouse.core.config import RedshiftSourceConfig, SchemaPolicy

TS = {"data_type": "timestamp", "timezone": True}

CONTRACTS = {
    "sessions": TableContract(
        name="sessions",
        columns={
            "session_id": {"data_type": "bigint", "nullable": False},
            "customer_id": {"data_type": "bigint"},
            "device": {"data_type": "text"},
            "browser": {"data_type": "text"},
            "started_at": TS,
            "ended_at": TS,
        },
        required=("session_id", "started_at"),
    ),
    "page_views": TableContract(
        name="page_views",
        columns={
            "page_view_id": {"data_type": "bigint", "nullable": False},
            "session_id": {"data_type": "bigint"},
            "customer_id": {"data_type": "bigint"},
            "page_url": {"data_type": "text"},
            "viewed_at": TS,
            "referrer": {"data_type": "text"},
        },
        required=("page_view_id", "session_id", "viewed_at"),
    ),
}
# The column a time window of each table is read by (a backfill by time; ids are the key).
TIME_CURSOR = {"sessions": "started_at", "page_views": "viewed_at"}


def _incremental(name: str, window: Window | None) -> Any:
    """The table's cursor: its row id from the stored watermark (the regular load), or a
    backfill's ``[start, end)`` of its id or event time. With an ``end_value`` dlt keeps the
    cursor's state in a throwaway copy: the stored watermark is neither read nor moved."""
    key = CONTRACTS[name].required[0]
    if window is None:
        return dlt.sources.incremental(key, initial_value=0, row_order="asc")
    cursor = key if window.by == "ids" else TIME_CURSOR[name]
    return dlt.sources.incremental(cursor, initial_value=window.start, end_value=window.end)


@dlt.source(name="redshift", section="redshift")
def redshift_source(
    credentials: str = dlt.secrets.value,
    schema: str | None = dlt.config.value,
    tables: list[str] = dlt.config.value,
    policy: SchemaPolicy | None = None,
    stats: GuardStats | None = None,
    chunk_size: int = 50_000,
    window: Window | None = None,
) -> Iterator[Any]:
    """New rows of ``schema.tables`` since the last run, appended to bronze; with ``window`` (a
    backfill), the rows of that id or time range. Either way insert-only by the row id: a row
    already in bronze is neither duplicated nor rewritten (dlt's merge inserts only the keys
    bronze does not have), so a backfill only adds the rows bronze lost or never had."""
    policy = policy or SchemaPolicy()
    stats = stats if stats is not None else GuardStats()
    loaded_at = datetime.now(UTC)
    for name in tables:
        contract = CONTRACTS[name]
        yield contracted_sql_table(
            "redshift",
            contract,
            policy,
            stats,
            loaded_at,
            credentials=credentials,
            schema=schema,
            chunk_size=chunk_size,
            incremental=_incremental(name, window),
            write_disposition={"disposition": "merge", "strategy": "insert-only"},
        )


def _build(load: LoadRequest) -> Any:
    conf = load.conf
    url = with_timeouts(load.location["credentials"], load.timeout_s)
    return redshift_source(
        url, conf.schema_, conf.tables, conf.schema_policy, load.stats, conf.chunk_size, load.window
    )


SPEC = SourceSpec(
    name="redshift",
    build=_build,
    contracts=lambda conf: {t: CONTRACTS[t] for t in conf.tables},
    reads=lambda table, conf, where, local: naming.sql_table(
        where["credentials"], conf.schema_, table
    ),
    system=lambda where: f"Redshift database {safe_url(where['credentials'])}",
    settings=RedshiftSourceConfig,
    location={"credentials": "REDSHIFT_URL"},
    secrets=frozenset({"credentials"}),
    backfill=Backfill(cursor="event time", window="time", modes=("ids",)),
    identity="sqlalchemy",
)
