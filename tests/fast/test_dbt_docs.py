"""The dbt project documents what it builds: every column a silver or gold model outputs is declared
and described, a column name means one thing (or says, by its doc block, that this model gives it
its own meaning), every source table and column says what it holds and every source what loads
it, and ops.run_metrics declares every column the platform writes to it.

The manifest comes from ``dbt parse`` (connects to nothing). The columns each model's SQL really
outputs come from a recorded ``catalog.json`` (fixtures/dbt/catalog_columns.json, from ``dbt docs
generate`` on the engine): re-record it when a model's SQL changes its columns. Gold contracts
(``contract: enforced``) check the same on every build; this tier tells first.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lakehouse.core.config import Settings
from lakehouse.observability import run_metrics
from lakehouse.transform.dbt_cli import dbt

CATALOG = Path(__file__).parent / "fixtures" / "dbt" / "catalog_columns.json"
DOCUMENTED_LAYERS = {"silver", "gold"}
# The sources under the lake models (models/publish has its own, the publish step's snapshots).
DOCUMENTED_SOURCE_DIRS = ("models/silver/", "models/ops/")
# Spark's catalog says `long` where a contract says `bigint`.
SPARK_TYPE_NAMES = {"long": "bigint", "integer": "int"}


@pytest.fixture(scope="module")
def manifest(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    # A target folder of its own per pytest worker: each worker runs this fixture, and two
    # parses writing one manifest.json let a reader see it half written.
    target = tmp_path_factory.mktemp("dbt-docs-target")
    dbt(settings, "parse", "--target-path", str(target), "--quiet", capture=True)
    yield json.loads((target / "manifest.json").read_text())


@pytest.fixture(scope="module")
def models(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The silver and gold models, by name."""
    return {
        node["name"]: node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["fqn"][1] in DOCUMENTED_LAYERS
    }


@pytest.fixture(scope="module")
def outputs() -> dict[str, dict[str, str]]:
    """Model -> its SQL's output columns (name -> Spark type), from the engine's catalog."""
    return {name: m["columns"] for name, m in json.loads(CATALOG.read_text())["models"].items()}


def test_the_recorded_catalog_covers_every_silver_and_gold_model(
    models: dict[str, dict[str, Any]], outputs: dict[str, dict[str, str]]
) -> None:
    assert set(outputs) == set(models), "re-record fixtures/dbt/catalog_columns.json"


def test_every_column_a_model_outputs_is_declared_and_described_and_nothing_else_is(
    models: dict[str, dict[str, Any]], outputs: dict[str, dict[str, str]]
) -> None:
    for name, node in models.items():
        declared = node["columns"]
        assert set(declared) == set(outputs[name]), name
        undescribed = [c for c, col in declared.items() if not col["description"].strip()]
        assert not undescribed, f"{name}: {undescribed}"


def test_gold_contracts_declare_the_types_the_sql_outputs(
    models: dict[str, dict[str, Any]], outputs: dict[str, dict[str, str]]
) -> None:
    for name, node in models.items():
        if node["fqn"][1] != "gold":
            continue
        assert node["config"]["contract"]["enforced"], name
        for column, col in node["columns"].items():
            spark_type = outputs[name][column]
            assert col["data_type"] == SPARK_TYPE_NAMES.get(spark_type, spark_type), (name, column)


def test_a_column_name_means_one_thing_unless_a_model_gives_it_its_own_doc_block(
    models: dict[str, dict[str, Any]],
) -> None:
    """A name shared by models is described by the doc block of that name, once; a model that gives
    it another meaning says so with a doc block ``<model>__<column>``."""
    meanings: dict[str, set[str]] = defaultdict(set)
    users: dict[str, list[str]] = defaultdict(list)
    for name, node in models.items():
        for column, col in node["columns"].items():
            users[column].append(name)
            blocks = {block.split(".")[-1] for block in col.get("doc_blocks", [])}
            assert blocks <= {column, f"{name}__{column}"}, (name, column, blocks)
            if f"{name}__{column}" not in blocks:
                meanings[column].add(col["description"].strip())
    for column, described in meanings.items():
        assert len(described) == 1, f"{column} means several things: {sorted(described)}"
    for name, node in models.items():
        for column, col in node["columns"].items():
            if len(users[column]) > 1:
                assert col.get("doc_blocks"), f"{name}.{column}: a shared name with no doc block"


def test_every_source_table_and_column_is_described_and_every_source_names_its_loader(
    manifest: dict[str, Any],
) -> None:
    sources = [
        s
        for s in manifest["sources"].values()
        if s["original_file_path"].startswith(DOCUMENTED_SOURCE_DIRS)
    ]
    assert sources
    for source in sources:
        assert source["description"].strip(), source["unique_id"]
        assert source["source_description"].strip(), source["source_name"]
        assert source["loader"].strip(), source["source_name"]
        undescribed = [c for c, col in source["columns"].items() if not col["description"].strip()]
        assert not undescribed, f"{source['unique_id']}: {undescribed}"
        if source["schema"].startswith("bronze_"):
            assert source["loader"] == "dlt", source["source_name"]


def test_the_run_metrics_source_declares_and_describes_every_column_the_platform_writes(
    manifest: dict[str, Any],
) -> None:
    [table] = [
        s for s in manifest["sources"].values() if f"{s['schema']}.{s['name']}" == run_metrics.TABLE
    ]
    assert list(table["columns"]) == run_metrics.SCHEMA.names
    assert all(c["description"].strip() for c in table["columns"].values())
