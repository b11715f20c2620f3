"""Shared fixtures: one real Spark Thrift Server and one pipeline run for the whole session.

Two tiers. ``tests/fast/`` (`make test-fast`) needs no engine and no service: no JVM, no
PostgreSQL, no broker, no emulator, no running Airflow; it tells a developer in about a minute
(on an idle machine) whether something broke. The modules directly under ``tests/`` are the
engine tier, which tells the truth against real engines. Every fixture here that starts
something is session-scoped and started only when a test asks for it (the imports of what it
starts inside it), so the fast tier starts nothing; a fast test asking for one is refused at
collection.

Spark start-up costs 10-25 s, so the engine tier pays it once: the engine starts on its own port
with its own lake home (never the data of `make run`), every test queries it, and it stops at the
end.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lakehouse.core.config import REPO_ROOT, Settings, load_settings

TEST_HOME = REPO_ROOT / ".lakehouse-test"
TEST_ENV = {
    "LAKEHOUSE_THRIFT_PORT": os.environ.get("LAKEHOUSE_TEST_THRIFT_PORT", "10100"),
    # The suite's own source systems, beside any a developer runs on the default ports.
    "LAKEHOUSE_POSTGRES_PORT": "15433",
    "LAKEHOUSE_SNOWFLAKE_PORT": "18085",
    "LAKEHOUSE_KAFKA_PORT": "19092",
    "LAKEHOUSE_KAFKA_CONTROLLER_PORT": "19093",
    "LAKEHOUSE_AIRFLOW_PORT": "18080",
    # engine.mode standalone: the suite's own Spark master, beside one of `make up`
    "LAKEHOUSE_ENGINE__STANDALONE__MASTER_PORT": "17177",
    "LAKEHOUSE_ENGINE__STANDALONE__MASTER_UI_PORT": "18180",
    "LAKEHOUSE_ENGINE__STANDALONE__WORKER_UI_PORT": "18181",
    "LAKEHOUSE_SCALE": "0.01",
    # small but dirty: every kind of bad record the generator makes shows up at least once
    "LAKEHOUSE_DIRTY_SHARE": "0.1",
}
PORT_VARIABLES = [name for name in TEST_ENV if name.endswith("_PORT")]


def _unused_ports(n: int) -> list[int]:
    """``n`` distinct ports nothing listens on now (held open together while chosen)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


# pytest-xdist's worker id (gw0, gw1, ...) when `make test` runs the suite on two workers. Each
# worker that builds a lake has its own (test_orchestration's beside the others'), so each has
# its own dbt target and logs; a worker other than the first also its own home and free ports.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if XDIST_WORKER is not None:
    _dbt_dir = REPO_ROOT / "dbt_project" / "target" / "xdist" / XDIST_WORKER
    os.environ["DBT_TARGET_PATH"] = str(_dbt_dir / "target")
    os.environ["DBT_LOG_PATH"] = str(_dbt_dir / "logs")
    if XDIST_WORKER != "gw0":
        TEST_HOME = REPO_ROOT / f".lakehouse-test-{XDIST_WORKER}"
        os.environ["LAKEHOUSE_HOME"] = str(TEST_HOME)
        ports = _unused_ports(len(PORT_VARIABLES))
        os.environ.update(zip(PORT_VARIABLES, map(str, ports), strict=True))
os.environ.setdefault("LAKEHOUSE_HOME", str(TEST_HOME))
for _name, _value in TEST_ENV.items():
    os.environ.setdefault(_name, _value)


# `make test` runs the suite on two pytest-xdist workers, one group of modules at a time per
# worker, each module whole (its module fixtures built once), in this order: ``lake``, the modules
# on the session's lake, in file order on one worker; ``apart``, the modules that use none of it
# (their own temporary homes, free ports and servers: the crash-recovery runs, the service tests)
# beside it on the other; then ``airflow``, on whichever worker is free first, with a lake of its
# own (XDIST_WORKER above), so the other modules never see its rebuilds and publishes. A module
# not named here runs in ``lake``; each worker checks the lists against the fixtures each module
# asks for (pytest_collection_modifyitems). The fast tier (tests/fast/, `make test-fast`) is spread
# test by test over its workers: nothing there is shared or expensive to set up.
APART_MODULES = frozenset({
    "test_change_report_chromium.py", "test_cluster.py", "test_crash_recovery.py",
    "test_distributed.py", "test_kafka_service.py", "test_network_binding.py",
    "test_object_storage.py", "test_postgres_service.py", "test_shared_catalog.py",
    "test_source_outages.py",
})  # fmt: skip
AIRFLOW_MODULES = frozenset({"test_orchestration.py"})
# What a lake of the suite is made of: a module asking for any of these must run where it lives.
LAKE_FIXTURES = frozenset(
    {"_engine_booting", "spark", "source_systems", "ingested", "dbt_built", "warehouses"}
)
# ... and what the fast tier may never ask for: the lake, a browser (Chromium), or a server.
NOT_FAST_FIXTURES = LAKE_FIXTURES | {"browser", "broker", "server"}
FAST_DIR = "tests/fast/"
# Fast modules whose module fixture is their cost (`dbt parse` and a DagBag in the Airflow
# environment, ~15 s): run whole on one worker, so each pays it once.
FAST_WHOLE_MODULES = frozenset({"test_dag_integrity.py", "test_alert_notifiers.py"})


def suite_group(nodeid: str) -> str:
    """The xdist group of a test, from its module's file name (a fast test is a group alone,
    unless its module is one of FAST_WHOLE_MODULES)."""
    module = nodeid.split("::")[0].rsplit("/", 1)[-1]
    if nodeid.startswith(FAST_DIR):
        return module if module in FAST_WHOLE_MODULES else nodeid
    if module in AIRFLOW_MODULES:
        return "airflow"
    return "apart" if module in APART_MODULES else "lake"


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """xdist's scope scheduler with the groups above as scopes (largest group first)."""
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return suite_group(nodeid)

    return GroupScheduling(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Airflow's tests last: they rebuild gold and publish again, which the earlier tests'
    expectations (first publish, generation 2) must not see. And each module is in the group
    its fixtures need: a module ``apart`` uses no lake, the ``airflow`` modules are marked."""
    items.sort(key=lambda item: item.get_closest_marker("airflow") is not None)
    for item in items:
        group = suite_group(item.nodeid)
        if item.nodeid.startswith(FAST_DIR) and not NOT_FAST_FIXTURES.isdisjoint(item.fixturenames):
            used = sorted(NOT_FAST_FIXTURES.intersection(item.fixturenames))
            raise pytest.UsageError(f"{item.nodeid} is in the fast tier but uses {used}: move it "
                                    "to the engine tier (tests/)")  # fmt: skip
        if group == "apart" and not LAKE_FIXTURES.isdisjoint(item.fixturenames):
            used = sorted(LAKE_FIXTURES.intersection(item.fixturenames))
            raise pytest.UsageError(f"{item.nodeid} uses the session's lake ({used}): remove its "
                                    "module from APART_MODULES in tests/conftest.py")  # fmt: skip
        if (group == "airflow") != (item.get_closest_marker("airflow") is not None):
            raise pytest.UsageError(f"{item.nodeid}: AIRFLOW_MODULES in tests/conftest.py and "
                                    "the airflow marker disagree")  # fmt: skip


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def _engine_booting(settings: Settings) -> Iterator:
    """Launch the engine on a fresh test lake without waiting for it.

    Its JVM boots (10-20 s) while other fixtures (the ingestion) run; ``spark`` waits for it.
    Stopped at the end of the session if this session started it.
    """
    from lakehouse.stack import engine

    if not engine.is_up(settings) and settings.home == TEST_HOME.resolve():
        shutil.rmtree(settings.home, ignore_errors=True)
    with engine.starting(settings) as ready:
        yield ready


@pytest.fixture(scope="session")
def spark(settings: Settings, _engine_booting) -> Settings:
    """The running engine (its settings): waits for the boot started with the session."""
    _engine_booting()
    return settings


@pytest.fixture(scope="session")
def source_systems(settings: Settings) -> Iterator:
    """PostgreSQL (Redshift) and Kafka on the suite's ports, up for the whole session."""
    from lakehouse.stack import source_systems

    with source_systems.running(settings) as endpoints:
        yield endpoints


@pytest.fixture(scope="session")
def ingested(settings: Settings, source_systems) -> list:
    """All five sources loaded once into the suite's lake by the real dlt pipelines."""
    from lakehouse.pipeline import steps

    return steps.ingest(settings)


# The session's whole `dbt build`'s run_results.json, kept in the target folder.
BUILT_RESULTS = "run_results.session-build.json"


@pytest.fixture(scope="session")
def dbt_built(_engine_booting, ingested: list, spark: Settings) -> Path:
    """`dbt build` (models, data tests, unit tests) once; returns the dbt target folder. Its
    run_results.json is kept aside (``BUILT_RESULTS``): a later module's build (a platform build
    of what changed, a backfill) writes its own into the same target."""
    from lakehouse.pipeline import steps

    result = steps.dbt(spark, "build", check=False)
    assert result.returncode == 0, "dbt build failed; see dbt_project/logs/dbt.log"
    target = steps.target_dir()
    shutil.copyfile(target / "run_results.json", target / BUILT_RESULTS)
    return target


@pytest.fixture(scope="session")
def warehouses(settings: Settings, source_systems) -> Iterator[Settings]:
    """The local warehouse stand-ins for the session: the Snowflake emulator, and PostgreSQL
    (already up for the source systems) for Redshift."""
    from lakehouse.stack.services import snowflake

    with snowflake.running(settings.home, settings.services.snowflake_port):
        yield settings


# Debian's Chromium, headless, driven by Playwright (Makefile installs it for `make test`). As
# root, on a machine with no internet: no sandbox, no background phoning home.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


@pytest.fixture()
def browser() -> Iterator:
    """A headless Chromium for a screenshot test (a fresh one per test: Playwright's sync API
    keeps an event loop that must not outlive the test)."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"the screenshot tests need Chromium at {CHROMIUM} (`make test` installs it)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture()
def screenshot(settings: Settings):
    """``screenshot(name)``: where a screenshot test leaves its PNG, under the suite's lake home
    for a person to look at."""

    def path(name: str) -> Path:
        folder = settings.home / "screenshots"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{name}.png"

    return path


@pytest.fixture()
def tmp_settings(tmp_path: Path, monkeypatch) -> Settings:
    """Settings whose lake home is a fresh temporary folder (no engine needed)."""
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path))
    return load_settings()


@pytest.fixture(scope="session")
def free_ports() -> Callable[[int], list[int]]:
    """``free_ports(n)``: ``n`` distinct ports nothing listens on now, for a test's own servers
    (held open together while chosen, so all differ), never a fixed port two runs could share."""
    return _unused_ports
