"""The engine's Hive metastore: a database of the project's own PostgreSQL server.

Why not the embedded Derby that Spark uses by default: Derby admits one process at a time, so
the ``session`` dbt target could not run while the Thrift server was up and no second engine
could see the tables. Every engine of a home (the Thrift server, a dbt ``session``, a second
server) now reads and writes one catalog, in database ``engine.metastore.database`` of the
server on ``services.postgres_port`` (lakehouse/stack/services/postgres.py), as its own role.

The role's password is local-only and never committed: ``$LAKEHOUSE_METASTORE_PASSWORD`` if set,
else one generated at first use into ``<home>/metastore/postgres.password`` (mode 0600).

The schema: Spark's built-in Hive 2.3 client creates it through DataNucleus
(``datanucleus.schema.autoCreateAll``, schema verification off), as it did in Derby. Hive's
own ``hive-schema-2.3.0.postgres.sql`` ships only in Hive's binary distribution, not in any jar
of Maven Central, so there is nothing to run offline. DataNucleus creates tables when the
metastore starts (Hive's direct-SQL start-up touches each class), and two engines doing that at
once against an empty database race on ``CREATE TABLE``. So the first engine of an empty
metastore boots holding a PostgreSQL advisory lock, released once its catalog holds the default
database; a second engine starting meanwhile waits for it, then finds the schema made.

The engine needs PostgreSQL before its JVM starts. ``ensure`` starts it if it is down and notes
that in the state dir; ``release`` (when the engine stops) stops only a server its engine
started, never one started by ``make up``, the tests or anything else.

A home made before this (an embedded Derby ``metastore/metastore_db``) keeps its tables: at the
first start on PostgreSQL, ``adopt_derby_tables`` registers every Delta table of the warehouse
(``<schema>.db/<table>``) as the managed table it was, and has dbt register the bronze and ops
tables, then renames the Derby folder to ``metastore_db.migrated`` (kept, never read again).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from lakehouse.core.config import Settings
from lakehouse.stack.services import postgres
from lakehouse.transform import dbt_cli
from lakehouse.transform.sql import query

log = logging.getLogger(__name__)

PASSWORD_ENV = "LAKEHOUSE_METASTORE_PASSWORD"
DRIVER = "org.postgresql.Driver"
# pg_advisory_lock key held while the first engine of an empty metastore creates its schema.
SCHEMA_LOCK = 0x6C616B65  # "lake"
DERBY_FOLDER = "metastore_db"
MIGRATED_SUFFIX = ".migrated"


def password(settings: Settings) -> str:
    """The metastore role's password: from the environment, else generated once per home."""
    if value := os.environ.get(PASSWORD_ENV):
        return value
    path = settings.metastore_dir / "postgres.password"
    with contextlib.suppress(FileNotFoundError):
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(value)
    return value


def jdbc_url(settings: Settings) -> str:
    port, database = settings.services.postgres_port, settings.engine.metastore.database
    # The local server is built without SSL and listens on 127.0.0.1 only.
    return f"jdbc:postgresql://{postgres.HOST}:{port}/{database}?sslmode=disable"


def metastore_conf(settings: Settings) -> dict[str, str]:
    """The Spark settings that point Spark's built-in Hive client at the shared metastore."""
    return {
        "spark.hadoop.javax.jdo.option.ConnectionURL": jdbc_url(settings),
        "spark.hadoop.javax.jdo.option.ConnectionDriverName": DRIVER,
        "spark.hadoop.javax.jdo.option.ConnectionUserName": settings.engine.metastore.user,
        "spark.hadoop.javax.jdo.option.ConnectionPassword": password(settings),
        # Tables and columns as DataNucleus needs them, but no foreign keys (autoCreateAll
        # would add them too).
        "spark.hadoop.datanucleus.schema.autoCreateAll": "false",
        "spark.hadoop.datanucleus.schema.autoCreateTables": "true",
        "spark.hadoop.datanucleus.schema.autoCreateColumns": "true",
        # DataNucleus makes a class's tables when it first meets the class. Met inside a
        # transaction (a table's privileges, while the table is created), adding the new
        # table's foreign key to "TBLS" waits for the lock that transaction's own connection
        # holds on "TBLS": the engine hangs. Tables without foreign keys: nothing to wait for.
        "spark.hadoop.datanucleus.schema.autoCreateConstraints": "false",
        "spark.hadoop.hive.metastore.schema.verification": "false",
    }


def session_env(settings: Settings) -> dict[str, str]:
    """What the ``session`` dbt target (profiles/profiles.yml) reads to reach this catalog."""
    return {
        "LAKEHOUSE_METASTORE_URL": jdbc_url(settings),
        "LAKEHOUSE_METASTORE_USER": settings.engine.metastore.user,
        PASSWORD_ENV: password(settings),
    }


# --- before the engine starts ------------------------------------------------------------------


def _owner_file(settings: Settings) -> Path:
    """Written when the engine on this port started PostgreSQL: the server's pid."""
    return settings.state_dir / f"engine-{settings.engine.port}.postgres"


def ensure(settings: Settings) -> None:
    """PostgreSQL up, role and database made, schema creation serialised; before each launch.

    Starts the server if it is down (and notes it for ``release``). Returns at once when the
    schema exists; otherwise returns holding the schema lock in a thread that lets it go once
    the engine about to launch has made the schema (or after the engine's start-up timeout).
    """
    port = settings.services.postgres_port
    if not postgres.is_up(port):
        postgres.start(settings.home, port)
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        _owner_file(settings).write_text(str(postgres.server_pid(settings.home, port)))
    conf = settings.engine.metastore
    postgres.ensure_role(port, conf.user, password(settings))
    postgres.ensure_database(port, conf.database, owner=conf.user)
    conn = postgres.superuser_connection(port, conf.database)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
        if schema_made(conn):
            conn.close()
            return
    except BaseException:
        conn.close()
        raise
    threading.Thread(
        target=_hold_until_made,
        args=(conn, settings.engine.startup_timeout_s),
        name="metastore-schema-lock",
        daemon=True,
    ).start()


def schema_made(conn: Any) -> bool:
    """True once Hive has initialised the catalog: its tables exist and hold ``default``."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('public.\"DBS\"') IS NOT NULL")
        if not cur.fetchone()[0]:
            return False
        cur.execute("""SELECT count(*) FROM "DBS" WHERE "NAME" = 'default'""")
        return cur.fetchone()[0] > 0


def _hold_until_made(conn: Any, timeout_s: float) -> None:
    """Keep the schema lock until the schema exists; closing the connection releases it."""
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            try:
                if schema_made(conn):
                    return
            except Exception:  # a table half-created by DataNucleus: ask again
                pass
            time.sleep(0.5)
    finally:
        conn.close()


# --- after the engine stops --------------------------------------------------------------------


def release(settings: Settings) -> bool:
    """Stop PostgreSQL if the engine on this port started it (and it still runs); True if so."""
    owner = _owner_file(settings)
    try:
        pid = int(owner.read_text().strip())
    except (FileNotFoundError, ValueError):
        return False
    owner.unlink(missing_ok=True)
    port = settings.services.postgres_port
    if postgres.server_pid(settings.home, port) != pid:
        return False  # stopped meanwhile, perhaps started again by someone else
    return postgres.stop(settings.home, port)


# --- a home made with the embedded Derby metastore ---------------------------------------------


def warehouse_tables(warehouse_dir: Path) -> list[tuple[str, str, Path]]:
    """(schema, table, folder) of every Delta table Spark manages under ``warehouse_dir``."""
    found = []
    for log_dir in sorted(warehouse_dir.glob("*.db/*/_delta_log")):
        table_dir = log_dir.parent
        found.append((table_dir.parent.name.removesuffix(".db"), table_dir.name, table_dir))
    return found


def derby_to_adopt(metastore_dir: Path) -> Path | None:
    """The Derby database of a home made before the shared catalog, if not adopted yet."""
    derby = metastore_dir / DERBY_FOLDER
    return derby if (derby / "service.properties").exists() else None


def adopt_derby_tables(settings: Settings) -> int:
    """Register the tables of a Derby-era home in the shared catalog; return how many.

    Runs once the engine answers; a home with no Derby database (or one adopted already)
    costs one ``stat``. Spark can only register existing data as an external table (``create
    table ... location``), so each warehouse table is then marked managed again in the
    catalog, as Derby had it: ``drop table`` deletes its data and dbt may create it afresh.
    """
    derby = derby_to_adopt(settings.metastore_dir)
    if derby is None:
        return 0
    tables = warehouse_tables(settings.warehouse_dir)
    for schema in sorted({schema for schema, _, _ in tables}):
        query(settings, f"create schema if not exists `{schema}`")
    for schema, table, folder in tables:
        query(
            settings,
            f"create table if not exists `{schema}`.`{table}` using delta location '{folder}'",
        )
    _mark_managed(settings, [(schema, table) for schema, table, _ in tables])
    # The bronze and ops tables live outside the warehouse: dbt knows where (macros/lake.sql).
    dbt_cli.dbt(settings, "run-operation", "register_bronze_sources", capture=True)
    derby.rename(derby.with_name(DERBY_FOLDER + MIGRATED_SUFFIX))
    log.info(f"metastore: {len(tables)} warehouse tables of {derby} now in PostgreSQL")
    return len(tables)


def _mark_managed(settings: Settings, tables: list[tuple[str, str]]) -> None:
    """Make external registrations managed, as Spark would have created them."""
    if not tables:
        return
    conn = postgres.superuser_connection(
        settings.services.postgres_port, settings.engine.metastore.database
    )
    try:
        with conn.cursor() as cur:
            for schema, table in tables:
                cur.execute(
                    """SELECT t."TBL_ID" FROM "TBLS" t JOIN "DBS" d ON d."DB_ID" = t."DB_ID"
                       WHERE d."NAME" = %s AND t."TBL_NAME" = %s""",
                    (schema.lower(), table.lower()),
                )
                for (tbl_id,) in cur.fetchall():
                    cur.execute(
                        """UPDATE "TBLS" SET "TBL_TYPE" = 'MANAGED_TABLE' WHERE "TBL_ID" = %s""",
                        (tbl_id,),
                    )
                    cur.execute(
                        """DELETE FROM "TABLE_PARAMS"
                           WHERE "TBL_ID" = %s AND "PARAM_KEY" = 'EXTERNAL'""",
                        (tbl_id,),
                    )
        conn.commit()
    finally:
        conn.close()
    for schema, table in tables:
        query(settings, f"refresh table `{schema}`.`{table}`")
