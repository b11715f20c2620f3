"""Which worker of the standalone cluster ran which executor of the engine, while work runs.

Shared by the engine-tier tests that run the cluster (test_cluster, test_distributed): a thread
polls the master's report (and each live worker's) every second until ``finish``.
"""

from __future__ import annotations

import http.client
import threading

from lakehouse.core.config import Settings
from lakehouse.stack import spark_cluster

APP_NAME = "lakehouse-engine"


class ExecutorWatch(threading.Thread):
    """Polls the master while a build or a run goes on; ``finish`` returns, per worker id, the
    ids of the engine's executors it was seen running."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.settings, self.seen = settings, {}
        self.stopped = threading.Event()
        self.start()

    def run(self) -> None:
        while not self.stopped.wait(1.0):
            try:
                running = spark_cluster.executors_by_worker(self.settings, APP_NAME)
            except (OSError, ValueError, KeyError, http.client.HTTPException):
                # no master yet (a run ingests first), a worker just killed (its UI gone), or
                # a UI answering half a page while it starts or stops
                continue
            for worker, executors in running.items():
                self.seen.setdefault(worker, set()).update(executors)

    def finish(self) -> dict[str, set[str]]:
        self.stopped.set()
        self.join()
        return self.seen
