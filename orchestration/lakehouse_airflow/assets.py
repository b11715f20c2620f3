"""Airflow Assets for the lake's tables: what ingest_sources produces and build_analytics needs.

A bronze asset is the Delta table dlt writes, named as dbt names the table
(``bronze_<source>.<table>``) and identified by its OpenLineage dataset: its storage location,
as a URI that Airflow's OpenLineage provider translates back to the very namespace and name the
dlt load and dbt emit (``file`` + absolute path, or ``s3://<bucket>`` + key; the URIs are
resolved by ``lakehouse airflow up``: lakehouse/stack/services/airflow.py ``asset_uri``).
"""

from __future__ import annotations

from airflow.sdk import Asset

from lakehouse_airflow.settings import DagSettings

QUARANTINE = "quarantine"


def bronze(cfg: DagSettings, source: str, table: str) -> Asset:
    return Asset(
        name=f"bronze_{source}.{table}",
        uri=cfg.bronze_assets[source][table],
        group="bronze",
        extra={"layer": "bronze", "source_system": source},
    )


def bronze_of(cfg: DagSettings, source: str) -> list[Asset]:
    """Every bronze table a source's load writes, its quarantine table included."""
    return [bronze(cfg, source, table) for table in cfg.bronze_tables[source]]


def bronze_inputs(cfg: DagSettings) -> list[Asset]:
    """The bronze tables the dbt graph reads (quarantine tables are audited, not modelled)."""
    return [
        bronze(cfg, source, table)
        for source, tables in cfg.bronze_tables.items()
        for table in tables
        if table != QUARANTINE
    ]


def published(warehouse: str, table: str) -> Asset:
    """A gold table as served by a warehouse (``lakehouse publish``)."""
    return Asset(
        name=f"{warehouse}.{table}",
        uri=f"lakehouse-publish://{warehouse}/{table}",
        group="published",
        extra={"layer": "published", "warehouse": warehouse},
    )
