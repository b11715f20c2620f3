"""Backfill: a publisher corrects an old day's FX rate; one command reloads that day and rebuilds
exactly the downstream rows that depend on it, and nothing else.

The local FX stand-in publishes the correction (its corrections file), the way a real feed
revises a past day. The test restores the original rate afterwards (a second backfill), so the
tests after it see the world as it was.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import dlt
import pytest
import requests
import sqlalchemy as sa
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from ingestion.bronze import pipeline_name
from lakehouse.core.config import Settings
from lakehouse.core.dbt_paths import target_dir
from lakehouse.core.storage import delta_table
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


# --- every other source: a window is lost from bronze (deleted by key), the backfill of that
# window brings exactly it back, touches nothing else, leaves the regular load's state as it was
# and rebuilds exactly the dbt nodes downstream of the bronze tables it wrote.

DLT_COLUMNS = ("_dlt_load_id", "_dlt_id")


def _table(settings: Settings, source: str, table: str) -> list[dict]:
    """Bronze rows as dlt wrote them, without dlt's own bookkeeping columns."""
    rows = delta_table(settings.bronze / source / table).to_pyarrow_table().to_pylist()
    return [{k: v for k, v in row.items() if k not in DLT_COLUMNS} for row in rows]


def _keyed(rows: list[dict], key: tuple[str, ...]) -> dict[tuple, dict]:
    keyed = {tuple(row[k] for k in key): row for row in rows}
    assert len(keyed) == len(rows), "bronze holds a key twice"
    return keyed


def _reloaded_only(before: dict, after: dict, reloaded: set) -> None:
    """``after`` holds exactly ``before``'s rows; those in ``reloaded`` were written again by
    the backfill (the same values, a later ``_loaded_at``), every other one is untouched."""
    assert set(after) == set(before)
    for key, row in before.items():
        if key in reloaded:
            assert {**after[key], "_loaded_at": None} == {**row, "_loaded_at": None}, key
            assert after[key]["_loaded_at"] > row["_loaded_at"], key
        else:
            assert after[key] == row, key


def _delete(settings: Settings, source: str, table: str, key: str, values: list) -> None:
    """Lose these rows from bronze, as an accident would (one Delta commit)."""
    literals = ", ".join(f"'{v}'" if isinstance(v, str) else str(v) for v in values)
    delta_table(settings.bronze / source / table).delete(f"{key} in ({literals})")


def _state(settings: Settings, source: str) -> dict:
    """The source's dlt resource state: watermarks and Kafka offsets the regular load resumes
    from."""
    pipe = dlt.attach(pipeline_name(source), pipelines_dir=str(settings.state_dir / "dlt"))
    return json.loads(json.dumps(pipe.state["sources"][source]["resources"], default=str))


def _downstream(manifest: dict, tables: list[str], source: str) -> set[str]:
    """Every node ``dbt build --select source:<source>.<table>+`` must run, computed from the
    manifest's child map (data tests of any selected parent included, as dbt's eager
    selection does) and its unit tests (they run with their model)."""
    children = manifest["child_map"]
    todo = [f"source.{manifest['metadata']['project_name']}.{source}.{t}" for t in tables]
    assert all(t in children for t in todo), todo
    seen: set[str] = set()
    while todo:
        node = todo.pop()
        for child in children.get(node, []):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    units = {uid for uid, unit in manifest.get("unit_tests", {}).items()
             if set(unit["depends_on"]["nodes"]) & seen}  # fmt: skip
    return {n for n in seen if not n.startswith("exposure.")} | units


def _ran_exactly_downstream(result: backfill.BackfillResult, source: str) -> None:
    manifest = json.loads((target_dir() / "manifest.json").read_text())
    ran = json.loads((target_dir() / "run_results.json").read_text())
    # the graph's nodes dbt ran (not the project's on-run hooks, which run with any build)
    nodes = {r["unique_id"] for r in ran["results"]
             if r["unique_id"].split(".")[0] not in ("exposure", "operation")}  # fmt: skip
    expected = _downstream(manifest, result.tables, source)
    assert nodes == expected
    assert {n for n in result.nodes if not n.startswith("exposure.")} == nodes
    assert any(n.startswith("model.") for n in nodes)
    assert result.selectors == [f"source:{source}.{t}+" for t in result.tables]


def _recorded(settings: Settings) -> dict:
    lines = (settings.state_dir / backfill.RECORD).read_text().splitlines()
    return json.loads(lines[-1])


def _window(values: list, low: float, high: float) -> tuple:
    ordered = sorted(set(values))
    return ordered[int(len(ordered) * low)], ordered[int(len(ordered) * high)]


def _crm_records(endpoints: systems.Endpoints, table: str) -> list[dict]:
    """Every record the CRM API serves, read page by page straight from it."""
    records, page, pages = [], 1, 1
    while page <= pages:
        answer = requests.get(f"{endpoints.crm_base_url.rstrip('/')}/crm/v1/{table}",
                              params={"page": page, "page_size": 500},
                              headers={"Authorization": f"Bearer {endpoints.crm_token}"},
                              timeout=30).json()  # fmt: skip
        records += [r for r in answer["data"] if isinstance(r, dict)]
        pages, page = answer["total_pages"], page + 1
    return records


def _instant(value: object) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def test_a_crm_window_reloads_exactly_its_records_and_leaves_the_watermark(
    spark: Settings, dbt_built, source_systems
) -> None:
    [regular] = steps.ingest(spark, ["crm"])
    state = _state(spark, "crm")
    before = _keyed(_table(spark, "crm", "contacts"), ("contact_id",))
    accounts = _keyed(_table(spark, "crm", "accounts"), ("account_id",))
    start, end = _window([r["updated_at"] for r in before.values()], 0.3, 0.6)
    lost = sorted(k[0] for k, r in before.items() if start <= r["updated_at"] < end)
    assert 0 < len(lost) < len(before)
    _delete(spark, "crm", "contacts", "contact_id", lost)

    result = backfill.backfill(spark, "crm", start, end)

    # the window's records are back (upserted again), every other record as it was
    _reloaded_only(before, _keyed(_table(spark, "crm", "contacts"), ("contact_id",)),
                   {(k,) for k in lost})  # fmt: skip
    in_window = {k for k, r in accounts.items() if start <= r["updated_at"] < end}
    _reloaded_only(accounts, _keyed(_table(spark, "crm", "accounts"), ("account_id",)),
                   in_window)  # fmt: skip
    # the source: what it serves in the window, and bronze kept before, are what came back
    served = {r.get("contact_id") for r in _crm_records(source_systems, "contacts")
              if (t := _instant(r.get("updated_at"))) and start <= t < end}  # fmt: skip
    assert {(k,) for k in served} & set(before) == {(k,) for k in lost}
    assert result.load.rows_by_table["contacts"] >= len(lost)
    # the watermark did not move: the next regular load asks and reads what it would have
    assert _state(spark, "crm") == state
    [following] = steps.ingest(spark, ["crm"])
    assert following.read == regular.read
    _ran_exactly_downstream(result, "crm")
    assert {"contacts", "accounts"} <= set(result.tables)
    assert _recorded(spark)["nodes"] == result.nodes


def test_a_redshift_id_range_is_inserted_once_and_rewrites_no_row(
    spark: Settings, dbt_built, source_systems
) -> None:
    state = _state(spark, "redshift")
    before = _keyed(_table(spark, "redshift", "sessions"), ("session_id",))
    low, high = _window([k[0] for k in before], 0.2, 0.4)
    lost = [k[0] for k in before if low <= k[0] < high]
    _delete(spark, "redshift", "sessions", "session_id", lost)
    versions = delta_table(spark.bronze / "redshift" / "page_views").version()

    result = backfill.backfill(spark, "redshift", low, high, mode="ids", tables=["sessions"])

    restored = _keyed(_table(spark, "redshift", "sessions"), ("session_id",))
    _reloaded_only(before, restored, {(k,) for k in lost})
    assert result.load.tables["sessions"].inserted == len(lost)
    assert result.load.tables["sessions"].updated == 0
    # page_views was not asked for: not read, not written
    assert delta_table(spark.bronze / "redshift" / "page_views").version() == versions
    schema = spark.sources.redshift.schema_
    with sa.create_engine(source_systems.redshift_url).connect() as db:
        served = {i for (i,) in db.execute(sa.text(
            f"select session_id from {schema}.sessions where session_id >= :low "
            "and session_id < :high"), {"low": low, "high": high})}  # fmt: skip
    assert {(i,) for i in served} & set(before) == {(i,) for i in lost}
    assert _state(spark, "redshift") == state
    _ran_exactly_downstream(result, "redshift")

    # again, with nothing lost: insert-only, so nothing is added and nothing rewritten
    again = backfill.backfill(spark, "redshift", low, high, mode="ids", tables=["sessions"],
                              rebuild=False)  # fmt: skip
    assert again.load.tables["sessions"].inserted == 0
    assert again.load.tables["sessions"].updated == 0
    assert _keyed(_table(spark, "redshift", "sessions"), ("session_id",)) == restored


def test_a_redshift_time_window_brings_back_only_its_page_views(
    spark: Settings, dbt_built, source_systems
) -> None:
    state = _state(spark, "redshift")
    before = _keyed(_table(spark, "redshift", "page_views"), ("page_view_id",))
    start, end = _window([r["viewed_at"] for r in before.values()], 0.5, 0.7)
    lost = [k[0] for k, r in before.items() if start <= r["viewed_at"] < end]
    _delete(spark, "redshift", "page_views", "page_view_id", lost)

    result = backfill.backfill(spark, "redshift", start, end, tables=["page_views"],
                               rebuild=False)  # fmt: skip

    after = _keyed(_table(spark, "redshift", "page_views"), ("page_view_id",))
    _reloaded_only(before, after, {(k,) for k in lost})
    assert result.load.tables["page_views"].inserted == len(lost)
    assert _state(spark, "redshift") == state
    assert not result.rebuilt and result.nodes == []
    # bronze is as before: rebuild what the deletion and the reload touched, for the next tests
    steps.dbt(spark, "build", "--select", "source:redshift.page_views+", check=True)


def test_a_snowflake_reload_replaces_the_snapshot_and_downstream_only_loads_nothing(
    spark: Settings, dbt_built, source_systems
) -> None:
    before = _table(spark, "snowflake", "products")
    version = delta_table(spark.bronze / "snowflake" / "products").version()
    others = {t: delta_table(spark.bronze / "snowflake" / t).version()
              for t in ("customers", "orders", "order_lines")}  # fmt: skip

    result = backfill.backfill(spark, "snowflake", mode="reload", tables=["products"])

    assert delta_table(spark.bronze / "snowflake" / "products").version() > version
    after = _keyed(_table(spark, "snowflake", "products"), ("product_id",))
    _reloaded_only(_keyed(before, ("product_id",)), after, set(after))  # the snapshot, again
    with sa.create_engine(source_systems.snowflake_url).connect() as db:
        (served,) = db.execute(sa.text("select count(*) from products")).one()
    assert result.load.rows_by_table["products"] + result.load.quarantined == served
    assert {t: delta_table(spark.bronze / "snowflake" / t).version() for t in others} == others
    _ran_exactly_downstream(result, "snowflake")

    version = delta_table(spark.bronze / "snowflake" / "products").version()
    only = backfill.backfill(spark, "snowflake", mode="downstream-only", tables=["products"])
    assert only.load is None and only.tables == ["products"]
    assert delta_table(spark.bronze / "snowflake" / "products").version() == version
    _ran_exactly_downstream(only, "snowflake")


def _kafka_messages(settings: Settings, bootstrap: str) -> list[tuple[int, int, datetime]]:
    """(partition, offset, timestamp) of every message of the topic, read straight from it."""
    topic = settings.sources.kafka.topic
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "test-backfill-truth",
                         "enable.auto.commit": False, "enable.partition.eof": True})  # fmt: skip
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        found, open_ = [], set(partitions)
        while open_:
            for message in consumer.consume(1000, timeout=5):
                if message.error():
                    open_.discard(message.partition())
                    continue
                millis = message.timestamp()[1]
                found.append((message.partition(), message.offset(),
                              datetime.fromtimestamp(millis / 1000, UTC)))  # fmt: skip
        return found
    finally:
        consumer.close()


def test_a_kafka_window_is_replayed_once_and_the_offsets_stay(
    spark: Settings, dbt_built, source_systems
) -> None:
    key = ("kafka_topic", "kafka_partition", "kafka_offset")
    state = _state(spark, "kafka")
    before = _keyed(_table(spark, "kafka", "events"), key)
    start, end = _window([r["kafka_timestamp"] for r in before.values()], 0.3, 0.5)
    lost = [k for k, r in before.items() if start <= r["kafka_timestamp"] < end]
    assert 0 < len(lost) < len(before)
    by_partition: dict[int, list[int]] = {}
    for _, partition, offset in lost:
        by_partition.setdefault(partition, []).append(offset)
    delta_table(spark.bronze / "kafka" / "events").delete(" or ".join(
        f"(kafka_partition = {p} and kafka_offset in ({', '.join(map(str, offsets))}))"
        for p, offsets in by_partition.items()))  # fmt: skip

    result = backfill.backfill(spark, "kafka", start, end)

    restored = _keyed(_table(spark, "kafka", "events"), key)
    _reloaded_only(before, restored, set(lost))
    # the broker: the messages stamped in the window, less those quarantined, came back
    served = {(p, o) for p, o, t in _kafka_messages(spark, source_systems.kafka_bootstrap)
              if start <= t < end}  # fmt: skip
    assert served & {(p, o) for _, p, o in before} == {(p, o) for _, p, o in lost}
    assert result.load.tables["events"].inserted == len(lost)
    assert _state(spark, "kafka") == state  # the offsets the loader resumes from
    _ran_exactly_downstream(result, "kafka")

    again = backfill.backfill(spark, "kafka", start, end, rebuild=False)
    assert again.load.tables["events"].inserted == 0
    assert again.load.tables["events"].updated == 0
    assert _keyed(_table(spark, "kafka", "events"), key) == restored  # nothing rewritten
    assert _state(spark, "kafka") == state
