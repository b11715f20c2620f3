"""What the platform's selective build selects, as dbt itself lists it (``dbt ls``, no engine):
a load rebuilds everything downstream with every data test on it, but runs no unit test (their
verdict depends on code and fixtures only); changed code brings its unit tests, and those of
everything downstream, back.

The graph is taken from the parsed manifest, independently of the selectors the plan spells.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lakehouse.core.dbt_paths import DBT_PROFILES_DIR, DBT_PROJECT_DIR
from lakehouse.transform import build_selection

DBT = str(Path(sys.executable).parent / "dbt")
SOURCE = "kafka.events"
MODEL = "stg_kafka__events"


def _dbt(project: Path, *args: str) -> str:
    proc = subprocess.run(
        [DBT, *args, "--project-dir", str(project), "--profiles-dir", str(DBT_PROFILES_DIR)],
        env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    """A copy of the dbt project (edited by the tests), and the state of its parse as the last
    build's: (project, state dir, manifest)."""
    root = tmp_path_factory.mktemp("selection")
    copy = root / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, copy, ignore=shutil.ignore_patterns("target", "logs"))
    _dbt(copy, "parse", "--quiet", "--target-path", str(root / "state"))
    return copy, root / "state", json.loads((root / "state" / "manifest.json").read_text())


def _listed(project: Path, state: Path, select: list[str]) -> set[str]:
    out = _dbt(project, "ls", "--quiet", "--indirect-selection", "empty", "--select", *select,
               "--state", str(state), "--output", "json", "--output-keys", "unique_id")  # fmt: skip
    return {json.loads(line)["unique_id"] for line in out.splitlines() if line.startswith("{")}


def _descendants(manifest: dict[str, Any], root: str) -> set[str]:
    seen, todo = set(), [root]
    while todo:
        node = todo.pop()
        for child in manifest["child_map"].get(node, []):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def _unit_tests_of(manifest: dict[str, Any], models: set[str]) -> set[str]:
    return {uid for uid, test in manifest["unit_tests"].items()
            if models & set(test["depends_on"]["nodes"])}  # fmt: skip


def test_a_load_selects_downstream_models_and_data_tests_and_no_unit_test(project) -> None:
    copy, state, manifest = project
    select = [*build_selection.data_driven(f"source:{SOURCE}+"), "state:modified+"]

    listed = _listed(copy, state, select)

    below = _descendants(manifest, f"source.lakehouse.{SOURCE}")
    models = {uid for uid in below if uid.startswith("model.")}
    data_tests = {uid for uid in below if uid.startswith("test.")}
    assert f"model.lakehouse.{MODEL}" in models and "model.lakehouse.customer_360" in models
    assert data_tests, "the Kafka models are tested"
    assert {uid for uid in listed if uid.startswith("model.")} == models
    assert {uid for uid in listed if uid.startswith("test.")} == data_tests
    assert _unit_tests_of(manifest, models), "the Kafka models have unit tests"
    assert not {uid for uid in listed if uid.startswith("unit_test.")}


def test_changed_code_brings_the_unit_tests_of_it_and_of_everything_downstream(project) -> None:
    copy, state, manifest = project
    model = next(copy.rglob(f"{MODEL}.sql"))
    model.write_text(model.read_text() + "\n-- edited by test_build_selection_nodes\n")

    listed = _listed(copy, state, ["state:modified+"])

    below = {f"model.lakehouse.{MODEL}"} | {
        uid for uid in _descendants(manifest, f"model.lakehouse.{MODEL}")
        if uid.startswith("model.")
    }  # fmt: skip
    unit_tests = _unit_tests_of(manifest, below)
    assert unit_tests and unit_tests <= listed
    assert {uid for uid in listed if uid.startswith("unit_test.")} == unit_tests
