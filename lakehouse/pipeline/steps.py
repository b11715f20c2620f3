"""The whole pipeline in order, each step timed: ingest, dbt build, publish, report, lineage.

This is what ``make run`` calls. Airflow runs the same steps as separate tasks; here they run in
one process so a laptop user sees the platform work end to end with one command.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from dlt.pipeline.exceptions import PipelineStepFailed

from ingestion.bronze import LoadSummary
from ingestion.registry import SOURCES
from lakehouse.core.config import Settings
from lakehouse.core.dbt_paths import (
    DBT_PROJECT_DIR as DBT_PROJECT_DIR,  # callers reach dbt through here
)
from lakehouse.core.dbt_paths import target_dir
from lakehouse.observability import run_metrics, table_changes, watchdog_report
from lakehouse.pipeline import docs_site, home_record, loads
from lakehouse.pipeline.loads import Replay
from lakehouse.publish import publisher as publishing
from lakehouse.stack import engine, object_store, processes, source_systems
from lakehouse.stack.services import kafka, postgres, snowflake
from lakehouse.transform import build_selection, catalog
from lakehouse.transform.dbt_cli import dbt as dbt

log = logging.getLogger(__name__)


def ingest(
    settings: Settings,
    sources: Iterable[str] = SOURCES,
    replay: Replay | None = None,
    generation: int | None = None,
) -> list[LoadSummary]:
    """Make the source systems reachable, seed them if they are empty, load ``sources``.

    Refused (HomeMismatch, nothing touched) if the lake home was filled with other settings.
    """
    if adopted := home_record.check(settings):
        log.info(adopted)
    seeded = source_systems.seeded_generation(settings)
    if generation and seeded and generation < seeded:
        raise home_record.HomeMismatch(
            f"lake home {settings.home} holds generation {seeded} of the sample world; seeding "
            f"generation {generation} would put an older Snowflake snapshot beside newer CRM, "
            f"Redshift and Kafka data. Nothing was changed: drop --generation, or start with "
            f"another LAKEHOUSE_HOME"
        )
    target = generation or seeded or 1
    home_record.remember(settings)
    with source_systems.running(settings, target) as endpoints:
        if seeded != target:
            seed(settings, endpoints, target)
        summaries = loads.ingest(settings, endpoints, sources, replay)
    total_rows = sum(s.read for s in summaries)
    total_s = sum(s.seconds for s in summaries)
    log.info(f"  all sources: read {total_rows:,} records in {total_s:.1f}s")
    return summaries


def seed(settings: Settings, endpoints: source_systems.Endpoints, generation: int) -> dict:
    """Fill the local source systems with a generation of the sample world."""
    started = time.perf_counter()
    report = source_systems.seed(settings, endpoints, generation)
    dirty = sum(report.pop("dirty").values())
    log.info(f"  seeded generation {generation} in {time.perf_counter() - started:.1f}s: "
        f"{report} ({dirty:,} dirty records on purpose)")  # fmt: skip
    return report


def build(settings: Settings, everything: bool = False) -> None:
    """The platform's dbt build: what changed since the last successful one, with its tests
    (lakehouse/transform/build_selection.py); everything with ``everything``. Raises if it
    failed."""
    result = build_selection.build(settings, everything)
    audit_changes(settings)  # what the models it did rebuild changed, even when others failed
    result.check_returncode()
    dq_summary()


def audit_changes(settings: Settings) -> None:
    """Record what the build just made changed in each gold model it rebuilt
    (ops.table_changes, lakehouse/observability/table_changes.py); never fails the build."""
    target = target_dir()
    if not (target / "run_results.json").is_file():
        return  # dbt died before it wrote its results: nothing to say what it rebuilt
    try:
        table_changes.record_dbt(settings, target)
    except Exception as exc:
        log.warning(f"  change audit not recorded: {exc}")


class RunFailed(RuntimeError):
    """A step of ``make run`` failed. The message is for the person at the terminal (what
    failed or died, where its log is, what to do); the cause stays chained for the log."""


def run(settings: Settings) -> dict[str, float]:
    """Run ingest, dbt build, publish, the table report and the lineage page; return wall times.

    Uses the engine and the local servers if they are up (``make up``); otherwise starts each
    when a step first needs it (the engine boots while ingestion runs) and stops it at the end.
    The run holds them for as long as it needs them and watches them: if one dies, the step
    stops at once and RunFailed names it. Every step resumes from its last commit, so the next
    ``make run`` (which starts whatever died) completes the work exactly once.
    """
    timings: dict[str, float] = {}
    started = time.perf_counter()
    log.info(f"run {run_metrics.run_id()} (ops.run_metrics)")
    parts = platform_parts(settings)
    with contextlib.ExitStack() as held, processes.Vigil() as vigil:
        held.enter_context(object_store.running(settings))  # a lake on the local S3 server
        # The engine's JVM boots while ingestion runs: ingestion writes Delta without Spark.
        engine_ready = held.enter_context(engine.starting(settings))
        vigil.watch(parts["engine"])
        with step("ingest", timings, vigil), contextlib.ExitStack() as for_ingest:
            services = settings.services
            if "postgres" in parts:  # the Redshift source now, the Redshift warehouse later
                server = postgres.running(settings.home, services.postgres_port)
                _hold(held, vigil, parts["postgres"], server)
            if "kafka" in parts:
                server = kafka.running(settings.home, services.kafka_port,
                                       services.kafka_controller_port)  # fmt: skip
                _hold(for_ingest, vigil, parts["kafka"], server)
            ingest(settings)
        with step("engine", timings, vigil):
            state = "started" if engine_ready() else "already running"
            log.info(
                f"  Spark Thrift Server on {settings.engine.host}:{settings.engine.port} ({state})"
            )
        with step("dbt build", timings, vigil):
            build(settings)
        with step("publish", timings, vigil), contextlib.ExitStack() as for_publish:
            if "snowflake" in parts:
                server = snowflake.running(settings.home, settings.services.snowflake_port)
                _hold(for_publish, vigil, parts["snowflake"], server)
            published = publish(settings)
        with step("report", timings, vigil):
            row_counts(settings)
            log.info(f"  watchdog report: {watchdog_report.write(settings)}")
        with step("lineage", timings, vigil):
            lineage_page(settings)
    timings["total"] = time.perf_counter() - started
    log.info("wall time: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    if emulated := publishing.emulator_staging_s(published):
        log.info(f"  beside it: staging into the Snowflake emulator {emulated:.1f}s (in publish); "
            f"total without it {timings['total'] - emulated:.1f}s")  # fmt: skip
    return timings


def platform_parts(settings: Settings) -> dict[str, processes.Part]:
    """The platform's own servers a run of these settings uses: the engine, and each local
    stand-in no production endpoint replaces (source systems as lakehouse/stack/source_systems.py
    decides; warehouses by the variables of lakehouse/publish/warehouses.py)."""
    home, services, env = settings.home, settings.services, os.environ
    warehouses = settings.publish.warehouses
    parts = {
        "engine": processes.Part(
            "the engine", "Spark Thrift Server", settings.engine.port,
            engine.log_file(settings), engine._pid_file(settings),
        ),
    }  # fmt: skip
    redshift_source = source_systems.production("redshift")
    if not redshift_source or ("redshift" in warehouses and not env.get("REDSHIFT_HOST")):
        port = services.postgres_port
        parts["postgres"] = processes.Part(
            "PostgreSQL", "the Redshift stand-in", port, postgres.log_file(home, port),
            postgres.data_dir(home) / "postmaster.pid",
        )  # fmt: skip
    if not source_systems.production("kafka"):
        port = services.kafka_port
        parts["kafka"] = processes.Part(
            "the Kafka broker", "the Kafka source system", port, kafka.log_file(home, port),
            kafka._pid_file(home, port),
        )  # fmt: skip
    if "snowflake" in warehouses and not env.get("SNOWFLAKE_ACCOUNT"):
        port = services.snowflake_port
        parts["snowflake"] = processes.Part(
            "the Snowflake emulator", "fakesnow", port, snowflake.log_file(home, port),
            snowflake._pid_file(home, port),
        )  # fmt: skip
    return parts


def _hold(
    stack: contextlib.ExitStack,
    vigil: processes.Vigil,
    part: processes.Part,
    server: contextlib.AbstractContextManager,
) -> None:
    """Use ``server`` (started if it is down) until ``stack`` closes, watched until then."""
    stack.enter_context(server)
    vigil.watch(part)
    stack.callback(vigil.unwatch, part)  # runs first: a stop on purpose is no death


@contextlib.contextmanager
def step(name: str, timings: dict[str, float], vigil: processes.Vigil) -> Iterator[None]:
    """A timed step of the run; a failure becomes one RunFailed naming what died, if anything."""
    log.info(f"{name} ...")
    started = time.perf_counter()
    try:
        with vigil.during(name):
            yield
    except (Exception, processes.PartDied) as exc:
        raise RunFailed(_failure(name, vigil.census(name), exc)) from exc
    timings[name] = time.perf_counter() - started
    log.info(f"{name} done in {timings[name]:.1f}s")


def _failure(step_name: str, deaths: list[processes.Death], exc: BaseException) -> str:
    """What the person at the terminal reads: what died (or what failed), and what to do."""
    again = "run `make run` again: it starts what is down and resumes from the last commit"
    if deaths:
        return "; ".join(str(d) for d in deaths) + f"; {again}"
    if isinstance(exc, PipelineStepFailed):  # dlt's wrapper: say what the load itself raised
        exc = exc.exception.__cause__ or exc.exception
    cause = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, subprocess.CalledProcessError):
        cause = f"{Path(str(exc.cmd[0])).name} exited with code {exc.returncode} (output above)"
    return f"`{step_name}` failed: {type(exc).__name__}: {cause[:400]}"


def publish(
    settings: Settings,
    warehouses: Sequence[str] | None = None,
    tables: Sequence[str] | None = None,
    full_refresh: bool = False,
) -> list[publishing.PublishResult]:
    """Publish gold to the warehouses (lakehouse/publish/publisher.py), reporting as it goes: per
    warehouse its phases, then the total with the emulator's staging named beside it (it
    measures the local stand-in, not the platform)."""
    started = time.perf_counter()
    results = publishing.publish(settings, warehouses, tables, full_refresh=full_refresh)
    total = time.perf_counter() - started
    emulated = publishing.emulator_staging_s(results)
    log.info(f"  publish {total:.1f}s (of it, staging into the Snowflake emulator {emulated:.1f}s)"
        if emulated else f"  publish {total:.1f}s")  # fmt: skip
    return results


def dq_summary() -> dict[str, int]:
    """Print what the data-quality contracts found in the last dbt invocation."""
    results = json.loads((target_dir() / "run_results.json").read_text())["results"]
    tests = [r for r in results if r["unique_id"].startswith(("test.", "unit_test."))]
    counts = Counter(r["status"] for r in tests)
    failed = counts.get("fail", 0) + counts.get("error", 0)
    log.info(f"  data tests: {counts.get('pass', 0)} passed, {counts.get('warn', 0)} warned, "
        f"{failed} failed (details: dq.test_results)")  # fmt: skip
    for r in sorted(tests, key=lambda r: r["unique_id"]):  # dbt lists them as they finished
        if r["status"] in ("warn", "fail", "error"):
            log.info(
                f"    {r['status']:<4} {r['failures'] or 0:>6} rows  {r['unique_id'].split('.')[2]}"
            )
    return dict(counts)


def lineage_page(settings: Settings) -> None:
    """Refresh the column-lineage page and the dataset registry from the events just emitted."""
    written = docs_site.write_lineage(settings)
    runs = written.lineage.runs.values()
    failed = sum(1 for r in runs if "FAIL" in r.states)
    log.info(f"  {len(written.lineage.datasets)} datasets, {len(runs)} runs in the lineage"
        f"{f' ({failed} failed)' if failed else ''}: open {written.page}")  # fmt: skip


def row_counts(settings: Settings) -> None:
    """Say every layer table's row count (one record: a table under its heading)."""
    counts = catalog.table_counts(settings)
    width = max((len(f"{c.schema}.{c.table}") for c in counts), default=10)
    rows = [f"    {c.layer:<7} {c.schema + '.' + c.table:<{width}} {c.rows:>10,} rows"
            for c in counts]  # fmt: skip
    log.info("\n".join(["tables built:", *rows]))
