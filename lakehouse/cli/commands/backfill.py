"""``lakehouse backfill``: reload a date range of one source, then rebuild what depends on it."""

from __future__ import annotations

import argparse
import logging
import sys

from lakehouse.cli.commands.home_guard import refused
from lakehouse.core.config import Settings
from lakehouse.pipeline import backfill
from lakehouse.stack import engine

log = logging.getLogger(__name__)


def run(settings: Settings, args: argparse.Namespace) -> int:
    if refused(settings, "backfill"):
        return 2
    end = args.end or args.start
    try:
        backfill.validate(args.source, args.start, end)
        with engine.running(settings):
            done = backfill.backfill(settings, args.source, args.start, end, not args.no_rebuild)
    except backfill.BackfillError as exc:
        print(f"backfill failed: {exc}", file=sys.stderr)
        return 1
    log.info(f"backfill of {args.source} {args.start}..{end}: {done.load.line()}")
    return 0
