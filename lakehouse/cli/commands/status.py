"""``lakehouse status``: does the engine answer, and where does the data live (exit 1: down)."""

from __future__ import annotations

import argparse
import logging

from lakehouse.core.config import Settings
from lakehouse.stack import engine, metastore, spark_cluster

log = logging.getLogger(__name__)


def run(settings: Settings, args: argparse.Namespace) -> int:
    up = engine.is_up(settings)
    log.info(f"engine {'up' if up else 'down'} on {settings.engine.host}:{settings.engine.port}")
    if spark_cluster.standalone(settings):
        log.info(f"cluster {spark_cluster.master_url(settings)}: {_workers(settings)}")
    log.info(
        f"lake {settings.lake}; warehouse {settings.warehouse}; "
        f"metastore {metastore.jdbc_url(settings)}"
    )
    return 0 if up else 1


def _workers(settings: Settings) -> str:
    """The master's own count of live workers (engine.mode: standalone)."""
    try:
        workers = spark_cluster.state(settings)["workers"]
    except OSError:
        return "master down"
    alive = sum(w["state"] == "ALIVE" for w in workers)
    expected = settings.engine.standalone.workers
    return f"{alive} of {expected} workers alive (UI {spark_cluster.master_ui(settings)})"
