"""A source system that goes down: retried within bounds, then a clean, resumable failure.

A real Kafka broker and a real PostgreSQL server of this module's own (free ports, a temporary
home, so stopping them disturbs no other test) are stopped, killed and restarted while the loads
go through ``lakehouse.pipeline.loads.ingest``, the code ``lakehouse ingest`` runs. The failures
that need no server (the local HTTP service's faults, a locked Snowflake file) are the fast tier's
(tests/fast/test_source_failures.py), whose helpers and small retry bounds these tests share.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psycopg2
import pytest
from confluent_kafka import Producer
from test_source_failures import (  # tests/fast, on pytest's pythonpath (pyproject.toml)
    dlt_state,
    endpoints,
    free_port,
    ingest,
    rows,
    settings,
    unfinished_extracts,
    versions,
)

from ingestion import bronze, kafka_events
from ingestion.contracts import GuardStats
from ingestion.kafka_events import kafka_source
from ingestion.retry import SourceUnavailable
from lakehouse.core.config import SchemaPolicy, Settings, SourceRetryConfig
from lakehouse.stack.sample_data import fill
from lakehouse.stack.sample_data.world import World
from lakehouse.stack.services import kafka, postgres

__all__ = ["settings"]  # the fixture: a fresh lake with small retry bounds


# ---- Kafka: a real broker of this module's own, stopped, killed and started again -------------

KAFKA_WORLD = World(scale=0.002, dirty_share=0.05)


class Broker:
    """This module's broker: free ports, its own home, so stopping it disturbs no other test."""

    def __init__(self, home: Path) -> None:
        self.home, self.port, self.controller = home, free_port(), free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"

    def start(self) -> None:
        kafka.start(self.home, self.port, self.controller)

    def stop(self) -> None:
        kafka.stop(self.home, self.port)

    def kill(self) -> None:
        """SIGKILL, as a crash: no shutdown hook, no clean close of the logs."""
        pid = int((self.home / "state" / f"kafka-{self.port}.pid").read_text())
        os.killpg(pid, signal.SIGKILL)
        while kafka.port_open(self.port):
            time.sleep(0.05)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    running = Broker(tmp_path_factory.mktemp("broker"))
    running.start()
    try:
        yield running
    finally:
        running.stop()


class Topic:
    """A fresh topic on the broker, filled a generation at a time."""

    def __init__(self, broker: Broker, settings: Settings) -> None:
        self.name = f"events_{os.urandom(4).hex()}"
        self.broker, self.marker = broker, settings.home / f"{self.name}.json"
        kafka.ensure_topic(broker.bootstrap, self.name, partitions=3)
        self.produced = 0

    def produce(self, generation: int) -> int:
        world = replace(KAFKA_WORLD, generation=generation)
        sent = fill.fill_kafka(world, self.broker.bootstrap, self.name, self.marker)
        self.produced += sent
        return sent

    def produce_more(self, count: int) -> None:
        """``count`` more events, beyond the sample world's."""
        producer = Producer({"bootstrap.servers": self.broker.bootstrap})
        for n in range(count):
            event = {"event_id": f"more-{n}", "event_type": "click",
                     "event_time": "2025-03-01T00:00:00+00:00", "customer_id": n}  # fmt: skip
            producer.produce(self.name, key=str(n).encode(), value=json.dumps(event).encode(),
                             headers=[("schema_version", b"1")])  # fmt: skip
        assert producer.flush(30) == 0
        self.produced += count


def kafka_settings(settings: Settings, topic: Topic) -> Settings:
    conf = settings.sources.kafka.model_copy(update={"topic": topic.name, "batch_size": 500})
    return settings.model_copy(
        update={"sources": settings.sources.model_copy(update={"kafka": conf})}
    )


def kafka_counts(settings: Settings) -> tuple[int, int, int]:
    """(events, distinct (partition, offset) of events, quarantined): what exactly-once checks."""
    events = rows(settings, "kafka", "events")
    keys = {(e["kafka_partition"], e["kafka_offset"]) for e in events}
    quarantined = {q["quarantine_id"] for q in rows(settings, "kafka", "quarantine")}
    return len(events), len(keys), len(quarantined)


def offsets(settings: Settings) -> dict:
    return dlt_state(settings, "kafka").get("resources", {}).get("events", {})


def assert_exactly_once(settings: Settings, topic: Topic) -> None:
    events, distinct, quarantined = kafka_counts(settings)
    assert events == distinct, "no message loaded twice"
    assert events + quarantined == topic.produced, "every message loaded or quarantined"


def test_kafka_broker_down_then_next_run_loads_exactly_the_rest(settings, broker) -> None:
    topic = Topic(broker, settings)
    settings = kafka_settings(settings, topic)
    where = endpoints(kafka_bootstrap=broker.bootstrap)
    topic.produce(1)
    ingest(settings, where, "kafka")
    assert_exactly_once(settings, topic)
    assert topic.produce(2) > 0
    before = versions(settings, "kafka"), offsets(settings)

    broker.stop()
    try:
        with pytest.raises(SourceUnavailable) as failed:
            ingest(settings, where, "kafka")
    finally:
        broker.start()
    assert str(failed.value).startswith(
        f"kafka: Kafka broker {broker.bootstrap} failed after 3 attempts"
    )
    assert (versions(settings, "kafka"), offsets(settings)) == before, "bronze, offsets unchanged"
    assert unfinished_extracts(settings, "kafka") == []

    ingest(settings, where, "kafka")
    assert_exactly_once(settings, topic)


def test_kafka_broker_killed_mid_load_then_next_run_is_exact(settings, broker, monkeypatch) -> None:
    topic = Topic(broker, settings)
    settings = kafka_settings(settings, topic)
    where = endpoints(kafka_bootstrap=broker.bootstrap)
    topic.produce(1)
    killed = []

    class Consumer(kafka_events.Consumer):
        """The real consumer; the broker dies once the load has read metadata and watermarks."""

        def assign(self, partitions: list) -> None:
            if not killed:
                broker.kill()
                killed.append(partitions)
            super().assign(partitions)

    monkeypatch.setattr(kafka_events, "Consumer", Consumer)
    try:
        with pytest.raises(SourceUnavailable) as failed:
            ingest(settings, where, "kafka")
    finally:
        broker.start()
    assert killed, "the broker died in the middle of the load"
    assert "failed after 3 attempts" in str(failed.value)
    assert versions(settings, "kafka") == {} and offsets(settings) == {}, "nothing committed"

    ingest(settings, where, "kafka")
    assert_exactly_once(settings, topic)


@pytest.mark.parametrize("after_a_load", [True, False], ids=["after-a-load", "first-run"])
def test_a_run_interrupted_after_extract_neither_loses_nor_doubles(
    settings, broker, after_a_load: bool
) -> None:
    topic = Topic(broker, settings)
    settings = kafka_settings(settings, topic)
    where = endpoints(kafka_bootstrap=broker.bootstrap)
    topic.produce(1)
    if after_a_load:
        ingest(settings, where, "kafka")
        topic.produce(2)
    # a run that stopped after dlt's extract step: its package and advanced offsets are on disk
    pipe = bronze.pipeline(settings, "kafka")
    source = kafka_source(broker.bootstrap, topic.name, "test", SchemaPolicy(), GuardStats())
    pipe.extract(source, table_format="delta")
    assert pipe.has_pending_data and offsets(settings)["topic_offsets"][topic.name]
    topic.produce_more(100)

    lines = ingest(settings, where, "kafka")
    assert any("earlier run left" in line for line in lines), lines
    assert_exactly_once(settings, topic)
    assert not bronze.pipeline(settings, "kafka").has_pending_data


# ---- Redshift: a real PostgreSQL server of this module's own, stopped and restarted ------------

WEB_WORLD = World(scale=0.05)


class Server:
    def __init__(self, home: Path) -> None:
        self.home, self.port = home, free_port()
        self.url = postgres.url(self.port)

    def start(self) -> None:
        postgres.start(self.home, self.port)

    def stop(self) -> None:
        postgres.stop(self.home, self.port)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    # Not under pytest's temporary root: as root the server runs as another user, who must
    # traverse the path, and every pytest session (another worktree's too) makes that root
    # private again (0700).
    home = Path(tempfile.mkdtemp(prefix="lakehouse-failures-pg-"))
    running = Server(home)
    running.start()
    try:
        yield running
    finally:
        running.stop()
        shutil.rmtree(home, ignore_errors=True)


def redshift_settings(settings: Settings, server: Server) -> tuple[Settings, str]:
    schema = f"web_{os.urandom(4).hex()}"
    fill.fill_redshift(WEB_WORLD, server.url, schema)
    conf = settings.sources.redshift.model_copy(update={"schema_": schema, "chunk_size": 100})
    sources = settings.sources.model_copy(update={"redshift": conf})
    return settings.model_copy(update={"sources": sources}), schema


def web_counts(settings: Settings) -> tuple[int, int]:
    views = rows(settings, "redshift", "page_views")
    return len(views), len({v["page_view_id"] for v in views})


def test_redshift_postgres_stopped_then_next_run_completes(settings, server) -> None:
    settings, _ = redshift_settings(settings, server)
    where = endpoints(redshift_url=server.url)
    server.stop()
    try:
        with pytest.raises(SourceUnavailable) as failed:
            ingest(settings, where, "redshift")
    finally:
        server.start()
    assert str(failed.value).startswith(
        f"redshift: Redshift database postgresql+psycopg2://lakehouse@127.0.0.1:{server.port}/web"
        " failed after 3 attempts"
    )
    assert "connection failed" in str(failed.value)
    assert versions(settings, "redshift") == {} and dlt_state(settings, "redshift") == {}

    ingest(settings, where, "redshift")
    _, views = WEB_WORLD.web()
    assert web_counts(settings) == (len(views), len(views))


def test_redshift_postgres_restarted_during_a_load_is_retried(settings, server) -> None:
    settings, _ = redshift_settings(settings, server)
    patient = SourceRetryConfig(attempts=6, backoff_s=0.5, max_backoff_s=4.0, timeout_s=2.0)
    settings = settings.model_copy(update={"source_retry": patient})
    restarted, errors = threading.Event(), []

    def restart_when_reading() -> None:
        """Watch the server's sessions; restart it while the loader's query is open."""
        try:
            conn = psycopg2.connect(
                host="127.0.0.1", port=server.port, user="postgres", dbname="postgres",
                sslmode="disable", gssencmode="disable",
            )  # fmt: skip
            conn.autocommit = True
            reading = False
            with conn.cursor() as cur:  # autocommit: a fresh view of the sessions each time
                deadline = time.monotonic() + 60
                while not reading and time.monotonic() < deadline:
                    # the loader streams with a server-side cursor: FETCH after FETCH
                    cur.execute(
                        "select count(*) from pg_stat_activity where datname = 'web' "
                        "and state = 'idle in transaction' and query like 'FETCH %'"
                    )
                    reading = bool(cur.fetchone()[0])
                    time.sleep(0.01)
            conn.close()
            if reading:
                server.stop()
                server.start()
                restarted.set()
        except Exception as error:  # reported by the test, not lost in the thread
            errors.append(error)

    watcher = threading.Thread(target=restart_when_reading, daemon=True)
    watcher.start()
    lines = ingest(settings, endpoints(redshift_url=server.url), "redshift")
    watcher.join(timeout=120)
    assert not errors
    assert restarted.is_set(), "the server restarted while the loader read"
    assert any("retrying" in line for line in lines), lines
    sessions, views = WEB_WORLD.web()
    assert web_counts(settings) == (len(views), len(views))
    assert len({s["session_id"] for s in rows(settings, "redshift", "sessions")}) == len(sessions)
