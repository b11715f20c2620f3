"""`dbt build` on the engine: Delta tables in silver and gold, with correct values and contracts."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from lakehouse.pipeline import steps
from lakehouse.stack.sample_data import fx
from lakehouse.transform import catalog
from lakehouse.transform.sql import SqlError, query, records

# The session's whole build's run_results.json, kept aside by conftest's dbt_built fixture.
BUILT_RESULTS = "run_results.session-build.json"


def test_every_node_of_the_build_succeeded(dbt_built) -> None:
    results = json.loads((dbt_built / BUILT_RESULTS).read_text())["results"]
    statuses = {r["unique_id"]: r["status"] for r in results}
    assert statuses, "dbt build ran nothing"
    # Exposures (models/exposures.yml) are nodes of `dbt build` that run nothing: dbt reports
    # them `no-op`. Every other node ran, and passed or warned.
    exposures = {uid: s for uid, s in statuses.items() if uid.startswith("exposure.")}
    assert set(exposures.values()) == {"no-op"}, exposures
    ran = {uid: s for uid, s in statuses.items() if uid not in exposures}
    assert set(ran.values()) <= {"success", "pass", "warn"}, ran
    # the sample data is dirty on purpose: the warn-severity contracts must notice
    assert "warn" in statuses.values()
    kinds = {uid.split(".")[0] for uid in ran}
    assert {"model", "test", "unit_test"} <= kinds


def test_dbt_tables_are_delta(spark, dbt_built) -> None:
    for table in ("silver.stg_fx__rates", "gold.fx_rates_daily"):
        assert catalog.table_format(spark, table) == "delta"


def test_bronze_source_registered_over_dlt_path(spark, dbt_built) -> None:
    detail = catalog.table_detail(spark, "bronze_fx.rates")
    assert detail["format"] == "delta"
    assert detail["location"].removeprefix("file:") == str(spark.bronze_dir / "fx" / "rates")


def test_silver_matches_bronze(spark, dbt_built) -> None:
    bronze = query(spark, "select count(*) from bronze_fx.rates")[0][0]
    silver = query(
        spark, "select count(*), count(distinct quote_currency) from silver.stg_fx__rates"
    )
    assert silver[0] == (bronze, len(spark.sources.fx.currencies))


def test_gold_is_dense_daily_with_carried_forward_weekends(spark, dbt_built) -> None:
    first, last, days, currencies, rows = query(
        spark,
        "select min(rate_date), max(rate_date), count(distinct rate_date),"
        " count(distinct currency), count(*) from gold.fx_rates_daily",
    )[0]
    assert days == (date.fromisoformat(str(last)) - date.fromisoformat(str(first))).days + 1
    assert currencies == len(spark.sources.fx.currencies) + 1  # plus the reporting currency
    assert rows == days * currencies

    # the first Saturday in the window converts with the Friday rate, and says so
    saturday = date.fromisoformat(str(first))
    while saturday.weekday() != 5:
        saturday += timedelta(days=1)
    friday = saturday - timedelta(days=1)
    row = query(
        spark,
        "select units_per_reporting, published_rate_date, is_carried_forward"
        f" from gold.fx_rates_daily where currency = 'EUR' and rate_date = '{saturday}'",
    )[0]
    assert Decimal(str(row[0])) == Decimal(str(fx.rate(friday, "EUR"))).quantize(Decimal("1e-8"))
    assert str(row[1]) == str(friday)
    assert row[2] is True


def test_reporting_currency_converts_at_one(spark, dbt_built) -> None:
    rates = query(
        spark, "select distinct to_reporting_rate from gold.fx_rates_daily where currency = 'USD'"
    )
    assert [Decimal(str(r[0])) for r in rates] == [Decimal(1)]


def test_gold_contract_refuses_nulls(spark, dbt_built) -> None:
    """The enforced contract's not_null constraints hold on the Delta table itself."""
    with pytest.raises(SqlError, match="DELTA_VIOLATE_CONSTRAINT_WITH_VALUES"):
        query(
            spark,
            "insert into gold.fx_rates_daily select rate_date, null, reporting_currency,"
            " units_per_reporting, to_reporting_rate, published_rate_date, is_carried_forward"
            " from gold.fx_rates_daily limit 1",
        )


def test_every_gold_contract_declares_its_not_null_columns_on_the_table(spark, dbt_built) -> None:
    """The CTAS of a contract model declares one CHECK constraint over exactly the columns its
    contract says are not null (macros/constraints.sql), so Delta refuses a null on every write,
    the CTAS's own included."""
    manifest = json.loads((dbt_built / "manifest.json").read_text())
    contracts = [
        n for n in manifest["nodes"].values()
        if n["resource_type"] == "model" and n["config"]["contract"]["enforced"]
        and n["config"]["enabled"] and n["schema"] == "gold"
    ]  # fmt: skip
    assert len(contracts) >= 4
    for node in contracts:
        not_null = {
            name for name, column in node["columns"].items()
            if any(c["type"] == "not_null" for c in column["constraints"])
        }  # fmt: skip
        assert not_null, node["name"]
        props = dict(query(spark, f"show tblproperties gold.{node['alias']}"))
        check = props["delta.constraints.contract_not_null"]
        columns = {c.removesuffix(" is not null") for c in check.split(" is not null and ")}
        assert columns == not_null, node["name"]


def test_a_bronze_table_missing_from_the_catalog_is_registered_again(spark, dbt_built) -> None:
    """The on-run-start hook creates only what the catalog lacks, and does create it."""
    count = query(spark, "select count(*) from bronze_fx.rates")[0][0]
    query(spark, "drop table bronze_fx.rates")  # external: the Delta files stay
    steps.dbt(spark, "run-operation", "register_bronze_sources")
    assert query(spark, "select count(*) from bronze_fx.rates")[0][0] == count > 0
    assert catalog.table_format(spark, "bronze_fx.rates") == "delta"


def test_a_failing_data_test_fails_the_build(spark, dbt_built) -> None:
    """Severity `error` stops the build: a negative rate in silver fails `dbt test`."""
    query(
        spark,
        "create or replace table silver.stg_fx__rates_backup using delta"
        " as select * from silver.stg_fx__rates",
    )
    try:
        query(
            spark,
            "update silver.stg_fx__rates set units_per_base = -1 where quote_currency = 'EUR'",
        )
        result = steps.dbt(spark, "test", "--select", "stg_fx__rates", check=False)
        assert result.returncode == 1
        failures = json.loads((dbt_built / "run_results.json").read_text())["results"]
        failed = [r["unique_id"] for r in failures if r["status"] == "fail"]
        assert any("units_per_base" in uid for uid in failed)
    finally:
        query(
            spark, "insert overwrite silver.stg_fx__rates select * from silver.stg_fx__rates_backup"
        )
        query(spark, "drop table silver.stg_fx__rates_backup")


INJECTED = [
    "silver.stg_snowflake__customers",
    "silver.stg_snowflake__orders",
    "gold.fx_rates_daily",
]


def test_injected_bad_rows_fail_or_warn_and_land_in_quarantine(spark, dbt_built) -> None:
    """A duplicate key, a bad email, an orphan order and a missing FX date each trip their test."""
    for table in INJECTED:
        query(spark, f"create or replace table {table}_backup using delta as select * from {table}")
    try:
        first = query(spark, "select min(customer_id) from silver.stg_snowflake__customers")[0][0]
        query(spark, "insert into silver.stg_snowflake__customers select * from"
                     f" silver.stg_snowflake__customers where customer_id = {first}")  # fmt: skip
        query(
            spark,
            "insert into silver.stg_snowflake__customers (customer_id, email, has_valid_email,"
            " country_code) values (990000001, sha2('not-an-email@@example', 256), false, 'US')",
        )
        query(spark, "insert into silver.stg_snowflake__orders (order_id, customer_id,"
                     " currency_code, status, invalid_reason)"
                     " values (990000001, 990000002, 'EUR', 'placed', '')")  # fmt: skip
        gap = query(spark, "select date_add(min(rate_date), 10) from gold.fx_rates_daily")[0][0]
        query(spark, f"delete from gold.fx_rates_daily where rate_date = '{gap}'")

        selection = ["stg_snowflake__customers", "stg_snowflake__orders", "fx_rates_daily"]
        result = steps.dbt(spark, "test", "--select", *selection, check=False)
        assert result.returncode == 1, "an error-severity failure must fail the run"
        results = json.loads((dbt_built / "run_results.json").read_text())
        status = {r["unique_id"].split(".")[2]: r["status"] for r in results["results"]}

        def status_of(fragment: str) -> str:
            return next(s for name, s in status.items() if fragment in name)

        assert status_of("unique_stg_snowflake__customers_customer_id") == "fail"
        assert status_of("in_set_stg_snowflake__customers_has_valid_email") == "warn"
        assert status_of("relationships_stg_snowflake__orders_customer_id") == "warn"
        assert status_of("data_for_every_n_datepart") == "fail"

        invocation = results["metadata"]["invocation_id"]
        sql = f"select * from dq.test_results where invocation_id = '{invocation}'"
        recorded = {r["test_name"]: r for r in records(spark, sql)}
        assert len(recorded) >= 4

        def quarantined(fragment: str) -> list[dict]:
            name = next(n for n in recorded if fragment in n)
            return records(spark, f"select * from {recorded[name]['failures_table']}")

        emails = quarantined("in_set_stg_snowflake__customers_has_valid_email")
        assert any(r["customer_id"] == 990000001 for r in emails)
        orphans = quarantined("relationships_stg_snowflake__orders_customer_id")
        assert any(990000002 in r.values() for r in orphans)
        gaps = quarantined("data_for_every_n_datepart")
        assert [str(r["missing_period"]) for r in gaps] == [str(gap)]
    finally:
        for table in INJECTED:
            query(spark, f"insert overwrite {table} select * from {table}_backup")
            query(spark, f"drop table {table}_backup")


def test_report_counts_every_table_of_every_layer(spark, dbt_built) -> None:
    counts = {f"{c.schema}.{c.table}": c for c in catalog.table_counts(spark)}
    assert {c.layer for c in counts.values()} == {"bronze", "silver", "gold"}
    assert {"gold.customer_360", "silver.stg_kafka__events", "bronze_kafka.events"} <= set(counts)
    for name in ("gold.customer_360", "bronze_crm.contacts"):
        assert counts[name].rows == query(spark, f"select count(*) from {name}")[0][0] > 0


def test_quarantine_tables_are_delta_tables(spark, dbt_built) -> None:
    """Every test that stores its failing rows (`store_failures_as: table`) wrote a Delta table
    in schema dq, with a transaction log, as docs/transformation.md says."""
    manifest = json.loads((dbt_built / "manifest.json").read_text())
    stored = sorted(
        n["relation_name"]
        for n in manifest["nodes"].values()
        if n["resource_type"] == "test" and n["config"].get("store_failures_as") == "table"
        and n["config"]["enabled"]
    )  # fmt: skip
    assert len(stored) >= 5, stored
    for relation in stored:
        table = relation.replace("`", "")
        assert table.startswith("dq."), table
        detail = catalog.table_detail(spark, table)
        assert detail["format"] == "delta", f"{table} is {detail['format']}"
        location = Path(detail["location"].removeprefix("file:"))
        assert (location / "_delta_log").is_dir(), f"{table} has no Delta log at {location}"
