"""The bench's pure parts: how a target judges a value, what the table prints, the JSON's shape.

No engine: `make bench` itself is the measurement; these check that it reports what it measured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from lakehouse.bench import modes, report, spark_ui
from lakehouse.bench.harness import Bench, phases_in_order
from lakehouse.bench.report import Line
from lakehouse.bench.targets import TARGETS, Target, Verdict, evaluate
from lakehouse.core.environment import overridden
from lakehouse.observability import run_metrics

FACTS = {"scale": 0.05, "git_sha": "0123456789abcdef", "git_dirty": True, "cores": 2,
         "ram_gib": 23.4, "load_before": "1.00 1.00 1.00", "load_after": "2.00 2.00 2.00",
         "started_at": "2026-11-29T13:00:00Z"}  # fmt: skip


def test_every_target_of_the_issue_is_judged_once() -> None:
    keys = [t.key for t in TARGETS]
    assert len(keys) == len(set(keys)) == 9
    assert {"dbt_build_warm_s", "platform_build_noop_s", "customer_360_warm_s",
            "first_build_ratio", "generation_2_build_share", "kafka_share", "make_run_s",
            "cosmos_ratio", "make_test_s"} == set(keys)  # fmt: skip


def test_a_limit_is_met_at_the_limit_and_missed_past_it() -> None:
    under = Target("t", "time", 30, "s")
    assert Verdict(under, 30.0).outcome == "PASS"
    assert Verdict(under, 30.1).outcome == "FAIL"
    over = Target("k", "share", 0.5, "%", at_least=True)
    assert Verdict(over, 0.5).outcome == "PASS"
    assert Verdict(over, 0.49).outcome == "FAIL"


def test_a_missing_value_says_why_instead_of_a_verdict() -> None:
    verdicts = evaluate({"dbt_build_warm_s": 69.0}, {"kafka_share": "not available"})
    by_key = {v.target.key: v.outcome for v in verdicts}
    assert by_key["dbt_build_warm_s"] == "FAIL"
    assert by_key["kafka_share"] == "not available"
    assert by_key["make_test_s"] == "not measured"


def test_the_table_prints_every_target_with_value_limit_and_outcome() -> None:
    sections = {"dbt": [Line("whole build", 64.8), Line("share", 0.99, "%"),
                        Line("kafka", None, note="not available")]}  # fmt: skip
    verdicts = evaluate({"first_build_ratio": 1.84, "generation_2_build_share": 0.99,
                         "customer_360_warm_s": 4.2}, {})  # fmt: skip
    text = report.table(sections, verdicts, FACTS)
    lines = text.splitlines()
    assert "git 0123456789 (dirty), 2 cores" in lines[0]
    assert "limits are for scale 1; this run: 0.05" in text
    row = next(line for line in lines if line.strip().startswith("first `dbt build`"))
    assert row.split()[-4:] == ["1.84x", "≤", "1.30x", "FAIL"]
    row = next(line for line in lines if line.strip().startswith("build after generation 2"))
    assert row.split()[-6:] == ["99", "%", "≤", "30", "%", "FAIL"]
    row = next(line for line in lines if line.strip().startswith("`dbt build --select"))
    assert row.endswith("PASS")
    assert any(
        line.strip().startswith("kafka") and line.endswith("not available") for line in lines
    )
    assert sum(1 for line in lines if line.endswith(("PASS", "FAIL", "not measured"))) == 9


def test_the_json_holds_facts_measurements_and_verdicts(tmp_path: Path) -> None:
    sections = {"make run": [Line("ingest", 244.0), Line("total", 691.0)]}
    verdicts = evaluate({"make_run_s": 424.0}, {})
    doc = report.document(sections, verdicts, FACTS, {"dbt_builds": [{"wall_s": 1.0}]})
    written = report.write(doc, tmp_path)
    assert written.name == "bench-20261129T130000.json"
    loaded = json.loads(written.read_text())
    assert loaded == json.loads((tmp_path / "latest.json").read_text())
    assert loaded["facts"]["git_sha"] == "0123456789abcdef"
    total = {"label": "total", "value": 691.0, "unit": "s", "note": "", "beside": None}
    assert loaded["measurements"]["make run"][1] == total
    run = next(t for t in loaded["targets"] if t["key"] == "make_run_s")
    assert (run["value"], run["limit"], run["outcome"]) == (424.0, 300, "FAIL")
    assert loaded["details"]["dbt_builds"] == [{"wall_s": 1.0}]


def test_the_engines_statements_are_counted_by_kind_inside_the_window() -> None:
    def execution(at: str, seconds: float, sql: str, root: int | None = None) -> dict:
        n, stamp = len(executions), f"2026-11-29T13:{at}.000GMT"
        return {"id": n, "rootExecutionId": n if root is None else root, "description": sql,
                "submissionTime": stamp, "duration": seconds * 1000}  # fmt: skip

    executions: list[dict] = []
    for args in [
        ("00:00", 9.0, "select 1"),  # before the window
        ("01:00", 2.0, 'Delta: /* {"app": "dbt"} */ create or replace table gold.c as ...'),
        ("01:01", 1.5, "Delta: Delta: /* dbt */ create or replace table gold.c as ...", 1),
        ("01:10", 0.5, "show table extended in silver like '*'"),
        ("01:20", 0.25, "-- back compat\n  SHOW TABLE EXTENDED in gold like '*'"),
        ("01:30", 1.0, "alter table gold.c add constraint x check (a > 0)"),
        ("09:00", 9.0, "select 2"),  # after it
    ]:
        executions.append(execution(*args))
    since = datetime(2026, 11, 29, 13, 1, tzinfo=UTC)
    until = datetime(2026, 11, 29, 13, 2, tzinfo=UTC)
    summary = spark_ui.summarise(executions, since, until)
    assert summary["statements"] == 4
    assert summary["nested_executions"] == 1  # inside its root's 2 s, not summed again
    assert summary["spark_seconds"] == 3.75
    assert summary["by_kind"] == {
        "create or replace table": {"count": 1, "seconds": 2.0},
        "alter table": {"count": 1, "seconds": 1.0},
        "show table extended": {"count": 2, "seconds": 0.75},
    }


def test_a_failed_step_is_reported_under_its_section_and_the_bench_goes_on(
    settings, monkeypatch
) -> None:
    # phase() names a run per step; restored after
    monkeypatch.setenv(run_metrics.RUN_ID_ENV, "test")
    bench = Bench(settings)

    def half_done() -> None:
        bench.add("generation 2", Line("ingest", 26.2))
        raise RuntimeError("the engine died")

    bench.phase("generation-2", half_done)
    bench.phase("kafka", lambda: bench.add("kafka", Line("rate", 1.0, "rows/s")))
    assert [line.label for line in bench.sections["generation 2"]] == [
        "ingest", "the generation-2 step failed (RuntimeError): see the log"
    ]  # fmt: skip
    assert bench.errors == ["generation-2: RuntimeError: the engine died"]
    assert bench.sections["kafka"] == [Line("rate", 1.0, "rows/s")]


def test_publish_phases_read_in_the_order_they_run() -> None:
    stored = {"read": 3.2, "reconcile": 1.6, "serve": 38.9, "stage": 79.5, "emulator_wait": 2.0}
    assert [p for p, _ in phases_in_order(stored)] == [
        "read", "stage", "serve", "reconcile", "emulator_wait"
    ]  # fmt: skip


def test_the_bench_command_loads_and_explains_itself() -> None:
    """`make bench` runs `python -m lakehouse.bench`: it must import and parse its options."""
    done = subprocess.run(
        [sys.executable, "-m", "lakehouse.bench", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "--scale" in done.stdout and "--repeat" in done.stdout


def test_the_mode_column_prints_both_deployments_and_their_ratio() -> None:
    section = f"mode column: {modes.LOCAL} | {modes.DISTRIBUTED}"
    sections = {section: [Line("dbt build", 60.0, beside=90.0), Line("only local", 5.0)]}
    lines = report.table(sections, [], FACTS).splitlines()
    both = next(line for line in lines if line.strip().startswith("dbt build"))
    assert both.split()[-5:] == ["60.0", "s", "90.0", "s", "1.50x"]
    alone = next(line for line in lines if line.strip().startswith("only local"))
    assert alone.split()[-2:] == ["5.0", "s"]


def test_a_mode_sets_its_environment_only_while_it_runs(monkeypatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_ENGINE__MODE", "local")
    monkeypatch.delenv("LAKEHOUSE_STORAGE__ROOT", raising=False)
    with overridden(modes.DISTRIBUTED_ENV):
        assert os.environ["LAKEHOUSE_ENGINE__MODE"] == "standalone"
        assert os.environ["LAKEHOUSE_STORAGE__ROOT"].startswith("s3://")
    assert os.environ["LAKEHOUSE_ENGINE__MODE"] == "local"
    assert "LAKEHOUSE_STORAGE__ROOT" not in os.environ
