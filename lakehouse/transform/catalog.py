"""What the lake holds, asked of the engine: the layer schemas, their tables and row counts."""

from __future__ import annotations

from dataclasses import dataclass

from lakehouse.core.config import Settings
from lakehouse.transform.sql import query, records

LAYER_ORDER = ("bronze", "silver", "gold")


@dataclass(frozen=True)
class TableCount:
    schema: str
    table: str
    rows: int

    @property
    def layer(self) -> str:
        return self.schema.split("_", 1)[0]


def layer_schemas(settings: Settings) -> list[str]:
    """Schemas that belong to a layer: bronze_<source>, silver, gold."""
    schemas = [row[0] for row in query(settings, "show schemas")]
    return sorted(
        (s for s in schemas if s.split("_", 1)[0] in LAYER_ORDER),
        key=lambda s: (LAYER_ORDER.index(s.split("_", 1)[0]), s),
    )


def table_counts(settings: Settings) -> list[TableCount]:
    """Row count of every table in every layer schema, in one query (one Spark job)."""
    tables = [
        (schema, row[1])
        for schema in layer_schemas(settings)
        for row in query(settings, f"show tables in {schema}")
        if not row[2]  # temporary views
    ]
    if not tables:
        return []
    union = " union all ".join(
        f"select {i} as position, count(*) as row_count from {schema}.{table}"
        for i, (schema, table) in enumerate(tables)
    )
    rows = dict(query(settings, union))
    return [TableCount(schema, table, rows[i]) for i, (schema, table) in enumerate(tables)]


def table_detail(settings: Settings, qualified_name: str) -> dict:
    """Delta's DESCRIBE DETAIL of a table: format, location, numFiles, sizeInBytes..."""
    return records(settings, f"describe detail {qualified_name}")[0]


def table_format(settings: Settings, qualified_name: str) -> str:
    """The storage format Spark reports for a table (``delta`` for every table in this lake)."""
    return table_detail(settings, qualified_name)["format"]
