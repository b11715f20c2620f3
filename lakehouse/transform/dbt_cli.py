"""Running the dbt CLI of this environment against the project, on any of its targets.

One place decides how dbt is called (executable, project, profiles, environment), so the
pipeline, the publish step and the tests call it the same way. Runs that build or test the lake
go through ``dbt-ol``, which runs dbt and then emits OpenLineage events per model with column
lineage (docs/lineage.md); ``lakehouse dbt <args>`` is the same for a person.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from lakehouse.core import pii
from lakehouse.core.config import Settings
from lakehouse.core.dbt_paths import DBT_PROFILES_DIR, DBT_PROJECT_DIR, target_dir
from lakehouse.observability import run_metrics
from lakehouse.observability.lineage import emit

PROFILE = "lakehouse"
# dbt-ol reports these commands, on dbt-spark's thrift method only: on `session` it raises.
LINEAGE_COMMANDS = {"build", "run", "test", "seed", "snapshot"}
LINEAGE_TARGETS = {"local", "cluster"}
# Invocations that write tables: their models are recorded in ops.run_metrics
# (lakehouse/observability/run_metrics.py).
METRICS_COMMANDS = {"build", "run", "seed", "snapshot"}

log = logging.getLogger(__name__)


def dbt_version() -> str:
    """The installed dbt-core's version (without importing dbt: that takes seconds)."""
    return metadata.version("dbt-core")


def _target(args: tuple[str, ...]) -> str:
    """The profile target a dbt invocation with ``args`` runs on."""
    for i, arg in enumerate(args[:-1]):
        if arg in ("--target", "-t"):
            return args[i + 1]
    return os.environ.get("DBT_TARGET", "local")


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
    bin_dir = Path(sys.executable).parent
    dbt_exe = bin_dir / "dbt"
    if not (DBT_PROJECT_DIR / "dbt_packages" / "expectations").exists():
        deps = [str(dbt_exe), "deps", "--project-dir", str(DBT_PROJECT_DIR),
                "--profiles-dir", str(DBT_PROFILES_DIR)]  # fmt: skip
        subprocess.run(deps, env=dbt_env(settings), check=True)
    env = dbt_env(settings)
    target = _target(args)
    if target == "session":  # Spark runs inside this dbt process: it needs the salt itself
        env[pii.SALT_ENV] = pii.salt(settings)
    if args and args[0] in LINEAGE_COMMANDS and target in LINEAGE_TARGETS:
        # dbt-ol runs dbt, then emits a START/COMPLETE pair per node with column lineage. It
        # starts the `dbt` found on PATH, so this environment's comes first.
        dbt_exe = bin_dir / "dbt-ol"
        path = os.pathsep.join([str(bin_dir), env.get("PATH", "")])
        env = emit.emitter_environment(settings, {**env, "PATH": path})
    cmd = [str(dbt_exe), *args, "--project-dir", str(DBT_PROJECT_DIR),
           "--profiles-dir", str(DBT_PROFILES_DIR)]  # fmt: skip
    if not {"--target", "-t"} & set(args):
        # Name profile and target as Cosmos does: dbt keys its partial parse on them, and an
        # implicit target made every Airflow build after a CLI build parse the project afresh.
        cmd += ["--profile", PROFILE, "--target", target]
    result = subprocess.run(cmd, env=env, capture_output=capture, text=capture, timeout=timeout_s)
    if args and args[0] in METRICS_COMMANDS and target in LINEAGE_TARGETS:
        _record_metrics(settings)
    if check:
        result.check_returncode()
    return result


def _record_metrics(settings: Settings) -> None:
    """Add the invocation's models to ops.run_metrics; a failure to record never fails dbt."""
    try:
        run_metrics.record_dbt(settings, target_dir())
    except Exception as exc:  # e.g. dbt died before writing run_results.json
        log.warning(f"dbt run metrics not recorded: {exc}")
