"""The platform's one command-line entry point; the Makefile targets are thin over it."""

from __future__ import annotations

import argparse
import sys

from lakehouse import engine, pipeline
from lakehouse.config import ConfigError, load_settings
from lakehouse.jars import engine_jars


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lakehouse", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="start the Spark Thrift Server (Delta, one metastore)")
    commands.add_parser("down", help="stop the Spark Thrift Server")
    commands.add_parser("status", help="say whether the engine answers, and where data lives")
    commands.add_parser("run", help="run the whole pipeline: ingest, dbt build, report")
    commands.add_parser("ingest", help="load every source into bronze (engine not needed)")
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
            if engine.is_up(settings):
                pipeline.say(f"engine already answers on port {settings.engine.port}")
            else:
                pid = engine.start(settings)
                pipeline.say(f"engine up on {settings.engine.host}:{settings.engine.port} "
                             f"(pid {pid}, log {engine.log_file(settings)})")  # fmt: skip
        case "down":
            stopped = engine.stop(settings)
            pipeline.say("engine stopped" if stopped else "engine was not running")
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
            pipeline.ingest(settings)
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
