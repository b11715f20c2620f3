"""The DAGs under a real Airflow 3 (scheduler, DAG processor, triggerer, API server, LocalExecutor
on PostgreSQL), driven through its REST API like any external caller, against the suite's stack.

The Airflow here differs from `make airflow` only where a test needs it: no schedules (runs are
triggered), retries 3 s apart growing x3, a build_analytics deadline of 20 s (shorter than any
build, so its alert must fire) and a webhook alert channel pointed at a receiver in this test.
These tests run last (conftest): they rebuild gold and publish again, and the forced failure
leaves gold.fx_rates_daily empty behind it.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ingestion.registry import SOURCES
from lakehouse.core.config import AlertConfig, RetryConfig, SchedulesConfig, Settings
from lakehouse.observability import run_metrics, watchdog, watchdog_report
from lakehouse.observability.lineage import emit, graph
from lakehouse.pipeline import steps
from lakehouse.stack.services import airflow
from lakehouse.transform import build_selection

pytestmark = pytest.mark.airflow

BUILD_DEADLINE_S = 20
DAG_IDS = {"ingest_sources", "build_analytics", "dq_watchdog", "lakehouse_backfill"}


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@dataclass
class Stack:
    settings: Settings
    client: airflow.Client
    webhook: list[dict] = field(default_factory=list)

    def alerts(self) -> list[dict]:
        path = self.settings.home / "alerts" / "alerts.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def task_ids(self, dag_id: str) -> set[str]:
        return {t["task_id"] for t in self.client.get(f"/api/v2/dags/{dag_id}/tasks")["tasks"]}

    def states(self, dag_id: str, run_id: str) -> dict[str, str]:
        return {t["task_id"]: t["state"] for t in self.client.task_instances(dag_id, run_id)}


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def stack(
    spark: Settings, dbt_built, warehouses, monkeypatch_module: pytest.MonkeyPatch
) -> Iterator[Stack]:
    received: list[dict] = []
    handler = type("Receiver", (_Receiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch_module.setenv(
        "LAKEHOUSE_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{server.server_port}/alerts"
    )
    orchestration = spark.orchestration.model_copy(
        update={
            "schedules": SchedulesConfig(ingest_sources=None, dq_watchdog=None),
            "build_deadline_s": BUILD_DEADLINE_S,
            "retry": RetryConfig(retries=2, delay_s=3, backoff_multiplier=3.0, max_delay_s=60),
            "alerts": AlertConfig(channels=["log", "webhook"]),
        }
    )
    settings = spark.model_copy(update={"orchestration": orchestration})
    # Airflow's dbt writes the project's own target/ and logs/, where lakehouse_airflow reads
    # them (as under `make airflow`), not the folders of this pytest worker (tests/conftest.py).
    monkeypatch_module.delenv("DBT_TARGET_PATH", raising=False)
    monkeypatch_module.delenv("DBT_LOG_PATH", raising=False)
    airflow.stop(settings)  # a component left over by an interrupted session
    try:
        for line in airflow.start(settings):
            print(line)
        yield Stack(settings, airflow.Client(settings), received)
    finally:
        airflow.stop(settings)
        server.shutdown()


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_dag_files_import_and_render_every_model(stack: Stack) -> None:
    assert stack.client.get("/api/v2/importErrors")["import_errors"] == []
    dags = {d["dag_id"] for d in stack.client.get("/api/v2/dags")["dags"]}
    assert dags == DAG_IDS

    assert stack.task_ids("ingest_sources") == {f"load_{source}" for source in SOURCES}

    manifest = json.loads(airflow.manifest_path().read_text())
    models = {n["name"] for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    build_tasks = stack.task_ids("build_analytics")
    expected = {f"dbt.{m}.{kind}" for m in models for kind in ("run", "test")}
    assert expected <= build_tasks, sorted(expected - build_tasks)
    assert {"dbt.dbt_producer_watcher", "publish_snowflake", "publish_redshift"} <= build_tasks

    # build_analytics is scheduled on an asset per bronze table ingest_sources writes
    assets = stack.client.get("/api/v2/assets?limit=200")["assets"]
    scheduled = {a["name"] for a in assets if any(
        d["dag_id"] == "build_analytics" for d in a.get("scheduled_dags", [])
    )}  # fmt: skip
    assert "bronze_snowflake.customers" in scheduled
    assert "bronze_kafka.events" in scheduled
    assert not any(name.endswith(".quarantine") for name in scheduled)


def _ingest_then_build(stack: Stack) -> tuple[str, str]:
    """Trigger ingest_sources; wait for it and for the build_analytics run its asset events
    schedule; both must succeed task by task. Returns both run ids."""
    client = stack.client
    # the full build: no saved state (test_a_build_with_nothing_new_skips_every_model_task
    # covers the selection)
    build_selection.forget(stack.settings)
    before = {r["dag_run_id"] for r in client.runs("build_analytics")}
    ingest_run = client.trigger("ingest_sources")
    run = client.wait("ingest_sources", ingest_run, timeout_s=900)
    assert run["state"] == "success", stack.states("ingest_sources", ingest_run)
    assert set(stack.states("ingest_sources", ingest_run).values()) == {"success"}

    deadline = time.monotonic() + 120
    new: list[dict] = []
    while not new and time.monotonic() < deadline:
        new = [r for r in client.runs("build_analytics") if r["dag_run_id"] not in before]
        time.sleep(2)
    assert new and new[0]["run_type"] == "asset_triggered", new
    build_id = new[0]["dag_run_id"]
    build = client.wait("build_analytics", build_id, timeout_s=1800)
    tis = client.task_instances("build_analytics", build_id)
    assert build["state"] == "success", {t["task_id"]: t["state"] for t in tis}
    assert {t["state"] for t in tis} == {"success"}
    return ingest_run, build_id


def test_ingest_triggers_the_build_through_assets(stack: Stack) -> None:
    """A manual ingest_sources run loads all five sources; its asset events schedule
    build_analytics, which rebuilds silver and gold with Cosmos and publishes."""
    ingest_run, build_id = _ingest_then_build(stack)

    events = stack.client.get("/api/v2/assets/events?source_dag_id=ingest_sources&limit=500")
    touched = {e["name"] for e in events["asset_events"] if e["source_run_id"] == ingest_run}
    assert {"bronze_snowflake.orders", "bronze_crm.contacts", "bronze_redshift.sessions",
            "bronze_fx.rates", "bronze_kafka.events"} <= touched  # fmt: skip

    # the deadline (20 s here) was missed, and said so once, in the log and by webhook
    waited = time.monotonic() + 60
    missed: list[dict] = []
    while not missed and time.monotonic() < waited:
        missed = [a for a in stack.alerts()
                  if a["kind"] == "deadline_missed" and a["run_id"] == build_id]  # fmt: skip
        time.sleep(1)
    assert len(missed) == 1, stack.alerts()
    assert missed[0]["promise"] == f"build_analytics within 0:00:{BUILD_DEADLINE_S}"
    assert any(a["kind"] == "deadline_missed" and a["run_id"] == build_id for a in stack.webhook)
    # ingest_sources kept its 30-minute promise
    assert not [a for a in stack.alerts() if a.get("run_id") == ingest_run]

    # both DAG runs recorded their jobs in ops.run_metrics under their own run ids: the loads
    # (through the CLI), every model of the Cosmos build (its callback records them in a
    # detached process: give it a moment) and the publishes
    expected = {"gold.customer_360", "silver.stg_snowflake__customers", "snowflake", "redshift"}
    waited = time.monotonic() + 60
    while True:
        metrics = run_metrics.read(stack.settings)
        jobs = {(m["run_id"], m["step"], m["job"]) for m in metrics if m["status"] == "success"}
        built = {job for run, step, job in jobs if run == f"build_analytics/{build_id}"}
        if expected <= built or time.monotonic() > waited:
            break
        time.sleep(2)
    assert {("ingest_sources/" + ingest_run, "ingest", f"bronze_{s}") for s in SOURCES} <= jobs
    assert expected <= built, (built, (stack.settings.log_dir / "ops-record.log").read_text())


def _airflow_lineage(stack: Stack) -> tuple[list[dict], list[dict]]:
    """(events of Airflow-run work, events of CLI runs): Airflow's own file, plus the runs the
    platform emitted as children of an Airflow task (dlt loads, publishes); the rest is CLI."""
    airflow_events, _ = graph.read_events([airflow.lineage_file(stack.settings)])
    platform, _ = graph.read_events([emit.events_file(stack.settings)])

    def under_airflow(e: dict) -> bool:
        parent = (e["run"].get("facets", {}).get("parent") or {}).get("job", {}).get("name", "")
        return parent.split(".")[0] in DAG_IDS  # dbt-ol's nodes have the dbt-ol run as parent

    from_airflow = [e for e in platform if under_airflow(e)]
    return airflow_events + from_airflow, [e for e in platform if not under_airflow(e)]


def test_the_airflow_runs_emit_lineage_that_joins_from_source_to_warehouse(stack: Stack) -> None:
    """The DAG run above, alone (no CLI event), traces gold columns to the source systems, as
    the CLI run does: Cosmos' producer reports every model with column lineage, the dlt loads
    run as children of their Airflow tasks and name the same bronze tables."""
    run_events, cli_events = _airflow_lineage(stack)
    manifest = json.loads(airflow.manifest_path().read_text())
    models = [n for n in manifest["nodes"].values() if n["resource_type"] == "model"]
    jobs = {(e["job"]["name"], e["eventType"]) for e in run_events}
    for model in models:  # every model's Cosmos task started and completed
        for state in ("START", "COMPLETE"):
            assert (f"build_analytics.dbt.{model['name']}.run", state) in jobs
    producer = [e for e in run_events if e["eventType"] == "COMPLETE"
                and e["job"]["name"] == "build_analytics.dbt.dbt_producer_watcher"]  # fmt: skip
    # named by location (docs/lineage.md); the catalog name dbt gives is the symlink
    outputs = {i["name"]: o for o in producer[-1]["outputs"]
               for i in o["facets"].get("symlinks", {}).get("identifiers", [])}  # fmt: skip
    for model in models:
        name = f"{model['schema']}.{model['alias']}"
        assert "columnLineage" in outputs[name]["facets"], name
    for source in SOURCES:  # each load ran as a child of its task's run
        loads = [e for e in run_events if e["job"]["name"] == f"dlt.bronze_{source}"]
        assert {e["eventType"] for e in loads} >= {"START", "COMPLETE"}
        parent = loads[-1]["run"]["facets"]["parent"]["job"]
        assert parent["namespace"] == "lakehouse"
        assert parent["name"] == f"ingest_sources.load_{source}"

    from_airflow, from_cli = graph.build(run_events), graph.build(cli_events)
    for column in ("lifetime_value", "crm_segment", "web_top_device", "events", "email"):
        via_airflow = from_airflow.trace(from_airflow.find("gold.customer_360"), column)
        via_cli = from_cli.trace(from_cli.find("gold.customer_360"), column)
        assert via_airflow.columns_in("bronze"), column
        assert via_airflow.columns_in("bronze") == via_cli.columns_in("bronze"), column
        assert via_airflow.columns_in("source") == via_cli.columns_in("source"), column
    # and on into the warehouses, published by the DAG's publish tasks
    served = from_airflow.find("ANALYTICS.GOLD.CUSTOMER_360")
    trace = from_airflow.trace(served, "lifetime_value")
    assert ("bronze_fx.rates", "rate") in trace.columns_in("bronze")


def test_a_cli_build_and_the_cosmos_build_take_turns_on_the_same_lake(stack: Stack) -> None:
    """`lakehouse ingest` + `dbt build` from the CLI, then ingest_sources + the build_analytics
    run it triggers, on the same lake and engine: both succeed, task by task. How their times
    compare (build_analytics' producer against the CLI build) is measured by `make bench`, where
    a noisy machine cannot fail a CI run."""
    steps.ingest(stack.settings)
    assert steps.dbt(stack.settings, "build", check=False).returncode == 0
    _ingest_then_build(stack)


def test_unit_tests_run_inside_the_cosmos_build(stack: Stack) -> None:
    run = next(r for r in stack.client.runs("build_analytics") if r["state"] == "success")
    log = stack.client.get(
        f"/api/v2/dags/build_analytics/dagRuns/{run['dag_run_id']}/taskInstances/"
        "dbt.dbt_producer_watcher/logs/1?full_content=true"
    )
    text = json.dumps(log)
    manifest = json.loads(airflow.manifest_path().read_text())
    unit_tests = {u["name"] for u in manifest["unit_tests"].values()}
    assert unit_tests
    for name in unit_tests:
        assert f"PASS {name}" in text or f"::{name}" in text, name


def test_a_build_with_nothing_new_skips_every_model_task(stack: Stack) -> None:
    """build_analytics builds what changed since its last success (lakehouse_airflow/
    build_selection.py): run again with nothing loaded since, every model task ends skipped,
    none waits, the time-based test and the freshness check still run (the freshness from the
    Delta log, without a dbt source freshness process), and the run (publish included)
    succeeds."""
    client = stack.client
    first = client.trigger("build_analytics")
    assert client.wait("build_analytics", first, timeout_s=1800)["state"] == "success"
    saved = build_selection.state_dir(stack.settings) / "build.json"
    recorded = json.loads(saved.read_text())["finished_at"]

    again = client.trigger("build_analytics")
    assert client.wait("build_analytics", again, timeout_s=900)["state"] == "success"

    states = stack.states("build_analytics", again)
    models = {t: s for t, s in states.items() if t.startswith("dbt.") and t.endswith(".run")}
    assert models and set(models.values()) == {"skipped"}, states
    assert states["dbt.dbt_producer_watcher"] == "success"
    assert states["publish_snowflake"] == states["publish_redshift"] == "success"
    log = client.get(
        f"/api/v2/dags/build_analytics/dagRuns/{again}/taskInstances/"
        "dbt.dbt_producer_watcher/logs/1?full_content=true"
    )
    text = json.dumps(log)
    assert "expect_row_values_to_have_recent_data" in text  # the time-based test ran
    assert "freshness of kafka.events" not in text  # no dbt source freshness ran before it
    assert json.loads(saved.read_text())["finished_at"] > recorded  # recorded as the new state
    # the bronze versions (and freshness) were read by the producer's callback, for this run
    lake = json.loads((saved.parent / build_selection.LAKE).read_text())
    assert lake["read_at"] >= recorded and "bronze/kafka/events" in lake["tables"]


def test_a_failing_model_retries_with_backoff_then_alerts(stack: Stack) -> None:
    """An unknown reporting currency (a bad run parameter) leaves fx_rates_daily without a row,
    which its row-count contract rejects: the model's test task fails, retries twice (each retry
    re-runs just that model's tests) with growing waits, then the alert names it. Publishing
    never starts."""
    run_id = stack.client.trigger("build_analytics", {"dbt_vars": {"reporting_currency": "XXX"}})
    assert stack.client.wait("build_analytics", run_id, timeout_s=900)["state"] == "failed"
    tis = stack.client.task_instances("build_analytics", run_id)
    states = {t["task_id"]: t["state"] for t in tis}
    assert states["dbt.fx_rates_daily.run"] == "success"  # the model built, empty
    assert states["dbt.fx_rates_daily.test"] == "failed", states
    assert states["publish_snowflake"] == states["publish_redshift"] == "upstream_failed"
    failed = [t for t in tis if t["state"] == "failed"]

    culprit = next(t for t in failed if t["task_id"] == "dbt.fx_rates_daily.test")
    assert culprit["try_number"] == 3, culprit
    tries = stack.client.get(
        f"/api/v2/dags/build_analytics/dagRuns/{run_id}/taskInstances/{culprit['task_id']}/tries"
    )["task_instances"]
    tries.sort(key=lambda t: t["try_number"])
    waits = [(_at(b["start_date"]) - _at(a["end_date"])).total_seconds()
             for a, b in itertools.pairwise(tries)]  # fmt: skip
    assert len(waits) == 2
    assert waits[0] >= 3 and waits[1] >= 9 and waits[1] > waits[0], waits

    alerts = [a for a in stack.alerts() if a["kind"] == "task_failed" and a["run_id"] == run_id]
    assert {a["task_id"] for a in alerts} == {t["task_id"] for t in failed}
    assert all(a["try_number"] == 3 for a in alerts)
    hooked = [a for a in stack.webhook if a["kind"] == "task_failed" and a["run_id"] == run_id]
    assert len(hooked) == len(alerts)


def test_dq_watchdog_passes_then_alerts_on_a_quarantine_breach(stack: Stack) -> None:
    client = stack.client
    # The builds of the modules before this one changed gold on purpose (a new generation, a
    # failing model's vars), some over the change alert's share: those alerts are raised and
    # remembered here, as an earlier watchdog run would have, so the first run below judges a
    # lake with nothing new to alert on.
    watchdog.gold_changes(stack.settings)
    ok = client.trigger("dq_watchdog", {"quarantine_max_share": 0.5})
    assert client.wait("dq_watchdog", ok, timeout_s=600)["state"] == "success"
    assert stack.states("dq_watchdog", ok) == {
        "source_freshness": "success", "volume": "success", "quarantine_growth": "success",
        "gold_changes": "success", "report": "success",
    }  # fmt: skip
    page = watchdog_report.path(stack.settings)
    refreshed = page.stat().st_mtime
    assert "Freshness per source" in page.read_text()

    # the suite's sample data is dirty on purpose: Kafka quarantined rows in the last hour
    breach = client.trigger("dq_watchdog", {"quarantine_max_share": 0.0})
    assert client.wait("dq_watchdog", breach, timeout_s=600)["state"] == "failed"
    states = stack.states("dq_watchdog", breach)
    assert states["quarantine_growth"] == "failed"
    assert states["volume"] == states["source_freshness"] == "success"
    assert states["report"] == "success", "a breach does not stop the report that shows it"
    assert page.stat().st_mtime > refreshed
    alert = next(a for a in stack.alerts() if a["run_id"] == breach)
    assert alert["task_id"] == "quarantine_growth"
    assert alert["try_number"] == 1  # a breach is not retried
    assert "bronze_kafka.quarantine" in alert["error"]


def test_the_ui_lists_every_dag_in_headless_chromium(stack: Stack, browser, screenshot) -> None:
    password = json.loads(airflow.password_file(stack.settings).read_text())[airflow.USER]
    shot = screenshot("airflow-dags")
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{airflow.url(stack.settings)}/dags")
    page.get_by_label("Username").fill(airflow.USER)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    for dag_id in sorted(DAG_IDS):
        page.get_by_text(dag_id, exact=True).first.wait_for(timeout=60_000)
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000
