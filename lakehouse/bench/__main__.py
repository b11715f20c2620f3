"""``python -m lakehouse.bench`` (``make bench``): measure, print the table, write the JSON.

The bench fills a lake home of its own (default ``<repo>/.lakehouse-bench``, emptied first),
never the data of ``make run`` or of the tests, and refuses to start when a port it needs is
taken: an engine or broker already answering there would be measured in place of its own.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import socket
import sys
from pathlib import Path

from lakehouse.bench import report
from lakehouse.bench.harness import Bench, now, stop_everything
from lakehouse.bench.targets import evaluate
from lakehouse.core import console
from lakehouse.core.config import REPO_ROOT, Settings, load_settings
from lakehouse.stack import source_systems

log = logging.getLogger(__name__)

RETAINED_EXECUTIONS = 20_000
PHASES = ("builds", "nothing-new", "generation-2", "kafka", "airflow", "modes")


def _taken_ports(settings: Settings) -> list[str]:
    services, standalone = settings.services, settings.engine.standalone
    ports = {
        "engine (LAKEHOUSE_THRIFT_PORT)": settings.engine.port,
        "PostgreSQL (LAKEHOUSE_POSTGRES_PORT)": services.postgres_port,
        "Kafka (LAKEHOUSE_KAFKA_PORT)": services.kafka_port,
        "Kafka controller (LAKEHOUSE_KAFKA_CONTROLLER_PORT)": services.kafka_controller_port,
        "Snowflake emulator (LAKEHOUSE_SNOWFLAKE_PORT)": services.snowflake_port,
        "Airflow (LAKEHOUSE_AIRFLOW_PORT)": settings.orchestration.api_port,
        # the mode column's: the S3 server and the standalone cluster's master
        "S3 server (LAKEHOUSE_S3_PORT)": services.s3_port,
        "Spark master (LAKEHOUSE_ENGINE__STANDALONE__MASTER_PORT)": standalone.master_port,
        "Spark master UI (LAKEHOUSE_ENGINE__STANDALONE__MASTER_UI_PORT)": standalone.master_ui_port,
    }
    taken = []
    for name, port in ports.items():
        with socket.socket() as probe:
            probe.settimeout(0.5)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                taken.append(f"{name} {port}")
    return taken


def main(argv: list[str] | None = None) -> int:
    console.configure()
    parser = argparse.ArgumentParser(prog="lakehouse.bench", description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0, help="sample data scale (default 1)")
    parser.add_argument("--home", type=Path, default=REPO_ROOT / ".lakehouse-bench",
                        help="the bench's lake home, emptied first")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=2,
                        help="samples of each warm measurement; the median is judged")  # fmt: skip
    parser.add_argument("--tests", action="store_true",
                        help="also time `make test` in a fresh clone (long)")  # fmt: skip
    parser.add_argument("--skip", action="append", choices=PHASES, default=[],
                        help="leave a step out (repeatable)")  # fmt: skip
    args = parser.parse_args(argv)

    home = args.home.resolve()
    # Every child (dbt, Airflow, `lakehouse build`) reads these, as the engine does.
    os.environ["LAKEHOUSE_HOME"] = str(home)
    os.environ["LAKEHOUSE_SCALE"] = str(args.scale)
    # The engine's UI keeps its last 1000 SQL executions by default, fewer than one whole build
    # at scale 1 with Delta's nested ones: keep enough to read every build's statements back.
    extra = os.environ.get("LAKEHOUSE_SPARK_CONF", "")
    retained = f"spark.sql.ui.retainedExecutions={RETAINED_EXECUTIONS}"
    os.environ["LAKEHOUSE_SPARK_CONF"] = f"{extra},{retained}" if extra else retained
    settings = load_settings()
    if taken := _taken_ports(settings):
        print("bench: these ports already answer; stop what holds them (`make down`) or export "
              "other ports: " + ", ".join(taken), file=sys.stderr)  # fmt: skip
        return 2
    shutil.rmtree(home, ignore_errors=True)
    facts = {**report.machine_facts(args.scale), "home": str(home), "started_at": now(),
             "repeat": args.repeat, "skipped": args.skip}  # fmt: skip
    bench = Bench(settings, repeat=args.repeat)
    phases = {
        "builds": bench.builds, "nothing-new": bench.nothing_new,
        "generation-2": bench.generation_2, "kafka": bench.kafka, "airflow": bench.airflow,
    }  # fmt: skip
    interrupted = False
    try:
        bench.phase("full-run", bench.full_run)  # starts and stops what it needs, as make run
        for line in source_systems.start_local(settings):
            log.info(line)
        for name, step in phases.items():
            if name not in args.skip:
                bench.phase(name, step)
        stop_everything(settings)  # the modes run on the same ports, each on its own home
        if "modes" not in args.skip:
            bench.phase("modes", bench.modes)
    except KeyboardInterrupt:  # a long run stopped by hand still prints what it measured
        interrupted = True
        bench.errors.append("interrupted: the steps after the last row were not measured")
    finally:
        stop_everything(settings)
    if args.tests and not interrupted:
        bench.phase("make-test", bench.make_test)
    else:
        bench.notes["make_test_s"] = "not measured" + ("" if args.tests else " (TESTS=1)")
    facts.update(finished_at=now(), load_after=report.load_average())
    verdicts = evaluate(bench.values, bench.notes)
    print("\n" + report.table(bench.sections, verdicts, facts))
    written = report.write(
        report.document(bench.sections, verdicts, facts,
                        {**bench.details, "errors": bench.errors}),
        home / "bench",
    )  # fmt: skip
    print(f"\n(written: {written})")
    for error in bench.errors:
        print(f"bench step failed: {error}", file=sys.stderr)
    return 1 if bench.errors else 0


if __name__ == "__main__":
    sys.exit(main())
