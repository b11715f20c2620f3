"""A pipeline step whose server dies, and one that fails on its own, each say which it was
(steps.step and processes.Vigil, with sleeping processes standing in for the servers).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lakehouse.pipeline import steps
from lakehouse.stack import processes
from lakehouse.stack.processes import Part


def test_a_step_waiting_on_a_dead_server_is_stopped_and_names_it(tmp_path: Path) -> None:
    sleeper = [sys.executable, "-c", "import time; time.sleep(120)"]
    server = subprocess.Popen(sleeper, start_new_session=True)  # a server: a session of its own
    pid_file = tmp_path / "server.pid"
    pid_file.write_text(f"{server.pid}\n")
    log = tmp_path / "server.log"
    part = Part("the stand-in server", "a sleeping process", 1234, log, pid_file)
    with processes.Vigil(poll_s=0.1) as vigil:
        vigil.watch(part)
        with pytest.raises(steps.RunFailed) as failed, steps.step("load", {}, vigil):
            helper = subprocess.Popen(sleeper)  # started by the step, like dbt
            threading.Timer(0.5, os.kill, (server.pid, signal.SIGKILL)).start()
            time.sleep(60)  # a client that waits on its dead server for good
    assert str(failed.value) == (
        f"the stand-in server (a sleeping process, pid {server.pid}, port 1234) died during "
        f"`load`; see {tmp_path / 'server.log'}; run `make run` again: it starts what is down "
        "and resumes from the last commit"
    )
    assert isinstance(failed.value.__cause__, processes.PartDied), "the cause stays chained"
    assert helper.wait(timeout=10) == -signal.SIGTERM, "what the step started is ended"
    assert server.poll() is not None


def test_a_step_failing_with_every_server_alive_says_what_failed(tmp_path: Path) -> None:
    expected = r"^`dbt build` failed: CalledProcessError: dbt exited with code 2 \(output above\)$"
    with (
        processes.Vigil(poll_s=0.1) as vigil,
        pytest.raises(steps.RunFailed, match=expected),
        steps.step("dbt build", {}, vigil),
    ):
        raise subprocess.CalledProcessError(2, ["/x/.venv/bin/dbt", "build"])
    assert vigil.deaths == []
