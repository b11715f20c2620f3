"""``lakehouse publish``: gold to the warehouses (Snowflake MERGE, Redshift append), reconciled."""

from __future__ import annotations

import argparse
import sys

from lakehouse.core.config import Settings
from lakehouse.pipeline import steps
from lakehouse.publish.errors import PublishError


def run(settings: Settings, args: argparse.Namespace) -> int:
    try:
        steps.publish(settings, args.warehouses, args.tables, args.full_refresh)
    except PublishError as exc:
        print(f"publish failed: {exc}", file=sys.stderr)
        return 1
    return 0
