"""Snowflake tables (customers, products, orders, order lines), loaded as a batch replace.

Strategy: each run reads the full tables through dlt's ``sql_database`` source (SQLAlchemy) and
replaces the bronze tables, so bronze holds exactly the latest snapshot; Delta keeps earlier
snapshots as table versions (time travel) at no extra cost. Locally the "warehouse" is a SQL
database file; in production ``SNOWFLAKE_URL`` is a snowflake-sqlalchemy URL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import dlt

from ingestion.contracts import GuardStats, TableContract
from ingestion.sql_tables import contracted_sql_table
from lakehouse.config import SchemaPolicy

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


@dlt.source(name="snowflake")
def snowflake_source(
    credentials: str,
    tables: list[str],
    policy: SchemaPolicy | None = None,
    stats: GuardStats | None = None,
    chunk_size: int = 50_000,
) -> Iterator[Any]:
    """Full snapshots of ``tables``; each replaces its bronze table."""
    policy = policy or SchemaPolicy()
    stats = stats if stats is not None else GuardStats()
    loaded_at = datetime.now(UTC)
    for name in tables:
        yield contracted_sql_table(
            "snowflake",
            CONTRACTS[name],
            policy,
            stats,
            loaded_at,
            credentials=credentials,
            chunk_size=chunk_size,
            write_disposition="replace",
        )
