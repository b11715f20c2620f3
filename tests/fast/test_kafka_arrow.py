"""The Kafka loader's batch path (orjson, whole columns as Arrow) decides as the per-row guard.

The loader parses a consumed batch with orjson and vouches for whole columns at once, handing
dlt one Arrow table; whatever it cannot vouch for goes through ``guard_one``, message by message.
These tests hold the batch path to the per-row guard's outcome for any batch of messages: the
same rows in bronze with the same values (and dlt's key-hash ``_dlt_id``), the same quarantine
records (id, reason, payload, coordinates), the same counts. The end-to-end tests
(test_hostile_records, test_ingestion) then run it against a real broker and Delta.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from confluent_kafka import TIMESTAMP_CREATE_TIME, Message
from dlt.common.normalizers.json.helpers import get_row_hash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_record_properties import (
    NOW,
    POLICIES,
    floats,
    integers,
    is_quarantine,
    iso_like,
    messages,
    texts,
)

from ingestion import kafka_events
from ingestion.contracts import (
    ISO_Z,
    ArrowRows,
    GuardStats,
    SchemaContractViolation,
    _as_timestamp,
    _iso_z,
    guard_one,
)
from lakehouse.core.config import SchemaPolicy
from lakehouse.stack.sample_data.world import World

LOAD_ID = "1700000000.1"
BATCHES = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))

# events that mostly pass the contract, so the batch path vouches for whole columns; their types
# and versions mostly the registry's (ingestion/event_schemas), v2's fields on any of them
ascii_text = st.text(st.characters(codec="ascii"), max_size=10)
event_types = st.sampled_from(kafka_events.REGISTRY.event_types()) | ascii_text
plausible_events = st.fixed_dictionaries(
    {
        "event_id": ascii_text | texts,
        "event_type": event_types,
        "event_time": iso_like | st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat),
    },
    optional={
        "customer_id": integers,
        "session_id": st.none() | st.integers(min_value=0, max_value=2**40),
        "order_id": st.none() | integers | floats,
        "page_url": st.none() | ascii_text | texts | integers | floats,
        "amount": st.none() | floats | integers,
        "currency": st.none() | ascii_text,
        "currency_code": st.none() | ascii_text | integers,
        "payment_method": st.sampled_from(["card", "paypal", "gift_card", None, "cash", ""]),
        "mystery": st.integers(),
    },
)
version = st.sampled_from([b"1", b"2", b"3", b"01", b"", "\u00e9".encode(), b"\xff"])
# what producers put in the headers: mostly one schema_version, at times none, two, or others
version_headers = st.one_of(
    version.map(lambda v: [("schema_version", v)]),
    version.map(lambda v: [("schema_version", v)]),
    st.none(),
    st.lists(
        st.tuples(
            st.sampled_from(["schema_version", "trace", "Schema_Version"]), st.none() | version
        ),
        max_size=3,
    ),
)


@st.composite
def plausible_messages(draw: st.DrawFn, offset: int) -> Message:
    event = draw(plausible_events)
    return Message(
        topic="events", partition=draw(st.integers(0, 2)), offset=offset,
        key=draw(st.none() | st.sampled_from([b"42", b"\xff", "\u00e9".encode()])),
        value=json.dumps(event).encode(), headers=draw(version_headers),
        timestamp=(TIMESTAMP_CREATE_TIME, draw(st.sampled_from([-1, 0, 1735700000123, 2**62]))),
    )  # fmt: skip


@st.composite
def batches(draw: st.DrawFn) -> list[Message]:
    size = draw(st.integers(min_value=1, max_value=12))
    return [draw(plausible_messages(i) | messages()) for i in range(size)]


def per_row(batch: list[Message], policy: SchemaPolicy) -> tuple[list[Any], GuardStats]:
    """What the per-row guard makes of each message, in order."""
    stats, out = GuardStats(), []
    for message in batch:
        out += guard_one(message, source="kafka", contract=kafka_events.EVENTS, policy=policy,
                         stats=stats, loaded_at=NOW, parse=kafka_events._parse,
                         origin=kafka_events.origin(message))  # fmt: skip
    return out, stats


def batched(batch: list[Message], policy: SchemaPolicy) -> tuple[list[dict], list, GuardStats]:
    """What the loader's batch path makes of the batch: bronze rows (as Arrow, or as dicts for
    rows bringing new columns under ``schema_on_read``), quarantine records."""
    stats = GuardStats()
    rows = ArrowRows(kafka_events.EVENTS, "kafka", stats, NOW, kafka_events.PRIMARY_KEY, LOAD_ID)
    others = kafka_events.guard_batch(batch, rows, policy, stats, NOW)
    evolving = [item for item in others if isinstance(item, dict)]
    for row in evolving:
        assert row.keys() - set(rows.schema.names), "only rows with new columns stay dicts"
        row.update(_dlt_load_id=LOAD_ID, _dlt_id=get_row_hash(row, list(kafka_events.PRIMARY_KEY)))
    bronze = (rows.table().to_pylist() if len(rows) else []) + evolving
    return bronze, [item for item in others if not isinstance(item, dict)], stats


def by_coordinates(row: dict) -> tuple:
    return row["kafka_partition"], row["kafka_offset"]


@BATCHES
@given(batch=batches(), policy=st.sampled_from(POLICIES))
def test_the_batch_path_decides_as_the_per_row_guard(batch: list[Message], policy) -> None:
    assert_same_outcome(batch, policy)


def test_the_sample_worlds_events_go_to_arrow_whole_and_as_before() -> None:
    """The generated stream (some malformed, duplicated, late, with unknown columns): all its
    clean events are vouched for a whole column at a time, and end as the per-row guard says."""
    world = World(scale=0.002, dirty_share=0.05)
    batch = [Message(topic="events", partition=i % 3, offset=i // 3, key=key.encode(), value=value,
                     headers=headers, timestamp=(TIMESTAMP_CREATE_TIME, 1735700000000 + i))
             for i, (key, value, headers) in enumerate(world.events())]  # fmt: skip
    policy = POLICIES[0]
    stats = GuardStats()
    rows = ArrowRows(kafka_events.EVENTS, "kafka", stats, NOW, kafka_events.PRIMARY_KEY, LOAD_ID)
    kafka_events.guard_batch(batch, rows, policy, stats, NOW)
    clean = sum(not is_quarantine(row) for row in per_row(batch, policy)[0])
    assert sum(chunk.num_rows for chunk in rows.chunks) == clean == len(rows) > 1000
    assert rows.ids == [], "none went row by row"
    loaded = pa.concat_tables(rows.chunks).select(["event_type", "_schema_version"]).to_pylist()
    versions = Counter((row["event_type"], row["_schema_version"]) for row in loaded)
    both = {("click", "1"), ("checkout_started", "1"), ("order_placed", "1"), ("order_placed", "2")}
    assert set(versions) == both, "both versions of orders, vouched a whole column at a time"
    assert_same_outcome(batch, policy)


def assert_same_outcome(batch: list[Message], policy: SchemaPolicy) -> None:
    try:
        expected, expected_stats = per_row(batch, policy)
    except SchemaContractViolation:
        try:
            batched(batch, policy)
        except SchemaContractViolation:
            return
        raise AssertionError("the per-row guard failed the load, the batch path did not") from None
    bronze, quarantined, stats = batched(batch, policy)

    clean = [row for row in expected if not is_quarantine(row)]
    assert sorted(map(by_coordinates, bronze)) == sorted(map(by_coordinates, clean))
    for got, want in zip(sorted(bronze, key=by_coordinates), sorted(clean, key=by_coordinates),
                         strict=True):  # fmt: skip
        for name in {*kafka_events.EVENTS.columns, *want}:
            assert got.get(name) == want.get(name), (name, got.get(name), want.get(name))
            assert type(got.get(name)) is type(want.get(name)) or isinstance(got[name], datetime)
        assert got["_source"] == "kafka" and got["_loaded_at"] == NOW
        assert got["_dlt_load_id"] == LOAD_ID
        assert got["_dlt_id"] == get_row_hash(want, subset=list(kafka_events.PRIMARY_KEY))

    assert [q.data for q in quarantined] == [q.data for q in expected if is_quarantine(q)]
    for counts in ("read", "passed", "quarantined", "dropped_values", "occurrences"):
        assert getattr(stats, counts) == getattr(expected_stats, counts), counts


def message(value: bytes, millis: int = 0) -> Message:
    return Message(topic="t", partition=0, offset=0, value=value,
                   headers=[("schema_version", b"1")],
                   timestamp=(TIMESTAMP_CREATE_TIME, millis))  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(value=floats | integers)
def test_orjson_reads_a_double_as_pythons_json_does(value) -> None:
    """A float the batch path reads with orjson is the double Python's json reads."""
    text = json.dumps({"event_type": "click", "amount": value})
    events, *_ = kafka_events._parsed([message(text.encode())])
    if events and isinstance(events[0]["amount"], float):
        assert events[0]["amount"] == float(json.loads(text)["amount"])


@settings(max_examples=300, deadline=None)
@given(millis=st.integers(min_value=-1, max_value=kafka_events.EXACT_MILLIS - 1))
def test_arrow_timestamps_are_the_per_row_guards(millis: int) -> None:
    m = message(b"{}", millis)
    arrow = kafka_events._coordinates([m])["kafka_timestamp"].to_pylist()[0]
    assert arrow == kafka_events._timestamp(m)


utc_iso = st.builds(
    lambda at, spec: at.isoformat(timespec=spec) + "Z",
    st.datetimes(),
    st.sampled_from(["seconds", "milliseconds", "microseconds"]),
)


@settings(max_examples=500, deadline=None)
@given(text=st.from_regex(ISO_Z, fullmatch=True) | utc_iso)
def test_arrow_reads_a_utc_iso_timestamp_as_fromisoformat(text: str) -> None:
    """What Arrow parses of an ``ISO_Z`` column is what the per-row guard makes of each value;
    what it refuses, the guard parses itself."""
    parsed = _iso_z([text, None])
    try:
        expected = _as_timestamp(text)
    except ValueError:
        assert parsed is None, text
        return
    assert parsed is not None and parsed.to_pylist() == [expected, None], text
