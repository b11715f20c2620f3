"""Kafka events (orders, checkouts, clicks as JSON), streamed into append-only bronze.

Strategy: each run is a bounded micro-batch: it reads every partition from the offset kept in
dlt state up to the partition's high watermark as of the start of the run, and inserts the events
keyed by (topic, partition, offset) with dlt's ``insert-only`` merge. The offsets advance in dlt
state only when the load commits, so a crashed run is simply read again, and a *replay* (from an
earlier offset, or from a timestamp) re-reads history without duplicating a row already in
bronze. Messages that are not JSON objects are quarantined with their raw bytes.

dlt's verified Kafka source is fetched from GitHub by ``dlt init``, which is unreachable here;
this resource is written on confluent-kafka, keeping offsets in dlt state the same way.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import dlt
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from ingestion.contracts import GuardStats, TableContract, dlt_schema_contract, guard
from lakehouse.config import SchemaPolicy

TS = {"data_type": "timestamp", "timezone": True}

EVENTS = TableContract(
    name="events",
    columns={
        "kafka_topic": {"data_type": "text", "nullable": False},
        "kafka_partition": {"data_type": "bigint", "nullable": False},
        "kafka_offset": {"data_type": "bigint", "nullable": False},
        "kafka_key": {"data_type": "text"},
        "kafka_timestamp": TS,
        "event_id": {"data_type": "text"},
        "event_type": {"data_type": "text"},
        "customer_id": {"data_type": "bigint"},
        "event_time": TS,
        "session_id": {"data_type": "bigint"},
        "order_id": {"data_type": "bigint"},
        "page_url": {"data_type": "text"},
        "amount": {"data_type": "double"},
        "currency": {"data_type": "text"},
    },
    required=("event_id", "event_type", "event_time"),
)


def _metadata(message: Any) -> dict[str, Any]:
    _, millis = message.timestamp()
    return {
        "kafka_topic": message.topic(),
        "kafka_partition": message.partition(),
        "kafka_offset": message.offset(),
        "kafka_key": message.key().decode() if message.key() else None,
        "kafka_timestamp": datetime.fromtimestamp(millis / 1000, UTC) if millis > 0 else None,
    }


def _parse(message: Any) -> dict[str, Any]:
    """The event as a row: its JSON fields plus where it sits in Kafka. Raise if not JSON."""
    try:
        event = json.loads(message.value())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON at partition {message.partition()} offset "
                         f"{message.offset()}: {exc}") from None  # fmt: skip
    if not isinstance(event, dict):
        raise ValueError(f"expected a JSON object, got {type(event).__name__}")
    return {**event, **_metadata(message)}


def _raw(message: Any) -> dict[str, Any]:
    """What quarantine keeps of a message that does not parse: its bytes and coordinates."""
    meta = _metadata(message)
    return {**meta, "kafka_timestamp": str(meta["kafka_timestamp"]),
            "value": message.value().decode("utf-8", errors="replace")}  # fmt: skip


@dlt.source(name="kafka")
def kafka_source(
    bootstrap_servers: str,
    topic: str,
    group_id: str,
    policy: SchemaPolicy | None = None,
    stats: GuardStats | None = None,
    batch_size: int = 5000,
    replay_from_offset: int | None = None,
    replay_from_time: datetime | None = None,
    timeout_s: float = 10.0,
) -> Iterator[Any]:
    """Events of ``topic`` since the offsets in dlt state, or replayed from an offset or time.

    ``timeout_s`` bounds every broker call, and the wait for the next message of an unfinished
    batch: a broker that dies mid-read raises a KafkaException (retried by ingestion/retry.py)
    instead of leaving the load waiting for it forever.
    """
    policy = policy or SchemaPolicy()
    stats = stats if stats is not None else GuardStats()
    loaded_at = datetime.now(UTC)

    @dlt.resource(
        name="events",
        primary_key=("kafka_topic", "kafka_partition", "kafka_offset"),
        write_disposition={"disposition": "merge", "strategy": "insert-only"},
        schema_contract=dlt_schema_contract(policy),
    )
    def events() -> Iterator[Any]:
        state: dict[str, int] = dlt.current.resource_state().setdefault("offsets", {})
        consumer = Consumer({
            "bootstrap.servers": bootstrap_servers,
            "group.id": group_id,
            "enable.auto.commit": False,  # offsets live in dlt state, committed with the load
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
            "log_level": 2,  # not every refused reconnect (3): the load reports what failed
        })  # fmt: skip
        try:
            yield from _read(consumer, state)
        finally:
            consumer.close()

    def _starts(consumer: Consumer, partitions: list[int], state: dict[str, int]) -> dict[int, int]:
        if replay_from_time is not None:
            millis = int(replay_from_time.timestamp() * 1000)
            found = consumer.offsets_for_times(
                [TopicPartition(topic, p, millis) for p in partitions], timeout=timeout_s
            )
            return {tp.partition: tp.offset for tp in found}
        if replay_from_offset is not None:
            return dict.fromkeys(partitions, replay_from_offset)
        return {p: state.get(str(p), OFFSET_BEGINNING) for p in partitions}

    def _read(consumer: Consumer, state: dict[str, int]) -> Iterator[Any]:
        metadata = consumer.list_topics(topic, timeout=timeout_s)
        if topic not in metadata.topics or metadata.topics[topic].error:
            raise RuntimeError(f"Kafka topic {topic!r} not found on {bootstrap_servers}")
        partitions = sorted(metadata.topics[topic].partitions)
        ends, remaining = {}, set()
        starts = _starts(consumer, partitions, state)
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            ends[p] = high
            start = starts[p]
            if start == OFFSET_BEGINNING or start < low:
                start = low
            elif start < 0:  # offsets_for_times found no message at or after the time
                start = high
            starts[p] = start
            if start < high:
                remaining.add(p)
        consumer.assign([TopicPartition(topic, p, starts[p]) for p in partitions])
        heard = time.monotonic()
        while remaining:
            messages = consumer.consume(batch_size, timeout=1.0)
            if messages:
                heard = time.monotonic()
            elif time.monotonic() - heard > timeout_s:
                raise KafkaException(KafkaError(KafkaError._TIMED_OUT, f"no message from "
                    f"{bootstrap_servers} for {timeout_s:.0f} s with partitions "
                    f"{sorted(remaining)} of {topic!r} unfinished"))  # fmt: skip
            for message in messages:
                p = message.partition()
                if message.error():
                    if message.error().code() == KafkaError._PARTITION_EOF:
                        remaining.discard(p)
                        continue
                    raise KafkaException(message.error())
                if p not in remaining or message.offset() >= ends[p]:
                    continue  # past this run's batch: the next run reads it
                yield from guard(
                    [message],
                    source="kafka",
                    contract=EVENTS,
                    policy=policy,
                    stats=stats,
                    loaded_at=loaded_at,
                    parse=_parse,
                    raw=_raw,
                )
                state[str(p)] = max(state.get(str(p), 0), message.offset() + 1)
                if message.offset() + 1 >= ends[p]:
                    remaining.discard(p)

    EVENTS.register(dlt.current.source_schema())
    yield events
