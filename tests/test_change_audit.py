"""The gold change audit on the suite's engine and lake: two platform builds between which the
source rows of exactly 6 customers changed; ``lakehouse diff customer_360`` lists exactly those
6 keys with exactly the columns their change reaches, and the build recorded the same in
ops.table_changes. A build that rebuilt nothing records nothing. The bronze table is restored
(and gold rebuilt) afterwards, so the modules after this one see the lake as it was.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from deltalake import DeltaTable

from lakehouse.cli.main import main
from lakehouse.core.config import Settings
from lakehouse.observability import table_changes
from lakehouse.pipeline import steps
from lakehouse.transform.sql import query, records

BRONZE = "bronze_snowflake.customers"


def _invocation() -> str:
    return json.loads((steps.target_dir() / "run_results.json").read_text())["metadata"][
        "invocation_id"
    ]


def _rows_of(settings: Settings, build_id: str) -> list[dict[str, Any]]:
    return [r for r in table_changes.read(settings) if r["build_id"] == build_id]


@pytest.fixture(scope="module")
def changed(spark: Settings, ingested: list) -> Iterator[dict[int, set[str]]]:
    """Two platform builds; between them 3 customers' last names and 3 customers' countries
    changed in bronze. Yields each changed key with the gold columns its change reaches."""
    steps.build(spark)  # the first: everything on a fresh lake, else what changed since
    picked = query(spark, """
        select customer_id from gold.customer_360
        where full_name is not null and country_code in ('US', 'GB', 'FR', 'JP')
          and coalesce(profile_issues, '') = ''
        order by customer_id limit 6""")  # fmt: skip
    ids = [r[0] for r in picked]
    assert len(ids) == 6
    renamed, moved = ids[:3], ids[3:]
    location = f"{spark.bronze / 'snowflake' / 'customers'}"
    before = DeltaTable(location).version()
    query(spark, f"update {BRONZE} set last_name = concat(coalesce(last_name, ''), 'x') "
                 f"where customer_id in ({', '.join(map(str, renamed))})")  # fmt: skip
    query(spark, f"update {BRONZE} set country = 'DE' "
                 f"where customer_id in ({', '.join(map(str, moved))})")  # fmt: skip
    steps.build(spark)  # the second: snowflake's downstream, customer_360 with it
    yield {**{i: {"full_name"} for i in renamed}, **{i: {"country_code"} for i in moved}}
    query(spark, f"restore table {BRONZE} to version as of {before}")
    steps.build(spark)


def test_the_diff_lists_exactly_the_changed_customers_and_their_columns(
    spark: Settings, changed: dict[int, set[str]], capsys: pytest.CaptureFixture
) -> None:
    capsys.readouterr()
    assert main(["diff", "customer_360", "--json", "--examples", "50"]) == 0
    diff = json.loads(capsys.readouterr().out)
    assert diff["table"] == "gold.customer_360"
    assert diff["key"] == ["customer_id"]
    assert (diff["added"], diff["removed"], diff["changed"]) == (0, 0, 6)
    assert diff["columns"] == {"country_code": 3, "full_name": 3}
    shown = {e["key"]["customer_id"]: set(e["columns"]) for e in diff["examples"]}
    assert shown == changed
    assert [e["key"]["customer_id"] for e in diff["examples"]] == sorted(changed)
    for example in diff["examples"]:
        old, new = next(iter(example["columns"].values()))
        assert old != new
    # the same, recomputed on the engine by Delta time travel
    gold = spark.warehouse / "gold.db" / "customer_360"
    frm, to = diff["from_version"], diff["to_version"]
    assert (frm, to) == table_changes.default_versions(gold)
    differing = records(
        spark,
        f"""
        select b.customer_id from delta.`{gold.spark}` version as of {frm} b
        join delta.`{gold.spark}` version as of {to} a on a.customer_id = b.customer_id
        where not (a.full_name <=> b.full_name) or not (a.country_code <=> b.country_code)""",
    )
    assert {r["customer_id"] for r in differing} == set(changed)


def test_the_build_recorded_the_change_in_ops(
    spark: Settings, changed: dict[int, set[str]]
) -> None:
    rows = _rows_of(spark, _invocation())
    by_table = {r["table"]: r for r in rows}
    assert set(by_table) <= {"gold.customer_360", "gold.orders", "gold.product_perf",
                             "gold.fx_rates_daily"}  # fmt: skip
    row = by_table["gold.customer_360"]
    assert (row["added"], row["removed"], row["changed"]) == (0, 0, 6)
    assert json.loads(row["columns"]) == {"country_code": 3, "full_name": 3}
    assert row["key"] == "customer_id"
    assert row["change_share"] == pytest.approx(6 / row["rows_before"])
    assert row["alert_share"] == spark.audit.alert_share
    assert row["over_threshold"] is False
    keys = {e["key"]["customer_id"] for e in json.loads(row["examples"])}
    assert keys == set(changed)
    assert query(spark, "select count(*) from ops.table_changes")[0][0] >= len(rows)


def test_a_build_that_rebuilt_nothing_records_nothing(spark: Settings, changed) -> None:
    steps.build(spark)
    assert _rows_of(spark, _invocation()) == []
