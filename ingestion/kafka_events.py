"""Kafka events (orders, checkouts, clicks as JSON), streamed into append-only bronze.

Strategy: each run is a bounded micro-batch: it reads every partition from the offset kept in
dlt state up to the partition's high watermark as of the start of the run, and inserts the events
keyed by (topic, partition, offset) with dlt's ``insert-only`` merge. The offsets advance in dlt
state only when the load commits, so a crashed run is simply read again, and a *replay* (from an
earlier offset, or from a timestamp) re-reads history without duplicating a row already in
bronze. Every message ends in exactly one of bronze ``events`` or ``quarantine``: tombstones
(null values), values that are not JSON objects, keys that are not UTF-8, messages with no known
schema version, events invalid against their version, contract violations are quarantined with
their raw bytes (UTF-8 text or base64), key, headers and coordinates.

Versions: each message declares the version of its event type's JSON Schema in its
``schema_version`` header (``_declared_schema`` says why a header); the schemas live in
``ingestion/event_schemas`` (``ingestion/schema_registry.py``), the bronze table has a column for
every field of every version, and each row records the version it was validated against in
``_schema_version``.
Offsets are kept per topic and partition (``offsets_state``).

dlt's verified Kafka source is fetched from GitHub by ``dlt init``, which is unreachable here;
this resource is written on confluent-kafka, keeping offsets in dlt state the same way.

Configuration: dlt injects ``bootstrap_servers`` from ``SOURCES__KAFKA__BOOTSTRAP_SERVERS``
(``KAFKA_BOOTSTRAP_SERVERS`` is honoured by ingestion/locations.py), ``topic`` and ``group_id``
from ``SOURCES__KAFKA__TOPIC`` / ``__GROUP_ID``; the platform passes them from lakehouse.yml.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import dlt
import orjson
import pyarrow as pa
from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from ingestion import schema_registry
from ingestion.contracts import (
    ARROW_TYPES,
    ArrowRows,
    BadValue,
    CountLoaded,
    GuardStats,
    Origin,
    TableContract,
    dlt_schema_contract,
    encode_bytes,
    guard_one,
    quarantine_batch,
    safe_text,
)
from ingestion.schema_registry import SCHEMA_VERSION_COLUMN, VERSION_HEADER, EventSchema
from ingestion.spec import Backfill, LoadRequest, Replay, SourceSpec
from lakehouse.core import naming
from lakehouse.core.config import KafkaSourceConfig, SchemaPolicy

TS = {"data_type": "timestamp", "timezone": True}

REGISTRY = schema_registry.load()
KAFKA_COLUMNS = ("kafka_topic", "kafka_partition", "kafka_offset", "kafka_key", "kafka_timestamp")
# The bronze table: Kafka's coordinates, every field any version of any event type declares
# (ingestion/event_schemas), and the version the message declared.
EVENTS = TableContract(
    name="events",
    columns={
        "kafka_topic": {"data_type": "text", "nullable": False},
        "kafka_partition": {"data_type": "bigint", "nullable": False},
        "kafka_offset": {"data_type": "bigint", "nullable": False},
        "kafka_key": {"data_type": "text"},
        "kafka_timestamp": TS,
        **REGISTRY.bronze_columns(),
        SCHEMA_VERSION_COLUMN: {"data_type": "text", "nullable": False},
    },
    required=("event_id", "event_type", "event_time"),
)
# Columns the loader sets: an event setting one itself is malformed.
_RESERVED = frozenset({*KAFKA_COLUMNS, SCHEMA_VERSION_COLUMN})
# The schema of each (event type, schema_version header bytes) the registry knows.
_BY_HEADER = {(s.event_type, s.version.encode("ascii")): s for s in REGISTRY.all()}
PRIMARY_KEY = ("kafka_topic", "kafka_partition", "kafka_offset")
# Rows per item handed to dlt: it computes and validates a table's hints once per item (some ms),
# so an item per consumed batch, or per quarantined message, would cost more than its rows.
ARROW_ROWS = 100_000


def _timestamp(message: Any) -> datetime | None:
    """The message's timestamp, or None when it has none or it is outside years 1..9999 (a
    producer may set any 64-bit number of milliseconds)."""
    kind, millis = message.timestamp()
    if kind == TIMESTAMP_NOT_AVAILABLE or millis is None or millis < 0:
        return None
    try:
        return datetime.fromtimestamp(millis / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _metadata(message: Any) -> dict[str, Any]:
    """Where the message sits in Kafka. Raise ``BadValue`` for a key that is not UTF-8 text (the
    events table keeps keys as text; quarantine keeps such a key in base64)."""
    key = message.key()
    if key is not None:
        text, encoding = encode_bytes(key)
        if encoding != "utf-8":
            raise BadValue("malformed record: the message key is not UTF-8 text")
        key = text
    return {
        "kafka_topic": message.topic(),
        "kafka_partition": message.partition(),
        "kafka_offset": message.offset(),
        "kafka_key": key,
        "kafka_timestamp": _timestamp(message),
    }


def _parse(message: Any) -> dict[str, Any]:
    """The event as a row: its JSON fields, where it sits in Kafka, and the schema version it
    declared and is valid against. Raise ``BadValue`` saying why if it is none.

    A tombstone (null value) is not an event. Where a JSON object repeats a key, the last value
    wins (Python's json, like most parsers); quarantine would keep the bytes as sent.
    """
    value = message.value()
    if value is None:
        raise BadValue("tombstone: the message value is null")
    try:
        event = json.loads(value)
    except (ValueError, RecursionError) as exc:
        raise BadValue(f"malformed record: not JSON: {exc}") from None
    if not isinstance(event, dict):
        raise BadValue(f"malformed record: expected a JSON object, got {type(event).__name__}")
    clash = sorted(set(event) & _RESERVED)
    if clash:
        raise BadValue(f"malformed record: the event sets the loader's own columns {clash}")
    metadata = _metadata(message)
    schema = _declared_schema(message, event)
    why = schema.violation(event)
    if why is not None:
        raise BadValue(f"schema violation: {schema.label}: {why}")
    return {**event, **metadata, SCHEMA_VERSION_COLUMN: schema.version}


def _declared_schema(message: Any, event: dict[str, Any]) -> EventSchema:
    """The registry's schema for the event's ``event_type`` at the version its
    ``schema_version`` header declares; raise ``BadValue`` when there is none.

    Why a header for the version and the payload's field for the type: the type is part of the
    event (every reader of bronze needs it, and each schema pins it), the version is how the
    event is written, which a consumer must know before it reads the payload, as Confluent's
    wire format and CloudEvents' binary mode keep it outside the data. A header is what a
    producer sets without touching the event, and a broker-side tool can route on it.
    """
    declared = [raw for name, raw in message.headers() or [] if name == VERSION_HEADER]
    if not declared:
        raise BadValue(f"unknown schema version: the message has no {VERSION_HEADER} header")
    if len(declared) > 1:
        raise BadValue(f"unknown schema version: the message has {len(declared)} "
                       f"{VERSION_HEADER} headers")  # fmt: skip
    kind = event.get("event_type")
    if not isinstance(kind, str) or kind not in REGISTRY.schemas:
        shown = "none" if kind is None else safe_text(json.dumps(kind, default=repr), 80)
        raise BadValue(f"unknown event type: {shown} is not in the schema registry "
                       f"({', '.join(REGISTRY.event_types())})")  # fmt: skip
    raw = declared[0]
    version = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
    schema = REGISTRY.get(kind, version) if isinstance(raw, bytes) and raw.isascii() else None
    if schema is None:
        shown = "null" if raw is None else safe_text(repr(version), 40)
        raise BadValue(f"unknown schema version: {kind} has no version {shown} in the registry "
                       f"(it has {', '.join(REGISTRY.versions(kind))})")  # fmt: skip
    return schema


def guard_batch(
    messages: list[Any],
    rows: ArrowRows,
    policy: SchemaPolicy,
    stats: GuardStats,
    loaded_at: datetime,
) -> list[Any]:
    """Guard a batch of messages: add the clean ones to ``rows``; return the items to hand dlt
    as they are (quarantine records, and clean rows with columns the contract does not declare,
    which ``schema_on_read`` lets dlt add to the table).

    Every message ends in exactly one place, as with the per-row guard. The batch is parsed
    with orjson (several times faster than Python's json, and where it succeeds, the same
    values, but for integers beyond 64 bits, which ``ArrowRows`` guards against) and Kafka's
    coordinates and the declared versions become Arrow columns; each version's schema vouches for
    its events a column at a time (``EventSchema.unvouched``), and ``ArrowRows.take_many`` for
    what bronze makes of them. What none can vouch for (tombstones, values orjson refuses such
    as NaN, lone surrogates, a BOM, keys that are not ASCII, no or an unknown version, events
    jsonschema must judge, unknown columns, contract violations...) goes through
    ``guard_one`` with ``_parse``, message by message, which decides and says why; only then
    is what quarantine keeps of a message (``origin``) built.
    """
    events, at, versions = _vouched(*_parsed(messages))
    taken = set(at)
    if events:
        coordinates = _coordinates([messages[i] for i in at])
        coordinates[SCHEMA_VERSION_COLUMN] = pa.array(versions, pa.string())
        taken -= {at[i] for i in rows.take_many(events, coordinates)}
    declared = set(rows.schema.names)
    items = []
    for i, message in enumerate(messages):
        if i in taken:
            continue
        for item in guard_one(message, source="kafka", contract=EVENTS, policy=policy,
                              stats=stats, loaded_at=loaded_at, parse=_parse,
                              origin=origin(message)):  # fmt: skip
            if isinstance(item, dict) and item.keys() <= declared:
                rows.add(item)
            else:
                items.append(item)
    return items


# Message timestamps ``_timestamp`` turns into exactly the millisecond (its float division is
# exact to the microsecond below 2**33 s): Arrow converts these, ``_timestamp`` the others.
EXACT_MILLIS = 2**32 * 1000


def _parsed(
    messages: list[Any],
) -> tuple[list[dict[str, Any]], list[int], list[str], dict[int, tuple[EventSchema, list[int]]]]:
    """The events orjson reads as ``_parse`` would, their indexes in ``messages``, the version
    each declares, and the positions (in the events) of each declared schema's events.

    Only messages with exactly one ``schema_version`` header naming a version the registry has
    for the event's type: ``_declared_schema`` says why about the others.
    """
    events, at, versions, groups = [], [], [], {}
    for i, message in enumerate(messages):
        value = message.value()
        if value is None:
            continue
        try:
            event = orjson.loads(value)
        except orjson.JSONDecodeError:
            continue
        if type(event) is not dict or not _RESERVED.isdisjoint(event):
            continue
        if not message.topic().isascii():
            continue  # Kafka allows only ASCII names; a topic that is not: the guard decides
        key = message.key()
        if key is not None and not key.isascii():
            continue  # ``_metadata`` decides: base64 in quarantine, or a PUA marker refused
        if message.timestamp()[1] >= EXACT_MILLIS:
            continue
        headers = message.headers()
        if not headers:
            continue
        if len(headers) == 1:  # the common case
            name, raw = headers[0]
            declared = [raw] if name == VERSION_HEADER else []
        else:
            declared = [raw for name, raw in headers if name == VERSION_HEADER]
        kind = event.get("event_type")
        if len(declared) != 1 or type(kind) is not str:
            continue
        schema = _BY_HEADER.get((kind, declared[0]))
        if schema is None:
            continue
        groups.setdefault(id(schema), (schema, []))[1].append(len(events))
        events.append(event)
        at.append(i)
        versions.append(schema.version)
    return events, at, versions, groups


def _vouched(
    events: list[dict[str, Any]],
    at: list[int],
    version: list[str],
    groups: dict[int, tuple[EventSchema, list[int]]],
) -> tuple[list[dict[str, Any]], list[int], list[str]]:
    """The events (and their indexes in the batch) the column check vouches valid against their
    declared schema, with that schema's version: jsonschema judges the rest, row by row."""
    refused: set[int] = set()
    for schema, positions in groups.values():
        members = [events[j] for j in positions] if len(groups) > 1 else events
        refused.update(positions[n] for n in schema.unvouched(members))
    if not refused:
        return events, at, version
    keep = [j for j in range(len(events)) if j not in refused]
    return [events[j] for j in keep], [at[j] for j in keep], [version[j] for j in keep]


def _coordinates(messages: list[Any]) -> dict[str, pa.Array]:
    """Kafka's columns of ``messages`` as ``_metadata`` makes them, as Arrow arrays.

    Topics and keys are ASCII (``_parsed``), so they are what ``_text`` and ``encode_bytes``
    make of them; timestamps below ``EXACT_MILLIS`` are exact milliseconds, as ``_timestamp``
    makes them.
    """
    stamps = []
    for message in messages:
        kind, millis = message.timestamp()
        stamps.append(None if kind == TIMESTAMP_NOT_AVAILABLE or millis is None or millis < 0
                      else millis)  # fmt: skip
    keys = [message.key() for message in messages]
    return {
        "kafka_topic": pa.array([message.topic() for message in messages], pa.string()),
        "kafka_partition": pa.array([m.partition() for m in messages], pa.int64()),
        "kafka_offset": pa.array([m.offset() for m in messages], pa.int64()),
        "kafka_key": pa.array(
            [None if k is None else k.decode("ascii") for k in keys], pa.string()
        ),
        "kafka_timestamp": pa.array(stamps, pa.int64())
        .cast(pa.timestamp("ms", tz="UTC"))
        .cast(ARROW_TYPES["timestamp"]),
    }


def _headers(message: Any) -> str | None:
    headers = message.headers()
    if not headers:
        return None
    rendered = []
    for name, value in headers:
        text, encoding = encode_bytes(value) if value is not None else (None, None)
        rendered.append([safe_text(name), text, encoding])
    return json.dumps(rendered)


def origin(message: Any) -> Origin:
    """What quarantine keeps of a message: its value bytes as they came and every coordinate.

    The (topic, partition, offset) identity makes two messages with equal bytes two quarantine
    rows, and a replay of one message the same row.
    """
    key = message.key()
    key_text, key_encoding = encode_bytes(key) if key is not None else (None, None)
    columns = {
        "kafka_topic": message.topic(),
        "kafka_partition": message.partition(),
        "kafka_offset": message.offset(),
        "kafka_key": key_text,
        "kafka_key_encoding": key_encoding,
        "kafka_timestamp": _timestamp(message),
        "kafka_headers": _headers(message),
    }
    locator = {"topic": message.topic(), "partition": message.partition(),
               "offset": message.offset(), "timestamp_ms": message.timestamp()[1]}  # fmt: skip
    identity = f"{message.topic()}/{message.partition()}/{message.offset()}"
    return Origin(message.value(), locator, columns, identity)


def offsets_state(resource_state: dict[str, Any], topic: str) -> dict[str, int]:
    """This topic's next offsets by partition, in dlt state ``topic_offsets[topic][partition]``.

    Before, offsets were kept as ``offsets[partition]`` whatever the topic, so pointing the
    loader at another topic started it at the old topic's offsets. That old layout could only
    have been written for the topic configured then, so on the first run after the upgrade its
    offsets are moved under the topic configured now (and the old key removed, in the same
    state commit as the load). A deployment that changes its topic in the same release should
    start the new topic with ``--replay-from-offset 0`` (replays duplicate nothing).
    """
    by_topic: dict[str, dict[str, int]] = resource_state.setdefault("topic_offsets", {})
    legacy = resource_state.pop("offsets", None)
    offsets = by_topic.setdefault(topic, {})
    for partition, offset in (legacy or {}).items():
        offsets[partition] = max(offsets.get(partition, 0), offset)
    return offsets


@dlt.source(name="kafka", section="kafka")
def kafka_source(
    bootstrap_servers: str = dlt.config.value,
    topic: str = dlt.config.value,
    group_id: str = dlt.config.value,
    policy: SchemaPolicy | None = None,
    stats: GuardStats | None = None,
    batch_size: int = 5000,
    replay_from_offset: int | None = None,
    replay_from_time: datetime | None = None,
    timeout_s: float = 10.0,
    replay_until_time: datetime | None = None,
) -> Iterator[Any]:
    """Events of ``topic`` since the offsets in dlt state, or replayed from an offset or time.

    ``replay_until_time`` bounds a replay (a backfill of ``[from, until)``): each partition is
    read up to the first offset at or after that time (``offsets_for_times``), and the offsets
    in dlt state are left as they were, so the next regular load continues where it was.

    ``timeout_s`` bounds every broker call, and the wait for the next message of an unfinished
    batch: a broker that dies mid-read raises a KafkaException (retried by ingestion/retry.py)
    instead of leaving the load waiting for it forever.
    """
    policy = policy or SchemaPolicy()
    stats = stats if stats is not None else GuardStats()
    loaded_at = datetime.now(UTC)

    @dlt.resource(
        name="events",
        primary_key=PRIMARY_KEY,
        write_disposition={"disposition": "merge", "strategy": "insert-only"},
        schema_contract=dlt_schema_contract(policy),
    )
    def events() -> Iterator[Any]:
        state = offsets_state(dlt.current.resource_state(), topic)
        if replay_until_time is not None:
            state = dict(state)  # a bounded replay advances a throwaway copy
        consumer = Consumer({
            "bootstrap.servers": bootstrap_servers,
            "group.id": group_id,
            "enable.auto.commit": False,  # offsets live in dlt state, committed with the load
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
            "log_level": 2,  # not every refused reconnect (3): the load reports what failed
        })  # fmt: skip
        rows = ArrowRows(EVENTS, "kafka", stats, loaded_at, PRIMARY_KEY,
                         dlt.current.load_package_state()["load_id"])  # fmt: skip
        try:
            yield from _read(consumer, state, rows)
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

    def _stops(consumer: Consumer, partitions: list[int]) -> dict[int, int]:
        """Where a bounded replay stops in each partition (-1: no message at or after it)."""
        if replay_until_time is None:
            return {}
        millis = int(replay_until_time.timestamp() * 1000)
        found = consumer.offsets_for_times(
            [TopicPartition(topic, p, millis) for p in partitions], timeout=timeout_s
        )
        return {tp.partition: tp.offset for tp in found if tp.offset >= 0}

    def _read(consumer: Consumer, state: dict[str, int], rows: ArrowRows) -> Iterator[Any]:
        metadata = consumer.list_topics(topic, timeout=timeout_s)
        if topic not in metadata.topics or metadata.topics[topic].error:
            raise RuntimeError(f"Kafka topic {topic!r} not found on {bootstrap_servers}")
        partitions = sorted(metadata.topics[topic].partitions)
        ends, remaining = {}, set()
        starts, stops = _starts(consumer, partitions, state), _stops(consumer, partitions)
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            ends[p] = min(high, stops.get(p, high))
            start = starts[p]
            if start == OFFSET_BEGINNING or start < low:
                start = low
            elif start < 0:  # offsets_for_times found no message at or after the time
                start = high
            starts[p] = start
            if start < ends[p]:
                remaining.add(p)
        consumer.assign([TopicPartition(topic, p, starts[p]) for p in partitions])
        heard, others = time.monotonic(), []
        while remaining:
            messages = consumer.consume(batch_size, timeout=1.0)
            if messages:
                heard = time.monotonic()
            elif time.monotonic() - heard > timeout_s:
                raise KafkaException(KafkaError(KafkaError._TIMED_OUT, f"no message from "
                    f"{bootstrap_servers} for {timeout_s:.0f} s with partitions "
                    f"{sorted(remaining)} of {topic!r} unfinished"))  # fmt: skip
            wanted, last = [], {}
            for message in messages:
                if message.error():
                    if message.error().code() == KafkaError._PARTITION_EOF:
                        remaining.discard(message.partition())
                        continue
                    raise KafkaException(message.error())
                p, offset = message.partition(), message.offset()
                if p in remaining and offset < ends[p]:  # later ones: the next run reads them
                    wanted.append(message)
                    last[p] = offset  # a partition's messages come in order
            for p, offset in last.items():
                state[str(p)] = max(state.get(str(p), 0), offset + 1)
                if offset + 1 >= ends[p]:
                    remaining.discard(p)
            others += guard_batch(wanted, rows, policy, stats, loaded_at)
            if len(rows) >= ARROW_ROWS or len(others) >= ARROW_ROWS:
                yield from _flush(rows, others)
        yield from _flush(rows, others)

    def _flush(rows: ArrowRows, others: list[Any]) -> Iterator[Any]:
        quarantined = [item for item in others if not isinstance(item, dict)]
        evolving = [item for item in others if isinstance(item, dict)]
        others.clear()
        if quarantined:
            yield quarantine_batch(quarantined)
        if evolving:
            yield evolving
        if len(rows):
            yield rows.table()

    EVENTS.register_arrow(dlt.current.source_schema())
    yield events.add_step(CountLoaded(EVENTS.name, stats))


def _build(load: LoadRequest) -> Any:
    conf, replay = load.conf, load.replay
    if load.window is not None:  # a backfill: a replay of [start, end) by message timestamp
        replay = Replay(from_time=load.window.start, until_time=load.window.end)
    return kafka_source(
        load.location["bootstrap_servers"],
        conf.topic,
        conf.group_id,
        conf.schema_policy,
        load.stats,
        conf.batch_size,
        replay.from_offset if replay else None,
        replay.from_time if replay else None,
        timeout_s=load.timeout_s,
        replay_until_time=replay.until_time if replay else None,
    )


SPEC = SourceSpec(
    name="kafka",
    build=_build,
    contracts=lambda conf: {EVENTS.name: EVENTS},
    reads=lambda table, conf, where, local: naming.kafka_topic(
        where["bootstrap_servers"], conf.topic
    ),
    system=lambda where: f"Kafka broker {where['bootstrap_servers']}",
    settings=KafkaSourceConfig,
    location={"bootstrap_servers": "KAFKA_BOOTSTRAP_SERVERS"},
    backfill=Backfill(cursor="kafka_timestamp", window="time"),
    identity="brokers",
)
