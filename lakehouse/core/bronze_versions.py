"""What the lake's own transaction logs say of each dbt source: its Delta version, its last load.

The platform's build (lakehouse/transform/build_selection.py) asks two things of bronze before every
build: which tables were written since the last successful build (to build only their
downstream), and whether a table is past the freshness its dbt source declares. ``dbt source
freshness`` answered both with a process of its own and a ``max(_loaded_at)`` query per table
on the engine; the Delta log answers them in milliseconds, without the engine:

- a table's **version** changes with every commit: a load that appended, merged, updated or
  deleted rows (a delete leaves ``max(_loaded_at)`` where it was, a version does not);
- its **last load** is the time of its newest commit that wrote data (table maintenance such
  as OPTIMIZE or VACUUM moves no data in and is not a load), as the watchdog report reads it.

The sources tracked are the bronze ones ``dbt source freshness`` reads: a ``loaded_at_field``
and a ``freshness`` declared (the data tables; not the quarantine tables, whose freshness is
null, nor ``ops.run_metrics``, which declares none and which every build appends to).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deltalake.exceptions import DeltaError

from lakehouse.core.storage import Location, as_location, delta_table

# Commits that move no data in: not a load.
MAINTENANCE = {"OPTIMIZE", "VACUUM START", "VACUUM END", "SET TBLPROPERTIES", "ADD CONSTRAINT"}
# How many of a table's newest commits to look through for its last load.
HISTORY = 20
_HOURS = {"minute": 1 / 60, "hour": 1.0, "day": 24.0}


@dataclass(frozen=True)
class SourceTable:
    """A dbt source whose freshness is declared, and where its Delta table lives."""

    unique_id: str  # source.lakehouse.crm.contacts
    name: str  # crm.contacts, as `--select source:crm.contacts` names it
    key: str  # its path in the lake: bronze/crm/contacts
    warn_h: float | None
    error_h: float | None


def _meta(node: dict[str, Any], key: str) -> Any:
    """``meta.<key>`` of a source table, else of its source (as macros/lake.sql reads it)."""
    for meta in (node.get("meta"), (node.get("config") or {}).get("meta"), node.get("source_meta")):
        if meta and meta.get(key):
            return meta[key]
    return None


def _hours(after: dict[str, Any] | None) -> float | None:
    if not after or not after.get("count") or not after.get("period"):
        return None
    return after["count"] * _HOURS[after["period"]]


def tables(manifest: dict[str, Any]) -> list[SourceTable]:
    """The sources of ``manifest`` that declare freshness, with their path in the lake."""
    found = []
    for uid, node in manifest.get("sources", {}).items():
        freshness = node.get("freshness") or {}
        declared = node.get("loaded_at_field") and (
            freshness.get("warn_after", {}).get("count")
            or freshness.get("error_after", {}).get("count")
        )
        dataset = _meta(node, "bronze_dataset")
        if not declared or not dataset:
            continue
        key = f"bronze/{dataset}/{node['identifier']}"
        found.append(SourceTable(uid, f"{node['source_name']}.{node['name']}", key,
                                 _hours(freshness.get("warn_after")),
                                 _hours(freshness.get("error_after"))))  # fmt: skip
    return sorted(found, key=lambda t: t.name)


def read_table(location: Location | Path) -> dict[str, Any] | None:
    """``{"version", "loaded_at"}`` of the Delta table at ``location``; None if there is none
    or its log cannot be read (a corrupt commit, a file gone): the plan then builds everything,
    and the build that reads the table reports it with dbt's context."""
    try:
        table = delta_table(location, without_files=True)
        history = table.history(HISTORY)
    except (DeltaError, OSError):  # TableNotFoundError is a DeltaError
        return None
    loads = [c for c in history if c.get("operation") not in MAINTENANCE]
    newest = max((c["timestamp"] for c in loads if c.get("timestamp") is not None), default=None)
    loaded_at = datetime.fromtimestamp(newest / 1000, UTC).isoformat() if newest else None
    return {"version": table.version(), "loaded_at": loaded_at}


def read(lake_dir: Location | Path) -> dict[str, Any]:
    """Every bronze Delta table's version and last load, keyed by its path in the lake, and
    when it was read. Read by location, not through a manifest: a build reads it before dbt
    parses the project (so a load during the build counts for the next one)."""
    found = {}
    lake = as_location(lake_dir)
    for table in (lake / "bronze").delta_tables(2):
        if (state := read_table(table)) is not None:
            found[table.relative_to(lake)] = state
    read_at = datetime.now(UTC).isoformat(timespec="seconds")
    return {"read_at": read_at, "tables": found}


def of(table: SourceTable, state: dict[str, Any]) -> dict[str, Any] | None:
    """What ``state`` (from ``read``) says of ``table``, or None if it holds nothing of it."""
    return state["tables"].get(table.key)


def stale(
    sources: list[SourceTable], state: dict[str, Any], now: datetime | None = None
) -> list[str]:
    """Sources past their declared warn or error age, or never loaded: ``crm.contacts (warn)``,
    as ``dbt source freshness`` judges ``max(_loaded_at)``, here with the last load's commit."""
    now = now or datetime.now(UTC)
    out = []
    for table in sources:
        seen = of(table, state)
        if seen is None or seen["loaded_at"] is None:
            out.append(f"{table.name} (never loaded)")
            continue
        age_h = (now - datetime.fromisoformat(seen["loaded_at"])).total_seconds() / 3600
        if table.error_h is not None and age_h > table.error_h:
            out.append(f"{table.name} (error)")
        elif table.warn_h is not None and age_h > table.warn_h:
            out.append(f"{table.name} (warn)")
    return out


def load(path: Path) -> dict[str, Any] | None:
    """A state written by ``save``; None if missing or unreadable."""
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and "tables" in state else None


def save(state: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    return path
