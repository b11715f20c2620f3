"""Reading OpenLineage event files back into one column-level lineage graph.

Every emitter's events are read: the platform's (dlt loads, dbt-ol, publishes) and Airflow's
(Cosmos-run dbt). Every lake table is named by its location, with its catalog name as a
``symlinks`` alias (lakehouse/core/naming.py); the node is shown under the catalog name
(``gold.customer_360`` reads better than a path), and ``find`` accepts either. The graph runs
unbroken from a source system through bronze, silver and gold to the warehouses. For each
dataset the newest COMPLETE event that carries column lineage is the truth: a model whose SQL
changed is described by its last run.

openlineage-sql sometimes leaves a reference it could not resolve inside one query (a CTE's
literal column, a lambda variable such as ``x -> x != ''``) as if it were a table. The platform's
transformer drops those before events leave (lineage/transform.py); a file written without it
may still hold one. A field whose dataset appears in no event is such a name: it is dropped and
counted (``unresolved``), never shown as an upstream.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakehouse.core.naming import DatasetId

Field = tuple[DatasetId, str]
LAYERS = ("source", "bronze", "silver", "gold", "warehouse")


@dataclass
class DatasetNode:
    id: DatasetId
    fields: list[str] = field(default_factory=list)
    system: str | None = None
    layer: str = "other"
    aliases: set[DatasetId] = field(default_factory=set)
    written_by: str | None = None  # the job of the newest run that wrote it


@dataclass
class RunRecord:
    run_id: str
    job: str  # namespace/name
    states: list[str] = field(default_factory=list)
    parent_run_id: str | None = None
    started: str | None = None
    ended: str | None = None


@dataclass
class Trace:
    """A column and the columns it is computed from, recursively."""

    dataset: DatasetNode
    field: str
    inputs: list[Trace] = field(default_factory=list)

    def walk(self) -> Iterator[Trace]:
        yield self
        for child in self.inputs:
            yield from child.walk()

    def columns_in(self, layer: str) -> set[tuple[str, str]]:
        """(dataset name, column) of every upstream column in ``layer``."""
        return {(t.dataset.id.name, t.field) for t in self.walk() if t.dataset.layer == layer}


@dataclass
class Lineage:
    datasets: dict[DatasetId, DatasetNode] = field(default_factory=dict)
    edges: dict[Field, list[Field]] = field(default_factory=dict)
    runs: dict[str, RunRecord] = field(default_factory=dict)
    unresolved: int = 0
    unreadable_lines: int = 0

    def find(self, name: str, layer: str | None = None) -> DatasetNode:
        """The dataset named ``name`` (canonical name or alias), optionally in ``layer``."""
        matches = [
            d
            for d in self.datasets.values()
            if (d.id.name == name or any(a.name == name for a in d.aliases))
            and (layer is None or d.layer == layer)
        ]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} datasets named {name!r} in the lineage")
        return matches[0]

    def trace(self, dataset: DatasetNode, column: str) -> Trace:
        return self._trace((dataset.id, column), frozenset())

    def _trace(self, node: Field, path: frozenset[Field]) -> Trace:
        result = Trace(self.datasets[node[0]], node[1])
        for upstream in self.edges.get(node, []):
            if upstream not in path:  # a cycle would be a bug upstream; never loop on it
                result.inputs.append(self._trace(upstream, path | {node}))
        return result

    def runs_of(self, job_prefix: str) -> list[RunRecord]:
        return [r for r in self.runs.values() if r.job.split("/", 1)[1].startswith(job_prefix)]


def read_events(paths: Iterable[Path]) -> tuple[list[dict[str, Any]], int]:
    """Every run event in ``paths`` (JSON lines), oldest first; and how many lines were not."""
    events, bad = [], 0
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                bad += 1
                continue
            if isinstance(event, dict) and "run" in event and "job" in event:
                events.append(event)
    events.sort(key=lambda e: e.get("eventTime", ""))
    return events, bad


def _ids(event: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for kind in ("inputs", "outputs"):
        for dataset in event.get(kind) or []:
            yield kind, dataset


def _layer(ds: DatasetId, kinds: set[str]) -> str:
    if "source" in kinds:
        return "source"
    if "warehouse" in kinds:
        return "warehouse"
    schema = ds.name.split(".")[0] if ds.namespace.startswith("spark://") else ""
    if schema.startswith("bronze_"):
        return "bronze"
    return schema if schema in ("silver", "gold", "dq") else "other"


def build(events: list[dict[str, Any]]) -> Lineage:
    lineage = Lineage()
    alias: dict[DatasetId, DatasetId] = {}
    kinds: dict[DatasetId, set[str]] = {}
    for event in events:  # first pass: names, and which role each dataset plays
        integration = ((event["job"].get("facets") or {}).get("jobType") or {}).get("integration")
        job_name = event["job"]["name"]
        for kind, d in _ids(event):
            ds = DatasetId(d["namespace"], d["name"])
            for ident in ((d.get("facets") or {}).get("symlinks") or {}).get("identifiers", []):
                if ident.get("type", "TABLE").upper() == "TABLE":
                    alias[ds] = DatasetId(ident["namespace"], ident["name"])
            role = kinds.setdefault(ds, set())
            if integration == "DLT" and kind == "inputs":
                role.add("source")
            if job_name.startswith("publish.") and kind == "outputs":
                role.add("warehouse")

    def canon(ds: DatasetId) -> DatasetId:
        return alias.get(ds, ds)

    for ds, roles in kinds.items():
        node = lineage.datasets.setdefault(canon(ds), DatasetNode(canon(ds)))
        if ds != canon(ds):
            node.aliases.add(ds)
        node.layer = _layer(canon(ds), roles | kinds.get(canon(ds), set()))

    for event in events:  # second pass: schemas, column lineage, runs
        run_id = event["run"]["runId"]
        job = f"{event['job']['namespace']}/{event['job']['name']}"
        record = lineage.runs.setdefault(run_id, RunRecord(run_id, job))
        record.states.append(event.get("eventType", ""))
        parent = ((event["run"].get("facets") or {}).get("parent") or {}).get("run") or {}
        record.parent_run_id = parent.get("runId") or record.parent_run_id
        record.started = record.started or event.get("eventTime")
        record.ended = event.get("eventTime")
        for kind, d in _ids(event):
            node = lineage.datasets[canon(DatasetId(d["namespace"], d["name"]))]
            facets = d.get("facets") or {}
            if fields := (facets.get("schema") or {}).get("fields"):
                node.fields = [f["name"] for f in fields]
            if source := (facets.get("dataSource") or {}).get("name"):
                node.system = node.system if source.startswith(("spark", "file")) else source
            if kind != "outputs" or event.get("eventType") != "COMPLETE":
                continue
            node.written_by = event["job"]["name"]
            columns = (facets.get("columnLineage") or {}).get("fields")
            if columns is None:
                continue
            for key in [k for k in lineage.edges if k[0] == node.id]:
                del lineage.edges[key]
            for column, spec in columns.items():
                upstream = []
                for f in spec.get("inputFields", []):
                    ds = canon(DatasetId(f["namespace"], f["name"]))
                    if ds not in lineage.datasets:
                        lineage.unresolved += 1
                        continue
                    if (ds, f["field"]) not in upstream:
                        upstream.append((ds, f["field"]))
                lineage.edges[(node.id, column)] = sorted(upstream)
    return lineage


def event_files(lineage_dir: Path) -> list[Path]:
    return sorted(lineage_dir.glob("*.jsonl"))


def load(lineage_dir: Path) -> Lineage:
    """The graph of every event file in ``lineage_dir`` (the platform's and Airflow's)."""
    events, bad = read_events(event_files(lineage_dir))
    lineage = build(events)
    lineage.unreadable_lines = bad
    return lineage
