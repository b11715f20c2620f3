"""Fill the local source systems with a generation of the sample world.

Each system is filled the way its real counterpart changes: the Snowflake file is rewritten as
a whole (a new snapshot), PostgreSQL (Redshift) only gains rows with new ids, Kafka only gains
the events not yet produced. Filling the same generation twice changes nothing.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import sqlalchemy as sa

from lakehouse.stack.sample_data.world import World

# Columns upstream added without telling anyone: no bronze contract declares them, so each
# source's unknown-column policy decides their fate.
SNOWFLAKE_EXTRA_COLUMNS = {"customers": "loyalty_tier"}


def snowflake_url(path: Path) -> str:
    return f"sqlite:///{path}"


def fill_snowflake(world: World, path: Path) -> dict[str, int]:
    """Write the world's Snowflake tables into a SQL database file (a fresh snapshot)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(snowflake_url(path))
    meta = sa.MetaData()
    tables = {
        "customers": sa.Table(
            "customers", meta,
            sa.Column("customer_id", sa.BigInteger), sa.Column("email", sa.String),
            sa.Column("first_name", sa.String), sa.Column("last_name", sa.String),
            sa.Column("country", sa.String), sa.Column("phone", sa.String),
            sa.Column("signup_date", sa.String),
            sa.Column("updated_at", sa.DateTime(timezone=True)),
            sa.Column("loyalty_tier", sa.String),
        ),
        "products": sa.Table(
            "products", meta,
            sa.Column("product_id", sa.BigInteger, primary_key=True), sa.Column("sku", sa.String),
            sa.Column("name", sa.String), sa.Column("category", sa.String),
            sa.Column("list_price", sa.Float), sa.Column("updated_at", sa.DateTime(timezone=True)),
        ),
        "orders": sa.Table(
            "orders", meta,
            sa.Column("order_id", sa.BigInteger, primary_key=True),
            sa.Column("customer_id", sa.BigInteger),
            sa.Column("order_ts", sa.DateTime(timezone=True)), sa.Column("status", sa.String),
            sa.Column("currency", sa.String), sa.Column("updated_at", sa.DateTime(timezone=True)),
        ),
        "order_lines": sa.Table(
            "order_lines", meta,
            sa.Column("order_line_id", sa.BigInteger, primary_key=True),
            sa.Column("order_id", sa.BigInteger), sa.Column("product_id", sa.BigInteger),
            sa.Column("quantity", sa.BigInteger), sa.Column("unit_price", sa.Float),
            sa.Column("currency", sa.String),
        ),
    }  # fmt: skip
    customers = [
        {**row, "loyalty_tier": ("gold", "silver", "bronze")[row["customer_id"] % 3]}
        for row in world.customers
    ]
    rows = {
        "customers": customers,
        "products": world.products,
        "orders": world.orders,
        "order_lines": world.order_lines,
    }
    with engine.begin() as conn:
        meta.drop_all(conn)
        meta.create_all(conn)
        for name, table in tables.items():
            conn.execute(table.insert(), rows[name])
    engine.dispose()
    return {name: len(r) for name, r in rows.items()}


WEB_COLUMNS = {
    "sessions": ["session_id", "customer_id", "device", "browser", "started_at", "ended_at"],
    "page_views": [
        "page_view_id",
        "session_id",
        "customer_id",
        "page_url",
        "viewed_at",
        "referrer",
    ],
}

REDSHIFT_DDL = """
create schema if not exists {schema};
create table if not exists {schema}.sessions (
    session_id bigint primary key,
    customer_id bigint,
    device varchar(32),
    browser varchar(32),
    started_at timestamptz not null,
    ended_at timestamptz
);
create table if not exists {schema}.page_views (
    page_view_id bigint primary key,
    session_id bigint not null,
    customer_id bigint,
    page_url varchar(2048),
    viewed_at timestamptz not null,
    referrer varchar(2048)
);
"""


def fill_redshift(world: World, url: str, schema: str = "web") -> dict[str, int]:
    """Append the world's sessions and page views that PostgreSQL does not hold yet."""
    import psycopg2

    sessions, views = world.web()
    dsn = sa.engine.make_url(url)
    conn = psycopg2.connect(
        host=dsn.host, port=dsn.port, user=dsn.username, password=dsn.password, dbname=dsn.database
    )
    added = {}
    try:
        with conn, conn.cursor() as cur:
            cur.execute(REDSHIFT_DDL.format(schema=schema))
            for table, key, rows in (("sessions", "session_id", sessions),
                                     ("page_views", "page_view_id", views)):  # fmt: skip
                columns = ", ".join(WEB_COLUMNS[table])
                cur.execute(f"select coalesce(max({key}), 0) from {schema}.{table}")
                newest = cur.fetchone()[0]
                new_rows = [r for r in rows if r[0] > newest]
                buffer = io.StringIO()
                csv.writer(buffer).writerows(
                    [
                        "" if v is None else v.isoformat() if hasattr(v, "isoformat") else v
                        for v in r
                    ]
                    for r in new_rows
                )
                buffer.seek(0)
                cur.copy_expert(
                    f"copy {schema}.{table} ({columns}) from stdin with (format csv)", buffer
                )
                added[table] = len(new_rows)
    finally:
        conn.close()
    return added


def fill_kafka(world: World, bootstrap: str, topic: str, marker: Path) -> int:
    """Produce the world's events not produced yet (``marker`` remembers how many were)."""
    from confluent_kafka import Producer

    done = json.loads(marker.read_text())["events"] if marker.exists() else 0
    if done >= world.n_events:
        return 0
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "acks": "all",
                         "enable.idempotence": True, "compression.type": "lz4",
                         "log_level": 3})  # fmt: skip
    sent = 0
    for key, value, headers in world.events(first=done + 1):
        while True:
            try:
                producer.produce(topic, key=key.encode(), value=value, headers=headers)
                break
            except BufferError:
                producer.poll(0.5)
        sent += 1
        if sent % 10_000 == 0:
            producer.poll(0)
    remaining = producer.flush(60)
    if remaining:
        raise RuntimeError(f"{remaining} events were not acknowledged by Kafka")
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"events": world.n_events}))
    return sent
