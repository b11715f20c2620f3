"""The dataset registry: every dataset's logical name, physical location, layer and owner.

Generated, never kept by hand: bronze tables from the dlt pipelines' schemas (what was really
loaded, with its write disposition) joined to their dbt source declarations (owner, source
system); silver and gold from the dbt manifest (the models that exist, their materialization,
owner and description); warehouse tables as the publish layer serves them (``Served``, given by
the caller: lakehouse/publish/publisher.py ``served``). Logical names
are the OpenLineage dataset names, so the registry and the lineage graph speak of the same things.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlt

from ingestion import registry as sources_registry
from ingestion.bronze import pipeline_name
from lakehouse.core import naming
from lakehouse.core.config import Settings


@dataclass(frozen=True)
class Served:
    """A gold table as one warehouse serves it."""

    warehouse: str  # snowflake | redshift
    table: str  # the gold table
    dataset: naming.DatasetId  # the served table, as lineage names it
    local: bool  # served by the local stand-in (no production endpoint configured)


def _first_sentence(text: str | None) -> str:
    text = " ".join((text or "").split())
    return text.split(". ")[0].rstrip(".") + "." if text else ""


def _dlt_tables(settings: Settings, source: str) -> dict[str, dict[str, Any]]:
    """The data tables of one source's dlt pipeline, as its last run left the schema."""
    pipelines_dir = settings.state_dir / "dlt"
    if not (pipelines_dir / pipeline_name(source)).exists():
        return {}
    pipe = dlt.attach(pipeline_name=pipeline_name(source), pipelines_dir=str(pipelines_dir))
    schema = pipe.default_schema
    return {t: schema.tables[t] for t in schema.data_table_names()}


def _strategy(table: dict[str, Any]) -> str:
    disposition = table.get("write_disposition", "append")
    if isinstance(disposition, dict):
        disposition = disposition.get("disposition", "")
    merge = table.get("x-merge-strategy")
    return f"{disposition} ({merge})" if merge else str(disposition)


def personal_data(node: dict[str, Any]) -> str:
    """The node's columns tagged ``meta.pii`` (docs/governance.md), as "column (kind)"."""
    tagged = []
    for name, column in (node.get("columns") or {}).items():
        meta = {**((column.get("config") or {}).get("meta") or {}), **(column.get("meta") or {})}
        if meta.get("pii"):
            tagged.append(f"{name} ({meta['pii']})")
    return ", ".join(tagged)


def build(
    settings: Settings, manifest: dict[str, Any], served: Iterable[Served]
) -> list[dict[str, Any]]:
    """Registry rows, bronze to warehouse."""
    rows: list[dict[str, Any]] = []
    sources = {
        (s["meta"].get("bronze_dataset"), s["identifier"]): s
        for s in manifest.get("sources", {}).values()
        if s["schema"].startswith("bronze_")
    }
    for source in sources_registry.names():
        loaded = _dlt_tables(settings, source)
        tables = sorted(set(loaded) | {t for (ds, t) in sources if ds == source})
        for table in tables:
            declared = sources.get((source, table), {})
            # a quarantine table no record has reached yet: created empty, not in dlt's schema
            spec = loaded.get(table, {"write_disposition": "append"})
            meta = declared.get("meta", {})
            rows.append({
                "name": naming.bronze_table(settings, source, table).name,
                "layer": "bronze",
                "location": str(settings.bronze / source / table),
                "owner": meta.get("owner", ""),
                "kind": f"dlt pipeline {pipeline_name(source)} (Delta)",
                "strategy": _strategy(spec),
                "source_system": meta.get("source_system", source),
                "personal_data": personal_data(declared),
                "description": _first_sentence(declared.get("description"))
                or (f"Records {source} could not load, with the reason."
                    if table == "quarantine" else ""),
            })  # fmt: skip
    models = sorted(
        (n for n in manifest.get("nodes", {}).values() if n["resource_type"] == "model"),
        key=lambda n: (n["fqn"][1:2], n["schema"], n["alias"]),
    )
    owners: dict[str, str] = {}
    tagged: dict[str, str] = {}
    for node in models:
        tagged[node["alias"]] = personal_data(node)
        config = node.get("config", {})
        owner = (config.get("meta") or {}).get("owner") or node.get("meta", {}).get("owner", "")
        owners[node["alias"]] = owner
        rows.append({
            "name": f"{node['schema']}.{node['alias']}",
            "layer": node["fqn"][1] if len(node["fqn"]) > 2 else node["schema"],
            "location": str(settings.warehouse / f"{node['schema']}.db" / node["alias"]),
            "owner": owner,
            "kind": f"dbt model ({config.get('materialized', '')}, "
                    f"{config.get('file_format') or 'default format'})",
            "strategy": config.get("incremental_strategy") or "rebuilt each run",
            "source_system": "",
            "personal_data": personal_data(node),
            "description": _first_sentence(node.get("description")),
        })  # fmt: skip
    for serving in served:
        spec = settings.publish.tables[serving.table]
        strategy = (f"MERGE on {', '.join(spec.unique_key)}" if serving.warehouse == "snowflake"
                    else "append, one batch per lake snapshot")  # fmt: skip
        where = "local stand-in" if serving.local else serving.warehouse
        rows.append({
            "name": serving.dataset.name,
            "layer": "warehouse",
            "location": f"{serving.dataset.namespace} ({where})",
            "owner": owners.get(serving.table, ""),
            "kind": f"published from gold.{serving.table}",
            "strategy": strategy,
            "source_system": serving.warehouse,
            "personal_data": tagged.get(serving.table, ""),
            "description": f"gold.{serving.table} served in {serving.warehouse.capitalize()}.",
        })  # fmt: skip
    return rows


def write(rows: list[dict[str, Any]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=2) + "\n")
    return path
