"""A loader killed mid-run and run again loses nothing and duplicates nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import deltalake
import yaml

from lakehouse.core.config import DEFAULT_CONFIG_FILE, REPO_ROOT
from lakehouse.stack.sample_data import fill
from lakehouse.stack.sample_data.world import World
from lakehouse.stack.services import kafka

SCALE = 0.05  # ~50k Kafka messages and ~9k page views: a run takes several seconds


def _ingest(env: dict[str, str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "lakehouse", "ingest", "--source", "redshift", "--source", "kafka"]
    return subprocess.Popen(cmd, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip


def _count(path: Path) -> tuple[int, int]:
    table = deltalake.DeltaTable(str(path)).to_pyarrow_table()
    keys = {tuple(r.values()) for r in table.select(_key_columns(table)).to_pylist()}
    return table.num_rows, len(keys)


def _key_columns(table) -> list[str]:
    names = table.column_names
    if "kafka_offset" in names:
        return ["kafka_partition", "kafka_offset"]
    return [n for n in ("page_view_id", "session_id", "quarantine_id") if n in names][:1]


def test_killed_ingest_then_rerun_is_exact(tmp_path: Path, source_systems) -> None:
    suffix = uuid.uuid4().hex[:8]
    config = yaml.safe_load(DEFAULT_CONFIG_FILE.read_text())
    config["sources"]["kafka"]["topic"] = topic = f"events_{suffix}"
    config["sources"]["redshift"]["schema"] = schema = f"web_{suffix}"
    config["sample_data"]["scale"] = SCALE
    config_file = tmp_path / "lakehouse.yml"
    config_file.write_text(yaml.safe_dump(config))
    home = tmp_path / "home"
    env = {
        **os.environ,
        "LAKEHOUSE_CONFIG": str(config_file),
        "LAKEHOUSE_HOME": str(home),
        "LAKEHOUSE_SCALE": str(SCALE),
        # production-style endpoints: the loaders use the suite's running systems as given
        "REDSHIFT_URL": source_systems.redshift_url,
        "KAFKA_BOOTSTRAP_SERVERS": source_systems.kafka_bootstrap,
    }
    world = World(scale=SCALE)
    fill.fill_redshift(world, source_systems.redshift_url, schema)
    kafka.ensure_topic(source_systems.kafka_bootstrap, topic)
    messages = fill.fill_kafka(world, source_systems.kafka_bootstrap, topic, tmp_path / "k.json")
    _, views = world.web()

    victim = _ingest(env)
    kafka_pipeline = home / "state" / "dlt" / "bronze_kafka"
    deadline = time.monotonic() + 120
    while not kafka_pipeline.exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # well inside the Kafka load (several seconds)
    assert victim.poll() is None, "the ingest finished before it could be killed"
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()

    survivor = _ingest(env)
    output = survivor.communicate(timeout=300)[0].decode()
    assert survivor.returncode == 0, output

    bronze = home / "lake" / "bronze"
    assert _count(bronze / "redshift" / "page_views") == (len(views), len(views))
    events, distinct_events = _count(bronze / "kafka" / "events")
    quarantined, distinct_quarantined = _count(bronze / "kafka" / "quarantine")
    assert events == distinct_events, "no message loaded twice"
    assert quarantined == distinct_quarantined
    assert events + quarantined == messages, "every message loaded or quarantined"
