"""The warehouses gold is published to, as the publish step needs them: a staging loader, a
reader for reconciliation, and the dbt target and models that serve the data.

Production or local is decided per warehouse by the environment, as for the source systems:

| Warehouse | Production when set   | dbt target | Local stand-in, its dbt target              |
|-----------|-----------------------|------------|---------------------------------------------|
| Snowflake | SNOWFLAKE_ACCOUNT     | snowflake  | fakesnow emulator, snowflake_local          |
| Redshift  | REDSHIFT_HOST         | redshift   | PostgreSQL, redshift_local (dbt-postgres)   |

(with SNOWFLAKE_USER, SNOWFLAKE_PASSWORD or SNOWFLAKE_PRIVATE_KEY_PATH; REDSHIFT_USER,
REDSHIFT_PASSWORD, REDSHIFT_DATABASE: the same variables profiles/profiles.yml reads).

Staging uses the connectors' own batch INSERTs, which both the real warehouses and the stand-ins
accept. At production volume a COPY from object storage is the faster path; the emulators
cannot serve it (fakesnow has no stages, PostgreSQL no S3), so it is not what runs here.
"""

from __future__ import annotations

import contextlib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from datetime import UTC
from typing import Any

import pyarrow as pa

from lakehouse.config import Settings
from lakehouse.lineage.naming import DatasetId
from lakehouse.services import postgres
from lakehouse.services import snowflake as snowflake_service

STAGING_SCHEMA = "publish_staging"
SERVED_SCHEMA = "gold"


def _python_rows(table: pa.Table) -> Iterator[tuple]:
    """Rows as Python values the connectors bind: timestamps as naive UTC (TIMESTAMP_NTZ)."""
    tz_columns = [
        i for i, f in enumerate(table.schema) if pa.types.is_timestamp(f.type) and f.type.tz
    ]
    for batch in table.to_batches(max_chunksize=10_000):
        columns = [column.to_pylist() for column in batch.columns]
        for row in zip(*columns, strict=True):
            if tz_columns:
                row = list(row)
                for i in tz_columns:
                    if row[i] is not None:
                        row[i] = row[i].astimezone(UTC).replace(tzinfo=None)
            yield tuple(row)


def _chunks(rows: Iterator[tuple], size: int) -> Iterator[list[tuple]]:
    chunk: list[tuple] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class Warehouse(ABC):
    """One warehouse: how to stage a snapshot, read it back, and which dbt models serve it."""

    name: str

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._conn: Any = None

    @property
    @abstractmethod
    def local(self) -> bool:
        """True when no production endpoint is configured: the stand-in is used."""

    @property
    @abstractmethod
    def dbt_target(self) -> str: ...

    @abstractmethod
    def model_name(self, table: str) -> str:
        """The dbt publish model serving ``table`` in this warehouse."""

    @abstractmethod
    def served_table(self, table: str) -> str:
        """Schema-qualified name of the table users query."""

    @abstractmethod
    def dataset(self, table: str) -> DatasetId:
        """The served table as OpenLineage names it (naming spec of the warehouse)."""

    @abstractmethod
    def _column_type(self, data_type: pa.DataType) -> str: ...

    @abstractmethod
    def _connect(self) -> Any: ...

    @abstractmethod
    def _service(self) -> contextlib.AbstractContextManager: ...

    @contextlib.contextmanager
    def session(self) -> Iterator[Warehouse]:
        """Connected for the block; a local stand-in is started if it is not up (and stopped
        after, like the source systems), its data kept on disk either way."""
        with self._service():
            self._conn = self._connect()
            try:
                yield self
            finally:
                self._conn.close()
                self._conn = None

    def _execute(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        cur = self._conn.cursor()
        try:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []
        finally:
            cur.close()

    def _ddl(self, table: str, schema: pa.Schema) -> str:
        columns = ", ".join(f"{f.name} {self._column_type(f.type)}" for f in schema)
        return f"create table {STAGING_SCHEMA}.{table} ({columns})"

    @abstractmethod
    def replace_staging(self, table: str, data: pa.Table, batch_rows: int) -> None:
        """Replace ``publish_staging.<table>`` with ``data``."""

    def staged_rows(self, table: str, batch_id: str) -> int:
        sql = f"select count(*) from {STAGING_SCHEMA}.{table} where _batch_id = %s"
        return self._execute(sql, (batch_id,))[0][0]

    @abstractmethod
    def published_rows(self, table: str, columns: Sequence[str], batch_id: str) -> list[tuple]:
        """The rows users see for the batch, for reconciliation."""


class SnowflakeWarehouse(Warehouse):
    name = "snowflake"

    @property
    def local(self) -> bool:
        return not os.environ.get("SNOWFLAKE_ACCOUNT")

    @property
    def dbt_target(self) -> str:
        return "snowflake_local" if self.local else "snowflake"

    def model_name(self, table: str) -> str:
        return f"pub_snowflake__{table}"

    def served_table(self, table: str) -> str:
        return f"{SERVED_SCHEMA}.{table}"

    def dataset(self, table: str) -> DatasetId:
        account = os.environ.get("SNOWFLAKE_ACCOUNT", "fakesnow")
        database = os.environ.get("SNOWFLAKE_DATABASE", "ANALYTICS")
        return DatasetId(f"snowflake://{account}", f"{database}.{self.served_table(table)}".upper())

    def _column_type(self, data_type: pa.DataType) -> str:
        if pa.types.is_boolean(data_type):
            return "boolean"
        if pa.types.is_integer(data_type):
            return "number(38,0)"
        if pa.types.is_floating(data_type):
            return "float"
        if pa.types.is_decimal(data_type):
            return f"number({data_type.precision},{data_type.scale})"
        if pa.types.is_date(data_type):
            return "date"
        if pa.types.is_timestamp(data_type):
            return "timestamp_ntz"
        return "varchar"

    def _service(self) -> contextlib.AbstractContextManager:
        if not self.local:
            return contextlib.nullcontext()
        return snowflake_service.running(self.settings.home, self.settings.services.snowflake_port)

    def _connect(self) -> Any:
        import snowflake.connector

        database = os.environ.get("SNOWFLAKE_DATABASE", "ANALYTICS")
        if self.local:
            args = snowflake_service.connect_args(self.settings.services.snowflake_port)
        else:
            env = os.environ
            args = {
                "account": env["SNOWFLAKE_ACCOUNT"],
                "user": env["SNOWFLAKE_USER"],
                "role": env.get("SNOWFLAKE_ROLE", "TRANSFORMER"),
                "warehouse": env.get("SNOWFLAKE_WAREHOUSE", "TRANSFORMING"),
            }
            if key := env.get("SNOWFLAKE_PRIVATE_KEY_PATH"):
                args["private_key_file"] = key
            else:
                args["password"] = env["SNOWFLAKE_PASSWORD"]
        # The emulator creates the database at login; in production it must exist.
        return snowflake.connector.connect(**args, database=database)

    def replace_staging(self, table: str, data: pa.Table, batch_rows: int) -> None:
        self._execute(f"create schema if not exists {STAGING_SCHEMA}")
        ddl = self._ddl(table, data.schema)
        self._execute(ddl.replace("create table", "create or replace table", 1))
        columns = ", ".join(data.column_names)
        placeholders = ", ".join(["%s"] * data.num_columns)
        sql = f"insert into {STAGING_SCHEMA}.{table} ({columns}) values ({placeholders})"
        cur = self._conn.cursor()
        try:
            for chunk in _chunks(_python_rows(data), batch_rows):
                # pyformat binding: the connector sends one multi-row INSERT per chunk.
                cur.executemany(sql, chunk)
        finally:
            cur.close()

    def published_rows(self, table: str, columns: Sequence[str], batch_id: str) -> list[tuple]:
        # A mirror: users see the whole table, which must equal the snapshot.
        return self._execute(f"select {', '.join(columns)} from {self.served_table(table)}")


class RedshiftWarehouse(Warehouse):
    name = "redshift"

    @property
    def local(self) -> bool:
        return not os.environ.get("REDSHIFT_HOST")

    @property
    def dbt_target(self) -> str:
        return "redshift_local" if self.local else "redshift"

    def model_name(self, table: str) -> str:
        return f"pub_redshift__{table}_history"

    def served_table(self, table: str) -> str:
        return f"{SERVED_SCHEMA}.{table}_history"

    def dataset(self, table: str) -> DatasetId:
        if self.local:
            namespace = f"postgres://{postgres.HOST}:{self.settings.services.postgres_port}"
            database = postgres.WAREHOUSE_DATABASE
        else:
            env = os.environ
            namespace = f"redshift://{env['REDSHIFT_HOST']}:{env.get('REDSHIFT_PORT', '5439')}"
            database = env.get("REDSHIFT_DATABASE", "analytics")
        return DatasetId(namespace, f"{database}.{self.served_table(table)}")

    def _column_type(self, data_type: pa.DataType) -> str:
        if pa.types.is_boolean(data_type):
            return "boolean"
        if pa.types.is_integer(data_type):
            return "bigint"
        if pa.types.is_floating(data_type):
            return "double precision"
        if pa.types.is_decimal(data_type):
            return f"numeric({data_type.precision},{data_type.scale})"
        if pa.types.is_date(data_type):
            return "date"
        if pa.types.is_timestamp(data_type):
            return "timestamp"
        # Redshift's bare varchar is 256 bytes; its maximum is 65535.
        return "varchar(65535)"

    def _service(self) -> contextlib.AbstractContextManager:
        if not self.local:
            return contextlib.nullcontext()
        return postgres.running(self.settings.home, self.settings.services.postgres_port)

    def _connect(self) -> Any:
        import psycopg2

        if self.local:
            conn = psycopg2.connect(
                host=postgres.HOST,
                port=self.settings.services.postgres_port,
                user=postgres.ROLE,
                password=os.environ.get("REDSHIFT_PASSWORD", postgres.PASSWORD),
                dbname=postgres.WAREHOUSE_DATABASE,
                sslmode="disable",
                gssencmode="disable",
            )
        else:
            env = os.environ
            conn = psycopg2.connect(
                host=env["REDSHIFT_HOST"],
                port=int(env.get("REDSHIFT_PORT", "5439")),
                user=env["REDSHIFT_USER"],
                password=env["REDSHIFT_PASSWORD"],
                dbname=env.get("REDSHIFT_DATABASE", "analytics"),
                sslmode="require",
            )
        # Statements commit on their own; replace_staging opens its one transaction itself.
        conn.autocommit = True
        return conn

    def replace_staging(self, table: str, data: pa.Table, batch_rows: int) -> None:
        from psycopg2.extras import execute_values

        # One transaction (DDL is transactional here): other sessions, and a publish killed
        # half-way, see the old staging table or the whole new one.
        with self._conn.cursor() as cur:
            cur.execute("begin")
            try:
                cur.execute(f"create schema if not exists {STAGING_SCHEMA}")
                cur.execute(f"drop table if exists {STAGING_SCHEMA}.{table}")
                cur.execute(self._ddl(table, data.schema))
                columns = ", ".join(data.column_names)
                sql = f"insert into {STAGING_SCHEMA}.{table} ({columns}) values %s"
                for chunk in _chunks(_python_rows(data), batch_rows):
                    execute_values(cur, sql, chunk, page_size=batch_rows)
            except BaseException:
                cur.execute("rollback")
                raise
            cur.execute("commit")

    def published_rows(self, table: str, columns: Sequence[str], batch_id: str) -> list[tuple]:
        # History: the batch's rows must equal the snapshot.
        sql = f"select {', '.join(columns)} from {self.served_table(table)} where _batch_id = %s"
        return self._execute(sql, (batch_id,))


WAREHOUSES: dict[str, type[Warehouse]] = {
    "snowflake": SnowflakeWarehouse,
    "redshift": RedshiftWarehouse,
}


def warehouse(name: str, settings: Settings) -> Warehouse:
    try:
        return WAREHOUSES[name](settings)
    except KeyError:
        raise ValueError(f"unknown warehouse {name!r}; choose from {sorted(WAREHOUSES)}") from None
