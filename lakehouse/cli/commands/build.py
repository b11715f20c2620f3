"""``lakehouse build``: the platform's dbt build of what changed, or (``--plan``,
``--remember``) its selection for a build run elsewhere (Airflow's Cosmos producer)."""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from datetime import UTC, datetime

from lakehouse.core import bronze_versions
from lakehouse.core.config import Settings
from lakehouse.pipeline import steps
from lakehouse.stack import engine
from lakehouse.transform import build_selection

log = logging.getLogger(__name__)


def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.plan or args.remember:
        return build_state(settings, args)
    try:
        with engine.running(settings):
            steps.build(settings, args.everything)
    except subprocess.CalledProcessError as exc:
        print(
            f"build failed: dbt exited with code {exc.returncode} (output above)", file=sys.stderr
        )
        return 1
    return 0


def build_state(settings: Settings, args: argparse.Namespace) -> int:
    """``--plan`` marks the build as begun (lakehouse_airflow/build_selection.py); ``--remember``
    records its success as the state the next build compares with."""
    if not args.lake_state or (args.remember and not args.target_dir):
        print("build --plan needs --lake-state; --remember also --target-dir", file=sys.stderr)
        return 2
    if args.plan:
        # `dbt ls` resolves the selection from the manifest alone: no engine needed
        plan = build_selection.plan_selected(settings, args.lake_state, args.vars)
        print(json.dumps(plan))
        return 0
    manifest = json.loads((args.target_dir / "manifest.json").read_text())
    lake = bronze_versions.load(args.lake_state)
    if lake is None:
        print(f"build --remember: no bronze versions in {args.lake_state}", file=sys.stderr)
        return 2
    saved = build_selection.remember(
        settings,
        args.target_dir,
        manifest["metadata"]["dbt_version"],
        datetime.now(UTC).date().isoformat(),
        build_selection.vars_fingerprint(args.vars),
        lake,
    )
    log.info(f"state for the next build: {saved}")
    return 0
