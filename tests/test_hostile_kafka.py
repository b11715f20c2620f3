"""Hostile Kafka messages through the session's real broker: every one ends in exactly one of
bronze or quarantine, checked by its coordinates, with the bytes that were received.

The hostile records that need no server (CRM answers, SQL rows) are the fast tier's
(tests/fast/test_hostile_records.py), whose helpers these tests share.
"""

from __future__ import annotations

import base64
import json
import uuid

from confluent_kafka import Producer
from test_hostile_records import QUARANTINE, raw_bytes, rows  # tests/fast (pyproject's pythonpath)

from ingestion import bronze
from ingestion.contracts import QUARANTINE_TABLE, GuardStats
from ingestion.kafka_events import kafka_source
from lakehouse.stack.services import kafka

# ---- Kafka --------------------------------------------------------------------------------------


def event(n: int, **fields) -> dict:
    base = {"event_id": f"ev-{n}", "event_type": "click", "customer_id": n,
            "event_time": "2025-01-02T03:04:05+00:00", "session_id": n, "page_url": "/p",
            "amount": 1.5, "currency": "EUR"}  # fmt: skip
    return {**base, **fields}


def js(value) -> bytes:
    return json.dumps(value).encode()


def _without(n: int, name: str) -> dict:
    return {k: v for k, v in event(n).items() if k != name}


WRONG_TYPES = {  # one message per column, each with a value its type cannot hold
    "event_id": ["a"], "event_type": {"x": 1}, "customer_id": "abc", "event_time": "not a time",
    "session_id": 1.5, "order_id": True, "page_url": ["/p"], "amount": "ten",
    "currency": {"code": "EUR"},
}  # fmt: skip
# What refuses each: the event type's schema (JSON types), the registry (no such event type), or
# the bronze guard (a string the schema allows that is no timestamp)
WRONG_TYPE_REASON = {"event_type": "unknown event type", "event_time": "bad value for event_time"}
V1 = [("schema_version", b"1")]
V2 = [("schema_version", b"2")]
ORDER = {"event_type": "order_placed", "order_id": 7, "page_url": None}
DEEP = b'{"a":' * 5000 + b"1" + b"}" * 5000
# (label, key, value, headers, expected: "bronze" or the quarantine reason's start)
KAFKA_CASES: list[tuple[str, bytes | None, bytes | None, list | None, str]] = [
    *[(f"good {n}", f"c{n}".encode(), js(event(n)), None, "bronze") for n in range(9)],
    ("tombstone", b"k-tomb", None, None, "tombstone"),
    ("tombstone, null key", None, None, None, "tombstone"),
    ("non-UTF-8 bytes", b"k", b"\xff\xfe\x00\x81garbage", None, "malformed record"),
    ("invalid JSON", b"k", b'{"event_id": ', None, "malformed record"),
    ("JSON array", b"k", b"[1, 2, 3]", None, "malformed record"),
    ("JSON number", b"k", b"42", None, "malformed record"),
    ("JSON string", b"k", b'"hello"', None, "malformed record"),
    ("JSON null", b"k", b"null", None, "malformed record"),
    ("empty value", b"k", b"", None, "malformed record"),
    ("nested 5000 deep", b"k", DEEP, None, "malformed record"),
    ("1 MB event", b"k", js(event(100, page_url="/" + "x" * 1_000_000)), None, "bronze"),
    ("1 MB of junk", b"k", b"\x00junk" * 200_000, None, "malformed record"),
    (
        "object in a text field",
        b"k",
        js(event(101, page_url={"a": 1})),
        None,
        "schema violation: click v1: page_url: type: {'a': 1} is not of type 'string', 'null'",
    ),
    (
        "int beyond int64",
        b"k",
        js(event(102, customer_id=2**64)),
        None,
        "schema violation: click v1: customer_id: maximum: ",
    ),
    (
        "lone surrogate escape in the event type",
        b"k",
        js(event(103, event_type="\ud800")),
        None,
        "unknown event type",
    ),
    ("lone surrogate escape", b"k", js(event(109, page_url="\ud800")), None, "bad value"),
    ("NaN", b"k", js(event(104, amount=float("nan"))), None, "bad value"),
    ("Infinity", b"k", js(event(105, amount=float("inf"))), None, "bad value"),
    ("dlt's PUA marker", b"k", js(event(106, page_url="\uf026123")), None, "bad value"),
    (
        "event_time in year 1",
        b"k",
        js(event(108, event_time="0001-01-01T00:00:00-01:00")),
        None,
        "bronze",
    ),
    (
        "event_time out of range",
        b"k",
        js(event(107, event_time="0001-01-01T00:00:00+01:00")),
        None,
        "bad value",
    ),
    *[
        (
            f"wrong type: {c}",
            b"k",
            js(event(110 + i, **{c: v})),
            None,
            WRONG_TYPE_REASON.get(c, f"schema violation: click v1: {c}: type: "),
        )
        for i, (c, v) in enumerate(WRONG_TYPES.items())
    ],
    (
        "an int in a text column",
        b"k",
        js(event(120, event_id=120)),
        None,
        "schema violation: click v1: event_id: type: 120 is not of type 'string'",
    ),
    (
        "missing event_id",
        b"k",
        js(_without(121, "event_id")),
        None,
        "schema violation: click v1: event_id: required: 'event_id' is a required property",
    ),
    (
        "missing event_time",
        b"k",
        js(_without(122, "event_time")),
        None,
        "schema violation: click v1: event_time: required",
    ),
    (
        "empty event_id",
        b"k",
        js(event(128, event_id="")),
        None,
        "schema violation: click v1: event_id: minLength",
    ),
    # versions: the schema_version header names the version of the event type's schema
    (
        "order v2",
        b"k",
        js(event(130, **ORDER, currency_code="EUR", payment_method="card")),
        V2,
        "bronze",
    ),
    ("order v1", b"k", js(event(131, **ORDER)), V1, "bronze"),
    (
        "a v2 field on a v1 order: schemas are open",
        b"k",
        js(event(132, **ORDER, payment_method="card")),
        V1,
        "bronze",
    ),
    (
        "order v2, invalid",
        b"k",
        js(event(133, **ORDER, payment_method="cash")),
        V2,
        "schema violation: order_placed v2: payment_method: enum: 'cash' is not one of",
    ),
    (
        "no schema_version header",
        b"k",
        js(event(134)),
        [],
        "unknown schema version: the message has no schema_version header",
    ),
    (
        "unknown version",
        b"k",
        js(event(135)),
        [("schema_version", b"9")],
        "unknown schema version: click has no version '9' in the registry (it has 1)",
    ),
    (
        "click v2 (orders only have one)",
        b"k",
        js(event(136)),
        V2,
        "unknown schema version: click has no version '2'",
    ),
    (
        "two schema_version headers",
        b"k",
        js(event(137)),
        V1 + V2,
        "unknown schema version: the message has 2 schema_version headers",
    ),
    (
        "a version that is not text",
        b"k",
        js(event(138)),
        [("schema_version", b"\xff")],
        "unknown schema version: click has no version",
    ),
    (
        "a null version",
        b"k",
        js(event(139)),
        [("schema_version", None)],
        "unknown schema version: click has no version null",
    ),
    (
        "an event type the registry lacks",
        b"k",
        js(event(140, event_type="page_view")),
        None,
        'unknown event type: "page_view" is not in the schema registry',
    ),
    (
        "a schema violation under a bad version too",
        b"k",
        js(event(141, customer_id="x")),
        [("schema_version", b"7")],
        "unknown schema version",
    ),
    (
        "sets _schema_version itself",
        b"k",
        js(event(142, _schema_version="2")),
        None,
        "malformed record",
    ),
    ("unknown column", b"k", js(event(123, mystery=1)), None, "unknown columns"),
    ("sets kafka_offset itself", b"k", js(event(124, kafka_offset=1)), None, "malformed record"),
    (
        "duplicate keys",
        b"k",
        b'{"event_id": "dup-a", "event_id": "dup-b", "event_type": "click", '
        b'"event_time": "2025-01-01T00:00:00Z"}',
        None,
        "bronze",
    ),
    ("null key", None, js(event(125)), None, "bronze"),
    ("non-UTF-8 key", b"\xff\xfe", js(event(126)), None, "malformed record"),
    (
        "weird headers",
        b"k",
        js(event(127)),
        [("h", b"\xff"), ("", None), ("x" * 50, b"v"), *V1],
        "bronze",
    ),
    (
        "weird headers, bad value",
        b"k",
        b"\xff",
        [("h", b"\xff\x00"), ("n", None)],
        "malformed record",
    ),
]


# A case without headers declares v1, as the topic's producers do ([] sends none at all).
KAFKA_CASES = [(label, key, value, V1 if headers is None else headers, expected)
               for label, key, value, headers, expected in KAFKA_CASES]  # fmt: skip


def produce(bootstrap: str, topic: str, cases, partitions: int) -> dict[tuple[int, int], int]:
    """Produce each case (round-robin over partitions); return (partition, offset) -> case."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "log_level": 3,
                         "message.max.bytes": 2_000_000, "compression.type": "lz4"})  # fmt: skip
    where: dict[tuple[int, int], int] = {}

    def delivered(index: int):
        def callback(err, message) -> None:
            assert err is None, err
            where[(message.partition(), message.offset())] = index

        return callback

    for i, (_, key, value, headers, _) in enumerate(cases):
        producer.produce(topic, value=value, key=key, headers=headers, partition=i % partitions,
                         on_delivery=delivered(i))  # fmt: skip
    assert producer.flush(60) == 0
    return where


def load_kafka(settings, bootstrap: str, topic: str):
    stats = GuardStats()
    source = kafka_source(bootstrap, topic, "test", QUARANTINE, stats, 100)
    return bronze.run(settings, "kafka", source, stats)


def test_hostile_kafka_messages_each_end_in_one_place(tmp_settings, source_systems) -> None:
    bootstrap, topic = source_systems.kafka_bootstrap, f"hostile_{uuid.uuid4().hex[:8]}"
    kafka.ensure_topic(bootstrap, topic, partitions=3)
    where = produce(bootstrap, topic, KAFKA_CASES, 3)
    assert len(where) == len(KAFKA_CASES)

    summary = load_kafka(tmp_settings, bootstrap, topic)
    events = rows(tmp_settings, "kafka", "events")
    quarantined = rows(tmp_settings, "kafka", QUARANTINE_TABLE)
    in_bronze = {(e["kafka_partition"], e["kafka_offset"]) for e in events}
    in_quarantine = {(q["kafka_partition"], q["kafka_offset"]): q for q in quarantined}
    assert not in_bronze & set(in_quarantine), "no message in both"
    assert in_bronze | set(in_quarantine) == set(where), "every message somewhere"
    assert len(events) + len(quarantined) == len(KAFKA_CASES), "and once"
    for coordinates, index in where.items():
        label, key, value, headers, expected = KAFKA_CASES[index]
        if expected == "bronze":
            assert coordinates in in_bronze, label
            continue
        kept = in_quarantine.get(coordinates)
        assert kept is not None, label
        assert kept["reason"].startswith(expected), (label, kept["reason"])
        assert raw_bytes(kept) == value, f"{label}: the payload is kept byte for byte"
        if key is not None:
            decode = base64.b64decode if kept["kafka_key_encoding"] == "base64" else str.encode
            assert decode(kept["kafka_key"]) == key, label
        if headers:
            assert [h[0] for h in json.loads(kept["kafka_headers"])] == [h[0] for h in headers]
    by_id = {e["event_id"]: e for e in events}
    assert by_id["dup-b"]["event_type"] == "click", "duplicate JSON keys: the last value wins"
    assert "120" not in by_id, "a number where the schema says string is refused, not cast"
    assert len(by_id["ev-100"]["page_url"]) == 1_000_001
    at = {(e["kafka_partition"], e["kafka_offset"]): e for e in events}
    for coordinates, index in where.items():  # every row records the version it declared
        if coordinates in at:
            declared = dict(KAFKA_CASES[index][3])["schema_version"].decode()
            assert at[coordinates]["_schema_version"] == declared, KAFKA_CASES[index][0]
    assert (by_id["ev-130"]["payment_method"], by_id["ev-130"]["currency_code"]) == ("card", "EUR")
    assert by_id["ev-131"]["payment_method"] is None and by_id["ev-131"]["_schema_version"] == "1"

    assert summary.read == len(KAFKA_CASES) and summary.balanced
    assert summary.loaded == len(events) and summary.quarantined == len(quarantined)
    expected_bronze = sum(case[4] == "bronze" for case in KAFKA_CASES)
    assert summary.tables["events"].inserted == expected_bronze == len(events)
    state = bronze.pipeline(tmp_settings, "kafka").state["sources"]["kafka"]["resources"]
    offsets = state["events"]["topic_offsets"][topic]
    assert offsets == {str(p): sum(1 for q, _ in where if q == p) for p in range(3)}

    again = load_kafka(tmp_settings, bootstrap, topic)
    assert again.read == 0, "the offsets moved past every message, good or bad"

    other = f"hostile_{uuid.uuid4().hex[:8]}"
    kafka.ensure_topic(bootstrap, other, partitions=3)
    produce(bootstrap, other, KAFKA_CASES[:3], 3)
    assert load_kafka(tmp_settings, bootstrap, other).read == 3, "another topic: its own offsets"
