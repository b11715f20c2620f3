"""``lakehouse report``: the watchdog report (HTML), and with the engine up every table's rows."""

from __future__ import annotations

import argparse
import logging

from lakehouse.core.config import Settings
from lakehouse.observability import watchdog_report
from lakehouse.pipeline import steps
from lakehouse.stack import engine

log = logging.getLogger(__name__)


def run(settings: Settings, args: argparse.Namespace) -> int:
    if not args.html_only and engine.is_up(settings):
        steps.row_counts(settings)
    log.info(f"watchdog report: {watchdog_report.write(settings)}")
    return 0
