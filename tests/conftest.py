"""Shared fixtures: one real Spark Thrift Server and one pipeline run for the whole session.

Spark start-up costs 10-25 s, so the suite pays it once: the engine starts on its own port with
its own lake home (never the data of `make run`), every test queries it, and it stops at the end.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakehouse.config import REPO_ROOT, Settings, load_settings

TEST_HOME = REPO_ROOT / ".lakehouse-test"
os.environ.setdefault("LAKEHOUSE_HOME", str(TEST_HOME))
os.environ.setdefault(
    "LAKEHOUSE_THRIFT_PORT", os.environ.get("LAKEHOUSE_TEST_THRIFT_PORT", "10100")
)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def spark(settings: Settings) -> Iterator[Settings]:
    """A running engine on a fresh test lake; stopped after the session if we started it."""
    from lakehouse import engine

    if not engine.is_up(settings) and settings.home == TEST_HOME.resolve():
        shutil.rmtree(settings.home, ignore_errors=True)
    with engine.running(settings):
        yield settings


@pytest.fixture(scope="session")
def ingested(spark: Settings) -> list:
    """Bronze loaded once by the real dlt pipeline against the local HTTP service."""
    from lakehouse import pipeline

    return pipeline.ingest(spark)


@pytest.fixture(scope="session")
def dbt_built(ingested: list, spark: Settings) -> Path:
    """`dbt build` (models, data tests, unit tests) once; returns the dbt target folder."""
    from lakehouse import pipeline

    result = pipeline.dbt(spark, "build", check=False)
    assert result.returncode == 0, "dbt build failed; see dbt_project/logs/dbt.log"
    return pipeline.DBT_PROJECT_DIR / "target"
