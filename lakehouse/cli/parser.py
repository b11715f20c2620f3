"""The command line's grammar: every command, its arguments and its help.

It imports only the kernel and the registry of source names, so ``lakehouse --help`` and
``lakehouse status`` start in a fraction of a second: the code a command runs is imported when
that command runs (lakehouse/cli/main.py).
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path

from ingestion import registry
from lakehouse.core.config import WAREHOUSE_NAMES

DESCRIPTION = "The platform's one command-line entry point; the Makefile targets are thin over it."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lakehouse", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "up", help="start the Spark Thrift Server and the local source systems (PostgreSQL, Kafka)"
    )
    commands.add_parser("down", help="stop the Spark Thrift Server and the local source systems")
    commands.add_parser("status", help="say whether the engine answers, and where data lives")
    commands.add_parser("run", help="run the whole pipeline: ingest, dbt build, publish, report")
    _build(commands)
    _ingest(commands)
    _backfill(commands)
    _publish(commands)
    _observe(commands)
    _airflow(commands)
    _docs(commands)
    dbt_cmd = commands.add_parser(
        "dbt", help="run dbt on the project (build/run/test emit OpenLineage through dbt-ol)"
    )
    dbt_cmd.add_argument("args", nargs=argparse.REMAINDER, help="dbt's arguments")
    commands.add_parser("env", help="print shell exports for running dbt by hand")
    home_cmd = commands.add_parser(
        "home", help="the settings the lake home was filled with (docs/operations.md)"
    )
    home_cmd.add_argument(
        "action",
        choices=["show", "adopt"],
        help="show: the home's record and any difference from the current "
        "settings; adopt: record the current settings as the home's",
    )
    return parser


def _build(commands: argparse._SubParsersAction) -> None:
    build_cmd = commands.add_parser(
        "build",
        help="the platform's dbt build: what changed since the last successful one "
        "(bronze Delta versions, state:modified), with its tests; prints what it selected and why",
    )
    build_cmd.add_argument(
        "--all",
        action="store_true",
        dest="everything",
        help="build and test everything (and record it as the state the next build compares with)",
    )
    build_cmd.add_argument(
        "--plan",
        action="store_true",
        help="only print, as JSON, what a build would select now, and write "
        "the bronze versions it was planned on to --lake-state (for "
        "Airflow's producer)",
    )
    build_cmd.add_argument(
        "--remember",
        action="store_true",
        help="record the successful build in --target-dir (its manifest; "
        "the bronze versions read before it in --lake-state) as the state "
        "the next build compares with (for Airflow's producer)",
    )
    build_cmd.add_argument(
        "--lake-state",
        type=Path,
        help="--plan, --remember: the bronze versions the build was planned on (JSON)",
    )
    build_cmd.add_argument(
        "--target-dir", type=Path, help="--remember: the target folder of the successful build"
    )
    build_cmd.add_argument(
        "--vars",
        type=json.loads,
        default={},
        help="--plan, --remember: the build's --vars, as JSON",
    )


def _ingest(commands: argparse._SubParsersAction) -> None:
    ingest_cmd = commands.add_parser(
        "ingest", help="load sources into bronze (starts local source systems; no engine needed)"
    )
    ingest_cmd.add_argument(
        "--source",
        action="append",
        choices=registry.names(),
        dest="sources",
        help="load only this source (repeatable); default: all of them",
    )
    ingest_cmd.add_argument(
        "--generation",
        type=int,
        choices=[1, 2],
        help="first seed the local systems with this generation of sample "
        "data (2 = a week later: new and changed records)",
    )
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


def _backfill(commands: argparse._SubParsersAction) -> None:
    backfill_cmd = commands.add_parser(
        "backfill",
        help="reload a window of one source (each as its strategy allows), then rebuild "
        "exactly the models downstream",
        description="Modes: snowflake --reload | --downstream-only; crm, kafka and redshift "
        "--from T --to T (ISO-8601 times, UTC unless zoned, the end excluded); redshift "
        "--from-id N --to-id M (the end excluded); fx --from D [--to D] (days, both included).",
    )
    backfill_cmd.add_argument("--source", required=True, choices=registry.names())
    window = backfill_cmd.add_argument_group("window (crm, redshift, fx, kafka)")
    window.add_argument(
        "--from", dest="start", metavar="ISO-8601", help="start of the window (fx: the first day)"
    )
    window.add_argument(
        "--to",
        dest="end",
        metavar="ISO-8601",
        help="end of the window, excluded (fx: the last day; default --from)",
    )
    ids = backfill_cmd.add_argument_group("id range (redshift)")
    ids.add_argument("--from-id", type=int, metavar="N", help="first row id")
    ids.add_argument("--to-id", type=int, metavar="M", help="end of the range, excluded")
    whole = backfill_cmd.add_mutually_exclusive_group()
    whole.add_argument("--reload", action="store_true",
                       help="snowflake: reload the snapshot as of now")  # fmt: skip
    whole.add_argument("--downstream-only", action="store_true",
                       help="snowflake: no load; rebuild the models downstream only")  # fmt: skip
    backfill_cmd.add_argument(
        "--table",
        action="append",
        dest="tables",
        default=[],
        help="only this bronze table (repeatable; snowflake, redshift); default: all",
    )
    backfill_cmd.add_argument(
        "--no-rebuild",
        action="store_true",
        help="reload bronze only; skip the dbt build downstream",
    )
    backfill_cmd.add_argument(
        "--dry-run",
        action="store_true",
        help="validate the request and say what would be reloaded; touch nothing",
    )


def _publish(commands: argparse._SubParsersAction) -> None:
    publish = commands.add_parser(
        "publish", help="publish gold to the warehouses (Snowflake MERGE, Redshift append)"
    )
    publish.add_argument(
        "--warehouse",
        action="append",
        choices=sorted(WAREHOUSE_NAMES),
        dest="warehouses",
        help="only this warehouse (repeatable); default: publish.warehouses of lakehouse.yml",
    )
    publish.add_argument(
        "--table",
        action="append",
        dest="tables",
        help="only this gold table (repeatable); default: all of publish.tables",
    )
    publish.add_argument(
        "--full-refresh",
        action="store_true",
        help="rebuild the Snowflake mirrors from the snapshot (the repair "
        "after a failed reconciliation); Redshift histories are never "
        "rebuilt",
    )


def _observe(commands: argparse._SubParsersAction) -> None:
    report_cmd = commands.add_parser(
        "report",
        help="write the watchdog report (HTML: freshness, volume, DQ, runs, cost); "
        "with the engine up, also print the row count of every table",
    )
    report_cmd.add_argument(
        "--html-only", action="store_true", help="only the HTML report (no engine needed)"
    )
    ops_cmd = commands.add_parser("ops", help="run metrics (ops.run_metrics): show or record")
    ops_cmd.add_argument("action", choices=["show", "record-dbt"])
    ops_cmd.add_argument("--run", help="show: only this run id (default: the latest run)")
    ops_cmd.add_argument(
        "--target-dir",
        help="record-dbt: the dbt target folder whose run_results.json and manifest.json to record "
        "(run metrics, and the change audit of the gold models it rebuilt)",
    )
    watch = commands.add_parser(
        "watchdog",
        help="judge bronze volume or quarantine growth, or raise gold changes over their "
        "threshold (ops.table_changes, each build once); exit 1 on a breach",
    )
    watch.add_argument("check", choices=["volume", "quarantine", "changes"])
    watch.add_argument(
        "--volume-tolerance", type=float, help="override orchestration.watchdog.volume_tolerance"
    )
    watch.add_argument(
        "--quarantine-max-share",
        type=float,
        help="override orchestration.watchdog.quarantine_max_share",
    )
    _diff(commands)
    trace = commands.add_parser(
        "lineage", help="print where a column comes from, down to the source systems"
    )
    trace.add_argument("dataset", help="dataset name, e.g. gold.customer_360")
    trace.add_argument("column", help="column name, e.g. lifetime_value")


def _diff(commands: argparse._SubParsersAction) -> None:
    diff = commands.add_parser(
        "diff",
        help="what changed in a table between two Delta versions (default: the last two "
        "builds): rows added, removed, changed per column, keyed by its unique key",
    )
    diff.add_argument("table", help="e.g. customer_360 or gold.customer_360 (silver works too)")
    diff.add_argument(
        "--from",
        dest="from_version",
        type=int,
        metavar="V",
        help="the older Delta version (default: the one the build before the last left)",
    )
    diff.add_argument(
        "--to",
        dest="to_version",
        type=int,
        metavar="V",
        help="the newer Delta version (default: the one the last build left)",
    )
    diff.add_argument("--json", action="store_true", help="print the diff as JSON")
    diff.add_argument(
        "--examples",
        type=int,
        metavar="N",
        help="examples per kind of change (default: audit.examples)",
    )
    diff.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="COLUMN",
        help="also leave this column out (repeatable; beside audit.ignore_columns)",
    )
    diff.add_argument(
        "--no-ignore", action="store_true", help="compare every column, audit.ignore_columns too"
    )


def _airflow(commands: argparse._SubParsersAction) -> None:
    airflow_cmd = commands.add_parser("airflow", help="the local Airflow (orchestration/)")
    airflow_cmd.add_argument("action", choices=["up", "down", "status", "trigger"])
    airflow_cmd.add_argument("dag_id", nargs="?", help="trigger: the DAG to run")
    airflow_cmd.add_argument(
        "--conf", type=json.loads, default={}, help="trigger: the run's conf as JSON"
    )
    airflow_cmd.add_argument("--wait", action="store_true", help="trigger: wait for the end")


def _docs(commands: argparse._SubParsersAction) -> None:
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
