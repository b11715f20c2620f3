"""``lakehouse ingest``: load sources into bronze (or replay Kafka from an offset or a time)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC

from dlt.pipeline.exceptions import PipelineStepFailed

from ingestion.registry import SOURCES
from ingestion.retry import SourceUnavailable
from lakehouse.cli.commands.home_guard import refused
from lakehouse.core.config import Settings
from lakehouse.pipeline import home_record, steps
from lakehouse.pipeline.loads import Replay


def run(settings: Settings, args: argparse.Namespace) -> int:
    replay = None
    if args.replay_from_offset is not None or args.replay_from_time is not None:
        if args.sources not in (None, ["kafka"]):
            print(
                "lakehouse ingest: error: replay applies to the kafka source only (--source kafka)",
                file=sys.stderr,
            )
            return 2
        args.sources = ["kafka"]
        when = args.replay_from_time
        if when is not None and when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        replay = Replay(from_offset=args.replay_from_offset, from_time=when)
    if refused(settings, "ingest"):
        return 2
    try:
        steps.ingest(settings, args.sources or SOURCES, replay, args.generation)
    except home_record.HomeMismatch as exc:
        print(f"lakehouse ingest: {exc}", file=sys.stderr)
        return 2
    except (SourceUnavailable, PipelineStepFailed) as exc:
        # a failing system (after its retries) or a `fail` schema policy: say which source and
        # why, without a traceback; the next run resumes (docs/operations.md)
        print(f"ingest failed: {first_lines(exc)}", file=sys.stderr)
        return 1
    return 0


def first_lines(error: BaseException) -> str:
    """An ingest error for a person: its message (dlt's step failure: the cause's) and notes."""
    if isinstance(error, PipelineStepFailed):
        notes = getattr(error, "__notes__", [])
        error = error.exception.__cause__ or error.exception
        return "\n".join([f"{type(error).__name__}: {error}", *notes])
    return str(error)
