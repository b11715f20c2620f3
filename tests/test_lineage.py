"""Lineage: the OpenLineage events every run emits, the graph read back from them, and the pages.

After the session's pipeline run (the same ingest and `dbt build` as `make run`), the event file
must hold a START and a COMPLETE for every dlt load and every dbt model, and chosen customer_360
columns must trace, through silver, to exactly the bronze columns and source fields their SQL
reads. The expected columns below were worked out from the models' SQL, not read from the events.
"""

from __future__ import annotations

import enum
import json
import threading
import types
import typing
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlsplit

import attr
import pytest
from openlineage.client.event_v2 import RunEvent, RunState
from openlineage.client.facet_v2 import (
    column_lineage_dataset,
    datasource_dataset,
    documentation_dataset,
    documentation_job,
    error_message_run,
    job_type_job,
    output_statistics_output_dataset,
    ownership_dataset,
    ownership_job,
    parent_run,
    processing_engine_run,
    schema_dataset,
    sql_job,
    storage_dataset,
    symlinks_dataset,
)

from ingestion import lineage as ingestion_lineage
from ingestion.registry import SOURCES
from lakehouse.core import naming
from lakehouse.core.config import Settings
from lakehouse.core.dbt_paths import target_dir
from lakehouse.observability.lineage import emit, graph, site
from lakehouse.pipeline import docs_site
from lakehouse.transform.sql import query

# customer_360 column -> the bronze columns its value is computed from (joins' keys included
# where they decide which rows count, as in lifetime_value's validity rules)
EXPECTED_BRONZE = {
    # sum of valid, non-returned orders' amounts (lines' quantity x unit price), converted at
    # the order day's rate (FX rate via the order currency and date)
    "lifetime_value": {
        ("bronze_fx.rates", "rate"),
        ("bronze_snowflake.customers", "customer_id"),
        ("bronze_snowflake.order_lines", "product_id"),
        ("bronze_snowflake.order_lines", "quantity"),
        ("bronze_snowflake.order_lines", "unit_price"),
        ("bronze_snowflake.orders", "currency"),
        ("bronze_snowflake.orders", "customer_id"),
        ("bronze_snowflake.orders", "order_ts"),
        ("bronze_snowflake.orders", "status"),
    },
    "email": {("bronze_snowflake.customers", "email")},
    "has_valid_email": {("bronze_snowflake.customers", "email")},
    "full_name": {
        ("bronze_snowflake.customers", "first_name"),
        ("bronze_snowflake.customers", "last_name"),
    },
    "crm_segment": {("bronze_crm.contacts", "segment")},
    "crm_account_name": {("bronze_crm.accounts", "name")},
    "web_top_device": {("bronze_redshift.sessions", "device")},
    "web_page_views": {("bronze_redshift.page_views", "page_view_id")},
    "events": {("bronze_kafka.events", "event_id")},
}
SILVER_OF_LIFETIME_VALUE = {
    ("silver.int_orders__amounts", "order_amount"),
    ("silver.stg_fx__rates", "units_per_base"),
    ("silver.stg_snowflake__orders", "status"),
}


@pytest.fixture(scope="module")
def events(dbt_built, spark: Settings) -> list[dict]:
    found, bad = graph.read_events([emit.events_file(spark)])
    assert bad == 0
    return found


@pytest.fixture(scope="module")
def lineage(dbt_built, spark: Settings) -> graph.Lineage:
    return graph.load(site.lineage_dir(spark))


def _runs(events: list[dict]) -> dict[str, dict[str, list[dict]]]:
    """job name -> run id -> that run's events."""
    runs: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for e in events:
        runs[e["job"]["name"]][e["run"]["runId"]].append(e)
    return runs


def test_every_dlt_load_emits_start_and_complete_with_schema_and_table_name(
    events, ingested, spark: Settings
) -> None:
    runs = _runs(events)
    summaries = {s.source: s for s in ingested}
    for source in SOURCES:
        job = runs[f"dlt.bronze_{source}"]
        assert job, f"no lineage for the {source} load"
        states = [[e["eventType"] for e in run] for run in job.values()]
        assert ["START", "COMPLETE"] in states, states
        complete = next(e for run in job.values() for e in run if e["eventType"] == "COMPLETE")
        outputs = {o["name"]: o for o in complete["outputs"]}
        contracts = ingestion_lineage.contracts(source, spark)
        for table, contract in contracts.items():
            path = str((spark.bronze_dir / source / table).resolve())
            out = outputs[path]
            assert out["namespace"] == "file"
            fields = [f["name"] for f in out["facets"]["schema"]["fields"]]
            assert set(contract.columns) <= set(fields), (table, fields)
            # the same table by the name dbt reads it under
            assert out["facets"]["symlinks"]["identifiers"] == [
                {"namespace": f"spark://127.0.0.1:{spark.engine.port}",
                 "name": f"bronze_{source}.{table}", "type": "TABLE"}
            ]  # fmt: skip
            lineage = out["facets"]["columnLineage"]["fields"]
            assert set(lineage) == set(contract.columns)
        # the quarantine table is an output too, with no column lineage (whole records)
        assert str((spark.bronze_dir / source / "quarantine").resolve()) in outputs
        # rows written, as dlt counted them
        written = summaries[source].tables
        for table, load in written.items():
            path = str((spark.bronze_dir / source / table).resolve())
            assert outputs[path]["outputFacets"]["outputStatistics"]["rowCount"] == load.written
        # inputs: the source system's tables, named by their system, without credentials
        inputs = {i["name"] for i in complete["inputs"]}
        assert len(inputs) == len(contracts)
        assert not any("password" in i["namespace"] or "@" in i["namespace"]
                       for i in complete["inputs"])  # fmt: skip
        # each named by OpenLineage's naming spec, an emulating stand-in as the system it stands
        # in for (services.stand_ins), the real PostgreSQL and broker by address (docs/lineage.md)
        assert {i["namespace"] for i in complete["inputs"]} == {_source_namespace(source, spark)}


def _source_namespace(source: str, settings: Settings) -> str:
    stand_ins, services = settings.services.stand_ins, settings.services
    return {
        "snowflake": f"snowflake://{urlsplit(stand_ins.snowflake).hostname}",
        "crm": stand_ins.crm,
        "fx": stand_ins.fx,
        "redshift": f"postgres://127.0.0.1:{services.postgres_port}",
        "kafka": f"kafka://127.0.0.1:{services.kafka_port}",
    }[source]


def test_dbt_reads_the_same_bronze_datasets_dlt_wrote(events, spark: Settings) -> None:
    """dbt-ol's events name a bronze table as the dlt load does (its path), with the same
    symlink, so the graph joins with or without symlinks."""
    written = {
        (o["namespace"], o["name"]): o["facets"]["symlinks"]["identifiers"]
        for e in events
        if e["job"]["name"].startswith("dlt.")
        for o in e.get("outputs", [])
    }
    dbt_inputs = {
        (i["namespace"], i["name"]): i["facets"]["symlinks"]["identifiers"]
        for e in events
        if e["job"]["name"].endswith(".build.run")
        for i in e.get("inputs", [])
        if i["name"].startswith(str(spark.bronze_dir.resolve()))
    }
    assert dbt_inputs, "dbt-ol emitted no bronze inputs (was the thrift target used?)"
    assert dbt_inputs.keys() <= written.keys(), dbt_inputs.keys() - written.keys()
    for dataset, symlinks in dbt_inputs.items():
        assert symlinks == written[dataset], dataset


def test_every_dbt_model_emits_start_and_complete_with_column_lineage(
    events, dbt_built: Path, spark: Settings
) -> None:
    manifest = json.loads((dbt_built / "manifest.json").read_text())
    models = [n for n in manifest["nodes"].values() if n["resource_type"] == "model"]
    assert len(models) >= 15
    runs = _runs(events)
    for model in models:
        job = f"{model['schema']}.{model['package_name']}.{model['name']}.build.run"
        assert job in runs, f"no lineage for model {model['name']}"
        states = sorted(e["eventType"] for run in runs[job].values() for e in run)
        assert "START" in states and "COMPLETE" in states, (job, states)
        complete = [e for run in runs[job].values() for e in run if e["eventType"] == "COMPLETE"]
        output = complete[-1]["outputs"][0]
        # named by location, the catalog name dbt gives kept as its symlink
        table = f"{model['schema']}.{model['alias']}"
        location = naming.lake_table(spark, table)
        assert (output["namespace"], output["name"]) == (location.namespace, location.name)
        assert output["facets"]["symlinks"]["identifiers"] == [
            {"namespace": naming.spark_namespace(spark), "name": table, "type": "TABLE"}
        ]
        assert "columnLineage" in output["facets"], f"{job} has no column lineage"


def test_every_customer_360_column_traces_to_a_source_system(lineage: graph.Lineage) -> None:
    customer_360 = lineage.find("gold.customer_360")
    assert len(customer_360.fields) >= 30
    untraced = []
    for column in customer_360.fields:
        trace = lineage.trace(customer_360, column)
        if not trace.columns_in("bronze") or not trace.columns_in("source"):
            untraced.append(column)
    # the reporting currency is configuration (a dbt var), not data: it has no upstream column
    assert untraced == ["reporting_currency"]


@pytest.mark.parametrize("column", sorted(EXPECTED_BRONZE))
def test_customer_360_columns_trace_to_exactly_their_bronze_columns(
    lineage: graph.Lineage, column: str
) -> None:
    trace = lineage.trace(lineage.find("gold.customer_360"), column)
    assert trace.columns_in("bronze") == EXPECTED_BRONZE[column]
    # each bronze column to the same-named field of the system it was loaded from
    systems = {t.dataset.system for t in trace.walk() if t.dataset.layer == "source"}
    expected_systems = {name.split(".")[0].removeprefix("bronze_")
                        for name, _ in EXPECTED_BRONZE[column]}  # fmt: skip
    assert systems == expected_systems
    assert {f for _, f in trace.columns_in("source")} == {f for _, f in EXPECTED_BRONZE[column]}


def test_lifetime_value_goes_through_silver_and_the_fx_conversion(lineage: graph.Lineage) -> None:
    trace = lineage.trace(lineage.find("gold.customer_360"), "lifetime_value")
    assert trace.columns_in("silver") >= SILVER_OF_LIFETIME_VALUE
    gold = trace.columns_in("gold")
    assert {("gold.orders", "order_amount_reporting"),
            ("gold.fx_rates_daily", "to_reporting_rate")} <= gold  # fmt: skip


def test_the_registry_lists_every_dataset_with_location_layer_and_owner(
    dbt_built: Path, spark: Settings
) -> None:
    written = docs_site.write_lineage(spark)
    rows = {r["name"]: r for r in json.loads(written.registry.read_text())}
    manifest = json.loads((target_dir() / "manifest.json").read_text())
    models = [n for n in manifest["nodes"].values() if n["resource_type"] == "model"]
    for model in models:
        row = rows[f"{model['schema']}.{model['alias']}"]
        assert row["layer"] == model["fqn"][1]
        assert Path(row["location"]).is_dir(), row  # the Delta table is really there
        assert row["owner"] in ("data-platform", "analytics-engineering")
    for source in SOURCES:
        for table in [*ingestion_lineage.contracts(source, spark), "quarantine"]:
            row = rows[f"bronze_{source}.{table}"]
            assert row["layer"] == "bronze"
            assert (Path(row["location"]) / "_delta_log").is_dir(), row
            assert row["owner"], row
            assert row["kind"] == f"dlt pipeline bronze_{source} (Delta)"
    assert rows["bronze_snowflake.customers"]["strategy"] == "replace"
    assert rows["bronze_redshift.sessions"]["strategy"] == "merge (insert-only)"  # append-only
    assert rows["bronze_crm.contacts"]["strategy"].startswith("merge")
    assert rows["ANALYTICS.GOLD.CUSTOMER_360"]["strategy"] == "MERGE on customer_id"
    assert rows["analytics.gold.customer_360_history"]["layer"] == "warehouse"
    # where personal data lives, from the yml's meta.pii tags (docs/governance.md)
    assert rows["bronze_snowflake.customers"]["personal_data"] == (
        "email (email), first_name (name), last_name (name), phone (phone)"
    )
    expected = "email (email), full_name (name), crm_owner_email (email)"
    assert rows["gold.customer_360"]["personal_data"] == expected
    assert rows["ANALYTICS.GOLD.CUSTOMER_360"]["personal_data"] == expected
    assert rows["gold.orders"]["personal_data"] == ""


def test_the_lineage_page_traces_a_gold_column_in_headless_chromium(
    dbt_built: Path, spark: Settings, browser, screenshot
) -> None:
    written = docs_site.write_lineage(spark)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{written.page.as_uri()}#gold.customer_360:lifetime_value")
    summary = page.locator("#summary")
    summary.wait_for(timeout=10_000)
    text = summary.inner_text()
    assert "gold.customer_360.lifetime_value" in text
    for table, column in EXPECTED_BRONZE["lifetime_value"]:
        assert f"{table}.{column}" in text
    assert "Source systems: fx, snowflake" in text
    tree = page.locator("#tree").inner_text()
    assert "silver.int_orders__amounts.order_amount" in tree
    assert "gold.fx_rates_daily.to_reporting_rate" in tree
    page.screenshot(path=str(screenshot("lineage-lifetime-value")))
    # the registry tab
    page.click("#tab-registry")
    registry = page.locator("#registry-table").inner_text()
    assert "bronze_crm.contacts" in registry and "sales-ops" in registry
    assert "gold.customer_360" in registry and "analytics-engineering" in registry
    page.screenshot(path=str(screenshot("lineage-registry")))
    assert screenshot("lineage-lifetime-value").stat().st_size > 20_000


def test_the_dbt_docs_site_renders_customer_360_in_headless_chromium(
    dbt_built: Path, spark: Settings, browser, screenshot
) -> None:
    out = docs_site.generate(spark)
    assert {"index.html", "catalog.json", "manifest.json", "lineage.html"} <= {
        p.name for p in out.iterdir()
    }
    # Delta's own row counts and sizes, not the metastore's `0 rows` dbt-spark reads
    catalog = json.loads((out / "catalog.json").read_text())
    stats = catalog["nodes"]["model.lakehouse.customer_360"]["stats"]
    (customers,) = query(spark, "select count(*) from gold.customer_360")[0]
    assert customers > 0 and stats["rows"]["value"] == customers
    assert stats["bytes"]["value"] > 0 and stats["num_files"]["value"] >= 1
    bronze = catalog["sources"]["source.lakehouse.snowflake.customers"]["stats"]
    (bronze_rows,) = query(spark, "select count(*) from bronze_snowflake.customers")[0]
    assert bronze["rows"]["value"] == bronze_rows > 0
    # the static page inlines the same completed catalog
    assert (out / "catalog.json").read_text() in (out / "static_index.html").read_text()
    server = site.server(spark, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        base = f"http://127.0.0.1:{server.server_port}"
        page.goto(f"{base}/#!/model/model.lakehouse.customer_360")
        page.get_by_text("lifetime_value").first.wait_for(timeout=30_000)
        body = page.inner_text("body")
        assert "customer_360" in body and "analytics-engineering" in body
        assert "Enforced" in body  # the model contract
        page.screenshot(path=str(screenshot("dbt-docs-customer-360")))
        # the overview links to the column-lineage page, served beside it
        page.goto(f"{base}/#!/overview")
        page.get_by_role("link", name="lineage.html").click()
        page.locator("#datasets").wait_for(timeout=10_000)
        assert "gold.customer_360" in page.locator("#datasets").inner_text()
    finally:
        server.shutdown()
        server.server_close()


# ---- read by a consumer the project did not write: openlineage-python's own models ------------

# The standard facets the events carry, by where they sit and their key: each is parsed with its
# class from openlineage-python, strictly (an unknown property fails). Other keys are custom
# facets (dbt_node, dbt_run, ...): the spec asks only _producer and _schemaURL of them.
STANDARD_FACETS = {
    ("run", "parent"): parent_run.ParentRunFacet,
    ("run", "processing_engine"): processing_engine_run.ProcessingEngineRunFacet,
    ("run", "errorMessage"): error_message_run.ErrorMessageRunFacet,
    ("job", "jobType"): job_type_job.JobTypeJobFacet,
    ("job", "sql"): sql_job.SQLJobFacet,
    ("job", "documentation"): documentation_job.DocumentationJobFacet,
    ("job", "ownership"): ownership_job.OwnershipJobFacet,
    ("dataset", "schema"): schema_dataset.SchemaDatasetFacet,
    ("dataset", "columnLineage"): column_lineage_dataset.ColumnLineageDatasetFacet,
    ("dataset", "symlinks"): symlinks_dataset.SymlinksDatasetFacet,
    ("dataset", "dataSource"): datasource_dataset.DatasourceDatasetFacet,
    ("dataset", "storage"): storage_dataset.StorageDatasetFacet,
    ("dataset", "documentation"): documentation_dataset.DocumentationDatasetFacet,
    ("dataset", "ownership"): ownership_dataset.OwnershipDatasetFacet,
    (
        "output",
        "outputStatistics",
    ): output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet,
}
FACET_PLACES = {"Run": "run", "Job": "job", "InputDataset": "dataset", "OutputDataset": "dataset"}


def _parse(cls: type, value: object, place: str = "") -> object:
    """``value`` (JSON) as an instance of the client's attrs class ``cls``, field by field."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in attr.fields(cls)}
    kwargs = {}
    assert isinstance(value, dict), (cls, value)
    for key, item in value.items():
        assert key in fields, f"{cls.__name__} has no property {key!r}"
        spec = fields[key]
        if not spec.init:  # set by the class itself (_schemaURL): a URL string
            assert isinstance(item, str) and item.startswith("http"), (cls, key, item)
            continue
        if key in ("facets", "inputFacets", "outputFacets"):
            where = {"inputFacets": "input", "outputFacets": "output"}.get(
                key, FACET_PLACES.get(cls.__name__, place)
            )
            kwargs[spec.alias] = {k: _facet(where, k, v) for k, v in item.items()}
        else:
            kwargs[spec.alias] = _value(hints[key], item, FACET_PLACES.get(cls.__name__, place))
    return cls(**kwargs)


def _value(hint: object, item: object, place: str) -> object:
    options = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        assert item is not None or type(None) in typing.get_args(hint)
        return _value(options[0], item, place) if item is not None else None
    if origin is list:
        assert isinstance(item, list)
        return [_value(options[0], i, place) for i in item]
    if origin is dict:
        assert isinstance(item, dict)
        return {k: _value(options[1], v, place) for k, v in item.items()}
    if attr.has(hint):
        return _parse(hint, item, place)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(item)
    if hint is typing.Any:
        return item
    assert isinstance(item, hint), (hint, item)  # str, int, float, bool
    return item


def _facet(place: str, key: str, value: dict) -> object:
    if cls := STANDARD_FACETS.get((place, key)):
        return _parse(cls, value)
    assert value.get("_producer") and value.get("_schemaURL"), (place, key, value)
    return value


def test_every_event_parses_into_openlineage_python_models(events) -> None:
    parsed = [_parse(RunEvent, e) for e in events]
    assert len(parsed) == len(events) > 50
    assert {p.eventType for p in parsed} >= {RunState.START, RunState.COMPLETE}


def _column_lineage(events: list[dict]) -> dict[tuple[str, str], dict[str, list]]:
    """Dataset (namespace, name) -> column -> its input fields, from the newest COMPLETE event
    that describes it, read through the client's models."""
    written: dict[tuple[str, str], dict[str, list]] = {}
    for event in (_parse(RunEvent, e) for e in events):
        if event.eventType != RunState.COMPLETE:
            continue
        for output in event.outputs or []:
            facet = (output.facets or {}).get("columnLineage")
            if isinstance(facet, column_lineage_dataset.ColumnLineageDatasetFacet):
                written[(output.namespace, output.name)] = {
                    column: spec.inputFields for column, spec in facet.fields.items()
                }
    return written


def test_column_lineage_names_only_tables_and_sources_that_exist(events) -> None:
    """A lake dataset is a Delta table on disk; any other is a source a dlt load read."""
    sources = {
        (i["namespace"], i["name"])
        for e in events
        if e["job"]["name"].startswith("dlt.")
        for i in e.get("inputs", [])
    }
    named = {(f.namespace, f.name) for cols in _column_lineage(events).values()
             for fields in cols.values() for f in fields}  # fmt: skip
    assert named
    for namespace, name in named:
        if namespace == "file":
            assert (Path(name) / "_delta_log").is_dir(), name
        else:
            assert (namespace, name) in sources, (namespace, name)
    for event in events:  # and in each event, only the run's own datasets
        own = {
            (d["namespace"], d["name"]) for d in event.get("inputs", []) + event.get("outputs", [])
        }
        for output in event.get("outputs", []):
            for spec in output["facets"].get("columnLineage", {}).get("fields", {}).values():
                for f in spec["inputFields"]:
                    assert (f["namespace"], f["name"]) in own, (event["job"]["name"], f)
                    assert f["transformations"], (event["job"]["name"], f)


def test_a_gold_column_walks_to_its_source_fields_by_name_alone(events, spark: Settings) -> None:
    """Through the events' own names (no symlink followed, no project graph code): from
    gold.customer_360.lifetime_value to the Snowflake and FX fields it is computed from."""
    written = _column_lineage(events)
    start = ("file", str((spark.warehouse_dir / "gold.db" / "customer_360").resolve()))
    assert start in written
    leaves, seen = set(), set()
    todo = [(*start, "lifetime_value")]
    while todo:
        namespace, name, column = todo.pop()
        if (namespace, name, column) in seen:
            continue
        seen.add((namespace, name, column))
        upstream = written.get((namespace, name), {}).get(column)
        if upstream is None:
            leaves.add((namespace, name, column))
            continue
        todo += [(f.namespace, f.name, f.field) for f in upstream]
    sources = {
        (i["namespace"], i["name"])
        for e in events
        if e["job"]["name"].startswith("dlt.")
        for i in e.get("inputs", [])
    }
    assert {(namespace, name) for namespace, name, _ in leaves} <= sources, leaves
    # the order lines' quantity and price, the order's currency, the day's FX rate
    assert {"quantity", "unit_price", "currency", "rate"} <= {c for _, _, c in leaves}, leaves
