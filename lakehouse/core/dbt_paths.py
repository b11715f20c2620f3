"""Where the dbt project, its profiles and its artifacts live.

Every layer reads dbt's artifacts (the build selection, the run metrics, the watchdog report, the
lineage site), but only the transform layer runs dbt; the paths are kernel facts, so reading an
artifact never imports the code that runs dbt.
"""

from __future__ import annotations

import os
from pathlib import Path

from lakehouse.core.config import REPO_ROOT

DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
DBT_PROFILES_DIR = REPO_ROOT / "profiles"


def target_dir() -> Path:
    """Where dbt writes its artifacts: ``DBT_TARGET_PATH`` when set (relative to the project,
    as dbt reads it), else ``target/``."""
    return DBT_PROJECT_DIR / os.environ.get("DBT_TARGET_PATH", "target")
