"""The dataset registry (lakehouse/observability/lineage/registry.py) from a recorded dbt manifest
and the tables the publish layer serves: every bronze source, model and published table with its
location, layer, owner and personal data, named as the lineage graph names it. No pipeline has
run on this lake home, so bronze comes from the dbt source declarations alone (the engine tier's
test_lineage checks a registry after real loads).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lakehouse.core import naming
from lakehouse.core.config import Settings
from lakehouse.observability.lineage import registry
from lakehouse.publish.publisher import served
from lakehouse.publish.warehouses import warehouse

MANIFEST = Path(__file__).parent / "fixtures" / "dbt" / "manifest.json"  # recorded (README there)


@pytest.fixture()
def manifest() -> dict:
    return json.loads(MANIFEST.read_text())


@pytest.fixture()
def rows(tmp_settings: Settings, manifest: dict) -> dict[str, dict]:
    built = registry.build(tmp_settings, manifest, served(tmp_settings))
    by_name = {r["name"]: r for r in built}
    assert len(by_name) == len(built), "one row per dataset"
    return by_name


def test_every_declared_bronze_table_is_listed_with_its_declaration(
    rows: dict[str, dict], manifest: dict, tmp_settings: Settings
) -> None:
    bronze = [s for s in manifest["sources"].values() if s["schema"].startswith("bronze_")]
    assert len(bronze) == 4
    for source in bronze:
        dataset = source["source_meta"]["bronze_dataset"]
        name = naming.bronze_table(tmp_settings, dataset, source["identifier"]).name
        row = rows[name]
        assert row["layer"] == "bronze"
        assert row["location"] == str(tmp_settings.bronze_dir / dataset / source["identifier"])
        assert row["owner"] == source["source_meta"]["owner"]
        assert row["source_system"] == source["source_meta"]["source_system"]
        assert row["kind"] == f"dlt pipeline bronze_{dataset} (Delta)"
    assert rows["bronze_crm.contacts"]["personal_data"] == "email (email), owner (email)"
    assert rows["bronze_crm.quarantine"]["description"].startswith("CRM records refused")


def test_every_model_is_listed_in_the_layer_of_its_folder(
    rows: dict[str, dict], manifest: dict, tmp_settings: Settings
) -> None:
    models = [n for n in manifest["nodes"].values() if n["resource_type"] == "model"]
    for model in models:
        row = rows[f"{model['schema']}.{model['alias']}"]
        assert row["layer"] == model["fqn"][1]
        assert row["owner"] == model["config"]["meta"]["owner"]
        assert row["location"] == str(
            tmp_settings.warehouse_dir / f"{model['schema']}.db" / model["alias"]
        )
        assert row["kind"] == "dbt model (table, delta)"
    assert {rows[n]["layer"] for n in ("silver.stg_crm__contacts", "gold.customer_360")} == {
        "silver", "gold"
    }  # fmt: skip
    # a description is its first sentence; personal data from the columns' meta.pii
    assert rows["gold.customer_360"]["description"].endswith("data-quality flags.")
    assert "email (email)" in rows["gold.customer_360"]["personal_data"]


def test_every_published_table_is_listed_per_warehouse_with_the_gold_owner(
    rows: dict[str, dict], tmp_settings: Settings
) -> None:
    published = 0
    for name in tmp_settings.publish.warehouses:
        for table in tmp_settings.publish.tables:
            row = rows[warehouse(name, tmp_settings).dataset(table).name]
            assert row["layer"] == "warehouse" and row["source_system"] == name
            assert row["owner"] == rows[f"gold.{table}"]["owner"]
            assert row["personal_data"] == rows[f"gold.{table}"]["personal_data"]
            assert row["kind"] == f"published from gold.{table}"
            published += 1
    assert published == 4
    assert rows["ANALYTICS.GOLD.CUSTOMER_360"]["strategy"] == "MERGE on customer_id"
    assert rows["analytics.gold.customer_360_history"]["strategy"].startswith("append")


def test_the_registry_is_written_as_json(rows: dict[str, dict], tmp_path: Path) -> None:
    written = registry.write(list(rows.values()), tmp_path / "site" / "registry.json")
    assert json.loads(written.read_text()) == list(rows.values())
