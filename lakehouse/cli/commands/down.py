"""``lakehouse down``: stop Airflow, the engine and the local source systems."""

from __future__ import annotations

import argparse
import logging

from lakehouse.core.config import Settings
from lakehouse.stack import engine, object_store, source_systems
from lakehouse.stack.services import airflow

log = logging.getLogger(__name__)


def run(settings: Settings, args: argparse.Namespace) -> int:
    for line in airflow.stop(settings):
        log.info(line)
    stopped = engine.stop(settings)
    log.info("engine stopped" if stopped else "engine was not running")
    for line in source_systems.stop_local(settings) + object_store.stop_local(settings):
        log.info(line)
    return 0
