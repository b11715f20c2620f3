"""The platform's own servers killed with SIGKILL in the middle of `make run`, one per run.

Each killed run must fail with a message naming what died; the next run must start it again and
finish the work exactly once. One lake home, four victims chained in pipeline order, so each run
also proves the previous kill was recovered from (it gets past the point where that run died):

1. PostgreSQL during the Redshift load (ingest),
2. the Kafka broker during the Kafka load (ingest),
3. the engine (the Spark Thrift Server JVM) during `dbt build`,
4. the Snowflake emulator during the Snowflake publish,

then a run that completes, right after the fourth kill, whose bronze, gold and warehouses are
checked: every source record in bronze exactly once, gold as an independent computation from the
sample world says, the Snowflake mirror equal to gold, each batch once in Redshift's history.

The runs are real `python -m lakehouse run` processes on their own lake home and free ports, so
the suite's session engine and source systems are never touched.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import deltalake
import psycopg2
import pytest
import snowflake.connector

from lakehouse.core.config import REPO_ROOT, Settings, load_settings
from lakehouse.core.dbt_paths import target_dir
from lakehouse.pipeline import steps
from lakehouse.publish import snapshot as snapshots
from lakehouse.stack import source_systems as systems
from lakehouse.stack.processes import Part
from lakehouse.stack.services import postgres
from lakehouse.stack.services import snowflake as snowflake_service

RUN_TIMEOUT_S = 900
MOMENT_TIMEOUT_S = 600
PRODUCTION_ENDPOINTS = ("SNOWFLAKE_URL", "CRM_BASE_URL", "CRM_API_TOKEN", "REDSHIFT_URL",
                        "FX_BASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "SNOWFLAKE_ACCOUNT",
                        "REDSHIFT_HOST", "LAKEHOUSE_RUN_ID")  # fmt: skip


class Run:
    """`python -m lakehouse run` in its own session; its output is read line by line."""

    def __init__(self, env: dict[str, str]) -> None:
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lakehouse", "run"], env=env, cwd=REPO_ROOT, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, after: int = 0) -> int:
        """Wait for a line matching ``pattern`` (after line ``after``); return its index."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + MOMENT_TIMEOUT_S
        while time.monotonic() < deadline:
            for i in range(after, len(self.lines)):
                if regex.search(self.lines[i]):
                    return i
            if self.proc.poll() is not None and not self._reader.is_alive():
                pytest.fail(f"the run ended before /{pattern}/:\n{self.output[-6000:]}")
            time.sleep(0.05)
        self.kill()
        pytest.fail(f"no /{pattern}/ within {MOMENT_TIMEOUT_S}s:\n{self.output[-6000:]}")

    def wait_until(self, condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + MOMENT_TIMEOUT_S
        while not condition():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"the moment to kill never came:\n{self.output[-6000:]}")
            time.sleep(0.3)

    def finish(self) -> int:
        try:
            code = self.proc.wait(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the run did not end within {RUN_TIMEOUT_S}s:\n{self.output[-6000:]}")
        self._reader.join(timeout=10)
        self.seconds = time.monotonic() - self.started
        steps = next((x for x in reversed(self.lines) if "wall time:" in x), "")
        print(f"run took {self.seconds:.0f}s, exit {code} {steps}")  # with -s: the cost per run
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture(scope="module")
def lake(
    tmp_path_factory: pytest.TempPathFactory, free_ports
) -> Iterator[tuple[Settings, dict[str, str]]]:
    """A lake home of its own, on free ports, small; everything left running is stopped after."""
    root = tmp_path_factory.mktemp("crash_recovery")
    engine_port, pg_port, sf_port, kafka_port, controller_port = free_ports(5)
    env = {k: v for k, v in os.environ.items() if k not in PRODUCTION_ENDPOINTS}
    env.update({
        "LAKEHOUSE_HOME": str(root / "home"),
        "LAKEHOUSE_SCALE": "0.01",
        "LAKEHOUSE_THRIFT_PORT": str(engine_port),
        "LAKEHOUSE_POSTGRES_PORT": str(pg_port),
        "LAKEHOUSE_SNOWFLAKE_PORT": str(sf_port),
        "LAKEHOUSE_KAFKA_PORT": str(kafka_port),
        "LAKEHOUSE_KAFKA_CONTROLLER_PORT": str(controller_port),
        # dbt's artefacts and logs of these runs stay out of the suite's target/ and logs/
        "DBT_TARGET_PATH": str(root / "dbt-target"),
        "DBT_LOG_PATH": str(root / "dbt-logs"),
    })  # fmt: skip
    partial_parse = target_dir() / "partial_parse.msgpack"
    if partial_parse.exists():  # dbt re-parses if it does not fit; a saved parse if it does
        (root / "dbt-target").mkdir()
        (root / "dbt-target" / partial_parse.name).write_bytes(partial_parse.read_bytes())
    with pytest.MonkeyPatch.context() as mp:
        for name in PRODUCTION_ENDPOINTS:
            mp.delenv(name, raising=False)
        for name, value in env.items():
            mp.setenv(name, value)
        settings = load_settings()
    try:
        yield settings, env
    finally:
        subprocess.run([sys.executable, "-m", "lakehouse", "down"], env=env, cwd=REPO_ROOT,
                       capture_output=True, timeout=180)  # fmt: skip


def _kill(part: Part) -> int:
    """SIGKILL the server's main process (the JVM, the postmaster, the emulator's Python)."""
    pid = part.pid()
    assert pid is not None, f"{part.name} has no pid file at {part.pid_file}"
    os.kill(pid, signal.SIGKILL)
    return pid


def _victim(
    env: dict[str, str],
    part: Part,
    moment: list[str],
    step: str,
    then: Callable[[], bool] | None = None,
) -> tuple[Run, int]:
    """A run whose ``part`` is killed once its output has shown each of ``moment`` in turn
    (and ``then`` holds)."""
    run = Run(env)
    line = 0
    for pattern in moment:
        line = run.wait_for(pattern, after=line) + 1
    if then is not None:
        run.wait_until(then)
    pid = _kill(part)
    code = run.finish()
    assert code == 1, run.output[-6000:]
    said = run.lines[-2] if len(run.lines) > 1 else ""
    expected = (f"run failed: {part.name} ({part.what}, pid {pid}, port {part.port}) died during "
                f"`{step}`; see {part.log}")  # fmt: skip
    assert said.startswith(expected), run.output[-6000:]
    assert "make run` again" in said
    assert "Traceback" not in run.output, "the person at the terminal reads no traceback"
    return run, pid


def test_each_part_killed_mid_run_is_named_and_the_next_run_is_exact(lake) -> None:
    settings, env = lake
    parts = steps.platform_parts(settings)

    _victim(env, parts["postgres"], [r"^\[lakehouse\]   crm: read"], "ingest")
    _victim(env, parts["kafka"], [r"^\[lakehouse\]   redshift: read", r"^\[lakehouse\]   fx: read"],
            "ingest")  # fmt: skip
    _victim(env, parts["engine"], [r"^\[lakehouse\] dbt build \.\.\.", r"\d+ of \d+ OK created"],
            "dbt build")  # fmt: skip
    staging = f"publish_staging.{next(iter(settings.publish.tables))}"
    _victim(env, parts["snowflake"], [r"^\[lakehouse\] publish \.\.\."], "publish",
            then=lambda: _exists_in_snowflake(settings, staging))  # fmt: skip

    survivor = Run(env)
    assert survivor.finish() == 0, survivor.output[-6000:]
    assert "died" not in survivor.output

    _assert_bronze_exact(settings)
    _assert_gold_exact(settings)
    _assert_warehouses_exact(settings)


def _exists_in_snowflake(settings: Settings, table: str) -> bool:
    """True once the publish has staged ``table`` in the emulator (it serves it next)."""
    try:
        conn = snowflake.connector.connect(
            **snowflake_service.connect_args(settings.services.snowflake_port),
            database="ANALYTICS", login_timeout=5,
        )  # fmt: skip
    except Exception:
        return False  # not up yet
    try:
        conn.cursor().execute(f"select count(*) from {table}")
        return True
    except snowflake.connector.errors.ProgrammingError:
        return False
    finally:
        conn.close()


# --- exactness ---------------------------------------------------------------------------------


def _delta(settings: Settings, path: str):
    return deltalake.DeltaTable(str(settings.bronze_dir / path)).to_pyarrow_table()


def _assert_once(table, keys: list[str], expected: int, what: str) -> None:
    rows = [tuple(r.values()) for r in table.select(keys).to_pylist()]
    duplicated = [k for k, n in Counter(rows).items() if n > 1]
    assert not duplicated, f"{what}: keys loaded twice, e.g. {duplicated[:3]}"
    assert len(rows) == expected, f"{what}: {len(rows)} rows, the source has {expected}"


def _quarantined(settings: Settings, source: str, table: str) -> int:
    path = settings.bronze_dir / source / "quarantine"
    if not (path / "_delta_log").exists():
        return 0
    rows = deltalake.DeltaTable(str(path)).to_pyarrow_table().select(["source_table"]).to_pylist()
    return sum(1 for r in rows if r["source_table"] == table)


def _assert_bronze_exact(settings: Settings) -> None:
    """Every record of the sources in bronze exactly once (loaded or quarantined), as the sample
    world says."""
    world = systems.world(settings, 1)
    sessions, views = world.web()
    # Redshift tables are appended by key; Snowflake's are replaced whole on every load (the
    # source itself repeats some customers, so there the count is what must match).
    tables = {
        ("redshift", "sessions", "session_id"): len(sessions),
        ("redshift", "page_views", "page_view_id"): len(views),
        ("snowflake", "customers", None): len(world.customers),
        ("snowflake", "products", None): len(world.products),
        ("snowflake", "orders", None): len(world.orders),
        ("snowflake", "order_lines", None): len(world.order_lines),
    }
    for (source, table, key), rows in tables.items():
        loaded = _delta(settings, f"{source}/{table}")
        expected = rows - _quarantined(settings, source, table)
        if key is None:
            assert loaded.num_rows == expected, f"{source} {table}: {loaded.num_rows} rows"
        else:
            _assert_once(loaded, [key], expected, f"{source} {table}")
    events = _delta(settings, "kafka/events")
    quarantine = _delta(settings, "kafka/quarantine")
    _assert_once(events, ["kafka_partition", "kafka_offset"], events.num_rows, "kafka events")
    _assert_once(quarantine, ["quarantine_id"], quarantine.num_rows, "kafka quarantine")
    messages = sum(1 for _ in world.events())  # the producer's duplicates included
    assert events.num_rows + quarantine.num_rows == messages, "every message loaded once"


def _gold(settings: Settings, table: str) -> snapshots.Snapshot:
    """gold.<table> read from the lake (the engine is stopped once the run is over)."""
    delta = deltalake.DeltaTable(str(settings.warehouse_dir / "gold.db" / table))
    committed = delta.history(1)[0]["timestamp"] / 1000
    return snapshots.Snapshot(table, delta.version(), datetime.fromtimestamp(committed, tz=UTC),
                            delta.to_pyarrow_table())  # fmt: skip


def _lake_rows(settings: Settings, table: str) -> list[dict]:
    return _gold(settings, table).data.to_pylist()


def _assert_gold_exact(settings: Settings) -> None:
    """Gold as an independent computation from the sample world says (tests/test_gold.py's)."""
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        from test_gold import CENT, _expected_lifetime_values
    finally:
        sys.path.pop(0)
    world = systems.world(settings, 1)
    customers = _lake_rows(settings, "customer_360")
    ids = [r["customer_id"] for r in customers]
    assert len(ids) == len(set(ids)) == len({c["customer_id"] for c in world.customers})
    expected = _expected_lifetime_values(world)
    wrong = {r["customer_id"] for r in customers
             if abs(r["lifetime_value"] - expected.get(r["customer_id"], 0)) > CENT}  # fmt: skip
    assert not wrong, f"{len(wrong)} customers' lifetime value differs, e.g. {sorted(wrong)[:5]}"
    for table, conf in settings.publish.tables.items():
        rows = _lake_rows(settings, table)
        keys = Counter(tuple(r[k] for k in conf.unique_key) for r in rows)
        assert rows and max(keys.values()) == 1, f"gold.{table} has duplicated keys"


def _assert_warehouses_exact(settings: Settings) -> None:
    """Snowflake's mirror equals gold in every column; Redshift holds each batch exactly once,
    and the last one equals gold."""
    home, services = settings.home, settings.services
    with (
        postgres.running(home, services.postgres_port),
        snowflake_service.running(home, services.snowflake_port),
    ):
        _compare_warehouses(settings)


def _snowflake_fingerprint(conn, snapshot: snapshots.Snapshot) -> snapshots.Fingerprint:
    """The mirror's rows in gold's columns. The emulator hands a NULL timestamp to the client
    as 1970-01-01 (it stores NULL), so each column's nullness is read alongside it."""
    columns = snapshot.data.column_names
    cur = conn.cursor()
    cur.execute(f"select {', '.join(columns)}, {', '.join(f'{c} is null' for c in columns)} "
                f"from gold.{snapshot.table}")  # fmt: skip
    n = len(columns)
    rows = (tuple(None if r[n + i] else r[i] for i in range(n)) for r in cur.fetchall())
    return snapshots.fingerprint(rows)


def _compare_warehouses(settings: Settings) -> None:
    sf = snowflake.connector.connect(
        **snowflake_service.connect_args(settings.services.snowflake_port), database="ANALYTICS"
    )
    pg = psycopg2.connect(
        host=postgres.HOST, port=settings.services.postgres_port, user=postgres.ROLE,
        password=postgres.PASSWORD, dbname=postgres.WAREHOUSE_DATABASE, sslmode="disable",
    )  # fmt: skip
    try:
        for table, conf in settings.publish.tables.items():
            snapshot = _gold(settings, table)
            columns = snapshot.data.column_names
            lake = snapshots.fingerprint(tuple(r.values()) for r in snapshot.data.to_pylist())
            assert _snowflake_fingerprint(sf, snapshot) == lake, f"snowflake gold.{table} != gold"
            with pg.cursor() as c:
                key = ", ".join(conf.unique_key)
                c.execute(f"select _batch_id, {key}, count(*) from gold.{table}_history "
                          f"group by _batch_id, {key} having count(*) > 1 limit 5")  # fmt: skip
                assert c.fetchall() == [], f"redshift gold.{table}_history: (batch, key) twice"
                c.execute(f"select {', '.join(columns)} from gold.{table}_history "
                          "where _batch_id = %s", (snapshot.batch_id,))  # fmt: skip
                assert snapshots.fingerprint(c.fetchall()) == lake, f"redshift {table} != gold"
    finally:
        sf.close()
        pg.close()


# --- the vigil alone, on a stand-in server: a client that would wait for good -------------------
