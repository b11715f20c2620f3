"""Lineage emission without a pipeline: where events go (file, a backend, a backend that is
down) and what a failed job leaves, on a temporary lake home."""

from __future__ import annotations

import json
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lakehouse.core import naming
from lakehouse.core.config import Settings
from lakehouse.core.datasets import Dataset
from lakehouse.observability.lineage import emit, graph


def test_openlineage_url_sends_events_to_a_backend_instead_of_the_file(
    tmp_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OPENLINEAGE_URL (here a receiver standing in for Marquez) replaces the file transport."""
    received: list[dict] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(
                {"path": self.path,
                 "event": json.loads(self.rfile.read(int(self.headers["Content-Length"])))}
            )  # fmt: skip
            self.send_response(201)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("OPENLINEAGE_URL", f"http://127.0.0.1:{server.server_port}")
    # the client translates OPENLINEAGE_URL into OPENLINEAGE__TRANSPORT__* variables of this
    # process; they must not outlive the test
    before = set(os.environ)
    try:
        source = Dataset(naming.kafka_topic("broker:9092", "events"), {"event_id": "text"})
        with emit.job_run(tmp_settings, "test.job", "DLT", [source], "dlt") as run:
            run.outputs = [Dataset(naming.path_dataset(tmp_settings.home / "t"), rows=1)]
    finally:
        server.shutdown()
        for name in set(os.environ) - before:
            os.environ.pop(name)
    assert [r["event"]["eventType"] for r in received] == ["START", "COMPLETE"]
    assert {r["path"] for r in received} == {"/api/v1/lineage"}
    assert received[1]["event"]["inputs"][0]["namespace"] == "kafka://broker:9092"
    assert not emit.events_file(tmp_settings).exists()
    assert "OPENLINEAGE__TRANSPORT__TYPE" not in emit.environment(tmp_settings)


def test_a_lineage_backend_that_is_down_does_not_fail_the_job(
    tmp_settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("OPENLINEAGE_URL", f"http://127.0.0.1:{port}")
    before = set(os.environ)
    try:
        with emit.job_run(tmp_settings, "test.unreachable", "DLT", [], "dlt") as run:
            run.outputs = [Dataset(naming.path_dataset(tmp_settings.home / "t"), rows=1)]
    finally:
        for name in set(os.environ) - before:
            os.environ.pop(name)
    sent = [r.getMessage() for r in caplog.records if "not sent" in r.getMessage()]
    assert len(sent) == 2 and "START event of test.unreachable" in sent[0]


def test_a_failed_job_emits_fail_with_the_error(tmp_settings: Settings) -> None:
    with pytest.raises(RuntimeError, match="source went away"):  # noqa: SIM117
        with emit.job_run(tmp_settings, "test.failing", "DLT", [], "dlt"):
            raise RuntimeError("source went away")
    found, _ = graph.read_events([emit.events_file(tmp_settings)])
    assert [e["eventType"] for e in found] == ["START", "FAIL"]
    assert found[1]["run"]["facets"]["errorMessage"]["message"] == "source went away"
