"""`dbt build` on the engine: Delta tables in silver and gold, with correct values and contracts."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal

import pytest

from ingestion.sample_data import fx
from lakehouse import catalog, pipeline
from lakehouse.sql import SqlError, query


def test_every_node_of_the_build_succeeded(dbt_built) -> None:
    results = json.loads((dbt_built / "run_results.json").read_text())["results"]
    statuses = {r["unique_id"]: r["status"] for r in results}
    assert statuses, "dbt build ran nothing"
    assert {s for s in statuses.values()} <= {"success", "pass"}
    kinds = {uid.split(".")[0] for uid in statuses}
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
        result = pipeline.dbt(spark, "test", "--select", "stg_fx__rates", check=False)
        assert result.returncode == 1
        failures = json.loads((dbt_built / "run_results.json").read_text())["results"]
        failed = [r["unique_id"] for r in failures if r["status"] == "fail"]
        assert any("units_per_base" in uid for uid in failed)
    finally:
        query(
            spark, "insert overwrite silver.stg_fx__rates select * from silver.stg_fx__rates_backup"
        )
        query(spark, "drop table silver.stg_fx__rates_backup")
