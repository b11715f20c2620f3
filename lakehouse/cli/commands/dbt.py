"""``lakehouse dbt <args>``: dbt on the project, as the platform calls it (dbt-ol for builds)."""

from __future__ import annotations

import argparse

from lakehouse.core.config import Settings
from lakehouse.transform import dbt_cli


def run(settings: Settings, args: argparse.Namespace) -> int:
    return dbt_cli.dbt(settings, *args.args, check=False).returncode
