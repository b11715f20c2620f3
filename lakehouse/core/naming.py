"""Dataset names, chosen so that one table has one name whoever reports it.

A lake table (bronze, silver, gold, dq) is named by its location, as OpenLineage's Spark
integration names a Delta table: namespace ``file`` + absolute path, or ``s3://<bucket>`` + key.
dbt-ol and Cosmos name it ``spark://<thrift host>:<port>`` + ``<schema>.<table>`` (bronze by its
dbt source ``bronze_<source>.<table>``); the platform's transformer
(lakehouse/observability/lineage/transform.py) renames that to the location before the event
leaves, and keeps the catalog name as a ``symlinks`` alias, as dlt's loads and the publish do.

Source systems and warehouses follow OpenLineage's naming spec where it has one
(``postgres://host:port`` + ``db.schema.table``, ``kafka://host:port`` + topic,
``snowflake://account`` + ``DB.SCHEMA.TABLE``); an HTTP API is ``scheme://host:port`` + path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from lakehouse.core.config import Settings
from lakehouse.core.storage import Location, bucket_of

# SQLAlchemy drivers -> OpenLineage namespace schemes
_SCHEMES = {"postgresql": "postgres", "redshift": "redshift", "snowflake": "snowflake",
            "sqlite": "sqlite", "mysql": "mysql"}  # fmt: skip


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
    """A table of a database reached by SQLAlchemy ``url`` (credentials never in the name)."""
    parts = urlsplit(url)
    scheme = _SCHEMES.get(parts.scheme.split("+")[0], parts.scheme.split("+")[0])
    if scheme == "sqlite":  # a file: the path is the database
        return DatasetId(f"sqlite://{parts.path}", f"main.{table}")
    host = parts.hostname or "localhost"
    authority = f"{host}:{parts.port}" if parts.port else host
    path = [p for p in parts.path.split("/") if p]  # /database or /database/schema
    database = path[0] if path else None
    schema = schema or (path[1] if len(path) > 1 else None)
    name = ".".join(p for p in (database, schema, table) if p)
    if scheme == "snowflake":
        return DatasetId(f"snowflake://{host}", name.upper())
    return DatasetId(f"{scheme}://{authority}", name)


def http_endpoint(base_url: str, path: str) -> DatasetId:
    parts = urlsplit(base_url)
    authority = f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname
    base_path = parts.path.rstrip("/")
    return DatasetId(f"{parts.scheme}://{authority}", f"{base_path}/{path.lstrip('/')}")


def kafka_topic(bootstrap_servers: str, topic: str) -> DatasetId:
    first = bootstrap_servers.split(",")[0].strip()
    return DatasetId(f"kafka://{first}", topic)
