"""The watchdog report (lakehouse/observability/watchdog_report.py) rendered from recorded
artifacts, without an engine.

What it reads is made the way the platform makes it: bronze tables by Delta commits (deltalake),
run metrics by run_metrics.record and run_metrics.record_dbt from a recorded dbt run
(fixtures/dbt), the
freshness limits from that run's manifest (DBT_TARGET_PATH), and dq.test_results as the dbt
macro writes it. The page must say what those artifacts say: stale sources, the failed job, the
slowest models, the test that did not pass. (The engine tier's test_run_metrics renders it after
a real pipeline run, in Chromium.)
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from lakehouse.core.config import Settings
from lakehouse.observability import run_metrics, watchdog_report

RECORDED = Path(__file__).parent / "fixtures" / "dbt"  # a dbt build, recorded (README there)
LATER = timedelta(hours=30)  # the page is rendered this long after the loads


@pytest.fixture()
def artifacts(tmp_settings: Settings, tmp_path: Path, monkeypatch) -> Settings:
    """A lake home holding one run's artifacts; fx declares a tighter freshness than crm."""
    target = tmp_path / "target"
    shutil.copytree(RECORDED, target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["sources"]["source.lakehouse.fx.rates"]["freshness"] = {
        "warn_after": {"count": 12, "period": "hour"},
        "error_after": {"count": 1, "period": "day"},
    }
    (target / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("DBT_TARGET_PATH", str(target))  # absolute: report reads it from here

    bronze = tmp_settings.bronze_dir
    write_deltalake(str(bronze / "crm" / "contacts"), pa.table({"id": [1, 2, 3]}))
    write_deltalake(str(bronze / "crm" / "quarantine"), pa.table({"id": [9]}))
    write_deltalake(str(bronze / "fx" / "rates"), pa.table({"id": [1, 2]}))

    monkeypatch.setenv(run_metrics.RUN_ID_ENV, "run-recorded")
    started = datetime(2026, 12, 7, 14, 40, tzinfo=UTC)
    run_metrics.record(tmp_settings, [run_metrics.JobMetrics(
        "ingest", "bronze_crm", started, started + timedelta(seconds=20), "error",
        rows_written=None, error="CRM API answered 503 three times",
    )])  # fmt: skip
    assert run_metrics.record_dbt(tmp_settings, target) == 3

    write_deltalake(str(tmp_settings.warehouse_dir / "dq.db" / "test_results"), pa.table({
        "invocation_id": ["inv-1"], "recorded_at": [datetime(2026, 12, 7, 14, 42)],
        "unique_id": ["test.lakehouse.not_null_customer_360_email"],
        "test_name": ["not_null_customer_360_email"], "tested_node": ["customer_360"],
        "status": ["warn"], "severity": ["warn"], "failures": [4],
        "failures_table": [None], "message": ["Got 4 results, configured to warn if != 0"],
    }))  # fmt: skip
    return tmp_settings


def _section(page: str, section: str) -> str:
    match = re.search(rf'<section id="{section}".*?</section>', page, re.S)
    assert match, f"no {section} section"
    return match.group(0)


def test_freshness_is_judged_by_each_source_s_declared_limits(artifacts: Settings) -> None:
    page = watchdog_report.render(artifacts, datetime.now(UTC) + LATER)
    fresh = _section(page, "freshness")
    assert re.search(r"<td>crm</td><td><span class=\"badge warn\">warn</span>", fresh), fresh
    assert re.search(r"<td>fx</td><td><span class=\"badge error\">error</span>", fresh), fresh
    assert "30.0 h" in fresh
    assert re.search(r'<div class="label">Stale sources</div><div class="value">2</div>', page)


def test_the_last_run_s_failed_job_and_slowest_models_are_shown(artifacts: Settings) -> None:
    page = watchdog_report.render(artifacts, datetime.now(UTC) + LATER)
    assert re.search(r'<div class="label">Failed jobs</div><div class="value">1</div>', page)
    assert '<div class="sub">4 jobs</div>' in page  # one ingest and the recorded three models
    runs = _section(page, "runs")
    jobs = re.findall(r'<td class="long">([^<]+)</td>', runs)
    recorded = json.loads((RECORDED / "run_results.json").read_text())["results"]
    slowest_model = max(recorded, key=lambda r: r["execution_time"])["unique_id"].split(".")[-1]
    assert jobs[0] == "bronze_crm", "the 20 s failed load is the slowest job"
    assert jobs[1].endswith(slowest_model)
    assert len(jobs) == 4


def test_the_latest_invocation_lists_the_test_that_did_not_pass(artifacts: Settings) -> None:
    dq = _section(watchdog_report.render(artifacts, datetime.now(UTC) + LATER), "dq")
    assert "not_null_customer_360_email" in dq and "<td>4</td>" in dq
    assert "Every test passed." not in dq


def test_volume_and_quarantine_are_charted_per_source(artifacts: Settings) -> None:
    page = watchdog_report.render(artifacts, datetime.now(UTC))
    volume = _section(page, "volume")
    assert volume.count('<div class="card">') == 2  # crm and fx: quarantine is not volume
    assert "crm: rows loaded per day" in volume and "3 rows on " in volume
    quarantine = _section(page, "quarantine")
    assert "crm: 1" in quarantine


def test_an_empty_home_renders_a_page_that_says_so(tmp_settings: Settings) -> None:
    page = watchdog_report.render(tmp_settings)
    assert "No bronze table yet." in page and "No run recorded yet." in page
    assert "Every test passed." in page
    assert watchdog_report.write(tmp_settings).read_text().startswith("<!doctype html>")
