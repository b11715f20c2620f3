"""The engine launcher's decisions that need no engine: a warm-up against a port nothing answers,
and a half-created Derby metastore left by a start that was killed."""

from __future__ import annotations

import logging
import socket

from lakehouse.core.config import load_settings
from lakehouse.stack import engine
from lakehouse.transform import warmup


def test_a_failed_warm_up_never_fails_the_start(tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path))
    monkeypatch.setenv("LAKEHOUSE_THRIFT_PORT", str(_free_port()))  # nothing answers there
    with caplog.at_level(logging.WARNING, logger=warmup.__name__):
        warmup.warm_up(load_settings())  # returns: the start goes on
    [warned] = [r for r in caplog.records if r.name == warmup.__name__]
    assert warned.levelno == logging.WARNING
    assert warned.getMessage().startswith("engine warm-up failed: ")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_metastore_left_half_created_is_discarded_and_a_whole_one_kept(tmp_path) -> None:
    """An engine stopped while Derby created its metastore left a folder Derby refuses for good
    (XBM0A: no service.properties); the next launch must start afresh, never touch a whole one."""
    half = tmp_path / "half" / "metastore_db"
    (half / "seg0").mkdir(parents=True)
    (half / "seg0" / "c10.dat").write_bytes(b"\0" * 64)
    assert engine.discard_unfinished_metastore(half.parent) is True
    assert not half.exists()

    whole = tmp_path / "whole" / "metastore_db"
    (whole / "seg0").mkdir(parents=True)
    (whole / "service.properties").write_text(
        "derby.serviceProtocol=org.apache.derby.database.Database\n"
    )
    assert engine.discard_unfinished_metastore(whole.parent) is False
    assert (whole / "service.properties").exists() and (whole / "seg0").is_dir()
    assert engine.discard_unfinished_metastore(tmp_path / "none") is False
