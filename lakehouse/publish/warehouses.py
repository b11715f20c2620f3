"""The warehouses gold is published to, as the publish step needs them: a staging loader, a
reader for reconciliation, and the dbt target and models that serve the data.

Production or local is decided per warehouse by the environment, as for the source systems:

| Warehouse | Production when set   | dbt target | Local stand-in, its dbt target              |
|-----------|-----------------------|------------|---------------------------------------------|
| Snowflake | SNOWFLAKE_ACCOUNT     | snowflake  | fakesnow emulator, snowflake_local          |
| Redshift  | REDSHIFT_HOST         | redshift   | PostgreSQL, redshift_local (dbt-postgres)   |

(with SNOWFLAKE_USER, SNOWFLAKE_PASSWORD or SNOWFLAKE_PRIVATE_KEY_PATH; REDSHIFT_USER,
REDSHIFT_PASSWORD, REDSHIFT_DATABASE: the same variables profiles/profiles.yml reads).

Staging uses each warehouse's bulk path that its local stand-in also serves. Snowflake: the
snapshot as Parquet files PUT to the staging table's own stage, then ``COPY INTO`` (what the
connector's ``write_pandas`` does, without pandas); the fakesnow emulator accepts both and loads
the files with DuckDB, where a batch INSERT costs it a sqlglot parse of every literal (~450 rows/s).
Redshift: batch INSERTs (``execute_values``); its COPY reads only object storage (S3), which
PostgreSQL cannot serve, and PostgreSQL's COPY FROM STDIN does not exist in Redshift.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from datetime import UTC
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse.core import naming
from lakehouse.core.config import Settings
from lakehouse.core.naming import DatasetId
from lakehouse.stack.services import postgres
from lakehouse.stack.services import snowflake as snowflake_service

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


def _naive_utc(table: pa.Table) -> pa.Table:
    """Timestamps with a time zone as naive UTC (TIMESTAMP_NTZ), the same values they hold."""
    for i, f in enumerate(table.schema):
        if pa.types.is_timestamp(f.type) and f.type.tz:
            table = table.set_column(i, f.name, table.column(i).cast(pa.timestamp(f.type.unit)))
    return table


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

    @property
    def emulator(self) -> str | None:
        """The emulator standing in for this warehouse locally (its staging speed says nothing
        about the real warehouse's), or None for the real warehouse or a real database."""
        return None

    @abstractmethod
    def replace_staging(self, table: str, data: pa.Table) -> None:
        """Replace ``publish_staging.<table>`` with ``data``."""

    def staged_rows(self, table: str, batch_id: str) -> int:
        sql = f"select count(*) from {STAGING_SCHEMA}.{table} where _batch_id = %s"
        return self._execute(sql, (batch_id,))[0][0]

    @abstractmethod
    def _no_such_table(self, error: Exception) -> bool:
        """True when ``error`` says the queried table does not exist."""

    def staging_holds_only(self, table: str, batch_id: str) -> int | None:
        """The staging table's row count if every row is of ``batch_id``; None if it holds
        another batch's rows too, or does not exist."""
        sql = (f"select count(*), sum(case when _batch_id = %s then 1 else 0 end)"
               f" from {STAGING_SCHEMA}.{table}")  # fmt: skip
        try:
            total, of_batch = self._execute(sql, (batch_id,))[0]
        except Exception as exc:
            if self._no_such_table(exc):
                return None
            raise
        return total if total == (of_batch or 0) else None

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
        """The served table by the spec's Snowflake name; the emulator as the Snowflake account
        it stands in for (``services.stand_ins.snowflake_warehouse``, docs/lineage.md)."""
        account = os.environ.get("SNOWFLAKE_ACCOUNT") or (
            self.settings.services.stand_ins.snowflake_warehouse
        )
        database = os.environ.get("SNOWFLAKE_DATABASE", "ANALYTICS")
        return naming.snowflake_table(account, database, SERVED_SCHEMA, table)

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

    @property
    def emulator(self) -> str | None:
        return snowflake_service.EMULATOR if self.local else None

    def _no_such_table(self, error: Exception) -> bool:
        import snowflake.connector.errors

        # 002003: "Object ... does not exist or not authorized" (the emulator raises the same).
        return isinstance(error, snowflake.connector.errors.ProgrammingError) and (
            error.errno == 2003 or "does not exist" in str(error)
        )

    def replace_staging(self, table: str, data: pa.Table) -> None:
        """Parquet files of ``publish.stage_file_rows`` rows, each PUT to the table's stage and
        loaded with COPY INTO, matched by column name. Each COPY names its file (as a path:
        fakesnow 0.12 rejects FILES = on an internal stage), so a file a killed publish left in
        the stage is never loaded. FORCE: the table was just replaced, so a file of the same name
        loaded before must load again (fakesnow keeps its load history by table name); PURGE:
        the stage holds no file after its load."""
        self._execute(f"create schema if not exists {STAGING_SCHEMA}")
        ddl = self._ddl(table, data.schema)
        self._execute(ddl.replace("create table", "create or replace table", 1))
        stage = f"@{STAGING_SCHEMA}.%{table}"
        rows = self.settings.publish.stage_file_rows
        with tempfile.TemporaryDirectory(prefix="lakehouse-publish-") as folder:
            data = _naive_utc(data)
            for i, offset in enumerate(range(0, data.num_rows, rows)):
                name = f"{table}-{i:05d}.parquet"
                path = os.path.join(folder, name)
                pq.write_table(data.slice(offset, rows), path, coerce_timestamps="us")
                self._execute(f"put 'file://{path}' {stage} auto_compress=false overwrite=true")
                self._execute(
                    f"copy into {STAGING_SCHEMA}.{table} from {stage}/{name} "
                    "file_format = (type = parquet use_logical_type = true) "
                    "match_by_column_name = case_insensitive force = true purge = true"
                )

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
        """The served table by the spec's name for what serves it: the local PostgreSQL as
        PostgreSQL (it is one, at a stable address), a production Redshift as Redshift."""
        served = self.served_table(table).split(".")[-1]
        if self.local:
            port = self.settings.services.postgres_port
            database = postgres.WAREHOUSE_DATABASE
            url = f"postgresql://{postgres.HOST}:{port}/{database}"
            return naming.sql_table(url, SERVED_SCHEMA, served)
        env = os.environ
        port = int(env.get("REDSHIFT_PORT", "5439"))
        database = env.get("REDSHIFT_DATABASE", "analytics")
        return naming.redshift_table(env["REDSHIFT_HOST"], port, database, SERVED_SCHEMA, served)

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

    def _no_such_table(self, error: Exception) -> bool:
        import psycopg2.errors

        # Autocommit: the failed statement leaves no aborted transaction behind.
        return isinstance(error, psycopg2.errors.UndefinedTable)

    def replace_staging(self, table: str, data: pa.Table) -> None:
        from psycopg2.extras import execute_values

        batch_rows = self.settings.publish.insert_batch_rows
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
