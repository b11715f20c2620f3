"""The whole pipeline in order, each step timed: ingest, dbt build, publish, report, lineage.

This is what ``make run`` calls. Airflow runs the same steps as separate tasks; here they run in
one process so a laptop user sees the platform work end to end with one command.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

from ingestion import runner
from ingestion.bronze import LoadSummary
from ingestion.runner import SOURCES, Replay
from lakehouse import catalog, engine, home_record, ops, systems
from lakehouse import publish as publishing
from lakehouse import report as watchdog_report
from lakehouse.config import Settings
from lakehouse.dbt_cli import DBT_PROJECT_DIR, dbt
from lakehouse.lineage import site


def say(message: str) -> None:
    print(f"[lakehouse] {message}", flush=True)


@contextmanager
def step(name: str, timings: dict[str, float]) -> Iterator[None]:
    say(f"{name} ...")
    started = time.perf_counter()
    yield
    timings[name] = time.perf_counter() - started
    say(f"{name} done in {timings[name]:.1f}s")


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
        say(adopted)
    seeded = systems.seeded_generation(settings)
    if generation and seeded and generation < seeded:
        raise home_record.HomeMismatch(
            f"lake home {settings.home} holds generation {seeded} of the sample world; seeding "
            f"generation {generation} would put an older Snowflake snapshot beside newer CRM, "
            f"Redshift and Kafka data. Nothing was changed: drop --generation, or start with "
            f"another LAKEHOUSE_HOME"
        )
    target = generation or seeded or 1
    home_record.remember(settings)
    with systems.running(settings, target) as endpoints:
        if seeded != target:
            seed(settings, endpoints, target)
        summaries = runner.ingest(
            settings, endpoints, sources, replay, report=lambda line: say(f"  {line}")
        )
    total_rows = sum(s.read for s in summaries)
    total_s = sum(s.seconds for s in summaries)
    say(f"  all sources: read {total_rows:,} records in {total_s:.1f}s")
    return summaries


def seed(settings: Settings, endpoints: systems.Endpoints, generation: int) -> dict:
    """Fill the local source systems with a generation of the sample world."""
    started = time.perf_counter()
    report = systems.seed(settings, endpoints, generation)
    dirty = sum(report.pop("dirty").values())
    say(f"  seeded generation {generation} in {time.perf_counter() - started:.1f}s: "
        f"{report} ({dirty:,} dirty records on purpose)")  # fmt: skip
    return report


def run(settings: Settings) -> dict[str, float]:
    """Run ingest, dbt build, publish, the table report and the lineage page; return wall times.

    Uses the engine if it is up (``make up``); otherwise starts it (booting while ingestion
    runs) and stops it at the end.
    """
    timings: dict[str, float] = {}
    started = time.perf_counter()
    say(f"run {ops.run_id()} (ops.run_metrics)")
    with engine.starting(settings) as engine_ready:
        # The engine's JVM boots while ingestion runs: ingestion writes Delta without Spark.
        with step("ingest", timings):
            ingest(settings)
        with step("engine", timings):
            state = "started" if engine_ready() else "already running"
            say(f"  Spark Thrift Server on {settings.engine.host}:{settings.engine.port} ({state})")
        with step("dbt build", timings):
            dbt(settings, "build")
            dq_summary()
        with step("publish", timings):
            publish(settings)
        with step("report", timings):
            report(settings)
            say(f"  watchdog report: {watchdog_report.write(settings)}")
        with step("lineage", timings):
            lineage_page(settings)
    timings["total"] = time.perf_counter() - started
    say("wall time: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    return timings


def publish(
    settings: Settings,
    warehouses: Sequence[str] | None = None,
    tables: Sequence[str] | None = None,
    full_refresh: bool = False,
) -> list[publishing.PublishResult]:
    """Publish gold to the warehouses (lakehouse/publish.py), reporting as it goes."""
    return publishing.publish(
        settings, warehouses, tables, lambda line: say(f"  {line}"), full_refresh
    )


def dq_summary() -> dict[str, int]:
    """Print what the data-quality contracts found in the last dbt invocation."""
    results = json.loads((DBT_PROJECT_DIR / "target" / "run_results.json").read_text())["results"]
    tests = [r for r in results if r["unique_id"].startswith(("test.", "unit_test."))]
    counts = Counter(r["status"] for r in tests)
    failed = counts.get("fail", 0) + counts.get("error", 0)
    say(f"  data tests: {counts.get('pass', 0)} passed, {counts.get('warn', 0)} warned, "
        f"{failed} failed (details: dq.test_results)")  # fmt: skip
    for r in tests:
        if r["status"] in ("warn", "fail", "error"):
            say(
                f"    {r['status']:<4} {r['failures'] or 0:>6} rows  {r['unique_id'].split('.')[2]}"
            )
    return dict(counts)


def lineage_page(settings: Settings) -> None:
    """Refresh the column-lineage page and the dataset registry from the events just emitted."""
    written = site.write_lineage(settings)
    runs = written.lineage.runs.values()
    failed = sum(1 for r in runs if "FAIL" in r.states)
    say(f"  {len(written.lineage.datasets)} datasets, {len(runs)} runs in the lineage"
        f"{f' ({failed} failed)' if failed else ''}: open {written.page}")  # fmt: skip


def report(settings: Settings) -> None:
    counts = catalog.table_counts(settings)
    width = max((len(f"{c.schema}.{c.table}") for c in counts), default=10)
    say("tables built:")
    for c in counts:
        print(
            f"    {c.layer:<7} {c.schema + '.' + c.table:<{width}} {c.rows:>10,} rows", flush=True
        )
