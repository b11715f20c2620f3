"""Running the dbt CLI of this environment against the project, on any of its targets.

One place decides how dbt is called (executable, project, profiles, environment), so the
pipeline, the publish step and the tests call it the same way.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lakehouse.config import REPO_ROOT, Settings

DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
DBT_PROFILES_DIR = REPO_ROOT / "profiles"
PROFILE = "lakehouse"


def dbt_env(settings: Settings) -> dict[str, str]:
    """Environment for a dbt process aimed at this platform's engine and local warehouses."""
    return {
        **os.environ,
        "LAKEHOUSE_HOME": str(settings.home),
        "LAKEHOUSE_THRIFT_HOST": settings.engine.host,
        "LAKEHOUSE_THRIFT_PORT": str(settings.engine.port),
        "LAKEHOUSE_SNOWFLAKE_PORT": str(settings.services.snowflake_port),
        "LAKEHOUSE_POSTGRES_PORT": str(settings.services.postgres_port),
    }


def dbt(
    settings: Settings,
    *args: str,
    check: bool = True,
    capture: bool = False,
    timeout_s: float | None = None,
) -> subprocess.CompletedProcess:
    """Run ``dbt <args>`` on the project, streaming its output (or capturing it).

    With ``timeout_s``, dbt is killed when it runs longer (subprocess.TimeoutExpired).
    """
    dbt_exe = Path(sys.executable).parent / "dbt"
    if not (DBT_PROJECT_DIR / "dbt_packages" / "expectations").exists():
        deps = [str(dbt_exe), "deps", "--project-dir", str(DBT_PROJECT_DIR),
                "--profiles-dir", str(DBT_PROFILES_DIR)]  # fmt: skip
        subprocess.run(deps, env=dbt_env(settings), check=True)
    cmd = [str(dbt_exe), *args, "--project-dir", str(DBT_PROJECT_DIR),
           "--profiles-dir", str(DBT_PROFILES_DIR)]  # fmt: skip
    if not {"--target", "-t"} & set(args):
        # Name profile and target as Cosmos does: dbt keys its partial parse on them, and an
        # implicit target made every Airflow build after a CLI build parse the project afresh.
        cmd += ["--profile", PROFILE, "--target", os.environ.get("DBT_TARGET", "local")]
    return subprocess.run(
        cmd,
        env=dbt_env(settings),
        check=check,
        capture_output=capture,
        text=capture,
        timeout=timeout_s,
    )
