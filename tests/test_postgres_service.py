"""The Redshift stand-in: a real PostgreSQL server started, restarted and stopped by the project.

The module shares one server (its first start runs initdb, a few seconds); the tests run in file
order, the restart test stops and starts it, and the last test stops it and checks that nothing
is left behind.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest
import sqlalchemy as sa

from lakehouse.stack.services import postgres

ROWS = [
    {"id": 1, "url": "/pricing", "viewed_at": datetime(2024, 5, 1, 9, 30, tzinfo=UTC)},
    {"id": 2, "url": "/signup?ref=ä", "viewed_at": datetime(2024, 5, 1, 9, 31, tzinfo=UTC)},
]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pg-home")


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[int]:
    """A server of our own on a free port; yields the port, stopped at the end of the module."""
    port = _free_port()
    postgres.start(home, port)
    try:
        yield port
    finally:
        postgres.stop(home, port)


def test_rows_round_trip_through_sqlalchemy(server: int) -> None:
    engine = sa.create_engine(postgres.url(server))
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "create table page_views "
                    "(id int primary key, url text not null, viewed_at timestamptz not null)"
                )
            )
            conn.execute(
                sa.text("insert into page_views values (:id, :url, :viewed_at)"),
                ROWS,
            )
        assert _read(server) == [tuple(r.values()) for r in ROWS]
        with engine.connect() as conn:
            who = conn.execute(
                sa.text(
                    "select current_user, current_database(), pg_get_userbyid(datdba) "
                    "from pg_database where datname = current_database()"
                )
            ).one()
        assert tuple(who) == ("lakehouse", "web", "lakehouse")
    finally:
        engine.dispose()


def test_the_lakehouse_role_needs_its_password(server: int) -> None:
    engine = sa.create_engine(postgres.url(server, password="wrong"))
    try:
        with pytest.raises(sa.exc.OperationalError, match="password authentication failed"):
            engine.connect()
    finally:
        engine.dispose()


def test_start_refuses_a_port_that_already_answers(home: Path, server: int) -> None:
    with pytest.raises(postgres.PostgresError, match="already answers"):
        postgres.start(home, server)


def test_running_leaves_a_server_it_did_not_start_running(home: Path, server: int) -> None:
    with postgres.running(home, server) as started_here:
        assert started_here is False
    assert postgres.is_up(server), "leaving the block must not stop a server it did not start"


def test_restart_keeps_the_data(home: Path, server: int) -> None:
    assert postgres.stop(home, server) is True
    assert not postgres.is_up(server)

    # A start that fails names its log, and leaves no half-started server behind.
    with pytest.raises(postgres.PostgresError, match=r"within 0s; see .*postgres-\d+\.log"):
        postgres.start(home, server, timeout_s=0)
    _assert_gone(postgres.data_dir(home), server, set())

    postgres.start(home, server)
    assert _read(server) == [tuple(r.values()) for r in ROWS]


def test_stop_leaves_no_process_and_running_cleans_up(home: Path, server: int) -> None:
    data = postgres.data_dir(home)
    pids = _server_pids(data)
    assert len(pids) >= 3, "postmaster plus its background workers"

    assert postgres.stop(home, server) is True
    _assert_gone(data, server, pids)
    assert postgres.stop(home, server) is False

    with postgres.running(home, server) as started_here:
        assert started_here is True
        assert _read(server) == [tuple(r.values()) for r in ROWS]
        pids = _server_pids(data)
    _assert_gone(data, server, pids)


def _read(port: int) -> list[tuple]:
    engine = sa.create_engine(postgres.url(port))
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("select id, url, viewed_at from page_views order by id"))
            return [tuple(row) for row in rows]
    finally:
        engine.dispose()


def _server_pids(data: Path) -> set[int]:
    """Every process of the server of ``data``: all of them run with the data dir as cwd."""
    pid = int((data / "postmaster.pid").read_text().splitlines()[0])
    postmaster = psutil.Process(pid)
    return {pid, *(child.pid for child in postmaster.children(recursive=True))}


def _assert_gone(data: Path, port: int, pids: set[int]) -> None:
    assert not postgres.port_open(port)
    assert not (data / "postmaster.pid").exists()
    assert not [p for p in pids if psutil.pid_exists(p)]
    left = [
        proc.info
        for proc in psutil.process_iter(["pid", "name", "cwd"])
        if proc.info["cwd"] and Path(proc.info["cwd"]) == data
    ]
    assert not left, f"processes still running in {data}: {left}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
