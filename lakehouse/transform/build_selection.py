"""The platform's build: only the dbt work whose inputs changed since its last successful build.

A warm ``dbt build`` costs about the same whether one source brought new rows or none did: the
cost is per statement, not per row. So the platform's build (``lakehouse build``, the dbt step
of ``make run``) asks what changed and builds only that, with dbt's own graph and state
selectors:

1. Before dbt starts, the Delta log of every bronze table is read
(lakehouse/core/bronze_versions.py,
   milliseconds, no engine): its version, and its last load. That is the time-based check of
   bronze, on every build: a source past the ``freshness`` it declares is reported, as ``dbt
   source freshness`` reports it (the hourly dq_watchdog DAG still runs that command, and fails
   on an error-level breach).
2. Against the state of the last *successful* platform build, kept under the lake home
   (``<home>/state/dbt-last-build``: its ``manifest.json`` and the versions read before it,
   ``lake.json``), ``dbt build`` selects
   - ``source:<source>.<table>+`` for every source (of those that declare freshness) whose
     Delta version changed since: what was loaded, with everything downstream and its data
     tests (the nodes ``source_status:fresher+`` selects; a version also sees a load that only
     deleted rows, which leaves ``max(_loaded_at)`` as it was), but not its unit tests: a unit
     test's verdict depends on its model's code and fixtures, never on the lake;
   - ``state:modified+``: models, tests, unit tests, macros or configs whose code changed, and
     downstream (the unit tests of every model downstream of changed code among them);
   - ``tag:time_based`` tests, on every build: their verdict depends on the clock (recency);
   - ``tag:as_of_today+`` once the UTC date changed since the last build: models whose result
     depends on today's date (``fx_rates_daily`` runs its calendar up to today), and downstream.
3. Only a build that succeeded replaces the saved state.

The build builds everything, never guessing, when there is no saved state (an empty lake, a new
lake home, a state saved before ``lake.json`` existed), when the last build began but did not
succeed (it may have rebuilt models from code, vars or data the next build no longer has: dbt's
state compares code with the last success only), when the project's or the run's vars differ
from the last build's (``state:modified`` does not see vars), when the artifacts are of another
dbt version, or when a source's Delta table could not be read.
``dbt build`` typed by hand (``lakehouse dbt build``) selects nothing of this: it builds and
tests everything, as dbt does.

dbt selects a model's unit tests with the model (indirect selection, ``eager``), and ``--exclude``
would take them from the whole selection, code changes included. So a selective build runs with
``--indirect-selection empty`` and spells its data-driven parts by resource type
(``source:<t>+,resource_type:model``, ``...,resource_type:test``): every data test is still
selected, as a node downstream of what was loaded, and unit tests come only with changed code.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from lakehouse.core import bronze_versions
from lakehouse.core.config import Settings
from lakehouse.transform import dbt_cli

# Tests whose verdict depends on the clock (recency): run on every build. Set in the yml.
log = logging.getLogger(__name__)
TIME_BASED_TAG = "time_based"
# Models whose result depends on today's date: rebuilt, with downstream, on a new day. A
# separate tag, as a model's tags pass to its tests (which need not run on every build).
AS_OF_TODAY_TAG = "as_of_today"
RECORD = "build.json"
LAKE = "lake.json"  # the bronze versions read before the build (lakehouse/core/bronze_versions.py)
# What new data rebuilds downstream of a source: its nodes of these kinds, data tests included,
# unit tests not (seeds have no parents; exposures are no-ops in a build).
DATA_DRIVEN = ("model", "snapshot", "test")


def data_driven(selector: str) -> list[str]:
    """``selector``'s models, snapshots and data tests, spelt for ``--indirect-selection
    empty`` (no unit tests: their verdict does not depend on data)."""
    return [f"{selector},resource_type:{kind}" for kind in DATA_DRIVEN]


def state_dir(settings: Settings) -> Path:
    """Where the artifacts of the last successful platform build are kept: in the lake home,
    beside the data they describe (not in dbt's target/, which any dbt command overwrites)."""
    return settings.state_dir / "dbt-last-build"


@dataclass(frozen=True)
class Plan:
    """What a platform build selects, and why, in words for the person at the terminal."""

    select: tuple[str, ...] = ()  # dbt selectors; empty = build everything
    reasons: list[str] = field(default_factory=list)
    fresher: list[str] = field(default_factory=list)  # sources loaded since the last build

    @property
    def everything(self) -> bool:
        return not self.select

    def dbt_args(self, settings: Settings) -> list[str]:
        """The arguments of the ``dbt build`` that carries out this plan."""
        if self.everything:
            return ["build"]
        return ["build", "--indirect-selection", "empty", "--select", *self.select,
                "--state", str(state_dir(settings))]  # fmt: skip


def _load(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def vars_fingerprint(run_vars: dict[str, Any] | None = None) -> str:
    """A digest of the vars models see: the project's (dbt_project.yml) and the run's."""
    project = yaml.safe_load((dbt_cli.DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    seen = {"project": project.get("vars") or {}, "run": run_vars or {}}
    return hashlib.sha256(json.dumps(seen, sort_keys=True, default=str).encode()).hexdigest()


def _attempt_file(settings: Settings) -> Path:
    return settings.state_dir / "dbt-build-attempt.json"


def begin(settings: Settings) -> None:
    """Mark a build as begun; ``remember`` clears the mark when it succeeded."""
    _attempt_file(settings).parent.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    _attempt_file(settings).write_text(json.dumps({"started_at": started}) + "\n")


def plan(settings: Settings, lake: dict[str, Any], dbt_version: str, today: str,
         fingerprint: str) -> Plan:  # fmt: skip
    """Decide what to build, from the bronze versions just read (``lake``, from
    ``bronze_versions.read``) and the saved state."""
    saved = state_dir(settings)
    record = _load(saved / RECORD)
    previous = bronze_versions.load(saved / LAKE)
    manifest = _load(saved / "manifest.json")
    if record is None or previous is None or manifest is None:
        return Plan(reasons=[f"no successful platform build recorded in {saved}: building "
                             "everything"])  # fmt: skip
    if attempt := _load(_attempt_file(settings)):
        return Plan(reasons=[f"the build begun at {attempt.get('started_at')} did not succeed: "
                             "building everything"])  # fmt: skip
    if record.get("vars") != fingerprint:
        return Plan(reasons=["the vars differ from the last build's: building everything"])
    if record.get("dbt_version") != dbt_version:
        return Plan(reasons=[f"the last build's artifacts are of dbt {record.get('dbt_version')}"
                             f", this is {dbt_version}: building everything"])  # fmt: skip
    sources = bronze_versions.tables(manifest)
    unreadable = [t.name for t in sources if bronze_versions.of(t, lake) is None]
    if unreadable:
        return Plan(reasons=[f"the Delta table of {', '.join(unreadable)} could not be read: "
                             "building everything"])  # fmt: skip
    fresher = [  # every commit since (a load, an update, a delete) is a new version
        t.name
        for t in sources
        if (was := bronze_versions.of(t, previous)) is None
        or was["version"] != bronze_versions.of(t, lake)["version"]  # type: ignore[index]
    ]
    time_based_tests = f"tag:{TIME_BASED_TAG},resource_type:test"
    select = [*(s for name in fresher for s in data_driven(f"source:{name}+")),
              "state:modified+", time_based_tests]  # fmt: skip
    reasons = [
        "sources loaded since the last build (their Delta version changed): "
        + (", ".join(fresher) if fresher else "none"),
        "code changed since the last build (state:modified+): dbt compares with "
        f"{saved / 'manifest.json'}",
        f"time-based tests (tag:{TIME_BASED_TAG}): on every build",
    ]
    if record.get("built_on") != today:
        select.extend(data_driven(f"tag:{AS_OF_TODAY_TAG}+"))
        reasons.append(f"the date changed since the last build ({record.get('built_on')}): "
                       f"models tagged {AS_OF_TODAY_TAG} and downstream")  # fmt: skip
    return Plan(select=tuple(select), reasons=reasons, fresher=fresher)


def remember(
    settings: Settings,
    target_dir: Path,
    dbt_version: str,
    today: str,
    fingerprint: str,
    lake: dict[str, Any],
) -> Path:
    """Keep this successful build's manifest and the bronze versions read before it (``lake``)
    as the state the next build compares with. Written into a new folder, then swapped in: a
    crash leaves the previous state whole (the next build then selects too much, never too
    little)."""
    saved = state_dir(settings)
    fresh = saved.with_name(saved.name + ".new")
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir(parents=True)
    shutil.copy2(target_dir / "manifest.json", fresh / "manifest.json")
    bronze_versions.save(lake, fresh / LAKE)
    finished = datetime.now(UTC).isoformat(timespec="seconds")
    record = {"dbt_version": dbt_version, "built_on": today, "finished_at": finished,
              "vars": fingerprint}  # fmt: skip
    (fresh / RECORD).write_text(json.dumps(record, indent=2) + "\n")
    old = saved.with_name(saved.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if saved.exists():
        saved.rename(old)
    fresh.rename(saved)
    shutil.rmtree(old, ignore_errors=True)
    _attempt_file(settings).unlink(missing_ok=True)
    return saved


def freshness(lake: dict[str, Any], *manifests: Path) -> str | None:
    """The time-based check of bronze, from the Delta log just read: one line for the
    terminal, judged by the ``freshness`` each source declares in the first of ``manifests``
    that lists any. None when none does yet (a project dbt has not parsed)."""
    for path in manifests:
        if (manifest := _load(path)) and (sources := bronze_versions.tables(manifest)):
            if stale := bronze_versions.stale(sources, lake):
                return f"stale sources (Delta log, declared freshness): {', '.join(stale)}"
            return f"bronze freshness (Delta log): all {len(sources)} sources within their limits"
    return None


def forget(settings: Settings) -> None:
    """Drop the saved state: the next platform build builds everything."""
    shutil.rmtree(state_dir(settings), ignore_errors=True)


def summary(run_results: dict[str, Any]) -> list[str]:
    """What a build did, by kind of node: for the terminal, after the build."""
    ran: dict[str, list[str]] = {}
    for result in run_results.get("results", []):
        kind = result["unique_id"].split(".")[0]
        ran.setdefault(kind, []).append(result["unique_id"].split(".")[-1])
    lines = []
    if models := ran.get("model"):
        lines.append(f"{len(models)} model(s) built: {', '.join(sorted(models))}")
    else:
        lines.append("no model rebuilt")
    for kind in ("test", "unit_test"):
        if ran.get(kind):
            lines.append(f"{len(ran[kind])} {kind.replace('_', ' ')}(s) run")
    return lines


def build(settings: Settings, everything: bool = False) -> subprocess.CompletedProcess:
    """The platform's build: bronze's Delta versions and freshness, then ``dbt build`` of what
    changed (all of it with ``everything``); on success the manifest and the versions become
    the state the next build compares with. Returns the ``dbt build`` process (its return
    code says whether it succeeded)."""
    # before dbt: a load during the build counts next
    lake = bronze_versions.read(settings.lake)
    target = dbt_cli.target_dir()
    judged = freshness(lake, state_dir(settings) / "manifest.json")
    if judged:
        log.info(f"  {judged}")
    version, today = dbt_cli.dbt_version(), datetime.now(UTC).date().isoformat()
    fingerprint = vars_fingerprint()
    chosen = (
        Plan(reasons=["asked to build everything"])
        if everything
        else plan(settings, lake, version, today, fingerprint)
    )
    for reason in chosen.reasons:
        log.info(f"  {reason}")
    args = chosen.dbt_args(settings)
    log.info(f"  dbt {' '.join(args)}")
    (target / "run_results.json").unlink(missing_ok=True)  # the summary is of this build only
    begin(settings)
    result = dbt_cli.dbt(settings, *args, check=False)
    if run_results := _load(target / "run_results.json"):
        for line in summary(run_results):
            log.info(f"  {line}")
    if not judged and (judged := freshness(lake, target / "manifest.json")):
        log.info(f"  {judged}")  # the first build: judged by the manifest dbt just wrote
    if result.returncode == 0:
        saved = remember(settings, target, version, today, fingerprint, lake)
        log.info(f"  state for the next build: {saved}")
    else:
        log.info("  the build failed: the next build builds everything")
    return result


def plan_selected(
    settings: Settings, lake_state: Path, run_vars: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The plan for a build (about to begin) with vars ``run_vars``, with every node it selects
    spelt out by ``dbt ls``: what a build elsewhere (Cosmos' producer, in its own copy of the
    project) can select by name. The bronze versions it was planned on are written to
    ``lake_state``, for ``remember`` once that build succeeded. ``everything`` means no
    selection."""
    lake = bronze_versions.read(settings.lake)
    bronze_versions.save(lake, lake_state)
    version, today = dbt_cli.dbt_version(), datetime.now(UTC).date().isoformat()
    chosen = plan(settings, lake, version, today, vars_fingerprint(run_vars))
    begin(settings)
    judged = freshness(lake, state_dir(settings) / "manifest.json")
    out: dict[str, Any] = {"everything": chosen.everything,
                           "reasons": ([judged] if judged else []) + chosen.reasons}  # fmt: skip
    if chosen.everything:
        return out
    target = settings.state_dir / "dbt-plan-target"  # kept: dbt's partial parse lives there
    listed = dbt_cli.dbt(
        settings, "ls", "--quiet", "--indirect-selection", "empty", "--select", *chosen.select,
        "--state", str(state_dir(settings)),
        "--output", "json", "--output-keys", "unique_id", "name", "resource_type", "source_name",
        "--target-path", str(target), capture=True,
    )  # fmt: skip
    nodes = [json.loads(line) for line in listed.stdout.splitlines() if line.startswith("{")]
    out["selected"] = sorted(n["unique_id"] for n in nodes)
    out["select"] = sorted({_selector(n) for n in nodes})
    return out


def _selector(node: dict[str, Any]) -> str:
    """How ``dbt build --select`` names a node listed by ``dbt ls``, every one by itself: the
    build that runs the list runs with ``--indirect-selection empty``."""
    if node["resource_type"] == "source":
        return f"source:{node['source_name']}.{node['name']}"
    if node["resource_type"] == "unit_test":
        return f"unit_test:{node['name']}"
    return node["name"]
