"""The platform's one command-line entry point; the Makefile targets are thin over it."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from ingestion.runner import SOURCES, Replay
from lakehouse import engine, pipeline, systems
from lakehouse.config import ConfigError, load_settings
from lakehouse.jars import engine_jars
from lakehouse.publish import PublishError
from lakehouse.warehouses import WAREHOUSES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lakehouse", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "up", help="start the Spark Thrift Server and the local source systems (PostgreSQL, Kafka)"
    )
    commands.add_parser("down", help="stop the Spark Thrift Server and the local source systems")
    commands.add_parser("status", help="say whether the engine answers, and where data lives")
    commands.add_parser("run", help="run the whole pipeline: ingest, dbt build, publish, report")
    ingest = commands.add_parser(
        "ingest", help="load sources into bronze (starts local source systems; no engine needed)"
    )
    ingest.add_argument("--source", action="append", choices=SOURCES, dest="sources",
                        help="load only this source (repeatable); default: all five")  # fmt: skip
    ingest.add_argument("--generation", type=int, choices=[1, 2],
                        help="first seed the local systems with this generation of sample data "
                             "(2 = a week later: new and changed records)")  # fmt: skip
    replay = ingest.add_mutually_exclusive_group()
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
    commands.add_parser("report", help="row count of every bronze, silver and gold table")
    commands.add_parser("env", help="print shell exports for running dbt by hand")
    args = parser.parse_args(argv)

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2

    match args.command:
        case "up":
            for line in systems.start_local(settings):
                pipeline.say(line)
            if engine.is_up(settings):
                pipeline.say(f"engine already answers on port {settings.engine.port}")
            else:
                pid = engine.start(settings)
                pipeline.say(f"engine up on {settings.engine.host}:{settings.engine.port} "
                             f"(pid {pid}, log {engine.log_file(settings)})")  # fmt: skip
        case "down":
            stopped = engine.stop(settings)
            pipeline.say("engine stopped" if stopped else "engine was not running")
            for line in systems.stop_local(settings):
                pipeline.say(line)
        case "status":
            up = engine.is_up(settings)
            pipeline.say(f"engine {'up' if up else 'down'} on "
                         f"{settings.engine.host}:{settings.engine.port}")  # fmt: skip
            pipeline.say(f"lake {settings.lake_dir}; warehouse {settings.warehouse_dir}; "
                         f"metastore {settings.metastore_dir}")  # fmt: skip
            return 0 if up else 1
        case "run":
            pipeline.run(settings)
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
            pipeline.ingest(settings, args.sources or SOURCES, replay, args.generation)
        case "publish":
            try:
                pipeline.publish(settings, args.warehouses, args.tables, args.full_refresh)
            except PublishError as exc:
                print(f"publish failed: {exc}", file=sys.stderr)
                return 1
        case "report":
            pipeline.report(settings)
        case "env":
            classpath = ":".join(str(j) for j in engine_jars())
            print(f"export LAKEHOUSE_HOME={settings.home}")
            print(f"export LAKEHOUSE_THRIFT_HOST={settings.engine.host}")
            print(f"export LAKEHOUSE_THRIFT_PORT={settings.engine.port}")
            print(f"export LAKEHOUSE_SPARK_CLASSPATH={classpath}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
