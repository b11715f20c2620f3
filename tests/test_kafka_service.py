"""The local Kafka broker against a real client: start, produce, consume, stop, leave nothing.

One broker per module (start-up costs a JVM and a KRaft format, ~5-7 s), on free ports and in a
temporary home, so it never meets the broker of `make up` or another test run.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from lakehouse.stack.services import kafka

pytestmark = pytest.mark.skipif(
    not any(kafka.JAR_DIR.glob("kafka_*.jar")), reason="Kafka jars not fetched (make setup)"
)


TOPIC = "orders"
SENT = {f"order-{i}": {"id": i, "amount": i * 10.5, "currency": "EUR"} for i in range(10)}


@dataclass(frozen=True)
class Broker:
    home: Path
    port: int
    controller_port: int
    pid: int

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


def _java_processes_with(marker: str) -> list[int]:
    """Pids of java processes whose command line mentions the marker (our temporary home)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if args and args[0].endswith(b"java") and any(marker.encode() in a for a in args):
            pids.append(int(cmdline.parent.name))
    return pids


def _consume_all(bootstrap: str, topic: str, expected: int) -> dict[str, dict]:
    """Every message of the topic's 3 partitions from offset 0, by key (no consumer group)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "test-kafka-service",  # required by the client; assign() uses no group
            "enable.auto.commit": False,
        }
    )
    received: dict[str, dict] = {}
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(3)])
        deadline = time.monotonic() + 20
        while len(received) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            received[msg.key().decode()] = json.loads(msg.value())
    finally:
        consumer.close()
    return received


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory, free_ports) -> Iterator[Broker]:
    home = tmp_path_factory.mktemp("kafka-home")
    port, controller_port = free_ports(2)
    started = time.monotonic()
    pid = kafka.start(home, port, controller_port)
    print(f"Kafka broker up in {time.monotonic() - started:.1f}s")
    try:
        yield Broker(home, port, controller_port, pid)
    finally:
        kafka.stop(home, port)  # a no-op when test_stop already stopped it


def test_produce_and_consume_round_trip(broker: Broker) -> None:
    assert kafka.is_up(broker.port)
    kafka.ensure_topic(broker.bootstrap, TOPIC, partitions=3)
    kafka.ensure_topic(broker.bootstrap, TOPIC, partitions=3)  # idempotent

    errors: list[str] = []
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    try:
        for key, value in SENT.items():
            producer.produce(
                TOPIC,
                key=key.encode(),
                value=json.dumps(value).encode(),
                on_delivery=lambda err, _msg: errors.append(str(err)) if err else None,
            )
        assert producer.flush(15) == 0, "messages still queued after 15 s"
    finally:
        producer.close()  # else it lives on and logs refused connections once the broker stops
    assert errors == []

    assert _consume_all(broker.bootstrap, TOPIC, expected=len(SENT)) == SENT


def test_running_leaves_a_broker_it_did_not_start(broker: Broker) -> None:
    with kafka.running(broker.home, broker.port, broker.controller_port) as started:
        assert started is False
    assert kafka.is_up(broker.port)
    assert kafka._running_pid(broker.home, broker.port) == broker.pid


def test_start_refuses_a_port_in_use(broker: Broker) -> None:
    with pytest.raises(kafka.KafkaError, match="already in use"):
        kafka.start(broker.home, broker.port, broker.controller_port)


def test_stop_leaves_no_process_or_port(broker: Broker) -> None:
    """Last in the module: it stops the shared broker."""
    assert _java_processes_with(str(broker.home)) == [broker.pid]
    started = time.monotonic()
    assert kafka.stop(broker.home, broker.port) is True
    print(f"Kafka broker stopped in {time.monotonic() - started:.1f}s")

    with pytest.raises(ProcessLookupError):
        os.kill(broker.pid, 0)
    assert not kafka.port_open(broker.port)
    assert not kafka.port_open(broker.controller_port)
    assert not kafka.is_up(broker.port)
    assert _java_processes_with(str(broker.home)) == []
    assert not (broker.home / "state" / f"kafka-{broker.port}.pid").exists()
    assert kafka.stop(broker.home, broker.port) is False
    log = kafka.log_file(broker.home, broker.port).read_text()
    assert "Kafka Server started" in log
    assert "shut down completed" in log


def test_running_restarts_on_formatted_storage_and_stops(broker: Broker) -> None:
    """After test_stop: the data dir is formatted once, and the messages survive a restart."""
    meta = broker.home / "kafka" / "data" / "meta.properties"
    cluster_id = meta.read_text()
    with kafka.running(broker.home, broker.port, broker.controller_port) as started:
        assert started is True
        assert _consume_all(broker.bootstrap, TOPIC, expected=len(SENT)) == SENT
    assert meta.read_text() == cluster_id
    assert not kafka.port_open(broker.port)
    assert _java_processes_with(str(broker.home)) == []
