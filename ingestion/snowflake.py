"""Snowflake tables (customers, products, orders, order lines), loaded as a batch replace.

Strategy: each run reads the full tables through dlt's ``sql_database`` source (SQLAlchemy) and
replaces the bronze tables, so bronze holds exactly the latest snapshot; Delta keeps earlier
snapshots as table versions (time travel) at no extra cost. Locally the "warehouse" is a SQL
database file; in production ``SNOWFLAKE_URL`` is a snowflake-sqlalchemy URL.

Configuration: dlt injects ``credentials`` (a SQLAlchemy URL) from
``SOURCES__SNOWFLAKE__CREDENTIALS`` (or ``[sources.snowflake]`` in ``.dlt/secrets.toml``) and
``tables`` from ``SOURCES__SNOWFLAKE__TABLES``; the platform passes both explicitly (the URL
resolved by ingestion/locations.py, ``SNOWFLAKE_URL`` honoured; the tables from lakehouse.yml).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import dlt
import sqlalchemy as sa

from ingestion.contracts import GuardStats, TableContract
from ingestion.spec import Backfill, LoadRequest, SourceSpec
from ingestion.sql_tables import contracted_sql_table, safe_url, with_timeouts
from lakehouse.core import naming
from lakehouse.core.config import SchemaPolicy, SnowflakeSourceConfig

TS = {"data_type": "timestamp", "timezone": True}

CONTRACTS = {
    "customers": TableContract(
        name="customers",
        columns={
            "customer_id": {"data_type": "bigint", "nullable": False},
            "email": {"data_type": "text"},
            "first_name": {"data_type": "text"},
            "last_name": {"data_type": "text"},
            "country": {"data_type": "text"},
            "phone": {"data_type": "text"},
            # kept as typed: several date formats; silver parses them
            "signup_date": {"data_type": "text"},
            "updated_at": TS,
        },
        required=("customer_id",),
    ),
    "products": TableContract(
        name="products",
        columns={
            "product_id": {"data_type": "bigint", "nullable": False},
            "sku": {"data_type": "text"},
            "name": {"data_type": "text"},
            "category": {"data_type": "text"},
            "list_price": {"data_type": "double"},
            "updated_at": TS,
        },
        required=("product_id",),
    ),
    "orders": TableContract(
        name="orders",
        columns={
            "order_id": {"data_type": "bigint", "nullable": False},
            "customer_id": {"data_type": "bigint"},
            "order_ts": TS,
            "status": {"data_type": "text"},
            "currency": {"data_type": "text"},
            "updated_at": TS,
        },
        required=("order_id",),
    ),
    "order_lines": TableContract(
        name="order_lines",
        columns={
            "order_line_id": {"data_type": "bigint", "nullable": False},
            "order_id": {"data_type": "bigint"},
            "product_id": {"data_type": "bigint"},
            "quantity": {"data_type": "bigint"},
            "unit_price": {"data_type": "double"},
            "currency": {"data_type": "text"},
        },
        required=("order_line_id", "order_id"),
    ),
}


def _text_or_bytes(value: bytes) -> str | bytes:
    """SQLite text as str when it is UTF-8, else the bytes (the guard quarantines them)."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value


def engine_for(credentials: str) -> sa.engine.Engine | str:
    """The SQLAlchemy engine to read with: for the local SQLite stand-in, one whose connections
    hand text that is not UTF-8 over as bytes.

    SQLite stores whatever bytes it is given in a TEXT column, and Python's sqlite3 raises on
    the first one that does not decode, failing the fetch of a whole chunk. As bytes, the value
    reaches the contract guard, which quarantines that one row with the bytes in base64.
    """
    if not credentials.startswith("sqlite"):
        return credentials
    engine = sa.create_engine(credentials)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.text_factory = _text_or_bytes

    return engine


@dlt.source(name="snowflake", section="snowflake")
def snowflake_source(
    credentials: str = dlt.secrets.value,
    tables: list[str] = dlt.config.value,
    policy: SchemaPolicy | None = None,
    stats: GuardStats | None = None,
    chunk_size: int = 50_000,
) -> Iterator[Any]:
    """Full snapshots of ``tables``; each replaces its bronze table."""
    policy = policy or SchemaPolicy()
    stats = stats if stats is not None else GuardStats()
    loaded_at = datetime.now(UTC)
    engine = engine_for(credentials)
    for name in tables:
        yield contracted_sql_table(
            "snowflake",
            CONTRACTS[name],
            policy,
            stats,
            loaded_at,
            credentials=engine,
            chunk_size=chunk_size,
            write_disposition="replace",
        )


def _build(load: LoadRequest) -> Any:
    url = with_timeouts(load.location["credentials"], load.timeout_s)
    return snowflake_source(url, load.conf.tables, load.conf.schema_policy, load.stats)


SPEC = SourceSpec(
    name="snowflake",
    build=_build,
    contracts=lambda conf: {t: CONTRACTS[t] for t in conf.tables},
    reads=lambda table, conf, where, local: naming.sql_table(where["credentials"], None, table),
    system=lambda where: f"Snowflake database {safe_url(where['credentials'])}",
    settings=SnowflakeSourceConfig,
    location={"credentials": "SNOWFLAKE_URL"},
    secrets=frozenset({"credentials"}),
    backfill=Backfill(
        why_not="its tables are replaced whole on every load: reload the snapshot as of now "
        "(--reload) or rebuild downstream only (--downstream-only)",
        modes=("reload", "downstream-only"),
    ),
    identity="sqlalchemy",
)
