"""Stopping the detached servers the project starts (Spark engine, Kafka broker).

Each runs as the leader of its own process group (``start_new_session=True``), so one signal to
the group reaches the JVM and anything it spawned.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time


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
