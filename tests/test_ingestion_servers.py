"""Redshift and Kafka land in bronze by their own strategies, against the session's real servers.

Redshift is a real PostgreSQL server, Kafka a real KRaft broker, both shared by the session;
each test loads into its own temporary lake, in its own schema or topic. The sources that need
no server (Snowflake's file, the CRM API) are the fast tier's (tests/fast/test_ingestion.py).
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import replace

import pytest
from dlt.pipeline.exceptions import PipelineStepFailed
from test_ingestion import (  # tests/fast (pyproject's pythonpath)
    QUARANTINE,
    WORLD,
    WORLD_2,
    rows,
    version,
)

from ingestion import bronze
from ingestion.contracts import GuardStats
from ingestion.kafka_events import kafka_source
from ingestion.redshift import redshift_source
from lakehouse.core.config import SchemaPolicy
from lakehouse.stack.sample_data import fill
from lakehouse.stack.services import kafka


def load_redshift(settings, url: str, schema: str):
    stats = GuardStats()
    source = redshift_source(url, schema, ["sessions", "page_views"], SchemaPolicy(), stats)
    return bronze.run(settings, "redshift", source, stats)


def test_redshift_appends_only_new_rows(tmp_settings, source_systems) -> None:
    schema = f"web_{uuid.uuid4().hex[:8]}"
    url = source_systems.redshift_url
    fill.fill_redshift(WORLD, url, schema)
    sessions, views = WORLD.web()
    first = load_redshift(tmp_settings, url, schema)
    assert first.tables["page_views"].inserted == len(views)
    rerun = load_redshift(tmp_settings, url, schema)
    assert rerun.tables.get("page_views", bronze.TableLoad()).inserted == 0
    assert rerun.balanced and rerun.loaded == 0, "re-read boundary rows are skipped, not lost"
    assert len(rows(tmp_settings, "redshift", "page_views")) == len(views)

    added = fill.fill_redshift(WORLD_2, url, schema)
    later = load_redshift(tmp_settings, url, schema)
    assert later.tables["sessions"].inserted == added["sessions"] > 0
    assert later.tables["sessions"].updated == 0, "append-only never rewrites a row"
    stored = rows(tmp_settings, "redshift", "sessions")
    assert len(stored) == len(sessions) + added["sessions"]
    assert len({s["session_id"] for s in stored}) == len(stored)
    old_loads = {s["_dlt_load_id"] for s in stored if s["session_id"] <= len(sessions)}
    assert old_loads == set(first.load_ids), "old rows keep the load that wrote them"


def test_redshift_fail_policy_leaves_bronze_unchanged(tmp_settings, source_systems) -> None:
    import sqlalchemy as sa

    schema = f"web_{uuid.uuid4().hex[:8]}"
    url = source_systems.redshift_url
    fill.fill_redshift(WORLD, url, schema)
    load_redshift(tmp_settings, url, schema)
    before = version(tmp_settings, "redshift", "sessions")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"alter table {schema}.sessions add column ab_bucket text"))
    engine.dispose()
    fill.fill_redshift(WORLD_2, url, schema)
    stats = GuardStats()
    policy = SchemaPolicy(unknown_columns="fail")
    source = redshift_source(url, schema, ["sessions", "page_views"], policy, stats)
    with pytest.raises(PipelineStepFailed, match="ab_bucket"):
        bronze.run(tmp_settings, "redshift", source, stats)
    assert version(tmp_settings, "redshift", "sessions") == before


def load_kafka(settings, bootstrap: str, topic: str, **replay):
    stats = GuardStats()
    source = kafka_source(bootstrap, topic, "test", QUARANTINE, stats, 2000, **replay)
    return bronze.run(settings, "kafka", source, stats)


def test_kafka_stream_and_replay_without_duplicates(tmp_settings, source_systems) -> None:
    topic = f"events_{uuid.uuid4().hex[:8]}"
    bootstrap = source_systems.kafka_bootstrap
    kafka.ensure_topic(bootstrap, topic, partitions=3)
    world = replace(WORLD, dirty=Counter())
    marker = tmp_settings.source_systems_dir / "kafka.json"
    messages = fill.fill_kafka(world, bootstrap, topic, marker)  # duplicates are sent twice

    first = load_kafka(tmp_settings, bootstrap, topic)
    events = rows(tmp_settings, "kafka", "events")
    quarantined = rows(tmp_settings, "kafka", "quarantine")
    assert len(events) + len(quarantined) == messages == first.read
    assert first.balanced and first.loaded == len(events)
    reasons = Counter(q["reason"].split(":")[0] for q in quarantined)
    assert reasons["malformed record"] == world.dirty["events.malformed_json"]
    assert reasons["unknown columns"] == world.dirty["events.unknown_column"]
    assert all(e["event_time"].tzinfo is not None for e in events[:50])

    assert load_kafka(tmp_settings, bootstrap, topic).read == 0, "offsets kept in dlt state"
    replayed = load_kafka(tmp_settings, bootstrap, topic, replay_from_offset=0)
    assert replayed.read == messages
    assert len(rows(tmp_settings, "kafka", "events")) == len(events), "replay adds nothing"
    assert len(rows(tmp_settings, "kafka", "quarantine")) == len(quarantined)
    midway = sorted(e["kafka_timestamp"] for e in events)[len(events) // 2]
    by_time = load_kafka(tmp_settings, bootstrap, topic, replay_from_time=midway)
    assert 0 < by_time.read < messages
    assert len(rows(tmp_settings, "kafka", "events")) == len(events)

    more = fill.fill_kafka(replace(world, generation=2), bootstrap, topic, marker)
    later = load_kafka(tmp_settings, bootstrap, topic)
    assert later.read == more > 0, "the next run reads only the new messages"
