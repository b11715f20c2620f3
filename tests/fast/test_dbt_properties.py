"""The dbt project's properties as dbt itself parses them: what the warehouses serve is contracted,
owned and keyed; every macro says what it does and what each argument is; every consumer of
gold is an exposure on nodes that exist.

Read from the manifests of ``dbt parse`` (which connects to nothing), one per kind of target: the
lake (gold, silver, macros, exposures) and each warehouse's local stand-in (the publish models
and their tests exist only on a warehouse target; dbt drops the tests of a disabled model).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import jinja2.nodes
import pytest
from dbt.parser.schemas import is_valid_type

from lakehouse.core.config import Settings
from lakehouse.core.dbt_paths import DBT_PROFILES_DIR, DBT_PROJECT_DIR
from lakehouse.publish.warehouses import warehouse

Manifest = dict[str, Any]

# Lake target, and each warehouse's stand-in target (what the platform publishes to locally).
TARGETS = {"lake": "local", "snowflake": "snowflake_local", "redshift": "redshift_local"}

# Columns every publish model adds to its gold model's (macros/publish.sql staged_snapshot).
PUBLISH_METADATA = ["_row_hash", "_batch_id", "_lake_version", "_published_at"]

# The consumers of gold (models/exposures.yml).
EXPOSURES = {"snowflake_mirror", "redshift_history", "watchdog_report", "lineage_page"}

# Access per layer (dbt_project.yml): what people and the warehouses query is public.
ACCESS = {"silver": "protected", "gold": "public", "publish": "public"}


@pytest.fixture(scope="module")
def manifests(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Manifest]]:
    """One manifest per target, the three parses run side by side (each is ~10 s of CPU)."""
    out = tmp_path_factory.mktemp("dbt-properties")
    dbt_exe = str(Path(sys.executable).parent / "dbt")
    procs = {}
    for name, target in TARGETS.items():
        procs[name] = subprocess.Popen(
            [dbt_exe, "parse", "--target", target, "--target-path", str(out / name),
             "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROFILES_DIR),
             "--quiet"],
            env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    for name, proc in procs.items():
        output, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"dbt parse --target {TARGETS[name]}:\n{output[-3000:]}"
    yield {name: json.loads((out / name / "manifest.json").read_text()) for name in TARGETS}


def _models(manifest: Manifest) -> dict[str, dict[str, Any]]:
    return {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}


def _publish_models(manifests: dict[str, Manifest]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (wh, node)
        for wh in ("snowflake", "redshift")
        for node in _models(manifests[wh]).values()
        if node["fqn"][1] == "publish"
    ]


def _layer(node: dict[str, Any]) -> str:
    return node["fqn"][1]


def test_every_publish_model_has_an_enforced_contract_with_typed_described_columns(
    manifests: dict[str, Manifest],
) -> None:
    published = _publish_models(manifests)
    assert len(published) == 4
    for _, node in published:
        assert node["contract"]["enforced"], f"{node['name']}: contract not enforced"
        assert node["columns"], node["name"]
        for name, column in node["columns"].items():
            assert column["data_type"], f"{node['name']}.{name} has no data_type"
            assert column["description"].strip(), f"{node['name']}.{name} has no description"


def test_publish_models_declare_exactly_their_gold_models_columns_then_the_metadata(
    manifests: dict[str, Manifest], settings: Settings
) -> None:
    """The contract makes an undeclared gold column fail the publish: the declared columns must
    be gold's, in gold's order, then the publish metadata (what staged_snapshot selects)."""
    gold = _models(manifests["lake"])
    for table in settings.publish.tables:
        expected = [*gold[table]["columns"], *PUBLISH_METADATA]
        for wh in ("snowflake", "redshift"):
            node = _models(manifests[wh])[warehouse(wh, settings).model_name(table)]
            assert list(node["columns"]) == expected, node["name"]


def _key_tests(manifest: Manifest, model_id: str) -> tuple[set[str], set[tuple[str, ...]]]:
    """Columns tested not_null, and column sets tested unique (one column or a combination)."""
    not_null: set[str] = set()
    unique: set[tuple[str, ...]] = set()
    for node in manifest["nodes"].values():
        if node["resource_type"] != "test" or node.get("attached_node") != model_id:
            continue
        test = node["test_metadata"]
        kwargs = test["kwargs"]
        if test["name"] == "not_null":
            not_null.add(node["column_name"])
        elif test["name"] == "unique":
            unique.add((node["column_name"],))
        elif test["name"] == "expect_compound_columns_to_be_unique":
            unique.add(tuple(kwargs["column_list"]))
        elif test["name"] == "unique_combination_of_columns":
            unique.add(tuple(kwargs["combination_of_columns"]))
    return not_null, unique


def test_every_publish_key_is_tested_unique_and_not_null(
    manifests: dict[str, Manifest], settings: Settings
) -> None:
    """The key is lakehouse.yml's publish.tables.<table>.unique_key: the MERGE key of the
    Snowflake mirror; in a Redshift history one key per batch, so (_batch_id, key)."""
    for table, conf in settings.publish.tables.items():
        keys = {"snowflake": tuple(conf.unique_key), "redshift": ("_batch_id", *conf.unique_key)}
        for wh, key in keys.items():
            node = _models(manifests[wh])[warehouse(wh, settings).model_name(table)]
            if wh == "snowflake":
                configured = node["config"]["unique_key"]
                configured = [configured] if isinstance(configured, str) else configured
                assert tuple(configured) == key, f"{node['name']} merges on {configured}"
            not_null, unique = _key_tests(manifests[wh], node["unique_id"])
            assert key in unique, f"{node['name']}: no uniqueness test on {key}"
            untested = set(key) - not_null
            assert not untested, f"{node['name']}: not_null untested on {untested}"


def test_every_model_has_a_group_with_an_owner_the_access_of_its_layer_and_its_meta_owner(
    manifests: dict[str, Manifest],
) -> None:
    groups = {g["name"]: g for g in manifests["lake"]["groups"].values()}
    assert groups
    for group in groups.values():
        assert group["owner"].get("name") and "@" in group["owner"].get("email", ""), group
    models = [*_models(manifests["lake"]).values(), *(n for _, n in _publish_models(manifests))]
    assert {_layer(n) for n in models} == set(ACCESS)
    for node in models:
        assert node["group"] in groups, f"{node['name']} has no group"
        assert node["access"] == ACCESS[_layer(node)], node["name"]
        # meta.owner (what the registry, OpenLineage and dbt-score's has_owner read) names the
        # group's team, so the two owners cannot drift apart.
        assert node["meta"].get("owner") == node["group"].replace("_", "-"), node["name"]


def _signature(macro_sql: str) -> list[str]:
    """Argument names of a macro (or generic test) as Jinja parses its definition, as dbt's
    `validate_macro_args` reads them."""
    sql = macro_sql.replace("{% test ", "{% macro ", 1).replace("{%- test ", "{%- macro ", 1)
    sql = sql.replace("endtest", "endmacro")
    env = jinja2.Environment(extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"])
    macro = next(env.parse(sql).find_all(jinja2.nodes.Macro))
    return [arg.name for arg in macro.args]


def test_every_macro_and_generic_test_is_described_with_each_argument_of_its_signature(
    manifests: dict[str, Manifest],
) -> None:
    ours = [m for m in manifests["lake"]["macros"].values() if m["package_name"] == "lakehouse"]
    files = {m["original_file_path"].split("/")[0] for m in ours}
    assert files == {"macros", "tests"}
    assert len(ours) >= 35  # 33 macros in macros/, 2 generic tests in tests/generic
    for macro in ours:
        name = macro["name"]
        assert macro["description"].strip(), f"macro {name} has no description"
        documented = [a["name"] for a in macro["arguments"]]
        assert documented == _signature(macro["macro_sql"]), f"macro {name}'s arguments"
        for arg in macro["arguments"]:
            assert arg["description"] and arg["description"].strip(), f"{name}({arg['name']})"
            assert arg["type"] and is_valid_type(arg["type"]), f"{name}({arg['name']}): type"


def test_the_consumers_of_gold_are_exposures_on_nodes_that_exist(
    manifests: dict[str, Manifest],
) -> None:
    manifest = manifests["lake"]
    exposures = {e["name"]: e for e in manifest["exposures"].values()}
    assert set(exposures) == EXPOSURES
    known = set(manifest["nodes"]) | set(manifest["sources"])
    for name, exposure in exposures.items():
        parents = exposure["depends_on"]["nodes"]
        assert parents and set(parents) <= known, name
        assert exposure["owner"].get("email") and exposure["maturity"], name
        assert exposure["description"].strip(), name
    # The two warehouses serve what lakehouse.yml publishes.
    for name in ("snowflake_mirror", "redshift_history"):
        parents = {p.split(".")[-1] for p in exposures[name]["depends_on"]["nodes"]}
        assert parents == {"customer_360", "product_perf"}, name
