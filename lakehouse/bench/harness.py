"""The bench's steps, run in one process in this order, on the bench's own lake home:

1. ``make run`` from an empty lake (steps.run), per step; per source and per warehouse from
   what the run recorded in ops.run_metrics;
2. the engine restarted: the first whole ``dbt build``, then warm ones and ``--select
   customer_360`` (medians); the platform's build with nothing new (``lakehouse build``);
3. generation 2 of the sample world: ingest, build, publish, each timed;
4. Kafka to bronze against a bare pipeline over the same messages (lakehouse/bench/kafka.py);
5. Airflow: after the same ingest, the CLI ``dbt build`` and build_analytics' dbt producer;
6. the mode column: ``make run``'s steps and warm builds on the default (local folder, local
   engine) beside the lake on S3 with a standalone cluster (lakehouse/bench/modes.py), after
   everything above has stopped, each on a home of its own;
7. with ``--tests``, ``make test`` in a fresh clone (after everything above has stopped).

Every side of a comparison runs in the same minutes on the same warm engine: wall times on a
shared machine drift, so a ratio of two numbers from different runs is not evidence. A step
that fails is recorded and the bench goes on with the next (its rows read "failed").
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lakehouse.bench import kafka as kafka_bench
from lakehouse.bench import modes as modes_bench
from lakehouse.bench import spark_ui
from lakehouse.bench.report import Line, Sections
from lakehouse.core.config import REPO_ROOT, SchedulesConfig, Settings
from lakehouse.core.dbt_paths import DBT_PROJECT_DIR
from lakehouse.observability import run_metrics
from lakehouse.pipeline import steps
from lakehouse.stack import engine, source_systems
from lakehouse.stack.services import airflow
from lakehouse.transform import build_selection

log = logging.getLogger(__name__)

# The Snowflake emulator's staging phase in a PublishResult's seconds: reported beside the
# `make run` total, not inside it (fakesnow's inserts are not what a real warehouse costs).
EMULATOR_STAGING = "stage"
PUBLISH_PHASES = ("read", "stage", "serve", "reconcile")
PRODUCER_TASK = "dbt.dbt_producer_watcher"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def timed(work: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


@dataclass
class Bench:
    """What one bench run measured so far: table sections, target values, and details."""

    settings: Settings
    repeat: int = 2
    sections: Sections = field(default_factory=dict)
    values: dict[str, float | None] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    statements: dict[str, int] = field(default_factory=dict)  # Spark statements per build
    _section: str = ""

    def add(self, section: str, *lines: Line) -> None:
        self.sections.setdefault(section, []).extend(lines)
        self._section = section  # where a failure of the running step is reported

    def phase(self, name: str, work: Callable[[], None]) -> None:
        """Run one step; a failure is recorded (and printed), not fatal to the next steps."""
        log.info(f"bench: {name} ...")
        os.environ[run_metrics.RUN_ID_ENV] = f"bench-{datetime.now(UTC):%Y%m%dT%H%M%S}-{name}"
        self._section = f"{name} (step)"
        try:
            work()
        except Exception as exc:  # a bench reports what it could measure
            traceback.print_exc()
            self.errors.append(f"{name}: {type(exc).__name__}: {str(exc)[:300]}")
            line = Line(f"the {name} step failed ({type(exc).__name__}): see the log", None,
                        note="failed")  # fmt: skip
            self.add(self._section, line)

    # --- dbt and the platform's build -----------------------------------------------------------

    def dbt_build(self, label: str, *args: str) -> float:
        """Wall time of ``dbt build <args>`` (through the platform: dbt-ol, run metrics)."""
        return self._build(label, lambda: steps.dbt(self.settings, "build", *args))

    def platform_build(self, label: str) -> float:
        """Wall time of ``python -m lakehouse build`` (the build of what changed)."""
        command = [sys.executable, "-m", "lakehouse", "build"]
        return self._build(label, lambda: subprocess.run(command, check=True, env=os.environ))

    def _build(self, label: str, work: Callable[[], Any]) -> float:
        """Time ``work``; keep dbt's own numbers (run_results.json) and the engine's (the
        statements it ran meanwhile) in the details, and the count of statements by label."""
        since = datetime.now(UTC)
        seconds, _ = timed(work)
        spark = spark_ui.statements(self.settings, since, datetime.now(UTC))
        self.details.setdefault("builds", []).append(
            {"label": label, "wall_s": round(seconds, 2), **dbt_summary(), "spark": spark}
        )
        if spark:
            self.statements[label] = spark["statements"]
        return seconds

    # --- the steps ------------------------------------------------------------------------------

    def full_run(self) -> None:
        """``make run``'s steps, each followed by its parts: the loads per source, the publish
        per warehouse and phase (as ops.run_metrics recorded them for this run)."""
        section = "make run from an empty lake (steps.run)"
        timings = steps.run(self.settings)
        metrics = run_metrics.read(self.settings, run=run_metrics.run_id())
        publishes = {m["job"]: json.loads(m["details"] or "{}") for m in metrics
                     if m["step"] == "publish"}  # fmt: skip
        self.details["full_run"] = {"timings": timings, "publish": publishes}
        for name, seconds in timings.items():
            if name == "total":
                continue
            self.add(section, Line(name, seconds))
            if name == "ingest":
                for m in (m for m in metrics if m["step"] == "ingest"):
                    read, took = m["rows_read"] or 0, m["duration_s"]
                    rate = f"{read / took:,.0f}/s" if took else "-"
                    self.add(section, Line(f"  {m['job']} ({read:,} records, {rate})", took))
            if name == "publish":
                for warehouse, detail in publishes.items():
                    for phase, took in phases_in_order(detail.get("seconds", {})):
                        self.add(section, Line(f"  {warehouse}: {phase}", took))
        # only a warehouse an emulator stood in for (ops records which): a real one's staging
        # is the platform's own cost and stays inside the total
        staging = sum(d.get("seconds", {}).get(EMULATOR_STAGING, 0.0)
                      for d in publishes.values() if d.get("emulator"))  # fmt: skip
        without = timings["total"] - staging
        self.add(section, Line("total", timings["total"]),
                 Line("emulator staging, Snowflake's stand-in (beside the total)", staging),
                 Line("total without the emulator's staging", without))  # fmt: skip
        self.values["make_run_s"] = without

    def builds(self) -> None:
        """Restart the engine (steps.run stopped it); the first build, then warm ones."""
        section = "dbt build on a restarted engine"
        if engine.is_up(self.settings):
            engine.stop(self.settings)
        start_s, _ = timed(lambda: engine.start(self.settings))
        first = self.dbt_build("first after engine start")
        warm = [self.dbt_build(f"warm {i + 1}") for i in range(self.repeat)]
        one = [self.dbt_build(f"customer_360 warm {i + 1}", "--select", "customer_360")
               for i in range(self.repeat)]  # fmt: skip
        self.details["samples"] = {"dbt_build_warm_s": warm, "customer_360_warm_s": one}
        self.add(section, Line("engine start (Spark Thrift Server answers)", start_s),
                 Line("first whole `dbt build`", first),
                 Line(f"whole `dbt build`, warm (median of {len(warm)})", statistics.median(warm)),
                 Line(f"`dbt build --select customer_360`, warm (median of {len(one)})",
                      statistics.median(one)))  # fmt: skip
        for label in ("first after engine start", "warm 1", "customer_360 warm 1"):
            if label in self.statements:
                self.add(section, Line(f"statements Spark ran: {label}", self.statements[label],
                                       "n"))  # fmt: skip
        self.values["dbt_build_warm_s"] = statistics.median(warm)
        self.values["customer_360_warm_s"] = statistics.median(one)
        self.values["first_build_ratio"] = first / statistics.median(warm)

    def nothing_new(self) -> None:
        section = "platform build with nothing new"
        samples = [self.platform_build(f"nothing new {i + 1}") for i in range(self.repeat)]
        self.details.setdefault("samples", {})["platform_build_noop_s"] = samples
        median = statistics.median(samples)
        self.add(section, Line(f"`python -m lakehouse build` (median of {len(samples)})", median))
        if "nothing new 1" in self.statements:
            self.add(section, Line("statements Spark ran", self.statements["nothing new 1"], "n"))
        self.values["platform_build_noop_s"] = median

    def generation_2(self) -> None:
        """A week later: about 10 % new and changed records, then the build and publish."""
        section = "incremental run after generation 2"
        ingest_s, summaries = timed(lambda: steps.ingest(self.settings, generation=2))
        for s in summaries:
            self.add(section, Line(f"ingest {s.source} ({s.read:,} records)", s.seconds))
        self.add(section, Line("ingest, all sources (with seeding generation 2)", ingest_s))
        label, build_s = "build (`lakehouse build`)", self.platform_build("after generation 2")
        publish_s, results = timed(lambda: steps.publish(self.settings))
        self.add(section, Line(label, build_s))
        if "after generation 2" in self.statements:
            count = self.statements["after generation 2"]
            self.add(section, Line("statements Spark ran in the build", count, "n"))
        for result in results:
            for phase, seconds in phases_in_order(result.seconds):
                self.add(section, Line(f"publish {result.warehouse}: {phase}", seconds))
        self.add(section, Line("publish, all warehouses", publish_s))
        full = self.values.get("dbt_build_warm_s")
        if full:
            self.add(section, Line("build / warm full build", build_s / full, "%"))
            self.values["generation_2_build_share"] = build_s / full

    def kafka(self) -> None:
        """The platform's Kafka load and the bare pipeline, one after the other over the same
        messages (scratch lakes; the platform's offsets and bronze are untouched)."""
        section = "Kafka to bronze over the same messages"
        port = self.settings.services.kafka_port  # the broker is up (source_systems.start_local)
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or f"127.0.0.1:{port}"
        compared = kafka_bench.compare(self.settings, bootstrap)
        self.details["kafka"] = compared.as_dict()
        platform, bare = compared.platform, compared.bare
        self.add(section, Line(f"messages on the topic ({compared.topic})", compared.messages, "n"),
                 Line("the platform's Kafka load", platform.rows_per_s, "rows/s"),
                 Line("bare pipeline: batches, JSON, write_deltalake", bare.rows_per_s, "rows/s"),
                 Line("the same share in CPU seconds", compared.cpu_ratio, "%"))  # fmt: skip
        self.values["kafka_share"] = compared.ratio

    def airflow(self) -> None:
        """build_analytics' dbt producer against the same build from the CLI (``lakehouse
        build``: the plan, the build, the state kept), each right after the same ingest
        on the same warm engine, in ``repeat`` pairs; the faster of each side is judged
        (interference on shared cores only ever slows a side down, and the first Airflow build
        also pays Cosmos' first parse). Airflow runs without schedules: the bench triggers."""
        section = "Airflow build_analytics vs the CLI build"
        if not engine.is_up(self.settings):  # `--skip builds`: steps.run stopped it
            engine.start(self.settings)
            self.dbt_build("warm-up before the Airflow pairs")  # the JIT, as the builds step
        orch = self.settings.orchestration.model_copy(
            update={"schedules": SchedulesConfig(ingest_sources=None, dq_watchdog=None)}
        )
        settings = self.settings.model_copy(update={"orchestration": orch})
        start_s, _ = timed(lambda: airflow.start(settings))
        self.add(section, Line("Airflow start (4 components)", start_s))
        pairs: list[dict[str, Any]] = []
        try:
            client = airflow.Client(settings)
            for i in range(max(1, self.repeat)):
                # Both sides do the same work: the plan (bronze versions from the Delta log),
                # the build, the state kept; with no saved state both build everything.
                steps.ingest(settings)
                forget_build_state(settings)
                cli = self.platform_build(f"CLI lakehouse build, pair {i + 1}")
                steps.ingest(settings)
                forget_build_state(settings)
                pairs.append({"cli_s": cli, **build_analytics(client)})
        finally:
            airflow.stop(settings)
        self.details["airflow"] = pairs
        cli = min(p["cli_s"] for p in pairs)
        producer = min(p["producer_s"] for p in pairs)
        best = f"fastest of {len(pairs)}"
        self.add(section, Line(f"CLI `lakehouse build` of everything after an ingest ({best})",
                               cli),
                 Line(f"build_analytics: its dbt producer ({best})", producer),
                 Line("build_analytics: first to last dbt task (last run)", pairs[-1]["span_s"]),
                 Line("build_analytics: queued to end, with publish", pairs[-1]["run_s"]),
                 Line("producer / CLI", producer / cli, "x"))  # fmt: skip
        self.values["cosmos_ratio"] = producer / cli

    def modes(self) -> None:
        """The same pipeline and builds on both deployments, one column each."""
        section = f"mode column: {modes_bench.LOCAL} | {modes_bench.DISTRIBUTED}"
        home = self.settings.home
        measured = modes_bench.compare(home, self.repeat)
        self.details["modes"] = measured
        local, distributed = measured[modes_bench.LOCAL], measured[modes_bench.DISTRIBUTED]
        for name, seconds in local.items():
            label = "make run, total" if name == "total" else name
            self.add(section, Line(label, seconds, beside=distributed.get(name)))

    def make_test(self) -> None:
        """``make setup`` then ``make test`` in a fresh clone of HEAD (committed work only), on
        the ports exported for the bench: the suite's own lake home is the clone's."""
        section = "make test on a clean clone"
        clone = tempfile.mkdtemp(prefix="lakehouse-bench-clone-")
        dropped = ("LAKEHOUSE_HOME", "LAKEHOUSE_SCALE", run_metrics.RUN_ID_ENV)
        env = {k: v for k, v in os.environ.items() if k not in dropped}
        try:
            subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), clone], check=True)
            setup_s, _ = timed(lambda: subprocess.run(["make", "setup"], cwd=clone, env=env,
                                                      check=True))  # fmt: skip
            test_s, done = timed(lambda: subprocess.run(["make", "test"], cwd=clone, env=env))
        finally:
            subprocess.run(["make", "down"], cwd=clone, env=env, check=False)
            shutil.rmtree(clone, ignore_errors=True)
        self.add(section, Line("make setup (not part of the target)", setup_s),
                 Line(f"make test (exit code {done.returncode})", test_s))  # fmt: skip
        self.values["make_test_s"] = test_s
        if done.returncode != 0:
            self.errors.append(f"make test exited with {done.returncode}")


def phases_in_order(phases: dict[str, float]) -> list[tuple[str, float]]:
    """A publish's phases in the order they run (ops.run_metrics stores them sorted by name)."""
    known = [p for p in PUBLISH_PHASES if p in phases]
    return [(p, phases[p]) for p in known] + [
        (p, s) for p, s in phases.items() if p not in PUBLISH_PHASES
    ]


def _seconds(start: str, end: str) -> float:
    def at(stamp: str) -> datetime:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))

    return (at(end) - at(start)).total_seconds()


def forget_build_state(settings: Settings) -> None:
    """Make the next platform build (``lakehouse build``, or build_analytics) build everything:
    drop the state of the last one (lakehouse/transform/build_selection.py). Both sides of the
    Airflow
    pair build everything, so the ratio is Cosmos' own cost, not a difference in selection."""
    build_selection.forget(settings)


def build_analytics(client: airflow.Client) -> dict[str, Any]:
    """Trigger build_analytics, wait for it; its producer's, dbt tasks' and whole run's times."""
    run_id = client.trigger("build_analytics")
    # every 5 s: each poll is an API request the Airflow side pays and the CLI side does not
    run = client.wait("build_analytics", run_id, timeout_s=3600, poll_s=5)
    tis = {t["task_id"]: t for t in client.task_instances("build_analytics", run_id)}
    if run["state"] != "success":
        states = {task: t["state"] for task, t in tis.items()}
        raise RuntimeError(f"build_analytics {run_id}: {run['state']}: {states}")
    producer = tis[PRODUCER_TASK]
    dbt_tasks = [t for task, t in tis.items() if task.startswith("dbt.")]
    return {
        "run_id": run_id,
        "producer_s": _seconds(producer["start_date"], producer["end_date"]),
        "span_s": _seconds(
            min(t["start_date"] for t in dbt_tasks), max(t["end_date"] for t in dbt_tasks)
        ),
        "run_s": _seconds(run["queued_at"], run["end_date"]),
    }


def dbt_summary() -> dict[str, Any]:
    """dbt's own account of the last invocation: elapsed time, nodes by status, the sum of node
    execution times and the slowest nodes (where a build's time goes, per statement-heavy node)."""
    target = DBT_PROJECT_DIR / os.environ.get("DBT_TARGET_PATH", "target")
    try:
        doc = json.loads((target / "run_results.json").read_text())
    except (OSError, ValueError):
        return {}
    results = doc["results"]
    statuses: dict[str, int] = {}
    for r in results:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    slowest = sorted(results, key=lambda r: r["execution_time"], reverse=True)[:8]
    return {
        "dbt_elapsed_s": round(doc.get("elapsed_time", 0.0), 2),
        "nodes": len(results),
        "statuses": statuses,
        "node_time_sum_s": round(sum(r["execution_time"] for r in results), 2),
        "slowest": [(r["unique_id"], round(r["execution_time"], 2)) for r in slowest],
    }


def stop_everything(settings: Settings) -> None:
    """What the bench started on its home: Airflow, the engine, the local systems."""
    for line in airflow.stop(settings):
        log.info(line)
    if engine.stop(settings):
        log.info("engine stopped")
    for line in source_systems.stop_local(settings):
        log.info(line)
