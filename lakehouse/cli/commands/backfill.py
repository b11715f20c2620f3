"""``lakehouse backfill``: reload a window of one source, then rebuild what depends on it."""

from __future__ import annotations

import argparse
import logging
import sys

from ingestion import registry
from lakehouse.cli.commands.home_guard import refused
from lakehouse.core.config import Settings
from lakehouse.pipeline import backfill
from lakehouse.stack import engine

log = logging.getLogger(__name__)


def request(args: argparse.Namespace) -> backfill.Request:
    """The request the arguments make, validated (``BackfillError`` says what is wrong)."""
    ids = args.from_id is not None or args.to_id is not None
    window = args.start is not None or args.end is not None
    if args.reload or args.downstream_only:
        mode = "reload" if args.reload else "downstream-only"
        if ids or window:
            raise backfill.BackfillError(f"--{mode} takes no window and no id range")
        return backfill.validate(args.source, mode=mode, tables=args.tables)
    if ids:
        if window:
            raise backfill.BackfillError("give a time window (--from/--to) or an id range "
                                         "(--from-id/--to-id), not both")  # fmt: skip
        return backfill.validate(args.source, args.from_id, args.to_id, "ids", args.tables)
    end = args.end
    if end is None and registry.spec(args.source).backfill.window == "days":
        end = args.start  # one day
    return backfill.validate(args.source, args.start, end, "window", args.tables)


def run(settings: Settings, args: argparse.Namespace) -> int:
    if refused(settings, "backfill"):
        return 2
    try:
        asked = request(args)
        tables = backfill.configured_tables(settings, asked)
        if args.dry_run:
            selectors = [f"source:{asked.source}.{t}+" for t in tables]
            load = "" if asked.mode == "downstream-only" else f"reload bronze {', '.join(tables)}, "
            log.info(f"backfill of {asked.describe()} would {load}then run dbt build --select "
                     f"{' '.join(selectors)} (and the quarantine's downstream, if the reload "
                     "quarantines records)")  # fmt: skip
            return 0
        with engine.running(settings):
            done = backfill.run(settings, asked, not args.no_rebuild)
    except backfill.BackfillError as exc:
        print(f"backfill failed: {exc}", file=sys.stderr)
        return 1
    loaded = done.load.line() if done.load else "nothing loaded (downstream only)"
    log.info(f"backfill of {asked.describe()}: {loaded}")
    if done.rebuilt:
        log.info(f"rebuilt downstream of {', '.join(done.selectors)}: {len(done.nodes)} node(s)")
    return 0
