"""The check every command that loads data runs first: a lake home filled with other settings
is refused, not mixed (lakehouse/pipeline/home_record.py), before anything starts."""

from __future__ import annotations

import logging
import sys

from lakehouse.core.config import Settings
from lakehouse.pipeline import home_record

log = logging.getLogger(__name__)


def refused(settings: Settings, command: str) -> bool:
    """True (the refusal said on stderr) when the home holds another world or system."""
    try:
        if adopted := home_record.check(settings):
            log.info(adopted)
    except home_record.HomeMismatch as exc:
        print(f"lakehouse {command}: {exc}", file=sys.stderr)
        return True
    return False
