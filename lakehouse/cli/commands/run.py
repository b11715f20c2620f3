"""``lakehouse run``: the whole pipeline (ingest, build, publish, report), resumable."""

from __future__ import annotations

import argparse
import sys
import traceback
from datetime import UTC, datetime

from lakehouse.cli.commands.home_guard import refused
from lakehouse.core.config import Settings
from lakehouse.observability import run_metrics
from lakehouse.pipeline import steps


def run(settings: Settings, args: argparse.Namespace) -> int:
    if refused(settings, "run"):
        return 2
    try:
        steps.run(settings)
    except steps.RunFailed as exc:
        return failed(settings, "run", exc)
    return 0


def failed(settings: Settings, command: str, exc: BaseException) -> int:
    """Say in one line what failed and what to do; the traceback (with its cause) goes to a log
    for whoever digs deeper, not to the terminal."""
    log = settings.log_dir / "lakehouse-errors.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as out:
        out.write(
            f"--- {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} lakehouse {command} "
            f"(run {run_metrics.run_id()})\n"
        )
        out.writelines(traceback.format_exception(exc))
    print(f"{command} failed: {exc}\n(traceback: {log})", file=sys.stderr)
    return 1
