"""The transformer every emitter's events pass through (lineage/transform.py), on events
dbt-ol really emitted (fixtures/dbt/dbt_ol_events.jsonl): after it, column lineage names only
datasets of the run, every input field carries a transformation type, and every lake table is
named by its location with its catalog name as a symlink."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import pytest
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import column_lineage_dataset
from openlineage.client.serde import Serde
from openlineage.client.transport import get_default_factory

from lakehouse.core.config import Settings
from lakehouse.observability.lineage import emit, graph, transform
from lakehouse.stack.services import airflow

EVENTS = Path(__file__).parent / "fixtures" / "dbt" / "dbt_ol_events.jsonl"
CATALOG = "spark://127.0.0.1:10000"  # the namespace of the recorded events
LAKE = transform.Lake.of(
    {
        "catalog": CATALOG,
        "bronze": {"namespace": "file", "name": "/lake/bronze"},
        "warehouse": {"namespace": "file", "name": "/lake/warehouse"},
        "schemas": {"ops": {"namespace": "file", "name": "/lake/ops"}},
    }
)


def _recorded() -> list[dict]:
    return [json.loads(line) for line in EVENTS.read_text().splitlines()]


def _fields(event: dict):
    for output in event["outputs"]:
        for column, spec in output["facets"].get("columnLineage", {}).get("fields", {}).items():
            for f in spec["inputFields"]:
                yield output, column, f


def _phantoms(event: dict) -> set[tuple[str, str]]:
    known = {(d["namespace"], d["name"]) for d in event["inputs"] + event["outputs"]}
    return {(f["namespace"], f["name"]) for _, _, f in _fields(event)} - known


def test_the_recorded_events_name_phantoms_and_no_transformation() -> None:
    """What the transformer is for: the recorded events show both faults."""
    events = _recorded()
    phantoms = set().union(*(_phantoms(e) for e in events))
    assert {name for _, name in phantoms} == {"latest", "reporting_currency", "views"}
    assert all(not f["transformations"] for e in events for _, _, f in _fields(e))


def test_no_phantom_dataset_survives_and_real_fields_stay() -> None:
    for event in _recorded():
        before = [
            f
            for _, _, f in _fields(event)
            if (f["namespace"], f["name"]) not in {(n, m) for n, m in _phantoms(event)}
        ]
        transform.rewrite(event, LAKE)
        assert not _phantoms(event), event["job"]["name"]
        assert len(list(_fields(event))) == len(before)


def test_every_input_field_gets_a_transformation_type() -> None:
    kinds: dict[tuple[str, str, str], list[dict]] = {}
    for event in _recorded():
        transform.rewrite(event, LAKE)
        for output, column, f in _fields(event):
            assert f["transformations"], (output["name"], column, f)
            for t in f["transformations"]:
                assert t["type"] in ("DIRECT", "INDIRECT")
            table = output["facets"]["symlinks"]["identifiers"][0]["name"]
            kinds[(table, column, f["field"])] = f["transformations"]
    # worked out from the models' SQL
    assert kinds[("gold.customer_360", "full_name", "full_name")] == [
        {"type": "DIRECT", "subtype": "IDENTITY"}
    ]
    # sum(case when is_valid and status <> 'returned' then order_amount_reporting end)
    value = ("gold.customer_360", "lifetime_value")
    assert kinds[(*value, "order_amount_reporting")] == [
        {"type": "DIRECT", "subtype": "AGGREGATION"}
    ]
    assert kinds[(*value, "status")] == [{"type": "INDIRECT", "subtype": "CONDITIONAL"}]
    assert kinds[(*value, "is_valid")] == [{"type": "INDIRECT", "subtype": "CONDITIONAL"}]


def test_lake_tables_are_named_by_location_with_the_catalog_name_as_alias() -> None:
    event = next(e for e in _recorded() if "customer_360" in e["job"]["name"])
    transform.rewrite(event, LAKE)
    output = event["outputs"][0]
    assert (output["namespace"], output["name"]) == ("file", "/lake/warehouse/gold.db/customer_360")
    assert output["facets"]["symlinks"]["identifiers"] == [
        {"namespace": CATALOG, "name": "gold.customer_360", "type": "TABLE"}
    ]
    names = {(d["namespace"], d["name"]) for d in event["inputs"]}
    names |= {(f["namespace"], f["name"]) for _, _, f in _fields(event)}
    assert all(ns == "file" for ns, _ in names), names
    bronze = next(e for e in _recorded() if "stg_snowflake__orders" in e["job"]["name"])
    transform.rewrite(bronze, LAKE)
    assert {d["name"] for d in bronze["inputs"]} == {"/lake/bronze/snowflake/orders"}


def test_the_rewritten_events_still_join_in_the_graph() -> None:
    events = _recorded()
    for event in events:
        transform.rewrite(event, LAKE)
    lineage = graph.build(events)
    assert lineage.unresolved == 0
    trace = lineage.trace(lineage.find("gold.customer_360"), "lifetime_value")
    # recorded before fct_orders became orders; its own event is not among the five
    assert ("gold.fct_orders", "order_amount_reporting") in trace.columns_in("gold")
    orders = lineage.trace(lineage.find("silver.stg_snowflake__orders"), "status")
    assert orders.columns_in("bronze") == {("bronze_snowflake.orders", "status")}


def test_the_transform_transport_rewrites_the_client_models(tmp_path: Path) -> None:
    """Through openlineage-python's own transport, on its attrs models, into a file."""
    out = tmp_path / "out.jsonl"
    config = {
        "type": "transform",
        "transformer_class": emit.TRANSFORMER,
        "transformer_properties": {
            "catalog": CATALOG,
            "bronze": {"namespace": "file", "name": "/lake/bronze"},
            "warehouse": {"namespace": "file", "name": "/w"},
        },
        "transport": {"type": "file", "log_file_path": str(out), "append": True},
    }
    transport = get_default_factory().create(config)
    lineage = column_lineage_dataset.ColumnLineageDatasetFacet(
        fields={
            "a": column_lineage_dataset.Fields(
                inputFields=[
                    column_lineage_dataset.InputField(
                        namespace=CATALOG, name="silver.s", field="a"
                    ),
                    column_lineage_dataset.InputField(namespace=CATALOG, name="a_cte", field="a"),
                ]
            )
        }
    )
    event = RunEvent(
        eventType=RunState.COMPLETE,
        eventTime="2026-12-07T00:00:00+00:00",
        run=Run(runId="01930000-0000-7000-8000-000000000000"),
        job=Job(namespace="lakehouse", name="m"),
        inputs=[InputDataset(namespace=CATALOG, name="silver.s")],
        outputs=[
            OutputDataset(namespace=CATALOG, name="gold.g", facets={"columnLineage": lineage})
        ],
    )
    transport.emit(event)
    sent = json.loads(out.read_text())
    assert sent["outputs"][0]["name"] == "/w/gold.db/g"
    fields = sent["outputs"][0]["facets"]["columnLineage"]["fields"]["a"]["inputFields"]
    assert fields == [
        {
            "namespace": "file",
            "name": "/w/silver.db/s",
            "field": "a",
            "transformations": [{"type": "DIRECT"}],
        }
    ]
    assert Serde.to_dict(event)["outputs"][0]["name"] == "gold.g"  # the caller's event untouched


def test_every_emitter_wraps_the_transport_the_user_chose(
    tmp_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENLINEAGE_URL", "http://marquez:5000")
    config = json.loads(emit.environment(tmp_settings)["OPENLINEAGE__TRANSPORT"])
    assert config["type"] == "transform" and config["transformer_class"] == emit.TRANSFORMER
    assert config["transport"]["url"] == "http://marquez:5000"
    env = emit.emitter_environment(
        tmp_settings,
        {"OPENLINEAGE_URL": "http://marquez:5000", "OPENLINEAGE__TRANSPORT__TYPE": "http"},
    )
    assert "OPENLINEAGE_URL" not in env and "OPENLINEAGE__TRANSPORT__TYPE" not in env
    # already wrapped: not twice
    assert emit.transport_config(tmp_settings, copy.deepcopy(config)) == config


def test_a_cosmos_build_event_is_cleaned_without_misreading_its_one_sql() -> None:
    """Cosmos emits one event for a whole build: the SQL facet is one model's, so no field is
    classified from it (each stays DIRECT, unclassified); phantoms and names are fixed alike."""
    event = json.loads((EVENTS.parent / "cosmos_event.json").read_text())
    assert _phantoms(event)
    transform.rewrite(event, LAKE)
    assert not _phantoms(event)
    described = [o for o in event["outputs"] if "columnLineage" in o["facets"]]
    assert len(described) > 1
    assert all(f["transformations"] == [{"type": "DIRECT"}] for _, _, f in _fields(event))
    assert all(d["namespace"] == "file" for d in event["inputs"] + event["outputs"])


AIRFLOW_PROBE = """
import json, os
from openlineage.client.transport import get_default_factory
transport = get_default_factory().create(json.loads(os.environ["AIRFLOW__OPENLINEAGE__TRANSPORT"]))
from lakehouse.observability.lineage import transform
print(json.dumps({"transformer": type(transport.transformer).__name__,
                  "inner": type(transport.transport).__name__,
                  "sqlglot": transform._sqlglot() is not None}))
"""


def test_airflows_provider_loads_the_transformer_in_its_own_environment(
    tmp_settings: Settings,
) -> None:
    """What Airflow's components get: the transform transport around the file, built by the
    client of .venv-airflow from the repository on its PYTHONPATH, sqlglot included."""
    env = airflow.environment(tmp_settings)
    config = json.loads(env["AIRFLOW__OPENLINEAGE__TRANSPORT"])
    assert config["transport"]["log_file_path"] == str(airflow.lineage_file(tmp_settings))
    done = subprocess.run(
        [str(airflow.VENV / "bin" / "python"), "-c", AIRFLOW_PROBE],
        env=env, capture_output=True, text=True, timeout=60, cwd=tmp_settings.home,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == {
        "transformer": "LakeTransformer", "inner": "FileTransport", "sqlglot": True,
    }  # fmt: skip
