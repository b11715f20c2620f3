"""The local Snowflake stand-in the gold tables are published to: a ``fakesnow`` server.

Snowflake cannot run offline, so this is the one emulator in the platform (the README says so).
``fakesnow`` answers Snowflake's HTTP query protocol and runs the SQL on DuckDB after translating
it, so the real clients (snowflake-connector-python, dbt-snowflake) connect to it unchanged with
``host``, ``port``, ``protocol: http`` and any account/user/password.

Why our own launcher and not ``fakesnow -s``: the CLI server keeps every database in memory, so a
restart (``make down``/``make up``) would silently empty the warehouse and the next publish would
look like a first one. We serve the same ASGI app with its shared instance pointed at a folder, so
each Snowflake database is a DuckDB file under ``<home>/snowflake`` that outlives the process.

Process model as for the broker (lakehouse/stack/services/kafka.py): detached in its own process
group,
pid in ``<home>/state``, output in ``<home>/logs``, stop with SIGTERM then SIGKILL of the group.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
from pathlib import Path
from typing import Any

from lakehouse.stack.processes import (
    ExitedAtStartup,
    cmdline_has,
    ensure_running,
    spawn_detached,
    stop_by_pid_file,
    wait_ready,
)

EMULATOR = "fakesnow"
HOST = "127.0.0.1"
DEFAULT_PORT = 8085
# fakesnow accepts any credentials; these only fill the client's required fields.
ACCOUNT = "fakesnow"
USER = "lakehouse"
PASSWORD = "fakesnow"
MODULE = "lakehouse.stack.services.snowflake"


class SnowflakeError(RuntimeError):
    """The emulator failed to start; the message points at its log."""


def data_dir(home: Path) -> Path:
    return Path(home).resolve() / "snowflake"


def log_file(home: Path, port: int = DEFAULT_PORT) -> Path:
    return Path(home).resolve() / "logs" / f"snowflake-{port}.log"


def _pid_file(home: Path, port: int) -> Path:
    return Path(home).resolve() / "state" / f"snowflake-{port}.pid"


def connect_args(port: int = DEFAULT_PORT) -> dict[str, Any]:
    """snowflake.connector.connect() arguments for the emulator on ``port``."""
    return {
        "account": ACCOUNT,
        "user": USER,
        "password": PASSWORD,
        "host": HOST,
        "port": port,
        "protocol": "http",
        # Telemetry would be posted to the emulator, which has no such endpoint.
        "session_parameters": {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
    }


def port_open(port: int, host: str = HOST) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def is_up(port: int = DEFAULT_PORT) -> bool:
    """True when a Snowflake client can log in and run a query on ``port``."""
    if not port_open(port):
        return False
    import snowflake.connector  # slow import; only when something listens

    try:
        conn = snowflake.connector.connect(**connect_args(port), login_timeout=3)
    except Exception:
        return False
    try:
        return conn.cursor().execute("select 1").fetchone() == (1,)
    except Exception:
        return False
    finally:
        conn.close()


def _is_ours(pid: int) -> bool:
    return cmdline_has(pid, MODULE)


def start(home: Path, port: int = DEFAULT_PORT, timeout_s: float = 60) -> int:
    """Start the emulator detached and wait until a real client logs in; return its pid."""
    if port_open(port):
        raise SnowflakeError(f"port {port} on {HOST} is already in use")
    for folder in (data_dir(home), Path(home) / "state", Path(home) / "logs"):
        folder.mkdir(parents=True, exist_ok=True)
    log = log_file(home, port)
    cmd = [sys.executable, "-m", MODULE, "--port", str(port), "--db-path", str(data_dir(home))]
    proc = spawn_detached(cmd, log, _pid_file(home, port))
    try:
        if wait_ready(proc, lambda: is_up(port), timeout_s, poll_s=0.3):
            return proc.pid
    except ExitedAtStartup as exc:
        _pid_file(home, port).unlink(missing_ok=True)
        raise SnowflakeError(f"fakesnow {exc}; see {log}") from None
    stop(home, port)
    raise SnowflakeError(f"fakesnow did not answer on {HOST}:{port} within {timeout_s}s; see {log}")


def stop(home: Path, port: int = DEFAULT_PORT, timeout_s: float = 20) -> bool:
    """Stop our emulator; return False if none was running. DuckDB files are closed on exit."""
    return stop_by_pid_file(_pid_file(home, port), _is_ours, timeout_s)


def running(home: Path, port: int = DEFAULT_PORT) -> contextlib.AbstractContextManager[bool]:
    """Use the emulator if it is up; otherwise start it and stop it afterwards.

    A context manager yielding True when this call started the emulator.
    """
    return ensure_running(lambda: is_up(port), lambda: start(home, port), lambda: stop(home, port))


def serve(port: int, db_path: Path) -> None:
    """Run fakesnow's HTTP app in this process with databases persisted under ``db_path``."""
    import importlib

    import uvicorn
    from fakesnow.instance import FakeSnow

    # The module, not the ``fakesnow.server()`` function the package exports under that name.
    server = importlib.import_module("fakesnow.server")

    # Every session of the app shares this instance; with a db_path each database is a file.
    server.shared_fs = FakeSnow(db_path=str(db_path))
    uvicorn.run(server.app, host=HOST, port=port, log_level="warning")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--db-path", type=Path, required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("TZ", "UTC")
    serve(args.port, args.db_path)


if __name__ == "__main__":
    main()
