"""Bronze columns are declared twice: the Python contract the loader enforces
(ingestion/contracts.py, each loader's TableContract) and the dbt source yml dbt reads
(dbt_project/models/**/_<source>__sources.yml). Nothing else keeps the two in step: for every
bronze table they must name the same columns (and the same types where both declare one).

The load metadata every bronze row carries (``_source``, ``_loaded_at``, dlt's ``_dlt_load_id``
and ``_dlt_id``) is no source column: the yml may list it (for its tests), the contract does not.
"""

from __future__ import annotations

import pytest
import yaml

from ingestion import lineage
from ingestion.contracts import METADATA_COLUMNS, QUARANTINE_COLUMNS, QUARANTINE_TABLE
from ingestion.registry import SOURCES
from lakehouse.core.config import Settings
from lakehouse.core.dbt_paths import DBT_PROJECT_DIR

LOAD_METADATA = {*METADATA_COLUMNS, "_dlt_load_id", "_dlt_id"}


def _yml_tables() -> dict[tuple[str, str], list[dict]]:
    """(source, table) -> its columns, for every bronze source of the dbt project."""
    found: dict[tuple[str, str], list[dict]] = {}
    for path in sorted((DBT_PROJECT_DIR / "models").rglob("*sources*.yml")):
        for source in yaml.safe_load(path.read_text()).get("sources") or []:
            if not str(source.get("schema", "")).startswith("bronze_"):
                continue
            dataset = source["schema"].removeprefix("bronze_")
            for table in source.get("tables") or []:
                found[(dataset, table["name"])] = table.get("columns") or []
    return found


def _contract_tables(settings: Settings) -> dict[tuple[str, str], dict[str, dict]]:
    """(source, table) -> its declared columns, for every bronze table a load writes."""
    found = {}
    for source in SOURCES:
        for name, contract in lineage.contracts(source, settings).items():
            found[(source, name)] = dict(contract.columns)
        found[(source, QUARANTINE_TABLE)] = dict(QUARANTINE_COLUMNS)
    return found


def differences(
    contract: dict[str, dict], yml: list[dict]
) -> tuple[set[str], set[str], dict[str, tuple[str, str]]]:
    """Columns only in the contract, only in the yml, and (name -> (contract, yml)) types that
    differ where both sides declare one."""
    declared = {c["name"]: c.get("data_type") for c in yml}
    yml_names = set(declared) - LOAD_METADATA
    types = {
        name: (contract[name]["data_type"], declared[name])
        for name in set(contract) & yml_names
        if declared[name] and contract[name].get("data_type")
        and declared[name].lower() != contract[name]["data_type"].lower()
    }  # fmt: skip
    return set(contract) - yml_names, yml_names - set(contract), types


def test_every_bronze_table_is_declared_on_both_sides(tmp_settings: Settings) -> None:
    contracts, ymls = set(_contract_tables(tmp_settings)), set(_yml_tables())
    assert contracts == ymls, (
        f"bronze tables with a contract but no dbt source: {sorted(contracts - ymls)}; "
        f"dbt sources without a contract: {sorted(ymls - contracts)}"
    )


def test_the_contract_and_the_dbt_source_name_the_same_columns(tmp_settings: Settings) -> None:
    ymls = _yml_tables()
    problems = []
    for (source, table), columns in sorted(_contract_tables(tmp_settings).items()):
        only_contract, only_yml, types = differences(columns, ymls.get((source, table), []))
        if only_contract or only_yml or types:
            problems.append(
                f"bronze_{source}.{table}: only in the contract {sorted(only_contract)}, "
                f"only in the dbt source yml {sorted(only_yml)}, types differing {types}"
            )
    assert not problems, "\n".join(problems)


def test_the_yml_lists_only_metadata_a_load_writes(tmp_settings: Settings) -> None:
    """The yml's metadata columns (kept for its tests) exist in bronze: dlt's and the load's,
    or a contract column the loader sets (Kafka's ``_schema_version``)."""
    contracts = _contract_tables(tmp_settings)
    for (source, table), columns in _yml_tables().items():
        written = LOAD_METADATA | set(contracts.get((source, table), {}))
        extra = {c["name"] for c in columns if c["name"].startswith("_")} - written
        assert not extra, f"bronze_{source}.{table}: {sorted(extra)} is no column a load writes"


@pytest.mark.parametrize(
    ("yml", "expected"),
    [
        ([{"name": "a"}, {"name": "_loaded_at"}], (set(), set(), {})),
        ([{"name": "a"}, {"name": "b"}], (set(), {"b"}, {})),
        ([], ({"a"}, set(), {})),
        ([{"name": "a", "data_type": "bigint"}], (set(), set(), {"a": ("text", "bigint")})),
        ([{"name": "a", "data_type": "TEXT"}], (set(), set(), {})),
    ],
)
def test_a_difference_is_found_and_named(yml: list[dict], expected: tuple) -> None:
    """The comparison itself: a column missing on either side or typed otherwise is reported."""
    assert differences({"a": {"data_type": "text"}}, yml) == expected
