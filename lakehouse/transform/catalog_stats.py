"""Row counts and sizes of the lake's Delta tables, for dbt's catalog (the docs site).

dbt-spark builds the catalog from `show table extended`, whose `Statistics:` line for a Delta
table is the metastore's, which Delta does not keep: `<bytes> bytes, 0 rows` for the tables dbt
writes (the docs site showed `Rows 0` for every one) and no line at all for the bronze tables
registered over dlt's folders. `get_catalog` is Python in dbt-spark (no macro to override), so
the catalog it wrote is completed afterwards from Delta's own metadata: `describe detail` (files,
bytes of the current snapshot) and `count(*)`, which Delta answers from the per-file `numRecords`
statistics in its log without reading the data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from lakehouse.core.config import Settings
from lakehouse.transform.sql import connect


@dataclass(frozen=True)
class TableStats:
    rows: int
    bytes: int
    files: int


def _stat(key: str, label: str, value: Any, description: str) -> dict[str, Any]:
    return {"id": key, "label": label, "value": value, "include": True, "description": description}


def catalog_stats(stats: TableStats) -> dict[str, dict[str, Any]]:
    """A table's stats in catalog.json's shape (what dbt docs displays under Details)."""
    return {
        "rows": _stat("rows", "Rows", stats.rows, "Rows in the current Delta snapshot"),
        "bytes": _stat("bytes", "Approximate Size", stats.bytes, "Bytes of its data files"),
        "num_files": _stat("num_files", "Files", stats.files, "Data files of the snapshot"),
        "has_stats": {**_stat("has_stats", "Has Stats?", True, ""), "include": False},
    }


def with_delta_stats(
    catalog: dict[str, Any], stats_of: Callable[[str, str], TableStats | None]
) -> dict[str, Any]:
    """The catalog with every Delta table's stats replaced by Delta's own (others untouched)."""
    for entry in _tables(catalog):
        metadata = entry["metadata"]
        stats = stats_of(metadata["schema"], metadata["name"])
        if stats is not None:
            entry["stats"] = catalog_stats(stats)
    return catalog


def _tables(catalog: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for section in ("nodes", "sources"):
        for entry in catalog.get(section, {}).values():
            if entry.get("metadata", {}).get("type") != "view":
                yield entry


def fill_from_engine(settings: Settings, catalog: dict[str, Any]) -> dict[str, Any]:
    """`with_delta_stats` over one engine connection (the engine is up: dbt just used it)."""
    with connect(settings) as conn:
        cursor = conn.cursor()
        try:
            return with_delta_stats(catalog, partial(_delta_stats, cursor))
        finally:
            cursor.close()


def _delta_stats(cursor: Any, schema: str, table: str) -> TableStats | None:
    """Delta's own numbers for one table; None for a table in another format."""
    name = f"`{schema}`.`{table}`"
    cursor.execute(f"describe detail {name}")
    columns = [col[0] for col in cursor.description]
    detail = dict(zip(columns, cursor.fetchone(), strict=True))
    if str(detail.get("format")).lower() != "delta":
        return None
    cursor.execute(f"select count(*) from {name}")
    (rows,) = cursor.fetchone()
    return TableStats(int(rows), int(detail["sizeInBytes"]), int(detail["numFiles"]))
