"""The fast tier: tests that need no engine and no service (`make test-fast`).

Everything here runs on temporary lake homes, in-process stand-ins (the local HTTP service, the
Snowflake file) and recorded artifacts (``fixtures/``); nothing starts a JVM, PostgreSQL, a broker,
the emulator or Airflow. tests/conftest.py refuses a fast test that asks for a fixture which would.
"""

from __future__ import annotations

import pytest

from lakehouse.core.config import Settings, load_settings


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The shipped settings on an empty lake home of the fast tier's own: a fast test never reads
    or writes the engine tier's lake (tests/conftest.py's ``settings``)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAKEHOUSE_HOME", str(tmp_path_factory.mktemp("fast-home")))
        return load_settings()
