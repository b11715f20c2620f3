"""The platform build's plan (lakehouse/transform/build_selection.py), from bronze Delta logs on a
temporary
lake (deltalake writes, no engine) and a recorded manifest (fixtures/dbt): what a build selects
after a load, after a new day, and when it must build everything.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from lakehouse.core import bronze_versions
from lakehouse.core.config import Settings
from lakehouse.transform import build_selection

RECORDED = Path(__file__).parent / "fixtures" / "dbt"  # a dbt build, recorded (README there)
TIME_BASED = f"tag:{build_selection.TIME_BASED_TAG},resource_type:test"


def _load(settings: Settings, source: str, table: str, rows: int = 2) -> None:
    """One dlt-like load: a commit to the bronze Delta table."""
    location = settings.bronze_dir / source / table
    write_deltalake(str(location), pa.table({"id": list(range(rows))}), mode="append")


@pytest.fixture()
def built(tmp_settings: Settings, tmp_path: Path) -> Settings:
    """A lake whose three bronze data tables were each loaded once, then built successfully on
    2026-03-10 with the recorded manifest."""
    for table in ("contacts", "accounts"):
        _load(tmp_settings, "crm", table)
    _load(tmp_settings, "fx", "rates")
    target = tmp_path / "target"
    shutil.copytree(RECORDED, target)
    lake = bronze_versions.read(tmp_settings.lake_dir)
    build_selection.begin(tmp_settings)
    build_selection.remember(tmp_settings, target, "1.11.0", "2026-03-10", "vars-1", lake)
    return tmp_settings


def _plan(settings: Settings, **change: str) -> build_selection.Plan:
    args = {"dbt_version": "1.11.0", "today": "2026-03-10", "fingerprint": "vars-1", **change}
    return build_selection.plan(settings, bronze_versions.read(settings.lake_dir), **args)


def test_the_recorded_manifest_tracks_the_bronze_data_tables_not_quarantine() -> None:
    manifest = json.loads((RECORDED / "manifest.json").read_text())
    tracked = {t.name: t.key for t in bronze_versions.tables(manifest)}
    assert tracked == {"crm.accounts": "bronze/crm/accounts", "crm.contacts": "bronze/crm/contacts",
                       "fx.rates": "bronze/fx/rates"}  # fmt: skip


def test_no_saved_state_builds_everything(tmp_settings: Settings) -> None:
    plan = _plan(tmp_settings)
    assert plan.everything and plan.dbt_args(tmp_settings) == ["build"]
    assert "no successful platform build recorded" in plan.reasons[0]


def test_nothing_loaded_selects_only_changed_code_and_time_based_tests(built: Settings) -> None:
    plan = _plan(built)
    assert plan.select == ("state:modified+", TIME_BASED)
    assert plan.fresher == []
    args = plan.dbt_args(built)
    # every node by itself: no unit test comes along with a model a load selected
    assert args[:4] == ["build", "--indirect-selection", "empty", "--select"]
    assert args[-2:] == ["--state", str(build_selection.state_dir(built))]


def test_a_load_selects_that_source_and_downstream(built: Settings) -> None:
    _load(built, "crm", "contacts", rows=1)
    plan = _plan(built)
    assert plan.fresher == ["crm.contacts"]
    assert plan.select == (
        "source:crm.contacts+,resource_type:model",
        "source:crm.contacts+,resource_type:snapshot",
        "source:crm.contacts+,resource_type:test",
        "state:modified+",
        TIME_BASED,
    )
    assert "crm.contacts" in plan.reasons[0]
    _load(built, "crm", "quarantine")  # a quarantine table is not a tracked source
    assert _plan(built).fresher == ["crm.contacts"]


def test_a_new_day_adds_the_models_as_of_today(built: Settings) -> None:
    plan = _plan(built, today="2026-03-11")
    tag = f"tag:{build_selection.AS_OF_TODAY_TAG}+"
    assert plan.select[-3:] == (f"{tag},resource_type:model", f"{tag},resource_type:snapshot",
                                f"{tag},resource_type:test")  # fmt: skip
    assert "2026-03-10" in plan.reasons[-1]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"fingerprint": "vars-2"}, "the vars differ"),
        ({"dbt_version": "1.12.0"}, "artifacts are of dbt 1.11.0, this is 1.12.0"),
    ],
)
def test_other_vars_or_dbt_version_build_everything(
    built: Settings, change: dict[str, str], reason: str
) -> None:
    plan = _plan(built, **change)
    assert plan.everything and reason in plan.reasons[0]


def test_a_build_begun_and_not_finished_builds_everything_next(built: Settings) -> None:
    build_selection.begin(built)
    plan = _plan(built)
    assert plan.everything and "did not succeed" in plan.reasons[0]


def test_an_unreadable_bronze_log_builds_everything(built: Settings) -> None:
    log = built.bronze_dir / "fx" / "rates" / "_delta_log"
    for commit in log.glob("*.json"):
        commit.write_text("{not json\n")
    plan = _plan(built)
    assert plan.everything and "fx.rates could not be read" in plan.reasons[0]


def test_the_summary_counts_what_the_recorded_build_ran() -> None:
    run_results = json.loads((RECORDED / "run_results.json").read_text())
    assert build_selection.summary(run_results) == [
        "3 model(s) built: customer_360, product_perf, stg_crm__contacts"
    ]


def test_the_vars_fingerprint_moves_with_the_run_vars() -> None:
    assert build_selection.vars_fingerprint() == build_selection.vars_fingerprint({})
    assert build_selection.vars_fingerprint({"x": 1}) != build_selection.vars_fingerprint()
