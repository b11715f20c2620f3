"""``lakehouse watchdog``: judge bronze volume or quarantine growth, or raise the gold changes over
their threshold (each build and table once); exit 1 on a breach."""

from __future__ import annotations

import argparse
import logging
import sys

from lakehouse.core.config import Settings
from lakehouse.observability import watchdog

log = logging.getLogger(__name__)


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Say every finding; exit 1 (naming the breaches on stderr) if any breached."""
    overrides = {
        "volume_tolerance": args.volume_tolerance,
        "quarantine_max_share": args.quarantine_max_share,
    }
    overrides = {key: value for key, value in overrides.items() if value is not None}
    conf = settings.orchestration.watchdog.model_copy(update=overrides)
    if args.check == "changes":
        findings = watchdog.gold_changes(settings)
    elif args.check == "volume":
        findings = watchdog.volume(settings, conf)
    else:
        findings = watchdog.quarantine_growth(settings, conf)
    for finding in findings:
        verdict = "BREACH" if finding.breach else "ok"
        log.info(f"{verdict:6} {finding.subject}: {finding.message}")
    breaches = [f for f in findings if f.breach]
    if breaches:
        print(
            f"{args.check} breached: " + "; ".join(f"{f.subject}: {f.message}" for f in breaches),
            file=sys.stderr,
        )
        return 1
    return 0
