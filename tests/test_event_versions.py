"""Versioned event schemas end to end, on a real broker and engine: a message declares its schema
version in a Kafka header, bronze records it, silver maps every version to one shape; a message
of an unknown version, or invalid against its version, lands in quarantine with the reason.

The compatibility checker needs no engine: tests/fast/test_event_schemas.py.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter

from confluent_kafka import Producer
from test_hostile_records import QUARANTINE, raw_bytes, rows  # tests/fast (pyproject's pythonpath)

from ingestion import bronze
from ingestion.contracts import QUARANTINE_TABLE, GuardStats
from ingestion.kafka_events import kafka_source
from lakehouse.stack import source_systems as systems
from lakehouse.stack.services import kafka
from lakehouse.transform.sql import records


def expected_orders(settings) -> dict[str, tuple[str, str | None, str | None]]:
    """Every order_placed event the sample world sends that is valid, recomputed from the
    generator: event_id -> (declared version, payment method, currency code) as sent."""
    orders = {}
    for _, value, headers in systems.world(settings).events():
        try:
            event = json.loads(value)
        except ValueError:
            continue  # the malformed share: quarantined
        if event["event_type"] != "order_placed" or "experiment" in event:
            continue  # not an order, or an unknown column: quarantined
        version = dict(headers)["schema_version"].decode()
        code = event.get("currency_code") if version == "2" else None
        orders[event["event_id"]] = (
            version,
            event.get("payment_method"),
            code or event["currency"],
        )
    return orders


def test_a_second_event_version_flows_through_to_silver(spark, dbt_built) -> None:
    expected = expected_orders(spark)
    assert Counter(v for v, _, _ in expected.values()).keys() == {"1", "2"}, "both versions sent"

    bronze_versions = records(
        spark, "select event_type, _schema_version, count(*) as n from bronze_kafka.events "
        "group by event_type, _schema_version",
    )  # fmt: skip
    assert {(r["event_type"], r["_schema_version"]) for r in bronze_versions} == {
        ("click", "1"), ("checkout_started", "1"), ("order_placed", "1"), ("order_placed", "2")
    }, "every bronze row records the version its message declared"  # fmt: skip

    silver = {
        r["event_id"]: r
        for r in records(
            spark,
            "select event_id, event_type, schema_version, payment_method, currency_code "
            "from silver.stg_kafka__events",
        )
    }
    orders = {k: r for k, r in silver.items() if r["event_type"] == "order_placed"}
    assert orders.keys() == expected.keys()
    for event_id, (version, method, currency) in expected.items():
        row = orders[event_id]
        assert row["schema_version"] == int(version), event_id
        assert row["payment_method"] == (method or "unknown"), event_id
        assert row["currency_code"] == currency.upper(), event_id
    others = [r for r in silver.values() if r["event_type"] != "order_placed"]
    assert others and all(r["payment_method"] is None and r["schema_version"] == 1 for r in others)


def _produce(bootstrap: str, topic: str, messages: list[tuple[dict, list]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "log_level": 3})
    for offset, (event, headers) in enumerate(messages):
        producer.produce(topic, key=str(offset).encode(), value=json.dumps(event).encode(),
                         headers=headers, partition=0)  # fmt: skip
    assert producer.flush(30) == 0


def test_unknown_versions_and_invalid_events_are_quarantined_with_their_reason(
    tmp_settings, source_systems
) -> None:
    bootstrap, topic = source_systems.kafka_bootstrap, f"versions_{uuid.uuid4().hex[:8]}"
    kafka.ensure_topic(bootstrap, topic, partitions=1)
    order = {"event_id": "o", "event_type": "order_placed", "customer_id": 1, "order_id": 9,
             "event_time": "2025-01-02T03:04:05Z", "amount": 12.5, "currency": "EUR"}  # fmt: skip
    v1, v2, v3 = ([("schema_version", v)] for v in (b"1", b"2", b"3"))
    messages = [
        ({**order, "event_id": "o-v1"}, v1),
        ({**order, "event_id": "o-v2", "currency_code": "EUR", "payment_method": "paypal"}, v2),
        ({**order, "event_id": "o-v3"}, v3),
        ({**order, "event_id": "o-none"}, []),
        ({**order, "event_id": "o-bad", "payment_method": "cash", "amount": "12.50"}, v2),
        ({**order, "event_id": "o-bad-v1", "customer_id": -1.5}, v1),
    ]
    _produce(bootstrap, topic, messages)
    stats = GuardStats()
    source = kafka_source(bootstrap, topic, "test", QUARANTINE, stats, 100)
    summary = bronze.run(tmp_settings, "kafka", source, stats)
    assert summary.read == 6 and summary.balanced

    loaded = {r["event_id"]: r for r in rows(tmp_settings, "kafka", "events")}
    assert {k: r["_schema_version"] for k, r in loaded.items()} == {"o-v1": "1", "o-v2": "2"}
    assert loaded["o-v2"]["payment_method"] == "paypal"
    assert loaded["o-v1"]["payment_method"] is None and loaded["o-v1"]["currency_code"] is None

    quarantined = {r["kafka_offset"]: r for r in rows(tmp_settings, "kafka", QUARANTINE_TABLE)}
    reasons = {offset: r["reason"] for offset, r in quarantined.items()}
    assert reasons == {
        2: "unknown schema version: order_placed has no version '3' in the registry (it has 1, 2)",
        3: "unknown schema version: the message has no schema_version header",
        4: "schema violation: order_placed v2: amount: type: '12.50' is not of type 'number', "
        "'null'; payment_method: enum: 'cash' is not one of ['card', 'paypal', 'bank_transfer', "
        "'gift_card', None]",
        5: "schema violation: order_placed v1: customer_id: type: -1.5 is not of type 'integer', "
        "'null'",
    }
    for offset, row in quarantined.items():
        assert raw_bytes(row) == json.dumps(messages[offset][0]).encode(), "the raw payload"
        declared = [h[1] for h in json.loads(row["kafka_headers"] or "[]")]
        assert declared == [v.decode() for _, v in messages[offset][1]], "its headers kept"
