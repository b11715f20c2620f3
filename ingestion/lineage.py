"""What each dlt load reads and writes, as OpenLineage datasets (sent by
lakehouse/observability/lineage/emit.py).

Inputs are the source system's tables, endpoints or topic, with the columns the load's contract
declares (ingestion/contracts.py). Outputs are the bronze Delta tables, named by their path with
a symlink to the table name dbt reads (lakehouse/core/naming.py), with dlt's schema, the rows
this load wrote, and column lineage: a declared column lands unchanged under the same name, so
each bronze column traces to the source field it came from. Load metadata (``_dlt_*``,
``_source``, ``_loaded_at``) has no upstream field, and the quarantine table takes whole
records (its lineage is the run's inputs, not columns).
"""

from __future__ import annotations

from ingestion import registry
from ingestion.bronze import LoadSummary
from ingestion.contracts import QUARANTINE_TABLE, TableContract
from ingestion.locations import Locations
from lakehouse.core import naming
from lakehouse.core.config import Settings
from lakehouse.core.datasets import Dataset


def contracts(source: str, settings: Settings) -> dict[str, TableContract]:
    """The bronze tables a load of ``source`` writes (besides quarantine), by table name."""
    return registry.spec(source).contracts(registry.conf(source, settings))


def source_dataset(
    source: str, table: str, settings: Settings, where: Locations
) -> naming.DatasetId:
    """Where ``table`` of ``source`` is read from, named after the system that serves it: a
    stand-in that emulates another system as that system, under the address configured for it
    (``services.stand_ins``, docs/lineage.md), in place of where it listens this run."""
    spec = registry.spec(source)
    local = source in where.local
    location = where.of(spec)
    if local and (named_as := settings.services.stand_ins.of_source(source)):
        location = {**location, next(iter(spec.location)): named_as}
    return spec.reads(table, registry.conf(source, settings), location, local)


def inputs(source: str, settings: Settings, where: Locations) -> dict[str, Dataset]:
    """One input dataset per bronze table of the load, with the contract's columns."""
    return {
        table: Dataset(
            id=source_dataset(source, table, settings, where),
            columns={n: c.get("data_type", "") for n, c in contract.columns.items()},
            system=source,
        )
        for table, contract in contracts(source, settings).items()
    }


def outputs(
    source: str, settings: Settings, summary: LoadSummary, read: dict[str, Dataset]
) -> list[Dataset]:
    """The bronze tables the load wrote (every table of the dataset, quarantine included)."""
    result = []
    for table, columns in summary.columns.items():
        upstream = read.get(table)
        lineage = (
            {c: [(upstream.id, c)] for c in columns if c in upstream.columns} if upstream else {}
        )
        load = summary.tables.get(table)
        result.append(
            Dataset(
                id=naming.bronze_location(settings, source, table),
                columns=columns,
                symlink=naming.bronze_table(settings, source, table),
                storage=("delta", "parquet"),
                lineage=lineage,
                rows=load.written if load else 0,
            )
        )
    if QUARANTINE_TABLE not in summary.columns:  # created empty by the loader when never used
        result.append(
            Dataset(
                id=naming.bronze_location(settings, source, QUARANTINE_TABLE),
                symlink=naming.bronze_table(settings, source, QUARANTINE_TABLE),
                storage=("delta", "parquet"),
                rows=0,
            )
        )
    return result
