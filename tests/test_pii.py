"""Personal data leaves bronze only as salted hashes (docs/governance.md, dbt macro ``pii``).

The sample world knows every email, name and phone number it seeded into the source systems.
These tests look for each of them, as typed and normalised, in every text column of every table
the lake serves (silver, gold, and the dq quarantine tables people browse), and prove the scan
itself finds them where they are allowed: bronze.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lakehouse.core import pii
from lakehouse.stack import source_systems as systems
from lakehouse.transform.sql import query

HEX64 = re.compile(r"^[0-9a-f]{64}$")
SERVED_SCHEMAS = ("silver", "gold", "dq")


@pytest.fixture(scope="module")
def world(spark, dbt_built):
    return systems.world(spark, 1)


def _text_columns(settings, table: str) -> list[str]:
    rows = query(settings, f"describe table {table}")
    columns = []
    for name, data_type, *_ in rows:
        if not name or name.startswith("#"):
            break  # partitioning and detail sections follow the columns
        if data_type == "string":
            columns.append(name)
    return columns


def _leaks(settings, table: str) -> dict[str, int]:
    """Column -> how many of its cells hold one of the known personal values."""
    columns = _text_columns(settings, table)
    if not columns:
        return {}
    pairs = ", ".join(f"'{c}', lower(trim(`{c}`))" for c in columns)
    sql = (
        f"select col, count(*) from (select stack({len(columns)}, {pairs}) as (col, val)"
        f" from {table}) as cells join pii_probe.known as known on cells.val = known.v"
        " group by col"
    )
    return dict(query(settings, sql))


@pytest.fixture(scope="module")
def probe(spark, world):
    """The known values as a table the engine can join against."""
    values = ", ".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
                       for v in sorted(world.personal_data()))  # fmt: skip
    query(spark, "create schema if not exists pii_probe")
    query(spark, "create or replace table pii_probe.known using delta as"
                 f" select explode(array({values})) as v")  # fmt: skip
    yield spark
    query(spark, "drop schema pii_probe cascade")


def test_the_scan_finds_seeded_personal_data_in_bronze(probe) -> None:
    """The control: bronze keeps raw values, and the scan sees them (as typed, any case)."""
    assert set(_leaks(probe, "bronze_snowflake.customers")) >= {
        "email",
        "first_name",
        "last_name",
        "phone",
    }
    assert set(_leaks(probe, "bronze_crm.contacts")) >= {"email", "owner"}


def test_no_seeded_personal_value_reaches_silver_gold_or_quarantine(probe) -> None:
    tables = [f"{schema}.{row[1]}" for schema in SERVED_SCHEMAS
              for row in query(probe, f"show tables in {schema}") if not row[2]]  # fmt: skip
    assert any(t.startswith("dq.") for t in tables), "the quarantine tables are scanned too"
    assert {"silver.stg_snowflake__customers", "gold.customer_360"} <= set(tables)
    found = {table: leaks for table in tables if (leaks := _leaks(probe, table))}
    assert found == {}, f"personal data in clear: {found}"


def test_tagged_columns_hold_the_salted_hash_of_the_normalised_value(probe, world) -> None:
    salt = pii.salt(probe)
    rows = query(probe, "select customer_id, email, full_name, phone"
                        " from silver.stg_snowflake__customers")  # fmt: skip
    latest = {}
    for c in sorted(world.customers, key=lambda c: c["updated_at"]):
        latest[c["customer_id"]] = c  # the newest version wins, as in silver
    assert len(rows) == len(latest)
    for customer_id, email, full_name, phone in rows:
        source = latest[customer_id]
        expected_email = source["email"] and pii.digest(source["email"].strip().lower(), salt)
        assert email == (expected_email or None)
        assert full_name == pii.digest(f"{source['first_name']} {source['last_name']}", salt)
        assert phone == pii.digest(source["phone"], salt)
    # Deterministic: the customer's hash in gold is the one in silver (joins still work).
    gold = dict(query(probe, "select customer_id, email from gold.customer_360"))
    assert gold == {r[0]: r[1] for r in rows}


def test_every_tagged_column_of_the_lake_holds_only_hashes(probe, dbt_built: Path) -> None:
    """Tags and SQL agree: a column tagged `meta.pii` that a model forgot to mask is caught."""
    manifest = json.loads((dbt_built / "manifest.json").read_text())
    tagged = [
        (f"{node['schema']}.{node['alias']}", column)
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["schema"] in ("silver", "gold")
        for column, info in node["columns"].items()
        if (info.get("meta") or {}).get("pii")
        or (info.get("config") or {}).get("meta", {}).get("pii")
    ]
    assert len(tagged) >= 10
    assert ("gold.customer_360", "crm_owner_email") in tagged
    for table, column in tagged:
        sql = f"select distinct `{column}` from {table} where `{column}` is not null limit 500"
        values = [r[0] for r in query(probe, sql)]
        assert values, f"{table}.{column} is empty: nothing proves it is masked"
        bad = [v for v in values if not HEX64.match(v)]
        assert not bad, f"{table}.{column} is tagged personal but holds {len(bad)} clear values"


def test_the_salt_never_reaches_artifacts_logs_or_lineage(probe, dbt_built: Path) -> None:
    salt = pii.salt(probe)
    places = [*dbt_built.glob("*.json"), *(dbt_built / "run").rglob("*.sql"),
              *(dbt_built.parent / "logs").glob("dbt.log*"),
              *(probe.home / "lineage").glob("*.jsonl"), *probe.log_dir.glob("*.log")]  # fmt: skip
    assert len(places) > 5
    assert [str(p) for p in places if salt in p.read_text(errors="replace")] == []
