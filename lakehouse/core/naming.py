"""Dataset names, chosen so that one table has one name whoever reports it.

A lake table (bronze, silver, gold, dq) is named by its location, as OpenLineage's Spark
integration names a Delta table: namespace ``file`` + absolute path, or ``s3://<bucket>`` + key.
dbt-ol and Cosmos name it ``spark://<thrift host>:<port>`` + ``<schema>.<table>`` (bronze by its
dbt source ``bronze_<source>.<table>``); the platform's transformer
(lakehouse/observability/lineage/transform.py) renames that to the location before the event
leaves, and keeps the catalog name as a ``symlinks`` alias, as dlt's loads and the publish do.

Source systems and warehouses follow OpenLineage's naming spec (https://openlineage.io/docs/spec/
naming), built with the client's own helpers (``openlineage.client.naming.dataset``):
``postgres://host:port`` + ``db.schema.table``, ``redshift://cluster.region:port`` +
``db.schema.table``, ``kafka://host:port`` + topic, ``snowflake://org-account`` +
``DB.SCHEMA.TABLE``. The spec has no HTTP entry: an API is named by its general rule,
``scheme://host:port`` + path. A local stand-in that emulates a system (the SQLite file for the
Snowflake source, fakesnow for the Snowflake warehouse, the CRM and FX HTTP servers) is named as
the system it stands in for, under the identity ``services.stand_ins`` configures (docs/lineage.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from openlineage.client.naming import dataset as ol_naming

from lakehouse.core.config import Settings
from lakehouse.core.storage import Location, bucket_of

# SQLAlchemy drivers -> OpenLineage namespace schemes
_SCHEMES = {"postgresql": "postgres", "redshift": "redshift", "snowflake": "snowflake",
            "sqlite": "sqlite", "mysql": "mysql"}  # fmt: skip
# The port a name carries when an address gives none (the spec's namespaces all have one)
DEFAULT_PORTS = {"postgres": 5432, "redshift": 5439, "mysql": 3306, "kafka": 9092, "http": 80,
                 "https": 443}  # fmt: skip


@dataclass(frozen=True, order=True)
class DatasetId:
    """An OpenLineage dataset identity: namespace + name."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def spark_namespace(settings: Settings) -> str:
    """The namespace dbt-ol gives tables of the engine (the profile's host and explicit port)."""
    return f"spark://{settings.engine.host}:{settings.engine.port}"


def bronze_table(settings: Settings, source: str, table: str) -> DatasetId:
    """A bronze table by its table name, as dbt's source ``bronze_<source>.<table>`` reads it."""
    return DatasetId(spark_namespace(settings), f"bronze_{source}.{table}")


def bronze_location(settings: Settings, source: str, table: str) -> DatasetId:
    """A bronze table by where dlt writes it, as Airflow's Asset (``file://<path>``, or
    ``s3://bucket/key``) names it."""
    return location_dataset(settings.bronze / source / table)


def path_dataset(path: Path) -> DatasetId:
    return DatasetId("file", str(path.resolve()))


def location_dataset(location: Location) -> DatasetId:
    """A folder of the lake as OpenLineage names it: ``file`` + path, or ``s3://bucket`` + key."""
    if location.is_local:
        return path_dataset(location.path)
    bucket = bucket_of(location.uri)
    return DatasetId(f"s3://{bucket}", location.uri.removeprefix(f"s3://{bucket}/"))


def catalog_table(settings: Settings, qualified_name: str) -> DatasetId:
    """A silver, gold or dq table (``schema.table``) by its catalog name, as dbt-ol names the
    model before the platform's transformer renames it (lineage/transform.py): its symlink."""
    return DatasetId(spark_namespace(settings), qualified_name)


def lake_table(settings: Settings, qualified_name: str) -> DatasetId:
    """A silver, gold or dq table (``schema.table``) by where the engine keeps it
    (``<warehouse>/<schema>.db/<table>``): its one identity for every producer."""
    schema, _, table = qualified_name.partition(".")
    return location_dataset(settings.warehouse / f"{schema}.db" / table)


def sql_table(url: str, schema: str | None, table: str) -> DatasetId:
    """A table of a database reached by SQLAlchemy ``url`` (credentials never in the name), by
    the spec's entry for the database; its port, when the URL has none, is the system's default."""
    parts = urlsplit(url)
    scheme = _SCHEMES.get(parts.scheme.split("+")[0], parts.scheme.split("+")[0])
    if scheme == "sqlite":  # a file: the path is the database (no spec entry; not a stand-in)
        return DatasetId(f"sqlite://{parts.path}", f"main.{table}")
    host = parts.hostname or "localhost"
    path = [p for p in parts.path.split("/") if p]  # /database or /database/schema
    database = path[0] if path else None
    schema = schema or (path[1] if len(path) > 1 else None)
    if scheme == "snowflake":
        return snowflake_table(host, database, schema, table)
    port = parts.port or DEFAULT_PORTS.get(scheme)
    if database and schema:
        if scheme == "postgres":
            return _named(ol_naming.Postgres(host, str(port), database, schema, table))
        if scheme == "redshift":
            return redshift_table(host, port or DEFAULT_PORTS["redshift"], database, schema, table)
    name = ".".join(p for p in (database, schema, table) if p)
    authority = f"{host}:{port}" if port else host
    return DatasetId(f"{scheme}://{authority}", name)


def snowflake_table(
    account: str, database: str | None, schema: str | None, table: str
) -> DatasetId:
    """The spec's Snowflake name: ``snowflake://<organization>-<account>`` +
    ``DATABASE.SCHEMA.TABLE``. ``account`` is the account identifier a deploy configures
    (``<org>-<account>``; a legacy locator is kept as given), lowercased: Snowflake's account
    identifiers are case-insensitive, and unquoted object names resolve upper-case."""
    account = account.lower()
    organization, _, name = account.partition("-")
    if organization and name and database and schema:
        parts = (database.upper(), schema.upper(), table.upper())
        return _named(ol_naming.Snowflake(organization, name, *parts))
    qualified = ".".join(p for p in (database, schema, table) if p).upper()
    return DatasetId(f"snowflake://{account}", qualified)


def redshift_table(host: str, port: int, database: str, schema: str, table: str) -> DatasetId:
    """The spec's Redshift name: ``redshift://<cluster identifier>.<region>:<port>`` +
    ``database.schema.table``, the cluster and region read from an endpoint host
    (``<cluster>.<id>.<region>.redshift.amazonaws.com``); any other host is kept whole."""
    labels = host.lower().split(".")
    if len(labels) == 6 and host.lower().endswith(".redshift.amazonaws.com"):
        return _named(ol_naming.Redshift(labels[0], labels[2], str(port), database, schema, table))
    return DatasetId(f"redshift://{host}:{port}", f"{database}.{schema}.{table}")


def http_endpoint(base_url: str, path: str) -> DatasetId:
    """An HTTP API's endpoint. The spec has no entry for HTTP, so its general rule applies:
    namespace ``scheme://authority`` (host and port, the scheme's default port when the URL has
    none, never user or password), name the path."""
    parts = urlsplit(base_url)
    port = parts.port or DEFAULT_PORTS[parts.scheme]
    base_path = parts.path.rstrip("/")
    return DatasetId(f"{parts.scheme}://{parts.hostname}:{port}", f"{base_path}/{path.lstrip('/')}")


def kafka_topic(bootstrap_servers: str, topic: str) -> DatasetId:
    """The spec's Kafka name: the first bootstrap server (``kafka://host:port``) + the topic."""
    first = urlsplit(f"//{bootstrap_servers.split(',')[0].strip()}")
    port = first.port or DEFAULT_PORTS["kafka"]
    return _named(ol_naming.Kafka(first.hostname or "localhost", str(port), topic))


def _named(naming: ol_naming.DatasetNaming) -> DatasetId:
    """A name built by the OpenLineage client's own naming helpers."""
    return DatasetId(naming.get_namespace(), naming.get_name())
