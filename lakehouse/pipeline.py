"""The whole pipeline in order, each step timed: ingest -> dbt build -> report.

This is what ``make run`` calls. Airflow runs the same steps as separate tasks; here they run in
one process so a laptop user sees the platform work end to end with one command.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from lakehouse import catalog, engine
from lakehouse.config import REPO_ROOT, Settings

DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
DBT_PROFILES_DIR = REPO_ROOT / "profiles"


def say(message: str) -> None:
    print(f"[lakehouse] {message}", flush=True)


@contextmanager
def step(name: str, timings: dict[str, float]) -> Iterator[None]:
    say(f"{name} ...")
    started = time.perf_counter()
    yield
    timings[name] = time.perf_counter() - started
    say(f"{name} done in {timings[name]:.1f}s")


def dbt_env(settings: Settings) -> dict[str, str]:
    """Environment for a dbt process aimed at this engine (the profile reads these)."""
    return {
        **os.environ,
        "LAKEHOUSE_HOME": str(settings.home),
        "LAKEHOUSE_THRIFT_HOST": settings.engine.host,
        "LAKEHOUSE_THRIFT_PORT": str(settings.engine.port),
    }


def dbt(settings: Settings, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the dbt CLI of this environment against the project, streaming its output."""
    dbt_exe = Path(sys.executable).parent / "dbt"
    cmd = [str(dbt_exe), *args, "--project-dir", str(DBT_PROJECT_DIR),
           "--profiles-dir", str(DBT_PROFILES_DIR)]  # fmt: skip
    return subprocess.run(cmd, env=dbt_env(settings), check=check)


def ingest(settings: Settings) -> list:
    """Load every configured source into bronze; return dlt's summaries."""
    from ingestion import bronze, local_service
    from ingestion.fx_rates import fx_source

    fx = settings.sources.fx
    summaries = []
    with local_service.serving(fx.currencies) as base_url:
        summary = bronze.run(
            settings,
            "fx",
            fx_source(
                base_url=base_url,
                currencies=fx.currencies,
                start_date=fx.start_date,
                end_date=fx.start_date + timedelta(days=fx.days - 1),
                base_currency=fx.base_currency,
            ),
        )
        say(f"  fx: {summary.rows} rows loaded {summary.rows_by_table}")
        summaries.append(summary)
    return summaries


def run(settings: Settings) -> dict[str, float]:
    """Run ingest, dbt build and the table report; return wall time per step.

    Uses the engine if it is up (``make up``); otherwise starts it and stops it at the end.
    """
    timings: dict[str, float] = {}
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        with step("engine", timings):
            started_here = stack.enter_context(engine.running(settings))
            state = "started" if started_here else "already running"
            say(f"  Spark Thrift Server on {settings.engine.host}:{settings.engine.port} ({state})")
        with step("ingest", timings):
            ingest(settings)
        with step("dbt build", timings):
            dbt(settings, "build")
        with step("report", timings):
            report(settings)
    timings["total"] = time.perf_counter() - started
    say("wall time: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    return timings


def report(settings: Settings) -> None:
    counts = catalog.table_counts(settings)
    width = max((len(f"{c.schema}.{c.table}") for c in counts), default=10)
    say("tables built:")
    for c in counts:
        print(
            f"    {c.layer:<7} {c.schema + '.' + c.table:<{width}} {c.rows:>10,} rows", flush=True
        )
