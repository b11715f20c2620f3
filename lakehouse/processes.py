"""Starting, finding and stopping the detached servers the project runs (Spark engine, Kafka
broker, Snowflake emulator, PostgreSQL).

Each runs as the leader of its own process group (``start_new_session=True``), so one signal to
the group reaches the JVM and anything it spawned. The broker and the emulator keep their pid in
a pid file; the helpers below are the one implementation of that life cycle.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """True while a process with this pid exists (a zombie counts until it is reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap(pid: int) -> None:
    """Collect the exit status if the process is our child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop_group(pid: int, timeout_s: float, poll_s: float = 0.2) -> None:
    """SIGTERM the process group (its shutdown hooks run), SIGKILL it if still alive at timeout."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and pid_alive(pid):
        reap(pid)
        time.sleep(poll_s)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        time.sleep(poll_s)
    reap(pid)


class ExitedAtStartup(RuntimeError):
    """The server process ended before it answered."""

    def __init__(self, returncode: int) -> None:
        super().__init__(f"exited with code {returncode}")
        self.returncode = returncode


def cmdline_has(pid: int, part: str) -> bool:
    """Guard against a recycled pid: ``part`` is one of the process's arguments.

    Where there is no /proc (not Linux) the pid file is trusted, as for the engine.
    """
    if not Path("/proc/self").exists():
        return True
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return False
    return part.encode() in cmdline


def live_pid(pid_file: Path, is_ours: Callable[[int], bool]) -> int | None:
    """The pid in ``pid_file`` if that process is alive and ours, else None."""
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    reap(pid)  # a server that died as our child is a zombie: alive to kill(0), empty cmdline
    return pid if pid_alive(pid) and is_ours(pid) else None


def spawn_detached(
    cmd: Sequence[str],
    log: Path,
    pid_file: Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen:
    """Start ``cmd`` in its own session, output appended to ``log``, pid written to ``pid_file``."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(cmd),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in the caller's terminal does not reach it
        )
    pid_file.write_text(str(proc.pid))
    return proc


def wait_ready(
    proc: subprocess.Popen, ready: Callable[[], bool], timeout_s: float, poll_s: float
) -> bool:
    """Poll ``ready`` until it holds (True) or ``timeout_s`` passes (False).

    Raises ExitedAtStartup if the process ends first.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ExitedAtStartup(proc.returncode)
        if ready():
            return True
        time.sleep(poll_s)
    return False


def stop_by_pid_file(pid_file: Path, is_ours: Callable[[int], bool], timeout_s: float) -> bool:
    """Stop the process group named by ``pid_file``; return False if none was running."""
    pid = live_pid(pid_file, is_ours)
    if pid is not None:
        stop_group(pid, timeout_s)
    pid_file.unlink(missing_ok=True)
    return pid is not None


@contextlib.contextmanager
def ensure_running(
    is_up: Callable[[], bool], start: Callable[[], object], stop: Callable[[], object]
) -> Iterator[bool]:
    """Use a server that is up; otherwise start it and stop it afterwards (no stray process).

    Yields True when this call started the server.
    """
    if is_up():
        yield False
        return
    start()
    try:
        yield True
    finally:
        stop()
