"""Kafka to bronze next to a bare pipeline over the same messages: how far the platform is from
the machine's ceiling.

The bare pipeline is the least a Kafka-to-Delta load can do: the same client (confluent-kafka)
consuming in batches, every value parsed as JSON, one ``deltalake.write_deltalake`` per batch.
No contract, no quarantine, no exactly-once bookkeeping: what it costs is what this machine costs
to move the messages, so the ratio of the two rates says what the platform's guarantees cost.

Both read the topic from its low to its high watermark as of the start of their run, each into a
scratch lake of its own under the lake home (deleted after), each with a consumer group of its
own; neither commits offsets to Kafka, so the platform's offsets, bronze and state are untouched.

Importing this module needs no broker; ``compare`` needs one holding the events (in a bench run,
``lakehouse.stack.source_systems.running(settings)`` gives the endpoints).
"""

from __future__ import annotations

import shutil
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from ingestion import bronze
from ingestion.contracts import GuardStats
from ingestion.kafka_events import ARROW_ROWS, kafka_source
from lakehouse.core.config import Settings

# The bare pipeline's table: Kafka's coordinates and the event's fields as JSON gives them
# (event_time stays text: parsing it is the contract's work, not the bare pipeline's).
BARE_SCHEMA = pa.schema([
    ("kafka_topic", pa.string()), ("kafka_partition", pa.int64()), ("kafka_offset", pa.int64()),
    ("kafka_key", pa.string()), ("kafka_timestamp_ms", pa.int64()),
    ("event_id", pa.string()), ("event_type", pa.string()), ("customer_id", pa.int64()),
    ("event_time", pa.string()), ("session_id", pa.int64()), ("order_id", pa.int64()),
    ("page_url", pa.string()), ("amount", pa.float64()), ("currency", pa.string()),
])  # fmt: skip


@dataclass(frozen=True)
class Throughput:
    """One pass over the topic: messages read, rows written, wall and CPU seconds.

    ``cpu_seconds`` is this process's CPU time over the pass (every thread: librdkafka's,
    delta-rs's), a steadier measure than wall time on a machine other work competes for.
    """

    read: int
    written: int
    seconds: float
    cpu_seconds: float

    @property
    def rows_per_s(self) -> float:
        """Messages read per second (the rate ``ingest`` prints for a load)."""
        return self.read / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class KafkaComparison:
    """The platform's Kafka load and the bare pipeline over the same messages."""

    topic: str
    messages: int
    platform: Throughput
    bare: Throughput

    @property
    def ratio(self) -> float:
        """The platform's rate as a share of the bare pipeline's (issue 16's target: >= 0.5)."""
        return self.platform.rows_per_s / self.bare.rows_per_s if self.bare.rows_per_s else 0.0

    @property
    def cpu_ratio(self) -> float:
        """The same ratio in CPU time: the bare pipeline's CPU seconds over the platform's."""
        return (
            self.bare.cpu_seconds / self.platform.cpu_seconds if self.platform.cpu_seconds else 0.0
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "messages": self.messages,
            "platform": {**asdict(self.platform), "rows_per_s": self.platform.rows_per_s},
            "bare": {**asdict(self.bare), "rows_per_s": self.bare.rows_per_s},
            "ratio": self.ratio,
            "cpu_ratio": self.cpu_ratio,
        }


def compare(
    settings: Settings,
    bootstrap: str,
    topic: str | None = None,
    batch_size: int | None = None,
    write_rows: int = ARROW_ROWS,
    timeout_s: float = 30.0,
) -> KafkaComparison:
    """Load ``topic`` (default: the configured one) with the platform's loader and with the bare
    pipeline, one after the other, and return both rates.

    ``compare(settings, bootstrap, topic=None, batch_size=None, write_rows=100_000,
    timeout_s=30.0)``: ``bootstrap`` is the broker's address (``Endpoints.kafka_bootstrap``);
    ``batch_size`` is the number of messages per ``consume`` call for both (default: the Kafka
    source's ``batch_size``); ``write_rows`` the rows per ``write_deltalake`` of the bare
    pipeline (default: the rows per Arrow table the platform hands dlt).

    The platform's load is ``ingestion.bronze.run`` over the Kafka source, as ``ingest`` runs
    it, into a lake home of its own (``<home>/bench/kafka-<id>/platform``, fresh dlt state);
    the bare pipeline writes ``<home>/bench/kafka-<id>/bare/events``. Both are deleted after.
    Raises if either pass reads a different number of messages than the topic holds, or if the
    platform's load does not account for every record.
    """
    conf = settings.sources.kafka
    topic = topic or conf.topic
    batch_size = batch_size or conf.batch_size
    scratch = settings.home / "bench" / f"kafka-{uuid.uuid4().hex[:8]}"
    try:
        messages = _messages(bootstrap, topic, timeout_s)
        platform = _platform(
            settings, scratch / "platform", bootstrap, topic, batch_size, timeout_s
        )
        bare = _bare(
            scratch / "bare" / "events", bootstrap, topic, batch_size, write_rows, timeout_s
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for name, run in (("platform", platform), ("bare", bare)):
        if run.read != messages:
            raise RuntimeError(f"the {name} pass read {run.read:,} of {messages:,} messages")
    return KafkaComparison(topic=topic, messages=messages, platform=platform, bare=bare)


def _platform(
    settings: Settings, home: Path, bootstrap: str, topic: str, batch_size: int, timeout_s: float
) -> Throughput:
    """The platform's Kafka load (guard, quarantine, offsets in dlt state, Delta merge)."""
    conf = settings.sources.kafka
    scratch = settings.model_copy(update={"home": home})
    stats = GuardStats()
    source = kafka_source(bootstrap, topic, f"{conf.group_id}-bench-{uuid.uuid4().hex[:8]}",
                          conf.schema_policy, stats, batch_size, timeout_s=timeout_s)  # fmt: skip
    started, cpu = time.perf_counter(), time.process_time()
    summary = bronze.run(scratch, "kafka", source, stats)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    if not summary.balanced:
        raise RuntimeError(f"the platform's load lost track of records: {stats.as_dict()}")
    return Throughput(read=summary.read, written=summary.loaded + summary.quarantined,
                      seconds=seconds, cpu_seconds=cpu)  # fmt: skip


def _bare(
    path: Path, bootstrap: str, topic: str, batch_size: int, write_rows: int, timeout_s: float
) -> Throughput:
    """Consume in batches, parse the JSON, ``write_deltalake`` per ``write_rows`` rows: the
    machine's ceiling.

    It parses with orjson, the fastest JSON parser installed, and writes as large a batch as
    the platform hands dlt, so the ceiling is not set lower than the platform could reach;
    values that are not JSON objects are skipped.
    """
    from deltalake import write_deltalake

    started, cpu = time.perf_counter(), time.process_time()
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"bench-bare-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False, "auto.offset.reset": "earliest", "log_level": 2,
        "enable.partition.eof": True,  # a last, short batch returns at the end, not at timeout
    })  # fmt: skip
    read = written = 0
    rows: list[dict[str, Any]] = []
    try:
        ranges = _ranges(consumer, topic, timeout_s)
        consumer.assign([TopicPartition(topic, p, low) for p, (low, _) in ranges.items()])
        remaining = {p for p, (low, high) in ranges.items() if low < high}
        heard = time.monotonic()
        while remaining:
            batch = consumer.consume(batch_size, timeout=1.0)
            if batch:
                heard = time.monotonic()
            elif time.monotonic() - heard > timeout_s:
                raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "no message"))
            for message in batch:
                if message.error():
                    if message.error().code() == KafkaError._PARTITION_EOF:
                        remaining.discard(message.partition())
                        continue
                    raise KafkaException(message.error())
                p, offset = message.partition(), message.offset()
                if p not in remaining or offset >= ranges[p][1]:
                    continue
                read += 1
                if offset + 1 >= ranges[p][1]:
                    remaining.discard(p)
                try:
                    event = orjson.loads(message.value())
                except (orjson.JSONDecodeError, TypeError):
                    continue
                if not isinstance(event, dict):
                    continue
                key = message.key()
                event.update(kafka_topic=topic, kafka_partition=p, kafka_offset=offset,
                             kafka_key=key.decode("utf-8", "replace") if key else None,
                             kafka_timestamp_ms=message.timestamp()[1])  # fmt: skip
                rows.append(event)
            if len(rows) >= write_rows or (rows and not remaining):
                table = pa.Table.from_pylist(rows, schema=BARE_SCHEMA)
                write_deltalake(str(path), table, mode="append")
                written += table.num_rows
                rows = []
    finally:
        consumer.close()
    return Throughput(read=read, written=written, seconds=time.perf_counter() - started,
                      cpu_seconds=time.process_time() - cpu)  # fmt: skip


def _ranges(consumer: Consumer, topic: str, timeout_s: float) -> dict[int, tuple[int, int]]:
    """Each partition's (low, high) watermarks: the messages a pass reads."""
    metadata = consumer.list_topics(topic, timeout=timeout_s)
    if topic not in metadata.topics or metadata.topics[topic].error:
        raise RuntimeError(f"Kafka topic {topic!r} not found")
    return {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
        for p in sorted(metadata.topics[topic].partitions)
    }


def _messages(bootstrap: str, topic: str, timeout_s: float) -> int:
    """How many messages the topic holds now (what both passes must read)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-count",
                         "log_level": 2})  # fmt: skip
    try:
        return sum(high - low for low, high in _ranges(consumer, topic, timeout_s).values())
    finally:
        consumer.close()
