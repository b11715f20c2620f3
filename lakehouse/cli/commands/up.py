"""``lakehouse up``: start the local source systems and the engine."""

from __future__ import annotations

import argparse
import logging

from lakehouse.core.config import Settings
from lakehouse.stack import engine, object_store, source_systems

log = logging.getLogger(__name__)


def run(settings: Settings, args: argparse.Namespace) -> int:
    for line in object_store.start_local(settings) + source_systems.start_local(settings):
        log.info(line)
    if engine.is_up(settings):
        log.info(f"engine already answers on port {settings.engine.port}")
    else:
        pid = engine.start(settings)
        log.info(
            f"engine up on {settings.engine.host}:{settings.engine.port} "
            f"(pid {pid}, log {engine.log_file(settings)})"
        )
    return 0
