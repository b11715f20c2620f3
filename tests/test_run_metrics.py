"""Run metrics and the watchdog report after a whole pipeline run (`make run`'s code path).

The run gets its own run id; its rows in ops.run_metrics are checked against the tables
themselves: bronze Delta commits, silver/gold row counts and sizes from the engine, the served
tables in the warehouses. Then the HTML report is rendered in headless Chromium.
"""

from __future__ import annotations

import json
import math
from datetime import timedelta

import pytest

from ingestion.contracts import QUARANTINE_TABLE
from ingestion.registry import SOURCES
from lakehouse.core.config import Settings
from lakehouse.core.dbt_paths import target_dir
from lakehouse.observability import run_metrics, watchdog, watchdog_report
from lakehouse.pipeline import steps
from lakehouse.transform import catalog
from lakehouse.transform.sql import query


@pytest.fixture(scope="module")
def run(dbt_built, warehouses: Settings, monkeypatch_module) -> tuple[str, list[dict]]:
    """The whole pipeline once more, under a run id of its own; its ops rows."""
    monkeypatch_module.setenv(run_metrics.RUN_ID_ENV, "test-run-metrics")
    steps.run(warehouses)
    return "test-run-metrics", run_metrics.read(warehouses, run="test-run-metrics")


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def _by_step(rows: list[dict], step: str) -> dict[str, dict]:
    return {r["job"]: r for r in rows if r["step"] == step}


def test_one_row_per_job_of_every_step(run, dbt_built) -> None:
    _, rows = run
    manifest = json.loads((target_dir() / "manifest.json").read_text())
    models = {f"{n['schema']}.{n['alias']}" for n in manifest["nodes"].values()
              if n["resource_type"] == "model" and n["config"]["enabled"]}  # fmt: skip
    assert set(_by_step(rows, "ingest")) == {f"bronze_{s}" for s in SOURCES}
    assert set(_by_step(rows, "dbt")) == models
    assert set(_by_step(rows, "publish")) == {"snowflake", "redshift"}
    keys = [(r["step"], r["job"]) for r in rows]
    assert len(keys) == len(set(keys)), "a job recorded twice"
    assert {r["status"] for r in rows} == {"success"}
    for r in rows:
        assert r["started_at"] <= r["ended_at"]
        assert r["duration_s"] == pytest.approx((r["ended_at"] - r["started_at"]).total_seconds())


def test_ingest_rows_match_the_bronze_commits(run, settings: Settings) -> None:
    """dlt's counts agree with what Delta committed to each source's tables during the job."""
    _, rows = run
    for source, tables in watchdog.bronze_tables(settings).items():
        row = _by_step(rows, "ingest")[f"bronze_{source}"]
        start, end = row["started_at"], row["ended_at"] + timedelta(seconds=1)

        def committed(path, start=start, end=end) -> int:
            return sum(n for at, n in watchdog.commits(path) if start <= at <= end)

        assert row["rows_written"] == sum(committed(t) for t in tables), source
        quarantine = settings.bronze_dir / source / QUARANTINE_TABLE
        assert row["rows_quarantined"] == committed(quarantine), source
        assert row["rows_read"] >= row["rows_written"]
        assert row["bytes_stored"] == sum(run_metrics.stored_bytes(t) or 0 for t in
                                          [*tables, quarantine])  # fmt: skip
        if row["rows_written"]:
            assert row["bytes_written"] > 0
    # Snowflake is a batch replace: every row of its tables was written by this run
    snowflake = _by_step(rows, "ingest")["bronze_snowflake"]
    counts = {c.table: c.rows for c in catalog.table_counts(settings)
              if c.schema == "bronze_snowflake" and c.table != QUARANTINE_TABLE}  # fmt: skip
    assert snowflake["rows_written"] == sum(counts.values())


def test_dbt_rows_match_the_tables_they_built(run, spark: Settings) -> None:
    _, rows = run
    dbt_rows = _by_step(rows, "dbt")
    tables = [job for job, r in dbt_rows.items() if r["details"] and
              json.loads(r["details"])["materialized"] == "table"]  # fmt: skip
    assert "gold.customer_360" in tables
    counts = dict(query(spark, " union all ".join(
        f"select '{t}', count(*) from {t}" for t in tables)))  # fmt: skip
    for table in tables:
        row = dbt_rows[table]
        assert row["rows_written"] == counts[table], table
        assert row["bytes_stored"] == catalog.table_detail(spark, table)["sizeInBytes"], table
        assert row["bytes_written"] > 0
    # The quarantine tests' failures are counted on the model they tested.
    assert dbt_rows["silver.stg_snowflake__customers"]["rows_quarantined"] > 0


def test_publish_rows_match_the_served_tables(run, warehouses: Settings) -> None:
    _, rows = run
    gold = {t: query(warehouses, f"select count(*) from gold.{t}")[0][0]
            for t in warehouses.publish.tables}  # fmt: skip
    for warehouse in ("snowflake", "redshift"):
        row = _by_step(rows, "publish")[warehouse]
        assert row["rows_read"] == row["rows_written"] == sum(gold.values())
        served = json.loads(row["details"])["tables"]
        assert {t: info["rows"] for t, info in served.items()} == gold


def test_each_job_is_priced_from_the_configured_rates(run, settings: Settings) -> None:
    _, rows = run
    cost = settings.ops.cost
    for r in rows:
        cores = cost.cores[r["step"]]
        assert r["cores"] == cores
        assert math.isclose(r["compute_cost"], r["duration_s"] / 3600 * cores * cost.per_core_hour,
                            rel_tol=1e-3)  # fmt: skip
        expected = (r["bytes_stored"] or 0) / 1e9 * cost.per_gb_month
        assert math.isclose(r["storage_cost_month"], expected, rel_tol=1e-9)
        assert r["currency"] == cost.currency
    assert sum(r["compute_cost"] for r in rows) > 0


def test_the_watchdog_report_renders_in_chromium(run, settings, browser, screenshot) -> None:
    run_id, rows = run
    page_file = watchdog_report.path(settings)
    assert page_file.exists(), "the pipeline's report step writes it"
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    page.goto(page_file.as_uri())
    page.screenshot(path=str(screenshot("watchdog-report")), full_page=True)

    tiles = page.locator(".tile").all_inner_texts()
    assert any(run_id in t for t in tiles), tiles
    fresh = page.locator("#freshness tr").all_inner_texts()[1:]
    assert sorted(line.split("\t")[0] for line in fresh) == sorted(SOURCES)
    assert all("\tok\t" in line for line in fresh), fresh
    assert page.locator("#volume .card").count() == len(SOURCES)
    for section in ("volume", "dq", "quarantine", "runs", "cost"):
        assert page.locator(f"#{section} svg rect").count() > 0, f"{section} has no chart"
    slowest = page.locator("#runs table tr").all_inner_texts()[1:]
    top = max(rows, key=lambda r: r["duration_s"])
    assert top["job"] in slowest[0]
    assert "Latest dbt invocation" in page.locator("#dq").inner_text()
