"""Step 2 of a publish: dbt builds the warehouse's publish models from the staged batch.

In Snowflake a MERGE on the table's key (new rows in, changed rows updated, unchanged rows
untouched, vanished keys deleted), in Redshift an append of the batch unless that batch is
already there. The SQL lives in the dbt project (dbt_project/models/publish), the only place it
is written.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from lakehouse.core.config import Settings
from lakehouse.core.dbt_paths import target_dir
from lakehouse.publish.errors import PublishError
from lakehouse.publish.snapshot import Snapshot
from lakehouse.publish.warehouses import Warehouse
from lakehouse.transform.dbt_cli import dbt

# The batch id per table, JSON, for the publish models (dbt_project/macros/publish.sql).
BATCHES_ENV = "LAKEHOUSE_PUBLISH_BATCHES"


@contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    """``name=value`` in this process's environment for the block (dbt_cli.dbt passes it on)."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def serve(
    settings: Settings, wh: Warehouse, snapshots: dict[str, Snapshot], full_refresh: bool = False
) -> None:
    """Run the warehouse's publish models (and their tests) on its dbt target.

    ``full_refresh`` rebuilds the Snowflake mirrors from the snapshot (the repair after a
    reconciliation failure); Redshift histories refuse it (``full_refresh: false``).
    """
    batches = {table: s.batch_id for table, s in snapshots.items()}
    models = " ".join(wh.model_name(table) for table in snapshots)
    timeout_s = settings.publish.dbt_timeout_s
    try:
        # The batch ids go by environment, not --vars: dbt reparses the whole project whenever
        # --vars change, and every new gold snapshot is a new id (macros/publish.sql).
        with _environment(BATCHES_ENV, json.dumps(batches)):
            result = dbt(
                settings,
                "build",
                "--target", wh.dbt_target,
                "--select", models,
                # The lake build's artefacts (manifest, run results) in target/ stay untouched;
                # each warehouse target keeps its own partial parse, inside the target folder of
                # this process (DBT_TARGET_PATH: a run beside another has its own).
                "--target-path", str(target_dir() / f"publish_{wh.name}"),
                *(["--full-refresh"] if full_refresh else []),
                check=False,
                timeout_s=timeout_s,
            )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise PublishError(
            f"{wh.name}: dbt build of the publish models ran over {timeout_s}s and was killed "
            "(publish.dbt_timeout_s in lakehouse.yml)"
        ) from None
    if result.returncode != 0:
        raise PublishError(
            f"{wh.name}: dbt build of the publish models failed (exit {result.returncode}); "
            "its output is above"
        )
