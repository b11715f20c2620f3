"""The lineage graph read back from event files (lakehouse/observability/lineage/graph.py), without
a pipeline.

The events are emitted by the platform's own emitter (emit.job_run, file transport) for a small
chain shaped like the real one: a dlt load from the CRM API to a bronze path (with its table name
as symlink), a dbt model from bronze to silver, one from silver to gold, and a publish to a
warehouse. The graph must join the path and the table name into one bronze dataset, give each
dataset its layer, and trace a gold column back to the source field.
"""

from __future__ import annotations

import json

import pytest

from lakehouse.core import naming
from lakehouse.core.config import Settings
from lakehouse.core.datasets import Dataset
from lakehouse.observability.lineage import emit, graph, site

API = naming.http_endpoint("http://crm.example.com/api", "crm/v1/contacts")


def _emit(settings: Settings, job: str, integration: str, inputs, outputs) -> None:
    with emit.job_run(settings, job, integration, inputs, "dlt") as run:
        run.outputs = outputs


def _chain(settings: Settings, segment_from: str = "segment") -> None:
    """Load, silver, gold, publish: as dlt, dbt-ol and the publish name their datasets."""
    source = Dataset(API, {"contact_id": "text", "segment": "text"}, system="crm")
    path = naming.bronze_location(settings, "crm", "contacts")
    table = naming.bronze_table(settings, "crm", "contacts")
    bronze = Dataset(path, {"contact_id": "text", "segment": "text"}, symlink=table,
                     lineage={"contact_id": [(API, "contact_id")], "segment": [(API, "segment")]},
                     rows=2)  # fmt: skip
    _emit(settings, "bronze_crm", "DLT", [source], [bronze])
    # dbt-ol names models by catalog name; the transformer renames them to their location
    silver = naming.catalog_table(settings, "silver.stg_crm__contacts")
    _emit(settings, "lakehouse.stg_crm__contacts", "DBT", [Dataset(table)], [
        Dataset(silver, {"contact_id": "text", "segment": "text"},
                lineage={"contact_id": [(table, "contact_id")],
                         "segment": [(table, segment_from)]})])  # fmt: skip
    gold = naming.catalog_table(settings, "gold.customer_360")
    _emit(settings, "lakehouse.customer_360", "DBT", [Dataset(silver)], [
        Dataset(gold, {"crm_segment": "text"},
                lineage={"crm_segment": [(silver, "segment")]})])  # fmt: skip
    mirror = naming.sql_table("snowflake://acct/ANALYTICS/GOLD", None, "customer_360")
    gold_path = naming.lake_table(settings, "gold.customer_360")  # as the publish names it
    _emit(settings, "publish.snowflake", "PUBLISH", [Dataset(gold_path, symlink=gold)], [
        Dataset(mirror, {"CRM_SEGMENT": "text"},
                lineage={"CRM_SEGMENT": [(gold_path, "crm_segment")]})])  # fmt: skip


@pytest.fixture()
def lineage(tmp_settings: Settings) -> graph.Lineage:
    _chain(tmp_settings)
    return graph.load(site.lineage_dir(tmp_settings))


def test_the_bronze_path_and_table_name_are_one_dataset(
    lineage: graph.Lineage, tmp_settings: Settings
) -> None:
    node = lineage.find("bronze_crm.contacts")
    assert node.id == naming.bronze_table(tmp_settings, "crm", "contacts")
    assert naming.bronze_location(tmp_settings, "crm", "contacts") in node.aliases
    assert lineage.find(str(tmp_settings.bronze_dir.resolve() / "crm" / "contacts")) is node
    assert node.written_by == "bronze_crm"


def test_each_dataset_has_its_layer(lineage: graph.Lineage) -> None:
    layers = {d.id.name: d.layer for d in lineage.datasets.values()}
    assert layers == {
        "/api/crm/v1/contacts": "source",
        "bronze_crm.contacts": "bronze",
        "silver.stg_crm__contacts": "silver",
        "gold.customer_360": "gold",
        "ANALYTICS.GOLD.CUSTOMER_360": "warehouse",
    }


def test_a_warehouse_column_traces_through_every_layer_to_the_source_field(
    lineage: graph.Lineage,
) -> None:
    trace = lineage.trace(lineage.find("ANALYTICS.GOLD.CUSTOMER_360"), "CRM_SEGMENT")
    assert [(t.dataset.layer, t.field) for t in trace.walk()] == [
        ("warehouse", "CRM_SEGMENT"), ("gold", "crm_segment"), ("silver", "segment"),
        ("bronze", "segment"), ("source", "segment"),
    ]  # fmt: skip
    assert trace.columns_in("bronze") == {("bronze_crm.contacts", "segment")}


def test_every_run_started_and_completed(lineage: graph.Lineage) -> None:
    assert len(lineage.runs) == 4
    assert all(r.states == ["START", "COMPLETE"] for r in lineage.runs.values())
    assert [r.job.split("/", 1)[1] for r in lineage.runs_of("lakehouse.")] == [
        "lakehouse.stg_crm__contacts", "lakehouse.customer_360"
    ]  # fmt: skip


def test_the_newest_complete_run_of_a_model_is_its_lineage(tmp_settings: Settings) -> None:
    """A model whose SQL changed is described by its last run, not by the union of its runs."""
    _chain(tmp_settings)
    _chain(tmp_settings, segment_from="contact_id")  # the model now derives segment differently
    lineage = graph.load(site.lineage_dir(tmp_settings))
    trace = lineage.trace(lineage.find("silver.stg_crm__contacts"), "segment")
    assert trace.columns_in("bronze") == {("bronze_crm.contacts", "contact_id")}


def test_unknown_upstreams_and_unreadable_lines_are_counted_not_shown(
    tmp_settings: Settings,
) -> None:
    silver = naming.lake_table(tmp_settings, "silver.s")
    ghost = naming.DatasetId("spark://x:1", "a_cte")  # appears in no event's datasets
    _emit(tmp_settings, "lakehouse.s", "DBT", [], [Dataset(silver, {"a": "text"})])
    # an event written by an emitter without the platform's transformer (an older file, another
    # tool): the ghost reaches the file, and the graph must still not draw it
    found, _ = graph.read_events([emit.events_file(tmp_settings)])
    complete = found[-1]
    complete["outputs"][0]["facets"]["columnLineage"] = {"fields": {"a": {"inputFields": [
        {"namespace": ghost.namespace, "name": ghost.name, "field": "a"}]}}}  # fmt: skip
    with emit.events_file(tmp_settings).open("a") as events:
        events.write(json.dumps(complete) + "\n")
        events.write("{cut short\n" + json.dumps({"not": "an event"}) + "\n")
    lineage = graph.load(site.lineage_dir(tmp_settings))
    assert lineage.unresolved == 1 and lineage.unreadable_lines == 1
    assert lineage.edges[(silver, "a")] == []
