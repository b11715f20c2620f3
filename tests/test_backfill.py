"""Backfill: a publisher corrects an old day's FX rate; one command reloads that day and rebuilds
exactly the downstream rows that depend on it, and nothing else.

The local FX stand-in publishes the correction (its corrections file), the way a real feed
revises a past day. The test restores the original rate afterwards (a second backfill), so the
tests after it see the world as it was.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal

import dlt
import pytest

from ingestion.bronze import pipeline_name
from lakehouse.core.config import Settings
from lakehouse.pipeline import backfill, steps
from lakehouse.stack import source_systems as systems
from lakehouse.stack.sample_data import fx
from lakehouse.transform.sql import query

CURRENCY = "EUR"


def _day(settings: Settings) -> date:
    """A Tuesday of the sample world, long before the loader's 3-day revision window, whose next
    day has its own rate (so no carried-forward day shares the corrected rate)."""
    world = systems.world(settings)
    day = world.start_date + timedelta(days=7)
    while day.weekday() != 1:
        day += timedelta(days=1)
    assert fx.is_business_day(day + timedelta(days=1))
    assert day < world.end_date - timedelta(days=10)
    return day


def _bronze_rate(settings: Settings, day: date) -> Decimal:
    sql = f"select rate from bronze_fx.rates where rate_date = '{day}' and currency = '{CURRENCY}'"
    [(rate,)] = query(settings, sql)
    return Decimal(str(rate))


def _gold(settings: Settings) -> dict[str, dict]:
    """The gold rows a rate can change, keyed, with the columns it can change."""
    rates = query(settings, "select rate_date, currency, to_reporting_rate "
                            "from gold.fx_rates_daily")  # fmt: skip
    orders = query(settings, "select order_id, order_date, currency_code, order_amount_reporting, "
                             "customer_id from gold.orders")  # fmt: skip
    customers = query(settings, "select customer_id, lifetime_value from gold.customer_360")
    return {
        "rates": {(str(d), c): r for d, c, r in rates},
        "orders": {o: (str(d), c, a, customer) for o, d, c, a, customer in orders},
        "customers": dict(customers),
    }


def _watermark(settings: Settings) -> object:
    pipe = dlt.attach(pipeline_name("fx"), pipelines_dir=str(settings.state_dir / "dlt"))
    return pipe.state["sources"]["fx"]["resources"]["rates"]["incremental"]["rate_date"][
        "last_value"
    ]


def _correct(settings: Settings, day: date, rate: float | None) -> None:
    path = systems.fx_corrections_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    corrections = {"USD": {day.isoformat(): {CURRENCY: rate}}} if rate is not None else {}
    path.write_text(json.dumps(corrections))


def test_a_one_day_backfill_changes_only_that_days_rows_downstream(
    spark: Settings, dbt_built, source_systems
) -> None:
    day = _day(spark)
    original = _bronze_rate(spark, day)
    corrected = round(float(original) * 1.25, 6)
    before = _gold(spark)
    watermark = _watermark(spark)
    try:
        _correct(spark, day, corrected)
        # the daily load re-reads only the last 3 days: the correction does not reach bronze
        steps.ingest(spark, ["fx"])
        assert _bronze_rate(spark, day) == original

        result = backfill.backfill(spark, "fx", day, day)
        # exactly that day's rates were read (one row per currency), and the watermark stayed
        assert result.load.rows == len(spark.sources.fx.currencies)
        assert _bronze_rate(spark, day) == Decimal(str(corrected))
        assert _watermark(spark) == watermark
        after = _gold(spark)
    finally:
        _correct(spark, day, None)
        backfill.backfill(spark, "fx", day, day)  # the published rate again

    changed_rates = {k for k in before["rates"] if before["rates"][k] != after["rates"][k]}
    assert changed_rates == {(str(day), CURRENCY)}
    assert set(after["rates"]) == set(before["rates"])

    affected = {o for o, (d, c, *_) in before["orders"].items() if d == str(day) and c == CURRENCY}
    assert affected, "the sample world has no EUR order that day; pick another day"
    changed_orders = {o for o in before["orders"] if before["orders"][o] != after["orders"][o]}
    assert changed_orders == affected
    for order in affected:  # converted at the corrected rate: 1.25x fewer USD per EUR
        old, new = before["orders"][order][2], after["orders"][order][2]
        assert new == pytest.approx(old / Decimal("1.25"), abs=Decimal("0.011"))

    changed_customers = {
        c for c in before["customers"] if before["customers"][c] != after["customers"][c]
    }
    # only customers who placed those orders (and all who have a valid one among them)
    assert changed_customers
    assert changed_customers <= {before["orders"][o][3] for o in affected}
    # and the restore put every row back
    assert _gold(spark) == before
