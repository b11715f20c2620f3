"""The bench's mode column: one pipeline, two deployments, side by side in one bench run.

``local``: what a user who configures nothing gets (the lake in a local folder, the engine one
``local[*]`` JVM). ``distributed``: the lake on the local S3-compatible server (delta-rs through
``s3://``, Spark through ``s3a://``) and the engine in ``engine.mode: standalone`` (a master and
two workers). Each gets a lake home of its own under the bench's, the same sample data, and the
same measurements: ``make run``'s steps from an empty lake, then whole ``dbt build`` runs on the
warm engine. The two run one after the other (the ports are the bench's), so both see the same
minutes of the machine as nearly as a 2-core box allows; their ratio is the cost of leaving
one machine's defaults, not a claim about a real cluster, whose nodes would add cores.
"""

from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path

from lakehouse.core.config import Settings, load_settings
from lakehouse.core.environment import overridden
from lakehouse.pipeline import steps
from lakehouse.stack import engine, object_store

log = logging.getLogger(__name__)

LOCAL, DISTRIBUTED = "local disk + local engine", "S3 + standalone cluster"
# What the distributed side sets; every other setting is the bench's own.
DISTRIBUTED_ENV = {
    "LAKEHOUSE_STORAGE__ROOT": "s3://lakehouse/bench",
    "LAKEHOUSE_ENGINE__MODE": "standalone",
}
MODES: dict[str, dict[str, str]] = {LOCAL: {}, DISTRIBUTED: DISTRIBUTED_ENV}


def measure(home: Path, overrides: dict[str, str], repeat: int) -> dict[str, float]:
    """``make run``'s steps on an empty lake at ``home``, then ``repeat`` whole warm builds."""
    cleared = {name: "" for name in DISTRIBUTED_ENV}  # the bench's own settings otherwise
    with overridden({**cleared, "LAKEHOUSE_HOME": str(home), **overrides}):
        settings: Settings = load_settings()
        log.info(f"bench: modes: {settings.engine.mode} engine, lake at {settings.storage_root}")
        timings = steps.run(settings)
        with object_store.running(settings), engine.running(settings):
            steps.dbt(settings, "build")  # the first after the engine starts: not a warm one
            warm = []
            for _ in range(repeat):
                started = time.perf_counter()
                steps.dbt(settings, "build")
                warm.append(time.perf_counter() - started)
    return {**timings, "dbt build, warm": statistics.median(warm)}


def compare(bench_home: Path, repeat: int) -> dict[str, dict[str, float]]:
    """Both modes' measurements, each on its own home under ``<bench home>/modes``."""
    return {
        mode: measure(bench_home / "modes" / slug, overrides, repeat)
        for (mode, overrides), slug in zip(MODES.items(), ("local", "distributed"), strict=True)
    }
