"""The bronze columns are declared twice: the loader's contract (ingestion/<source>.py) and the dbt
source yml (dbt_project/models/silver/staging/<source>/_<source>__sources.yml). This keeps them
the same, table by table, for every source in the registry: a column added to one and not the
other fails here, not in a silver model at run time.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ingestion import registry
from ingestion.contracts import QUARANTINE_COLUMNS, QUARANTINE_TABLE
from lakehouse.core.config import Settings
from lakehouse.core.dbt_paths import DBT_PROJECT_DIR


def _sources_yml(source: str) -> dict[str, set[str]]:
    """Table -> declared columns of the dbt source over bronze_<source>."""
    path = Path(DBT_PROJECT_DIR) / "models" / "silver" / "staging" / source
    [declared] = [
        s
        for f in sorted(path.glob("_*__sources.yml"))
        for s in yaml.safe_load(f.read_text())["sources"]
        if s["schema"] == f"bronze_{source}"
    ]
    return {t["name"]: {c["name"] for c in t.get("columns", [])} for t in declared["tables"]}


@pytest.mark.parametrize("source", registry.SOURCES)
def test_the_contract_and_the_dbt_source_declare_the_same_columns(
    source: str, tmp_settings: Settings
) -> None:
    contracts = registry.spec(source).contracts(registry.conf(source, tmp_settings))
    declared = _sources_yml(source)
    assert set(declared) - {QUARANTINE_TABLE} == set(contracts)
    for table, contract in contracts.items():
        # load metadata (``_dlt_load_id``, ``_loaded_at``, ``_source``) is the loader's, not the
        # contract's; every other column is declared on both sides
        # (a contract column the loader sets itself, such as Kafka's ``_schema_version``, is
        # declared on both sides too)
        data_columns = {c for c in declared[table] if not c.startswith("_")}
        assert data_columns == {c for c in contract.columns if not c.startswith("_")}, table
        loader_set = {c for c in contract.columns if c.startswith("_")}
        assert loader_set <= declared[table], f"bronze_{source}.{table}: {loader_set}"


@pytest.mark.parametrize("source", registry.SOURCES)
def test_the_quarantine_table_is_declared_as_the_loader_writes_it(source: str) -> None:
    declared = _sources_yml(source)[QUARANTINE_TABLE]
    assert {c for c in declared if not c.startswith("_")} == {
        c for c in QUARANTINE_COLUMNS if not c.startswith("_")
    }
