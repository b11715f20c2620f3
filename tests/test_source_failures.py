"""A failing system is not a bad record: retried within bounds, then a clean, resumable failure.

Every failure here is real: the local HTTP service answers 503/429/500, stalls or resets the
connection on demand (its ``faults`` test hook); a real Kafka broker and a real PostgreSQL
server of this module's own (free ports, a temporary home, so stopping them disturbs no other
test) are stopped, killed and restarted; the Snowflake stand-in's database file is locked. The
loads go through ``lakehouse.pipeline.loads.ingest``, the code ``lakehouse ingest`` runs. Retry
bounds are
small (``RETRY``) so the module stays fast.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import deltalake
import psycopg2
import pytest
import yaml
from confluent_kafka import Producer
from dlt.pipeline.exceptions import PipelineStepFailed

from ingestion import bronze, kafka_events
from ingestion.contracts import GuardStats, SchemaContractViolation
from ingestion.kafka_events import kafka_source
from ingestion.retry import SourceUnavailable, system_failure
from lakehouse.core.config import (
    DEFAULT_CONFIG_FILE,
    REPO_ROOT,
    SchemaPolicy,
    Settings,
    SourceRetryConfig,
)
from lakehouse.pipeline import loads
from lakehouse.stack import http_standin
from lakehouse.stack import source_systems as systems
from lakehouse.stack.http_standin import Fault
from lakehouse.stack.sample_data import fill
from lakehouse.stack.sample_data.world import World
from lakehouse.stack.services import kafka, postgres

RETRY = SourceRetryConfig(attempts=3, backoff_s=0.05, max_backoff_s=2.0, timeout_s=1.0)
WORLD = World(scale=0.01, dirty_share=0.05)
WORLD_2 = replace(WORLD, generation=2, dirty=Counter())
TOKEN = systems.LOCAL_CRM_TOKEN


@pytest.fixture()
def settings(tmp_settings: Settings) -> Settings:
    """A fresh lake with small retry bounds and a CRM page size that makes several pages."""
    crm = tmp_settings.sources.crm.model_copy(update={"page_size": 40})
    sources = tmp_settings.sources.model_copy(update={"crm": crm})
    return tmp_settings.model_copy(update={"source_retry": RETRY, "sources": sources})


def endpoints(**where: str) -> systems.Endpoints:
    fields = dict(snowflake_url="", crm_base_url="", crm_token=TOKEN, redshift_url="",
                  fx_base_url="", kafka_bootstrap="")  # fmt: skip
    return systems.Endpoints(**{**fields, **where})


def ingest(settings: Settings, where: systems.Endpoints, source: str) -> list[str]:
    """Load one source through the runner; return what it reported (retries included)."""
    lines: list[str] = []
    loads.ingest(settings, where, [source], report=lines.append)
    return lines


def rows(settings: Settings, dataset: str, table: str) -> list[dict]:
    path = settings.bronze_dir / dataset / table
    if not path.exists():
        return []
    return deltalake.DeltaTable(str(path)).to_pyarrow_table().to_pylist()


def versions(settings: Settings, dataset: str) -> dict[str, int]:
    """Every bronze table of the dataset and its Delta version: what "unchanged" compares."""
    folder = settings.bronze_dir / dataset
    if not folder.exists():
        return {}
    return {p.parent.name: deltalake.DeltaTable(str(p.parent)).version()
            for p in folder.glob("*/_delta_log")}  # fmt: skip


def dlt_state(settings: Settings, source: str) -> dict:
    """The source's state as dlt committed it (watermarks, offsets)."""
    pipe = bronze.pipeline(settings, source)
    return pipe.state.get("sources", {}).get(source, {})


def unfinished_extracts(settings: Settings, source: str) -> list[Path]:
    """Folders of dlt's extract step other than its committed packages (ingestion/resume.py)."""
    normalize = Path(bronze.pipeline(settings, source).working_dir) / "normalize"
    return [p for p in normalize.iterdir() if p.is_dir() and p.name != "extracted"]


# ---- which errors are a failing system: real errors from real clients --------------------------


def real_error(action) -> BaseException:
    try:
        action()
    except Exception as error:
        return error
    raise AssertionError("expected an error")


def test_failing_systems_are_told_from_everything_else(tmp_path: Path) -> None:
    import requests
    import sqlalchemy as sa
    from confluent_kafka import Consumer

    dead = free_port()
    consumer = Consumer({"bootstrap.servers": f"127.0.0.1:{dead}", "group.id": "t",
                         "log_level": 0})  # fmt: skip
    sqlite_file = tmp_path / "db.sqlite"
    transient = {
        "http": real_error(lambda: requests.get(f"http://127.0.0.1:{dead}/", timeout=1)),
        "postgres": real_error(lambda: psycopg2.connect(host="127.0.0.1", port=dead)),
        "sqlite": real_error(lambda: sa.create_engine(f"sqlite:///{tmp_path}/no/dir.db").connect()),
        "kafka": real_error(lambda: consumer.list_topics("events", timeout=0.5)),
    }
    sqlite3.connect(sqlite_file).close()
    query = sa.text("select * from customers")
    permanent = {
        "missing table": real_error(
            lambda: sa.create_engine(f"sqlite:///{sqlite_file}").connect().execute(query)
        ),
        "bug": real_error(lambda: {}["key"]),
    }
    consumer.close()
    for name, error in transient.items():
        assert system_failure(error), name
    for name, error in permanent.items():
        assert system_failure(error) is None, name
    # a contract violation is never a system failure, whatever it wraps
    violation = SchemaContractViolation("unknown columns: x")
    violation.__cause__ = transient["http"]
    assert system_failure(violation) is None


def test_retry_bounds_are_validated(tmp_path: Path) -> None:
    from lakehouse.core.config import ConfigError, load_settings

    config = yaml.safe_load(DEFAULT_CONFIG_FILE.read_text())
    config["source_retry"]["attempts"] = 0
    (tmp_path / "lakehouse.yml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=r"source_retry\.attempts"):
        load_settings(tmp_path / "lakehouse.yml")


# ---- CRM: the local HTTP service fails on demand ------------------------------------------------


def crm_records(settings: Settings) -> int:
    """Records of the CRM in bronze: loaded or quarantined (every one ends in exactly one)."""
    return sum(len(rows(settings, "crm", t)) for t in ("contacts", "accounts", "quarantine"))


def crm_keys(settings: Settings) -> set[str]:
    return {c["contact_id"] for c in rows(settings, "crm", "contacts")}


def expected_crm(world: World) -> int:
    return len(world.crm_contacts) + len(world.crm_accounts)


def test_crm_503_twice_then_ok_loads_every_record(settings: Settings) -> None:
    with http_standin.serving_service(WORLD) as service:
        service.faults.add("/crm/v1/contacts", Fault(status=503), times=2)
        lines = ingest(settings, endpoints(crm_base_url=service.url), "crm")
    assert service.faults.injected == {"status 503": 2}
    assert crm_records(settings) == expected_crm(WORLD)
    assert not any("retrying" in line for line in lines), "dlt's client retried the request"


def test_crm_429_retry_after_is_honoured(settings: Settings) -> None:
    with http_standin.serving_service(WORLD) as service:
        service.faults.add("/crm/v1/accounts", Fault(status=429, retry_after="1"), page="1")
        ingest(settings, endpoints(crm_base_url=service.url), "crm")
    assert service.faults.injected == {"status 429": 1}
    [limited, retried] = [t for t, path, q in service.faults.requests
                          if path == "/crm/v1/accounts" and q.get("page") == "1"]  # fmt: skip
    # backoff_s is 0.05 s: only the header can make the client wait a whole second
    assert retried - limited >= 0.95
    assert crm_records(settings) == expected_crm(WORLD)


def test_crm_stall_past_the_timeout_is_retried(settings: Settings) -> None:
    with http_standin.serving_service(WORLD) as service:
        stall = Fault(stall_s=RETRY.timeout_s + 1.5)
        service.faults.add("/crm/v1/contacts", stall, page="2")
        ingest(settings, endpoints(crm_base_url=service.url), "crm")
    assert service.faults.injected == {"stall": 1}
    pages = Counter(q.get("page") for _, p, q in service.faults.requests if p.endswith("contacts"))
    assert pages["2"] == 2 and pages["1"] == 1, "only the stalled page is fetched again"
    assert crm_records(settings) == expected_crm(WORLD)


def test_crm_connection_reset_mid_page_is_retried(settings: Settings) -> None:
    with http_standin.serving_service(WORLD) as service:
        service.faults.add("/crm/v1/contacts", Fault(cut=True), page="2")
        ingest(settings, endpoints(crm_base_url=service.url), "crm")
    assert service.faults.injected == {"cut": 1}
    assert crm_records(settings) == expected_crm(WORLD)
    assert len(crm_keys(settings)) == len(rows(settings, "crm", "contacts")), "no duplicate"


def test_crm_persistent_500_fails_cleanly_and_the_next_run_completes(settings: Settings) -> None:
    with http_standin.serving_service(WORLD) as service:
        ingest(settings, endpoints(crm_base_url=service.url), "crm")
    before = versions(settings, "crm"), dlt_state(settings, "crm"), crm_keys(settings)

    with http_standin.serving_service(WORLD_2) as service:
        service.faults.add("/crm/v1/accounts", Fault(status=500), times=None)
        with pytest.raises(SourceUnavailable) as failed:
            ingest(settings, endpoints(crm_base_url=service.url), "crm")
        message = str(failed.value)
        assert message.startswith(f"crm: CRM API {service.url} failed after 3 attempts")
        assert "HTTP 500" in message and "/crm/v1/accounts" in message
        assert service.faults.injected["status 500"] == RETRY.attempts
        after = versions(settings, "crm"), dlt_state(settings, "crm"), crm_keys(settings)
        assert after == before, "bronze, watermark and keys exactly as the last good load"
        assert unfinished_extracts(settings, "crm") == [], "no partial extract left on disk"

        service.faults.clear()
        ingest(settings, endpoints(crm_base_url=service.url), "crm")
    loadable = {c["contact_id"] for c in WORLD_2.crm_contacts
                if c["contact_id"] and "legacy_score" not in c}  # fmt: skip
    assert crm_keys(settings) == loadable, "the next run brings bronze up to the CRM"
    assert len(rows(settings, "crm", "contacts")) == len(loadable)


def test_a_fail_policy_violation_is_never_retried(settings: Settings) -> None:
    crm = settings.sources.crm.model_copy(
        update={"schema_policy": SchemaPolicy(unknown_columns="fail")}
    )
    settings = settings.model_copy(
        update={"sources": settings.sources.model_copy(update={"crm": crm})}
    )
    with (
        http_standin.serving_service(WORLD) as service,
        pytest.raises(PipelineStepFailed, match="legacy_score") as failed,
    ):
        ingest(settings, endpoints(crm_base_url=service.url), "crm")
    assert system_failure(failed.value) is None
    assert any(isinstance(e, SchemaContractViolation) for e in _chain(failed.value))
    pages = Counter((p, q.get("page")) for _, p, q in service.faults.requests)
    assert set(pages.values()) == {1}, "no page requested twice: no retry"
    assert versions(settings, "crm") == {}


def _chain(error: BaseException) -> list[BaseException]:
    found = []
    while error is not None and error not in found:
        found.append(error)
        error = error.__cause__ or error.__context__
    return found


def test_fx_503_then_persistent_failure(settings: Settings) -> None:
    with http_standin.serving_service(WORLD) as service:
        day = WORLD.start_date.isoformat()
        service.faults.add(f"/fx/v1/{day}", Fault(status=503), times=2)
        ingest(settings, endpoints(fx_base_url=service.url), "fx")
        loaded = rows(settings, "fx", "rates")
        assert {r["rate_date"].isoformat() for r in loaded} >= {day}
        state, before = dlt_state(settings, "fx"), versions(settings, "fx")

        service.faults.add("/fx/v1/", Fault(status=502), times=None)
        with pytest.raises(SourceUnavailable, match=r"^fx: FX API http://\S+ failed after 3"):
            ingest(settings, endpoints(fx_base_url=service.url), "fx")
    assert (dlt_state(settings, "fx"), versions(settings, "fx")) == (state, before)


# ---- the command: a failing source ends `lakehouse ingest` with a message, not a traceback ----


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_lakehouse_ingest_exits_non_zero_naming_the_system(tmp_path: Path) -> None:
    config = yaml.safe_load(DEFAULT_CONFIG_FILE.read_text())
    config["source_retry"] = RETRY.model_dump()
    config_file = tmp_path / "lakehouse.yml"
    config_file.write_text(yaml.safe_dump(config))
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = {
        **os.environ,
        "LAKEHOUSE_CONFIG": str(config_file),
        "LAKEHOUSE_HOME": str(tmp_path / "home"),
        "CRM_BASE_URL": dead,
        "FX_BASE_URL": dead,
        # only the CRM is loaded: the other systems are named but never contacted
        "REDSHIFT_URL": "postgresql+psycopg2://nobody@127.0.0.1:1/none",
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "lakehouse", "ingest", "--source", "crm"],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"ingest failed: crm: CRM API {dead} failed after 3 attempts" in done.stderr
    assert "connection failed" in done.stderr
    assert "Traceback" not in done.stderr


# ---- Snowflake stand-in: its database file locked by another process -----------------------


def snowflake_file(settings: Settings) -> Path:
    path = settings.source_systems_dir / "snowflake.db"
    fill.fill_snowflake(WORLD, path)
    return path


def lock(path: Path) -> sqlite3.Connection:
    """Hold an exclusive lock on the database: readers get "database is locked" meanwhile."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    return holder


def test_snowflake_database_locked_then_released_is_retried(settings: Settings) -> None:
    path = snowflake_file(settings)
    holder = lock(path)
    lines: list[str] = []

    def report(line: str) -> None:
        lines.append(line)
        if "retrying" in line:
            holder.rollback()  # the other process lets go while the loader waits

    where = endpoints(snowflake_url=fill.snowflake_url(path))
    loads.ingest(settings, where, ["snowflake"], report=report)
    holder.close()
    assert sum("database is locked" in line for line in lines) == 1
    assert len(rows(settings, "snowflake", "customers")) == len(WORLD.customers)
    assert len(rows(settings, "snowflake", "orders")) == len(WORLD.orders)


def test_snowflake_database_locked_for_good_fails_cleanly(settings: Settings) -> None:
    path = snowflake_file(settings)
    where = endpoints(snowflake_url=fill.snowflake_url(path))
    ingest(settings, where, "snowflake")
    before = versions(settings, "snowflake")
    holder = lock(path)
    try:
        with pytest.raises(SourceUnavailable) as failed:
            ingest(settings, where, "snowflake")
    finally:
        holder.close()
    assert str(failed.value).startswith(
        f"snowflake: Snowflake database sqlite:///{path} failed after 3 attempts"
    )
    assert "database is locked" in str(failed.value)
    assert versions(settings, "snowflake") == before


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
            producer.produce(self.name, key=str(n).encode(), value=json.dumps(event).encode())
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
