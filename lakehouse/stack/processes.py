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
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil


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

    Where there is no /proc (not Linux) the pid file is trusted.
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


# --- watching the platform's own parts while a run uses them ------------------------------------


@dataclass(frozen=True)
class Part:
    """One of the platform's own servers, as a run watches it and as a message names it."""

    name: str  # "the engine"
    what: str  # "Spark Thrift Server"
    port: int
    log: Path
    pid_file: Path  # the pid on its first line (PostgreSQL's postmaster.pid too)

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().split("\n", 1)[0].strip())
        except (FileNotFoundError, ValueError):
            return None


@dataclass(frozen=True)
class Death:
    """A watched part found dead: which process, and during which step."""

    part: Part
    pid: int
    during: str

    def __str__(self) -> str:
        return (f"{self.part.name} ({self.part.what}, pid {self.pid}, port {self.part.port}) "
                f"died during `{self.during}`; see {self.part.log}")  # fmt: skip


class PartDied(BaseException):
    """Raised in the main thread when a part a step uses has died.

    A BaseException, like KeyboardInterrupt: a client's ``except Exception`` retry loop must not
    swallow it, and a client that would otherwise wait on the dead server for good (a Kafka
    consumer polls a dead broker forever) is stopped at once.
    """


def running(proc: psutil.Process) -> bool:
    """True while ``proc`` runs: not exited, not a zombie, and its pid not recycled."""
    reap(proc.pid)  # a server started by this process is our child: a zombie until reaped
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _end_helpers(since: float) -> None:
    """SIGTERM what this process started in its own session since ``since`` (dbt, dbt-ol for the
    step), never a server: every server runs in a session of its own (``start_new_session``)."""
    own = os.getsid(0)
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getsid(child.pid) == own and child.create_time() >= since:
                child.terminate()


class Vigil:
    """Watches the servers a run uses; when one dies in the middle of a step, stops the step.

    A dead server does not always make its client fail: a Kafka consumer waits for the broker
    to come back, a Snowflake connector retries for minutes, and dbt goes on failing model after
    model. So a thread polls the watched processes (by pid, not by port: a port answers late
    under load, a pid is gone at once) and, on a death, ends the helpers the step started (dbt)
    and interrupts the main thread with PartDied. ``census`` gives the deaths for the message.
    """

    SIGNAL = signal.SIGUSR1
    RESIGNAL_S = 15.0  # if a client swallowed the first interrupt

    def __init__(self, poll_s: float = 0.5) -> None:
        self.poll_s = poll_s
        self.deaths: list[Death] = []
        self._watched: dict[Part, psutil.Process] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._step: str | None = None
        self._last_step = "the start"
        self._step_started = time.time()
        self._signalled_at: float | None = None
        self._thread = threading.Thread(target=self._loop, name="vigil", daemon=True)
        self._previous_handler: object = None
        self._can_interrupt = threading.current_thread() is threading.main_thread()

    def __enter__(self) -> Vigil:
        if self._can_interrupt:
            self._previous_handler = signal.signal(self.SIGNAL, self._on_signal)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self._can_interrupt:
            signal.signal(self.SIGNAL, self._previous_handler)  # type: ignore[arg-type]

    def watch(self, part: Part) -> None:
        """Watch ``part`` from now on if its pid file names a live process."""
        pid = part.pid()
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid) if pid is not None else None
            if proc is not None and running(proc):
                with self._lock:
                    self._watched[part] = proc

    def unwatch(self, part: Part) -> None:
        """Stop watching ``part`` (before it is stopped on purpose); a death until now counts."""
        self._check(self._step or self._last_step, only=part)
        with self._lock:
            self._watched.pop(part, None)

    @contextlib.contextmanager
    def during(self, step: str) -> Iterator[None]:
        """Mark the block as ``step``: a death now interrupts it and is reported against it."""
        self._step = self._last_step = step
        self._step_started, self._signalled_at = time.time(), None
        try:
            yield
        finally:
            self._step = None

    def census(self, step: str) -> list[Death]:
        """Every death so far, checking each watched part once more now."""
        self._check(step)
        return list(self.deaths)

    def _check(self, step: str, only: Part | None = None) -> None:
        """Record the watched parts (or ``only``) found dead, against ``step``."""
        with self._lock:
            for part, proc in list(self._watched.items()):
                if (only is None or part == only) and not running(proc):
                    self.deaths.append(Death(part, proc.pid, step))
                    del self._watched[part]

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            self._check(self._step or self._last_step)
            if self._step is None or not self.deaths:
                continue
            last = self._signalled_at
            if last is None or time.monotonic() - last > self.RESIGNAL_S:
                self._interrupt()

    def _interrupt(self) -> None:
        _end_helpers(since=self._step_started - 1.0)  # create_time is rounded
        self._signalled_at = time.monotonic()
        if self._can_interrupt:
            signal.pthread_kill(threading.main_thread().ident, self.SIGNAL)  # type: ignore[arg-type]

    def _on_signal(self, signum: int, frame: object) -> None:
        if self._step is not None and self.deaths:
            raise PartDied("; ".join(str(d) for d in self.deaths))
