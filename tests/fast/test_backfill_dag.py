"""The ``lakehouse_backfill`` DAG: it parses in the Airflow environment, its params refuse what is
malformed when a run is triggered, and what its ``check`` task runs (the platform's own
validation, ``lakehouse backfill --dry-run``) accepts each source's own modes and refuses the
others, an empty window and a future one, before anything is touched.

No engine, no service: the DagBag is loaded in ``.venv-airflow`` (tests/fast/backfill_dag_probe.py)
against the manifest of ``dbt parse``, and the rendered commands run against an empty lake home.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lakehouse.cli.commands import backfill as backfill_command
from lakehouse.cli.parser import build_parser
from lakehouse.core.config import Settings
from lakehouse.core.dbt_paths import DBT_PROJECT_DIR
from lakehouse.pipeline import backfill
from lakehouse.stack.services import airflow
from lakehouse.transform.dbt_cli import dbt

PROBE = Path(__file__).with_name("backfill_dag_probe.py")
# Its own target folder: never the manifest a running Airflow of this checkout reads.
MANIFEST_TARGET = "target/backfill_dag"
DAG_FILE = airflow.DAGS_DIR / "lakehouse_backfill.py"

# (conf, whether Airflow's param validation accepts it, whether the platform's check accepts it)
CASES: list[tuple[dict[str, Any], bool, bool]] = [
    ({}, True, False),  # fx by default, but a window needs --from
    ({"source": "fx", "from": "2025-01-14", "to": "2025-01-15"}, True, True),
    ({"source": "crm", "from": "2025-01-14T00:00:00Z", "to": "2025-01-15T06:00:00"}, True, True),
    ({"source": "kafka", "from": "2025-01-14", "to": "2025-01-15"}, True, True),
    (
        {"source": "redshift", "mode": "ids", "from_id": 10, "to_id": 20, "tables": ["sessions"]},
        True,
        True,
    ),
    ({"source": "snowflake", "mode": "reload"}, True, True),
    (
        {"source": "snowflake", "mode": "downstream-only", "tables": ["orders"], "rebuild": True},
        True,
        True,
    ),
    # per source: modes it does not support, windows that are empty or in the future
    ({"source": "snowflake", "from": "2025-01-14", "to": "2025-01-15"}, True, False),
    ({"source": "crm", "mode": "reload"}, True, False),
    ({"source": "kafka", "mode": "ids", "from_id": 1, "to_id": 2}, True, False),
    ({"source": "crm", "from": "2025-01-15", "to": "2025-01-15"}, True, False),
    ({"source": "fx", "from": "2025-01-15", "to": "2025-01-14"}, True, False),
    ({"source": "crm", "from": "2025-01-14", "to": "2999-01-01"}, True, False),
    ({"source": "redshift", "mode": "ids", "from_id": 20, "to_id": 10}, True, False),
    ({"source": "snowflake", "mode": "reload", "tables": ["nope"]}, True, False),
    (
        {
            "source": "crm",
            "mode": "window",
            "tables": ["contacts"],
            "from": "2025-01-01",
            "to": "2025-01-02",
        },
        True,
        False,
    ),
    # malformed: refused by Airflow when the run is triggered
    ({"source": "salesforce"}, False, False),
    ({"source": "fx", "mode": "replay"}, False, False),
    ({"source": "fx", "from": "yesterday"}, False, False),
    ({"source": "fx", "from": "2025-01-14; rm -rf /"}, False, False),
    ({"source": "redshift", "mode": "ids", "from_id": -1, "to_id": 3}, False, False),
    ({"source": "redshift", "mode": "ids", "from_id": "1", "to_id": 3}, False, False),
    ({"source": "redshift", "tables": ["sessions; ls"]}, False, False),
    ({"source": "redshift", "tables": "sessions"}, False, False),
]


@pytest.fixture(scope="module")
def probed(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("backfill dag")
    # what `lakehouse airflow up` does first: dbt parse (connects to nothing), the settings file
    dbt(settings, "parse", "--target-path", MANIFEST_TARGET, "--quiet", capture=True)
    airflow.write_dag_settings(settings, DBT_PROJECT_DIR / MANIFEST_TARGET / "manifest.json")
    env = airflow.environment(settings)
    env["AIRFLOW__COSMOS__CACHE_DIR"] = str(home / "cosmos")
    confs, output = home / "confs.json", home / "probe.json"
    confs.write_text(json.dumps([conf for conf, _, _ in CASES]))
    done = subprocess.run(
        [str(airflow.VENV / "bin" / "python"), str(PROBE), str(DAG_FILE), str(confs), str(output)],
        env=env, cwd=home, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(output.read_text())


def test_the_backfill_dag_parses_runs_by_hand_and_checks_before_it_loads(probed: dict) -> None:
    assert probed["import_errors"] == {}
    assert probed["schedule"] == "NullTimetable"  # triggered by hand only
    assert probed["upstream"] == {"check": [], "backfill": ["check"]}
    assert set(probed["schemas"]) == {"source", "mode", "from", "to", "from_id", "to_id",
                                      "tables", "rebuild"}  # fmt: skip
    assert set(probed["schemas"]["source"]["enum"]) == {"snowflake", "crm", "redshift", "fx",
                                                        "kafka"}  # fmt: skip


def _argv(command: str, env: dict[str, str]) -> list[str]:
    """The arguments the task's shell line expands to, with the task's rendered env."""
    done = subprocess.run(["bash", "-c", f'set -- {command}; printf "%s\\0" "$@"'],
                          env={**os.environ, **env}, capture_output=True, check=True)  # fmt: skip
    return done.stdout.decode().split("\0")[:-1]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_params_are_validated_by_airflow_and_per_source_by_the_check_task(
    probed: dict, settings: Settings, case: int
) -> None:
    conf, airflow_accepts, platform_accepts = CASES[case]
    run = probed["runs"][case]
    assert run["valid"] is airflow_accepts, run
    if not airflow_accepts:
        return
    check = run["tasks"]["check"]
    assert run["tasks"]["backfill"]["env"] == check["env"]
    argv = _argv(check["bash_command"], check["env"])
    assert argv[1:2] == ["backfill"] and argv[-1] == "--dry-run"
    real = _argv(run["tasks"]["backfill"]["bash_command"], check["env"])
    assert real == argv[:-1]  # the backfill runs exactly what was checked
    # what the check task's `lakehouse backfill --dry-run` decides, in this process
    args = build_parser().parse_args(argv[1:])
    try:
        asked = backfill_command.request(args)
        backfill.configured_tables(settings, asked)
    except backfill.BackfillError:
        accepted = False
    else:
        accepted = True
        assert asked.source == conf.get("source", "fx")
    assert accepted is platform_accepts


@pytest.mark.parametrize("case", [1, 8])  # fx, a window: accepted; crm --reload: refused
def test_the_check_task_runs_the_platforms_validation(
    probed: dict, settings: Settings, case: int
) -> None:
    check = probed["runs"][case]["tasks"]["check"]
    env = {**os.environ, **check["env"], "LAKEHOUSE_HOME": str(settings.home)}
    done = subprocess.run(["bash", "-c", check["bash_command"]], env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    said = done.stdout + done.stderr
    assert (done.returncode == 0) is CASES[case][2], said
    if done.returncode == 0:
        assert "backfill of fx days 2025-01-14..2025-01-15" in said, said
        assert "dbt build --select source:fx.rates+" in said, said
    else:
        assert "backfill failed: crm does not support backfill mode 'reload'" in said, said
