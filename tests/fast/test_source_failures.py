"""A failing system is not a bad record: retried within bounds, then a clean, resumable failure.

Every failure here is real and needs no server: the local HTTP service answers 503/429/500,
stalls or resets the connection on demand (its ``faults`` test hook); the Snowflake stand-in's
database file is locked. A real Kafka broker and a real PostgreSQL server stopped, killed and
restarted are the engine tier's (tests/test_source_outages.py, which shares these helpers). The
loads go through ``lakehouse.pipeline.loads.ingest``, the code ``lakehouse ingest`` runs. Retry
bounds are small (``RETRY``) so the module stays fast.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import deltalake
import psycopg2
import pytest
import yaml
from dlt.pipeline.exceptions import PipelineStepFailed

from ingestion import bronze
from ingestion.contracts import SchemaContractViolation
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


class Said(logging.Handler):
    """What a load logs, line by line (its retries included); ``then`` sees each line as it
    is said, while the load waits."""

    def __init__(self, then: Callable[[str], None] | None = None) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self.then = then

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        if self.then is not None:
            self.then(self.lines[-1])

    @contextlib.contextmanager
    def listening(self) -> Iterator[list[str]]:
        loggers = [logging.getLogger(name) for name in ("ingestion", loads.__name__)]
        levels = [logger.level for logger in loggers]
        for logger in loggers:
            logger.addHandler(self)
            logger.setLevel(logging.INFO)
        try:
            yield self.lines
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.removeHandler(self)
                logger.setLevel(level)


def ingest(settings: Settings, where: systems.Endpoints, source: str) -> list[str]:
    """Load one source through the runner; return what it logged (retries included)."""
    with Said().listening() as lines:
        loads.ingest(settings, where, [source])
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
    with Said(then=report).listening():
        loads.ingest(settings, where, ["snowflake"])
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
