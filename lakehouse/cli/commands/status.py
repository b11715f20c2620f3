"""``lakehouse status``: does the engine answer, and where does the data live (exit 1: down)."""

from __future__ import annotations

import argparse
import logging

from lakehouse.core.config import Settings
from lakehouse.stack import engine

log = logging.getLogger(__name__)


def run(settings: Settings, args: argparse.Namespace) -> int:
    up = engine.is_up(settings)
    log.info(f"engine {'up' if up else 'down'} on {settings.engine.host}:{settings.engine.port}")
    log.info(
        f"lake {settings.lake}; warehouse {settings.warehouse}; metastore {settings.metastore_dir}"
    )
    return 0 if up else 1
