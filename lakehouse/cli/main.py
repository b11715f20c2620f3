"""The platform's one command-line entry point; the Makefile targets are thin over it."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import traceback
from datetime import UTC, date, datetime
from pathlib import Path

from dlt.pipeline.exceptions import PipelineStepFailed

from ingestion import registry
from ingestion.registry import SOURCES
from ingestion.retry import SourceUnavailable
from lakehouse.core import bronze_versions
from lakehouse.core.config import ConfigError, Settings, load_settings
from lakehouse.observability import run_metrics, watchdog, watchdog_report
from lakehouse.observability.lineage import emit, graph, site
from lakehouse.pipeline import backfill, docs_site, home_record, steps
from lakehouse.pipeline.loads import Replay
from lakehouse.publish.publisher import PublishError
from lakehouse.publish.warehouses import WAREHOUSES
from lakehouse.stack import engine, source_systems
from lakehouse.stack.jars import engine_jars
from lakehouse.stack.services import airflow
from lakehouse.transform import build_selection, dbt_cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lakehouse", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "up", help="start the Spark Thrift Server and the local source systems (PostgreSQL, Kafka)"
    )
    commands.add_parser("down", help="stop the Spark Thrift Server and the local source systems")
    commands.add_parser("status", help="say whether the engine answers, and where data lives")
    commands.add_parser("run", help="run the whole pipeline: ingest, dbt build, publish, report")
    build_cmd = commands.add_parser(
        "build", help="the platform's dbt build: what changed since the last successful one "
        "(bronze Delta versions, state:modified), with its tests; prints what it selected and why"
    )  # fmt: skip
    build_cmd.add_argument("--all", action="store_true", dest="everything",
                           help="build and test everything (and record it as the state the "
                           "next build compares with)")  # fmt: skip
    build_cmd.add_argument("--plan", action="store_true",
                           help="only print, as JSON, what a build would select now, and write "
                           "the bronze versions it was planned on to --lake-state (for "
                           "Airflow's producer)")  # fmt: skip
    build_cmd.add_argument("--remember", action="store_true",
                           help="record the successful build in --target-dir (its manifest; "
                           "the bronze versions read before it in --lake-state) as the state "
                           "the next build compares with (for Airflow's producer)")  # fmt: skip
    build_cmd.add_argument("--lake-state", type=Path, help="--plan, --remember: the bronze "
                           "versions the build was planned on (JSON)")  # fmt: skip
    build_cmd.add_argument("--target-dir", type=Path, help="--remember: the target folder "
                           "of the successful build")  # fmt: skip
    build_cmd.add_argument("--vars", type=json.loads, default={}, help="--plan, --remember: "
                           "the build's --vars, as JSON")  # fmt: skip
    ingest_cmd = commands.add_parser(
        "ingest", help="load sources into bronze (starts local source systems; no engine needed)"
    )
    ingest_cmd.add_argument("--source", action="append", choices=registry.names(), dest="sources",
                        help="load only this source (repeatable); default: all five")  # fmt: skip
    ingest_cmd.add_argument("--generation", type=int, choices=[1, 2],
                        help="first seed the local systems with this generation of sample data "
                             "(2 = a week later: new and changed records)")  # fmt: skip
    replay = ingest_cmd.add_mutually_exclusive_group()
    replay.add_argument(
        "--replay-from-offset",
        type=int,
        metavar="N",
        help="Kafka: re-read every partition from offset N (no duplicates)",
    )
    replay.add_argument(
        "--replay-from-time",
        type=datetime.fromisoformat,
        metavar="ISO-8601",
        help="Kafka: re-read from the first message at or after this time",
    )
    backfill_cmd = commands.add_parser(
        "backfill", help="reload a date range of one source, then rebuild what depends on it"
    )
    backfill_cmd.add_argument("--source", required=True, choices=registry.names())
    backfill_cmd.add_argument("--from", dest="start", required=True, type=date.fromisoformat,
                              metavar="YYYY-MM-DD", help="first day to reload")  # fmt: skip
    backfill_cmd.add_argument("--to", dest="end", type=date.fromisoformat, metavar="YYYY-MM-DD",
                              help="last day to reload (default: --from)")  # fmt: skip
    backfill_cmd.add_argument("--no-rebuild", action="store_true",
                              help="reload bronze only; skip the dbt build downstream")  # fmt: skip
    publish = commands.add_parser(
        "publish", help="publish gold to the warehouses (Snowflake MERGE, Redshift append)"
    )
    publish.add_argument("--warehouse", action="append", choices=sorted(WAREHOUSES),
                         dest="warehouses", help="only this warehouse (repeatable); default: "
                         "publish.warehouses of lakehouse.yml")  # fmt: skip
    publish.add_argument("--table", action="append", dest="tables",
                         help="only this gold table (repeatable); default: all of "
                         "publish.tables")  # fmt: skip
    publish.add_argument("--full-refresh", action="store_true",
                         help="rebuild the Snowflake mirrors from the snapshot (the repair "
                         "after a failed reconciliation); Redshift histories are never "
                         "rebuilt")  # fmt: skip
    report_cmd = commands.add_parser(
        "report", help="write the watchdog report (HTML: freshness, volume, DQ, runs, cost); "
        "with the engine up, also print the row count of every table"
    )  # fmt: skip
    report_cmd.add_argument("--html-only", action="store_true",
                            help="only the HTML report (no engine needed)")  # fmt: skip
    ops_cmd = commands.add_parser("ops", help="run metrics (ops.run_metrics): show or record")
    ops_cmd.add_argument("action", choices=["show", "record-dbt"])
    ops_cmd.add_argument("--run", help="show: only this run id (default: the latest run)")
    ops_cmd.add_argument("--target-dir", help="record-dbt: the dbt target folder whose "
                         "run_results.json and manifest.json to record")  # fmt: skip
    watch = commands.add_parser(
        "watchdog", help="judge bronze volume or quarantine growth; exit 1 on a breach"
    )
    watch.add_argument("check", choices=["volume", "quarantine"])
    watch.add_argument("--volume-tolerance", type=float,
                       help="override orchestration.watchdog.volume_tolerance")  # fmt: skip
    watch.add_argument("--quarantine-max-share", type=float,
                       help="override orchestration.watchdog.quarantine_max_share")  # fmt: skip
    airflow_cmd = commands.add_parser("airflow", help="the local Airflow (orchestration/)")
    airflow_cmd.add_argument("action", choices=["up", "down", "status", "trigger"])
    airflow_cmd.add_argument("dag_id", nargs="?", help="trigger: the DAG to run")
    airflow_cmd.add_argument("--conf", type=json.loads, default={},
                             help="trigger: the run's conf as JSON")  # fmt: skip
    airflow_cmd.add_argument("--wait", action="store_true", help="trigger: wait for the end")
    docs = commands.add_parser(
        "docs", help="generate the docs site: dbt docs, column-lineage page, dataset registry"
    )
    docs.add_argument("--serve", action="store_true", help="then serve it over HTTP")
    docs.add_argument("--port", type=int, default=8081, help="port for --serve (default 8081)")
    docs.add_argument(
        "--lineage-only",
        action="store_true",
        help="only the lineage page and registry (from the events; no engine)",
    )
    trace = commands.add_parser(
        "lineage", help="print where a column comes from, down to the source systems"
    )
    trace.add_argument("dataset", help="dataset name, e.g. gold.customer_360")
    trace.add_argument("column", help="column name, e.g. lifetime_value")
    dbt_cmd = commands.add_parser(
        "dbt", help="run dbt on the project (build/run/test emit OpenLineage through dbt-ol)"
    )
    dbt_cmd.add_argument("args", nargs=argparse.REMAINDER, help="dbt's arguments")
    commands.add_parser("env", help="print shell exports for running dbt by hand")
    home_cmd = commands.add_parser(
        "home", help="the settings the lake home was filled with (docs/operations.md)"
    )
    home_cmd.add_argument("action", choices=["show", "adopt"],
                          help="show: the home's record and any difference from the current "
                          "settings; adopt: record the current settings as the home's")  # fmt: skip
    args = parser.parse_args(argv)

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2

    if args.command in ("run", "ingest", "backfill"):
        # Before anything starts (the engine included): a home filled with other settings is
        # refused, not mixed.
        try:
            if adopted := home_record.check(settings):
                steps.say(adopted)
        except home_record.HomeMismatch as exc:
            print(f"lakehouse {args.command}: {exc}", file=sys.stderr)
            return 2

    match args.command:
        case "up":
            for line in source_systems.start_local(settings):
                steps.say(line)
            if engine.is_up(settings):
                steps.say(f"engine already answers on port {settings.engine.port}")
            else:
                pid = engine.start(settings)
                steps.say(f"engine up on {settings.engine.host}:{settings.engine.port} "
                             f"(pid {pid}, log {engine.log_file(settings)})")  # fmt: skip
        case "down":
            for line in airflow.stop(settings):
                steps.say(line)
            stopped = engine.stop(settings)
            steps.say("engine stopped" if stopped else "engine was not running")
            for line in source_systems.stop_local(settings):
                steps.say(line)
        case "status":
            up = engine.is_up(settings)
            steps.say(f"engine {'up' if up else 'down'} on "
                         f"{settings.engine.host}:{settings.engine.port}")  # fmt: skip
            steps.say(f"lake {settings.lake_dir}; warehouse {settings.warehouse_dir}; "
                         f"metastore {settings.metastore_dir}")  # fmt: skip
            return 0 if up else 1
        case "run":
            try:
                steps.run(settings)
            except steps.RunFailed as exc:
                return _failed(settings, "run", exc)
        case "build" if args.plan or args.remember:
            return _build_state(settings, args)
        case "build":
            try:
                with engine.running(settings):
                    steps.build(settings, args.everything)
            except subprocess.CalledProcessError as exc:
                print(f"build failed: dbt exited with code {exc.returncode} (output above)",
                      file=sys.stderr)  # fmt: skip
                return 1
        case "ingest":
            replay = None
            if args.replay_from_offset is not None or args.replay_from_time is not None:
                if args.sources not in (None, ["kafka"]):
                    parser.error("replay applies to the kafka source only (--source kafka)")
                args.sources = ["kafka"]
                when = args.replay_from_time
                if when is not None and when.tzinfo is None:
                    when = when.replace(tzinfo=UTC)
                replay = Replay(from_offset=args.replay_from_offset, from_time=when)
            try:
                steps.ingest(settings, args.sources or SOURCES, replay, args.generation)
            except home_record.HomeMismatch as exc:
                print(f"lakehouse ingest: {exc}", file=sys.stderr)
                return 2
            except (SourceUnavailable, PipelineStepFailed) as exc:
                # a failing system (after its retries) or a `fail` schema policy: say which
                # source and why, without a traceback; the next run resumes (docs/operations.md)
                print(f"ingest failed: {_first_lines(exc)}", file=sys.stderr)
                return 1
        case "backfill":
            try:
                backfill.validate(args.source, args.start, args.end or args.start)
                with engine.running(settings):
                    backfilled = backfill.backfill(
                        settings, args.source, args.start,
                        args.end or args.start, not args.no_rebuild,
                        report=lambda line: steps.say(f"  {line}"),
                    )  # fmt: skip
            except backfill.BackfillError as exc:
                print(f"backfill failed: {exc}", file=sys.stderr)
                return 1
            steps.say(f"backfill of {args.source} {args.start}..{args.end or args.start}: "
                         f"{backfilled.load.line()}")  # fmt: skip
        case "publish":
            try:
                steps.publish(settings, args.warehouses, args.tables, args.full_refresh)
            except PublishError as exc:
                print(f"publish failed: {exc}", file=sys.stderr)
                return 1
        case "report":
            if not args.html_only and engine.is_up(settings):
                steps.report(settings)
            steps.say(f"watchdog report: {watchdog_report.write(settings)}")
        case "ops":
            return _ops(settings, args)
        case "watchdog":
            return _watchdog(settings, args)
        case "airflow":
            return _airflow(settings, args)
        case "docs":
            if args.lineage_only:
                written = docs_site.write_lineage(settings)
                steps.say(f"lineage page {written.page}, registry {written.registry}")
            else:
                with engine.running(settings):
                    out = docs_site.generate(settings)
                steps.say(f"docs site in {out} (static: {out / 'static_index.html'})")
            if args.serve:
                site.serve(settings, args.port)
        case "lineage":
            return _lineage(settings, args.dataset, args.column)
        case "dbt":
            return dbt_cli.dbt(settings, *args.args, check=False).returncode
        case "home":
            return _home(settings, args.action)
        case "env":
            classpath = ":".join(str(j) for j in engine_jars())
            for name, value in emit.environment(settings).items():
                print(f"export {name}={value}")  # for dbt-ol typed by hand
            print(f"export LAKEHOUSE_HOME={settings.home}")
            print(f"export LAKEHOUSE_THRIFT_HOST={settings.engine.host}")
            print(f"export LAKEHOUSE_THRIFT_PORT={settings.engine.port}")
            print(f"export LAKEHOUSE_SPARK_CLASSPATH={classpath}")
    return 0


def _build_state(settings: Settings, args: argparse.Namespace) -> int:
    """``build --plan`` / ``--remember``: the platform build's selection, for a build run
    elsewhere (Airflow's Cosmos producer, lakehouse_airflow/build_selection.py). ``--plan``
    marks the build as begun; ``--remember`` records its success."""
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
        settings, args.target_dir, manifest["metadata"]["dbt_version"],
        datetime.now(UTC).date().isoformat(), build_selection.vars_fingerprint(args.vars),
        lake,
    )  # fmt: skip
    steps.say(f"state for the next build: {saved}")
    return 0


def _home(settings: Settings, action: str) -> int:
    """Show the home's record, or adopt the current settings as the home's."""
    if action == "adopt":
        before, now = home_record.adopt(settings)
        for d in home_record.differences(before, now) if before else []:
            steps.say(f"{d.setting}: was {d.home}, now {d.now}")
        steps.say(f"the current settings are the home's: {home_record.record_file(settings)}")
        return 0
    record = home_record.read(settings)
    if record is None:
        steps.say(f"{settings.home} has no record yet (the first load writes it)")
        return 0
    print(json.dumps(record, indent=2))
    found = home_record.differences(record, home_record.current(settings))
    for d in found:
        steps.say(f"differs: {d.setting}: the home has {d.home}, the current settings {d.now}")
    return 1 if found else 0


def _failed(settings: Settings, command: str, exc: BaseException) -> int:
    """Say in one line what failed and what to do; the traceback (with its cause) goes to a log
    for whoever digs deeper, not to the terminal."""
    log = settings.log_dir / "lakehouse-errors.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as out:
        out.write(f"--- {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} lakehouse {command} "
                  f"(run {run_metrics.run_id()})\n")  # fmt: skip
        out.writelines(traceback.format_exception(exc))
    print(f"{command} failed: {exc}\n(traceback: {log})", file=sys.stderr)
    return 1


def _lineage(settings: Settings, dataset: str, column: str) -> int:
    lineage = graph.load(site.lineage_dir(settings))
    try:
        node = lineage.find(dataset)
    except KeyError as exc:
        print(f"lineage: {exc.args[0]} (run the pipeline first?)", file=sys.stderr)
        return 1
    if column not in node.fields:
        print(f"lineage: {dataset} has no column {column!r}; it has {', '.join(node.fields)}",
              file=sys.stderr)  # fmt: skip
        return 1

    def show(t: graph.Trace, depth: int) -> None:
        system = f"  (from {t.dataset.system})" if t.dataset.layer == "source" else ""
        print(f"{'  ' * depth}{t.dataset.layer:<9} {t.dataset.id.name}.{t.field}{system}")
        for child in t.inputs:
            show(child, depth + 1)

    show(lineage.trace(node, column), 0)
    return 0


def _ops(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "record-dbt":
        if not args.target_dir:
            print("record-dbt needs --target-dir", file=sys.stderr)
            return 2
        recorded = run_metrics.record_dbt(settings, Path(args.target_dir))
        steps.say(
            f"{recorded} dbt job(s) recorded in {run_metrics.TABLE} (run {run_metrics.run_id()})"
        )
        return 0
    rows = run_metrics.read(settings)
    run = args.run or (rows[-1]["run_id"] if rows else None)
    rows = [r for r in rows if r["run_id"] == run]
    if not rows:
        print("no run recorded yet" if run is None else f"no run {run}", file=sys.stderr)
        return 1
    print(f"run {run}")
    for r in rows:
        read, written = (
            watchdog_report.count(r["rows_read"]),
            watchdog_report.count(r["rows_written"]),
        )
        print(f"  {r['step']:<8} {r['job']:<42} {r['status']:<8} {r['duration_s']:>7.1f}s "
              f"read {read:>9} written {written:>9} "
              f"quarantined {watchdog_report.count(r['rows_quarantined']):>6} "
              f"cost {r['compute_cost']:.5f} {r['currency']}")  # fmt: skip
    total = sum(r["compute_cost"] for r in rows)
    print(f"  {len(rows)} jobs, compute cost {total:.4f} {rows[0]['currency']}")
    return 0


def _watchdog(settings: Settings, args: argparse.Namespace) -> int:
    """Print every finding; exit 1 (naming the breaches on stderr) if any breached."""
    overrides = {
        "volume_tolerance": args.volume_tolerance,
        "quarantine_max_share": args.quarantine_max_share,
    }
    overrides = {key: value for key, value in overrides.items() if value is not None}
    conf = settings.orchestration.watchdog.model_copy(update=overrides)
    check = watchdog.volume if args.check == "volume" else watchdog.quarantine_growth
    findings = check(settings, conf)
    for finding in findings:
        verdict = "BREACH" if finding.breach else "ok"
        steps.say(f"{verdict:6} {finding.subject}: {finding.message}")
    breaches = [f for f in findings if f.breach]
    if breaches:
        print(f"{args.check} breached: " + "; ".join(f"{f.subject}: {f.message}" for f in breaches),
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


def _airflow(settings: Settings, args: argparse.Namespace) -> int:
    """Start, stop, describe the local Airflow, or trigger a DAG run through its REST API."""
    action = args.action
    try:
        if action == "trigger":
            if not args.dag_id:
                print("airflow trigger: name the DAG", file=sys.stderr)
                return 2
            client = airflow.Client(settings)
            run_id = client.trigger(args.dag_id, args.conf)
            steps.say(f"{args.dag_id}: queued {run_id} (UI: {airflow.url(settings)})")
            if not args.wait:
                return 0
            state = client.wait(args.dag_id, run_id)["state"]
            steps.say(f"{args.dag_id}: {run_id} {state}")
            return 0 if state == "success" else 1
        if action == "up":
            lines = airflow.start(settings)
        elif action == "down":
            lines = airflow.stop(settings) or ["Airflow was not running"]
        else:
            up = airflow.is_up(settings)
            running = airflow.running_components(settings)
            lines = [f"Airflow {'up' if up else 'down'} on {airflow.url(settings)}; "
                     f"running: {', '.join(running) or 'nothing'}"]  # fmt: skip
    except airflow.AirflowError as exc:
        print(f"airflow: {exc}", file=sys.stderr)
        return 1
    for line in lines:
        steps.say(line)
    return 0 if action != "status" or airflow.is_up(settings) else 1


def _first_lines(error: BaseException) -> str:
    """An ingest error for a person: its message (dlt's step failure: the cause's) and notes."""
    if isinstance(error, PipelineStepFailed):
        notes = getattr(error, "__notes__", [])
        error = error.exception.__cause__ or error.exception
        return "\n".join([f"{type(error).__name__}: {error}", *notes])
    return str(error)
