"""What the lake holds, asked of the engine: the layer schemas, their tables and row counts."""

from __future__ import annotations

from dataclasses import dataclass

from lakehouse.config import Settings
from lakehouse.sql import query, records

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
    """Row count of every table in every layer schema."""
    counts = []
    for schema in layer_schemas(settings):
        for row in query(settings, f"show tables in {schema}"):
            table, is_temporary = row[1], row[2]
            if is_temporary:
                continue
            rows = query(settings, f"select count(*) from {schema}.{table}")[0][0]
            counts.append(TableCount(schema, table, rows))
    return counts


def table_detail(settings: Settings, qualified_name: str) -> dict:
    """Delta's DESCRIBE DETAIL of a table: format, location, numFiles, sizeInBytes..."""
    return records(settings, f"describe detail {qualified_name}")[0]


def table_format(settings: Settings, qualified_name: str) -> str:
    """The storage format Spark reports for a table (``delta`` for every table in this lake)."""
    return table_detail(settings, qualified_name)["format"]
