"""``lakehouse home show|adopt``: the settings the lake home was filled with."""

from __future__ import annotations

import argparse
import json
import logging

from lakehouse.core.config import Settings
from lakehouse.pipeline import home_record

log = logging.getLogger(__name__)


def run(settings: Settings, args: argparse.Namespace) -> int:
    """``show``: the record and any difference from the current settings (exit 1 if any);
    ``adopt``: record the current settings as the home's."""
    if args.action == "adopt":
        before, now = home_record.adopt(settings)
        for d in home_record.differences(before, now) if before else []:
            log.info(f"{d.setting}: was {d.home}, now {d.now}")
        log.info(f"the current settings are the home's: {home_record.record_file(settings)}")
        return 0
    record = home_record.read(settings)
    if record is None:
        log.info(f"{settings.home} has no record yet (the first load writes it)")
        return 0
    print(json.dumps(record, indent=2))
    found = home_record.differences(record, home_record.current(settings))
    for d in found:
        log.info(f"differs: {d.setting}: the home has {d.home}, the current settings {d.now}")
    return 1 if found else 0
