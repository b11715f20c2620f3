"""Gold is right: customer_360 and lifetime value checked against the generator, independently.

The expected values are computed here in Python from the sample world and its FX rates, not
read back from the lake, so a wrong join, a wrong as-of rate or a lost row fails these tests.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
import yaml

from lakehouse.stack import source_systems as systems
from lakehouse.stack.sample_data import fx
from lakehouse.transform.sql import query, records

CENT = Decimal("0.01")
# dbt_project.yml var fx_max_staleness_days: an older rate is no rate.
FX_MAX_STALENESS_DAYS = 5


@pytest.fixture(scope="module")
def world(spark, dbt_built):
    return systems.world(spark, 1)


def _rate_to_reporting(world, day, currency: str) -> Decimal | None:
    """1 unit of ``currency`` in USD on ``day``: the last rate published on or before it, if
    it is at most FX_MAX_STALENESS_DAYS old."""
    if currency == "USD":
        return Decimal(1)
    if currency not in world.currencies:
        return None
    published = fx.published_day(day)
    if published < world.start_date or (day - published).days > FX_MAX_STALENESS_DAYS:
        return None
    units = Decimal(str(world.fx_rate(published, currency))).quantize(Decimal("1e-8"))
    return (Decimal(1) / units).quantize(Decimal("1e-12"), ROUND_HALF_UP)


def _expected_lifetime_values(world) -> dict[int, Decimal]:
    customers = {c["customer_id"] for c in world.customers}
    lines = defaultdict(Decimal)
    for line in world.order_lines:
        if line["quantity"] > 0 and line["unit_price"] >= 0:
            price = Decimal(str(line["unit_price"])).quantize(CENT, ROUND_HALF_UP)
            lines[line["order_id"]] += line["quantity"] * price
    values = defaultdict(Decimal)
    for order in world.orders:
        currency = order["currency"]
        if order["customer_id"] not in customers or not currency or order["status"] == "returned":
            continue
        rate = _rate_to_reporting(world, order["order_ts"].date(), currency)
        if rate is None:
            continue
        amount = (lines[order["order_id"]] * rate).quantize(CENT, ROUND_HALF_UP)
        values[order["customer_id"]] += amount
    return values


def test_customer_360_has_one_row_per_customer(spark, world) -> None:
    expected = {c["customer_id"] for c in world.customers}
    rows = query(spark, "select count(*), count(distinct customer_id) from gold.customer_360")[0]
    assert rows == (len(expected), len(expected))
    assert len(world.customers) > len(expected), "the world must contain duplicate customers"


def test_lifetime_value_matches_an_independent_computation(spark, world) -> None:
    expected = _expected_lifetime_values(world)
    actual = {
        r["customer_id"]: Decimal(str(r["lifetime_value"]))
        for r in records(spark, "select customer_id, lifetime_value from gold.customer_360")
    }
    assert sum(actual.values()) > 0
    wrong = {
        cid: (actual.get(cid), expected.get(cid, Decimal(0)))
        for cid in actual
        if abs(actual[cid] - expected.get(cid, Decimal(0))) > CENT
    }
    assert not wrong, f"{len(wrong)} customers differ, e.g. {list(wrong.items())[:3]}"


def test_customer_360_joins_every_source(spark, world) -> None:
    row = records(
        spark,
        "select count_if(has_crm_contact) as crm, count_if(web_sessions > 0) as web,"
        " count_if(events > 0) as events, count_if(orders > 0) as orders,"
        " count_if(not has_valid_email) as bad_email, count(*) as total"
        " from gold.customer_360",
    )[0]
    contacts = {c["customer_id"] for c in world.crm_contacts
                if c["contact_id"] and "legacy_score" not in c}  # fmt: skip
    assert row["crm"] == len(contacts)
    assert 0 < row["web"] <= row["total"]
    assert 0 < row["events"] <= row["total"]
    assert 0 < row["orders"] <= row["total"]
    assert row["bad_email"] >= world.dirty["customers.bad_email"]


def test_fx_conversion_uses_the_rate_in_force_on_the_order_date(spark, world) -> None:
    weekend = [o for o in world.orders
               if o["currency"] == "EUR" and o["order_ts"].weekday() == 6][:5]  # fmt: skip
    assert weekend, "the world must contain EUR orders on a Sunday"
    for order in weekend:
        rate = query(spark, f"select fx_rate, is_fx_carried_forward from gold.orders"
                            f" where order_id = {order['order_id']}")[0]  # fmt: skip
        expected = _rate_to_reporting(world, order["order_ts"].date(), "EUR")
        assert Decimal(str(rate[0])) == expected
        assert rate[1] is True


def test_orders_without_a_currency_are_flagged_not_zeroed(spark, world) -> None:
    missing = [o["order_id"] for o in world.orders if o["currency"] is None]
    assert missing, "the world must contain orders without a currency"
    ids = ", ".join(map(str, missing))
    rows = query(spark, f"select is_fx_missing, order_amount_reporting, is_valid"
                        f" from gold.orders where order_id in ({ids})")  # fmt: skip
    assert len(rows) == len(missing)
    assert all(r == (True, None, False) for r in rows)


def test_page_view_urls_are_parsed(spark) -> None:
    row = records(
        spark,
        "select url_path_segments, url_query_params, page_url from silver.stg_redshift__page_views"
        " where page_url like '%?%q=%' limit 1",
    )[0]
    params, segments = json.loads(row["url_query_params"]), json.loads(row["url_path_segments"])
    assert params["q"] in {"lamp", "usb cable", "garden hose", "book"}
    assert "/".join(segments) in row["page_url"]


def test_product_perf_adds_up_to_the_orders(spark) -> None:
    perf = query(spark, "select sum(units), sum(revenue_reporting) from gold.product_perf")[0]
    facts = query(
        spark,
        "select sum(l.quantity), sum(cast(l.line_amount * o.fx_rate as decimal(18, 2)))"
        " from silver.stg_snowflake__order_lines l join gold.orders o using (order_id)"
        " where l.invalid_reason = '' and not o.is_orphan_customer and o.currency_code is not null",
    )[0]
    assert perf[0] == facts[0]
    assert abs(Decimal(str(perf[1])) - Decimal(str(facts[1]))) <= CENT * 100


def test_fx_calendar_carries_the_last_publication_a_few_days(spark, world) -> None:
    last_day, last_published = query(
        spark,
        "select max(rate_date), max(published_rate_date) from gold.fx_rates_daily"
        " where currency <> reporting_currency",
    )[0]
    assert str(last_published) == str(fx.published_day(world.end_date))
    assert str(last_day) == str(fx.published_day(world.end_date) + timedelta(days=5))


def _columns(spark, table: str) -> list[str]:
    return list(records(spark, f"select * from {table} limit 1")[0])


def test_fx_staleness_var_is_the_one_this_module_recomputes_with() -> None:
    from lakehouse.core.dbt_paths import DBT_PROJECT_DIR

    project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    assert project["vars"]["fx_max_staleness_days"] == FX_MAX_STALENESS_DAYS


def test_orders_merge_drops_upstream_deletes_and_takes_updates_stamped_at_the_max(
    spark, world
) -> None:
    """Snowflake is a batch replace: an order deleted upstream leaves silver, and a change
    stamped at the newest updated_at already in silver is merged (a watermark would miss both).
    Bronze and silver are put back as they were at the end."""
    from lakehouse.pipeline import steps

    bronze, silver = "bronze_snowflake.orders", "silver.stg_snowflake__orders"
    version = int(records(spark, f"describe history {bronze} limit 1")[0]["version"])
    before = query(spark, f"select count(*), max(updated_at) from {silver}")[0]
    deleted = query(spark, f"select min(order_id) from {silver}")[0][0]
    changed, stamp = query(spark, f"select order_id, updated_at from {silver}"
                                  " order by updated_at desc, order_id limit 1")[0]  # fmt: skip
    assert stamp == before[1] and changed != deleted
    columns = ", ".join(
        f"case when order_id = {changed} then 'cancelled' else status end as status"
        if c == "status" else f"`{c}`"
        for c in _columns(spark, bronze)
    )  # fmt: skip
    try:
        source = f"{bronze} version as of {version}"
        query(spark, f"insert overwrite table {bronze} select {columns} from {source}"
                     f" where order_id <> {deleted}")  # fmt: skip
        assert steps.dbt(spark, "run", "--select", "stg_snowflake__orders").returncode == 0
        merge = _last_merge(spark, silver)
        assert merge["operation"] == "MERGE"
        assert int(merge["numTargetRowsDeleted"]) == 1
        assert int(merge["numTargetRowsUpdated"]) == 1, "only the changed order is rewritten"
        assert int(merge["numTargetRowsInserted"]) == 0
        rows = query(spark, f"select order_id, status, updated_at from {silver}"
                            f" where order_id in ({deleted}, {changed})")  # fmt: skip
        assert rows == [(changed, "cancelled", stamp)]
        assert query(spark, f"select count(*) from {silver}")[0][0] == before[0] - 1
    finally:
        query(spark, f"restore table {bronze} to version as of {version}")
        assert steps.dbt(spark, "run", "--select", "stg_snowflake__orders").returncode == 0
    assert query(spark, f"select count(*), max(updated_at) from {silver}")[0] == before
    status = query(spark, f"select status from {silver} where order_id = {changed}")[0][0]
    expected = next(o["status"] for o in world.orders if o["order_id"] == changed)
    assert status == expected


def _last_merge(spark, table: str) -> dict:
    history = records(spark, f"describe history {table} limit 1")[0]
    metrics = history["operationMetrics"]
    return {"operation": history["operation"],
            **(json.loads(metrics) if isinstance(metrics, str) else metrics)}  # fmt: skip


def test_incremental_models_process_only_the_new_rows(spark, world) -> None:
    """Runs last in this module: it moves the suite's lake to generation 2 of the world."""
    from lakehouse.pipeline import steps

    loads = {
        s.source: s for s in steps.ingest(spark, ["redshift", "kafka", "snowflake"], generation=2)
    }
    new_views = loads["redshift"].tables["page_views"].inserted
    new_events = loads["kafka"].tables["events"].inserted
    assert new_views > 0 and new_events > 0

    models = "stg_redshift__page_views stg_kafka__events stg_snowflake__orders"
    result = steps.dbt(spark, "run", "--select", *models.split(), check=False)
    assert result.returncode == 0

    views = _last_merge(spark, "silver.stg_redshift__page_views")
    assert views["operation"] == "MERGE"
    assert int(views["numSourceRows"]) == new_views, "only the new bronze rows were read"
    assert int(views["numTargetRowsInserted"]) == new_views
    events = _last_merge(spark, "silver.stg_kafka__events")
    assert 0 < int(events["numSourceRows"]) <= new_events
    # Orders: the whole snapshot is read (a batch replace), only what changed is written.
    orders = _last_merge(spark, "silver.stg_snowflake__orders")
    old = {o["order_id"]: o for o in world.orders}
    new = {o["order_id"]: o for o in systems.world(spark, 2).orders}
    assert int(orders["numSourceRows"]) == len(new)
    assert int(orders["numTargetRowsInserted"]) == len(new.keys() - old.keys()) > 0
    assert int(orders["numTargetRowsUpdated"]) == sum(new[k] != old[k] for k in old if k in new)
    assert int(orders["numTargetRowsDeleted"]) == len(old.keys() - new.keys())
    after = query(spark, "select count(*) from silver.stg_snowflake__orders")[0][0]
    assert after == len(new)
