"""The platform's build (`lakehouse build`, `make run`'s dbt step) does only what changed.

On the suite's engine and lake: with no saved state it builds everything; with nothing new it
runs one dbt process, rebuilds no model, yet still judges bronze freshness (from the Delta log)
and runs the time-based tests; after a load of one source it rebuilds exactly that source's
downstream, with every test of what it rebuilt; a changed model is rebuilt with its downstream;
and after a failed build the next one builds everything. The tests run in order: each starts
from the state the previous left.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable

from lakehouse.core.config import Settings
from lakehouse.transform import build_selection, dbt_cli
from lakehouse.transform.sql import query


@pytest.fixture(scope="module", autouse=True)
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """This module's builds run on a copy of the dbt project: its tests edit model files (one
    into a compile error), which a build beside this module (the crash-recovery runs, Airflow's
    builds, on the other pytest worker of `make test`) must never read."""
    copy = tmp_path_factory.mktemp("selective_build") / "dbt_project"
    shutil.copytree(dbt_cli.DBT_PROJECT_DIR, copy, symlinks=True,
                    ignore=shutil.ignore_patterns("target", "logs"))  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dbt_cli, "DBT_PROJECT_DIR", copy)
        # its artefacts and partial parse beside it, never mixed with the original's
        patch.setenv("DBT_TARGET_PATH", str(copy / "target"))
        patch.setenv("DBT_LOG_PATH", str(copy / "logs"))
        yield copy


def _model_file(*parts: str) -> Path:
    """A model's file in the project the builds read (this module's copy)."""
    return dbt_cli.DBT_PROJECT_DIR.joinpath("models", *parts)


def _build(settings: Settings) -> tuple[int, dict[str, str], list[str]]:
    """One platform build: its return code, the status of every node it ran, what it said
    (with ``dbt <command>`` for every dbt process it started, as the last lines)."""
    said = _Said()
    started: list[str] = []
    run_dbt = dbt_cli.dbt

    def counted(settings: Settings, *args: str, **kwargs: Any) -> Any:
        started.append(f"dbt {args[0]}")
        return run_dbt(settings, *args, **kwargs)

    dbt_cli.dbt = counted  # counts the processes; each still runs the real dbt
    logger = logging.getLogger(build_selection.__name__)
    logger.addHandler(said)
    logger.setLevel(logging.INFO)
    try:
        result = build_selection.build(settings)
    finally:
        dbt_cli.dbt = run_dbt
        logger.removeHandler(said)
    run_results = json.loads((dbt_cli.target_dir() / "run_results.json").read_text())
    statuses = {r["unique_id"]: r["status"] for r in run_results["results"]}
    return result.returncode, statuses, said.lines + started


class _Said(logging.Handler):
    """What the build logged, message by message."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _dbt_processes(said: list[str]) -> list[str]:
    return [line for line in said if line.startswith("dbt ")]


def _manifest() -> dict[str, Any]:
    return json.loads((dbt_cli.target_dir() / "manifest.json").read_text())


def _downstream(manifest: dict[str, Any], *roots: str) -> set[str]:
    """The models downstream of ``roots`` (themselves included, if models)."""
    seen, todo = set(), list(roots)
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(manifest["child_map"].get(node, []))
    return {n for n in seen if n.startswith("model.")}


def _tests_of(manifest: dict[str, Any], models: set[str]) -> set[str]:
    """Every data and unit test that covers one of ``models``."""
    return {
        uid
        for uid, node in {**manifest["nodes"], **manifest.get("unit_tests", {})}.items()
        if node["resource_type"] in ("test", "unit_test")
        and models & set(node["depends_on"]["nodes"])
    }


def _models(statuses: dict[str, str]) -> set[str]:
    return {uid for uid in statuses if uid.startswith("model.")}


def _time_based_tests(manifest: dict[str, Any]) -> set[str]:
    return {
        uid
        for uid, node in manifest["nodes"].items()
        if node["resource_type"] == "test" and build_selection.TIME_BASED_TAG in node["tags"]
    }


def _touch_source(settings: Settings, table: str) -> None:
    """What a load that rewrites rows leaves (FX's upsert re-requests its last days): the newest
    rows of ``table`` stamped as loaded now, their values unchanged."""
    newest = query(settings, f"select max(rate_date) from {table}")[0][0]
    query(settings, f"update {table} set _loaded_at = current_timestamp() "
                    f"where rate_date = date'{newest}'")  # fmt: skip


@pytest.fixture
def edited(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Edit model files for one test; their text is restored afterwards, whatever happens."""
    originals: dict[Path, str] = {}

    def edit(path: Path, text: str) -> None:
        originals.setdefault(path, path.read_text())
        path.write_text(text)

    yield edit
    for path, text in originals.items():
        path.write_text(text)


@pytest.fixture(scope="module")
def first_build(spark: Settings, ingested: list) -> dict[str, str]:
    """The first platform build of the lake: no state saved yet."""
    build_selection.forget(spark)
    code, statuses, said = _build(spark)
    assert code == 0, said
    return statuses


def test_with_no_state_everything_is_built_and_tested(spark: Settings, first_build) -> None:
    manifest = _manifest()
    every_model = {uid for uid, n in manifest["nodes"].items() if n["resource_type"] == "model"}
    assert _models(first_build) == every_model
    assert _tests_of(manifest, every_model) <= set(first_build)
    saved = build_selection.state_dir(spark)
    assert (saved / "manifest.json").is_file()
    # the bronze versions the next build compares with: every source that declares freshness
    lake = json.loads((saved / build_selection.LAKE).read_text())["tables"]
    declared = {
        f"bronze/{n['meta'].get('bronze_dataset') or n['source_meta']['bronze_dataset']}/"
        f"{n['identifier']}"
        for n in manifest["sources"].values()
        if n.get("loaded_at_field")
        and (n.get("freshness") or {}).get("warn_after", {}).get("count")
    }
    assert declared and declared <= set(lake), (declared, lake)
    assert all(isinstance(lake[key]["version"], int) for key in declared)


def test_nothing_new_rebuilds_nothing_but_checks_time(spark: Settings, first_build) -> None:
    gold = spark.warehouse_dir / "gold.db" / "customer_360"
    version = DeltaTable(str(gold)).version()
    started = datetime.now(UTC)

    code, statuses, said = _build(spark)

    assert code == 0, said
    assert _models(statuses) == set()
    assert DeltaTable(str(gold)).version() == version  # not even rewritten
    # one dbt process: no `dbt source freshness` before the build
    assert _dbt_processes(said) == ["dbt build"], said
    # the time-based checks ran: the recency test, and bronze freshness read just now
    time_based = _time_based_tests(_manifest())
    assert time_based and {uid for uid in statuses if uid.startswith("test.")} == time_based
    assert any("(Delta log" in line for line in said), said
    lake = json.loads((build_selection.state_dir(spark) / build_selection.LAKE).read_text())
    assert datetime.fromisoformat(lake["read_at"]) >= started.replace(microsecond=0)
    assert any(line.endswith("version changed): none") for line in said), said


def test_a_load_of_one_source_rebuilds_exactly_its_downstream(spark: Settings, first_build) -> None:
    _build(spark)  # start from a state with nothing pending
    _touch_source(spark, "bronze_fx.rates")

    code, statuses, said = _build(spark)

    assert code == 0, said
    manifest = _manifest()
    downstream = _downstream(manifest, "source.lakehouse.fx.rates")
    assert "model.lakehouse.stg_fx__rates" in downstream
    assert _models(statuses) == downstream
    # every data test of what was rebuilt ran; no unit test did (only code changes their verdict)
    tests = _tests_of(manifest, downstream)
    assert {t for t in tests if t.startswith("test.")} <= set(statuses)
    assert not {uid for uid in statuses if uid.startswith("unit_test.")}
    assert any(line.endswith("version changed): fx.rates") for line in said), said
    assert any("source:fx.rates+" in line for line in said), said  # dbt's own graph selector


def test_a_changed_model_is_rebuilt_with_its_downstream(
    spark: Settings, first_build, edited
) -> None:
    _build(spark)
    model = _model_file("silver", "staging", "redshift", "stg_redshift__sessions.sql")
    edited(model, model.read_text() + "\n-- edited by test_selective_build\n")

    code, statuses, said = _build(spark)

    assert code == 0, said
    manifest = _manifest()
    downstream = _downstream(manifest, "model.lakehouse.stg_redshift__sessions")
    assert _models(statuses) == downstream
    assert _tests_of(manifest, downstream) <= set(statuses)


def test_after_a_failed_build_the_next_redoes_its_work(
    spark: Settings, first_build, edited
) -> None:
    _build(spark)
    _touch_source(spark, "bronze_fx.rates")
    model = _model_file("gold", "finance", "fx_rates_daily.sql")
    edited(model, model.read_text().replace("with published as", "with published as oops", 1))

    code, statuses, _ = _build(spark)
    assert code != 0
    assert statuses["model.lakehouse.stg_fx__rates"] == "success"  # part of it was done
    assert statuses["model.lakehouse.fx_rates_daily"] != "success"  # its unit tests fail first

    model.write_text(model.read_text().replace("with published as oops", "with published as"))
    code, statuses, said = _build(spark)

    # the failed build may have rebuilt models from what no longer holds: all are rebuilt
    assert code == 0, said
    manifest = _manifest()
    every_model = {uid for uid, n in manifest["nodes"].items() if n["resource_type"] == "model"}
    assert _models(statuses) == every_model
    assert any("did not succeed" in line for line in said)
