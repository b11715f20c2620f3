"""A lake home filled with one sample world and one set of source systems refuses another.

Each test fills a home of its own through the real loaders (the Snowflake file, the local HTTP
service for FX, dlt into Delta), with the suite's PostgreSQL and Kafka given as production
endpoints (so the home's record names them), then runs commands with other settings: they stop
before touching anything, saying what differs and how to go on, and each way on works.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import deltalake
import pytest

from lakehouse.cli.main import main
from lakehouse.core.config import Settings, load_settings
from lakehouse.pipeline import home_record, steps
from lakehouse.stack import source_systems as systems

SCALE = os.environ["LAKEHOUSE_SCALE"]  # the suite's (conftest), e.g. 0.01
DIRTY_SHARE = os.environ["LAKEHOUSE_DIRTY_SHARE"]
OTHER_SCALE = str(float(SCALE) * 2)
LOADED = ["snowflake", "fx"]  # the sources with local stand-ins that need no server


@pytest.fixture()
def home(tmp_path: Path, monkeypatch, source_systems) -> Path:
    """A fresh lake home; PostgreSQL and Kafka (not loaded here) given as production systems,
    with a password in the URL that must never be written down."""
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LAKEHOUSE_SCALE", SCALE)
    monkeypatch.setenv("REDSHIFT_URL", source_systems.redshift_url)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", source_systems.kafka_bootstrap)
    for name in ("SNOWFLAKE_URL", "CRM_BASE_URL", "FX_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "home"


def _state(settings: Settings) -> dict[str, object]:
    """What a refused command must leave as it was: every bronze table's Delta version, the
    local Snowflake file's bytes, the seeded generation and the home's record."""
    tables = {
        str(log.parent.relative_to(settings.bronze_dir)): deltalake.DeltaTable(
            str(log.parent)
        ).version()
        for log in settings.bronze_dir.glob("*/*/_delta_log")
    }
    snowflake = systems.snowflake_file(settings)
    return {
        "bronze": tables,
        "snowflake": hashlib.sha256(snowflake.read_bytes()).hexdigest(),
        "generation": systems.seeded_generation(settings),
        "record": home_record.read(settings),
    }


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture()
def cli(capsys) -> Callable[..., Ran]:
    """``lakehouse <args>`` through the CLI's entry point, in this process (its import of dlt
    costs seconds per subprocess); the environment is the test's."""

    def run(*args: str) -> Ran:
        capsys.readouterr()
        code = main(list(args))
        out = capsys.readouterr()
        return Ran(code, out.out, out.err)

    return run


def test_first_load_records_the_world_and_systems_without_credentials(home: Path) -> None:
    settings = load_settings()
    steps.ingest(settings, LOADED)
    record = json.loads((home / "home.json").read_text())
    assert record["sample_world"]["scale"] == float(SCALE)
    assert record["sample_world"]["currencies"] == list(settings.sources.fx.currencies)
    systems_ = record["source_systems"]
    assert systems_["snowflake"] == systems_["crm"] == systems_["fx"] == home_record.LOCAL
    port = settings.services.postgres_port
    assert systems_["redshift"] == f"postgresql://127.0.0.1:{port}/web"
    assert systems_["kafka"] == os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    text = (home / "home.json").read_text()
    assert "lakehouse:" not in text and "@" not in text, "no user or password recorded"


def test_generation_2_at_another_scale_is_refused_and_changes_nothing(
    home: Path, monkeypatch, cli
) -> None:
    """The issue's case: `lakehouse ingest --generation 2` without the home's LAKEHOUSE_SCALE."""
    settings = load_settings()
    steps.ingest(settings, LOADED)
    before = _state(settings)
    assert before["bronze"]["snowflake/orders"] >= 0 and before["generation"] == 1

    monkeypatch.setenv("LAKEHOUSE_SCALE", OTHER_SCALE)
    refused = cli("ingest", "--generation", "2")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    message = refused.stderr
    assert f"sample_data.scale: the home has {float(SCALE)}, this command {float(OTHER_SCALE)}" in (
        message
    )
    assert f"LAKEHOUSE_SCALE={float(SCALE)}" in message  # how to run with the home's settings
    assert "LAKEHOUSE_HOME=" in message and "lakehouse home adopt" in message
    assert f"delete {settings.home}" in message
    assert "seeded" not in refused.stdout, refused.stdout
    with pytest.raises(home_record.HomeMismatch, match=r"sample_data\.scale"):
        steps.ingest(load_settings(), LOADED, generation=2)
    assert _state(settings) == before, "a refused command changed the home"

    monkeypatch.setenv("LAKEHOUSE_SCALE", SCALE)  # the home's settings: goes on
    [snowflake] = steps.ingest(load_settings(), ["snowflake"], generation=2)
    assert systems.seeded_generation(settings) == 2
    assert snowflake.rows_by_table["orders"] > 0
    # and back to generation 1 would put an older snapshot beside newer data: refused too
    moved = _state(settings)
    back = cli("ingest", "--generation", "1")
    assert back.returncode == 2 and "holds generation 2" in back.stderr, back.stderr
    assert _state(settings) == moved


def test_other_source_system_is_refused_naming_it(home: Path, monkeypatch) -> None:
    settings = load_settings()
    steps.ingest(settings, LOADED)
    before = _state(settings)
    # a made-up password: the record must never hold it  # pragma: allowlist nextline secret
    monkeypatch.setenv("SNOWFLAKE_URL", "snowflake://loader:s3cret@acme-prod/raw/sales?role=x")
    with pytest.raises(home_record.HomeMismatch) as refused:
        steps.ingest(load_settings(), ["snowflake"])
    message = str(refused.value)
    assert (
        "source system snowflake: the home has local stand-in, this command "
        "snowflake://acme-prod/raw/sales" in message
    )
    assert "SNOWFLAKE_URL unset" in message
    assert "s3cret" not in message and "loader" not in message
    # a production home's production system moved: the record says where it was
    monkeypatch.delenv("SNOWFLAKE_URL")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "10.0.0.7:9092")
    with pytest.raises(home_record.HomeMismatch, match="KAFKA_BOOTSTRAP_SERVERS pointing at"):
        steps.ingest(load_settings(), ["fx"])
    assert _state(settings) == before


def test_ways_on_another_home_and_adopt(home: Path, tmp_path: Path, monkeypatch, cli) -> None:
    settings = load_settings()
    steps.ingest(settings, LOADED)

    # Another lake home takes the new settings.
    monkeypatch.setenv("LAKEHOUSE_SCALE", OTHER_SCALE)
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path / "other"))
    steps.ingest(load_settings(), ["snowflake"])
    assert home_record.read(load_settings())["sample_world"]["scale"] == float(OTHER_SCALE)

    # The same PostgreSQL at another address (localhost, not 127.0.0.1): refused, then adopted.
    monkeypatch.setenv("LAKEHOUSE_SCALE", SCALE)
    monkeypatch.setenv("LAKEHOUSE_HOME", str(home))
    moved = os.environ["REDSHIFT_URL"].replace("@127.0.0.1:", "@localhost:")
    monkeypatch.setenv("REDSHIFT_URL", moved)
    refused = cli("ingest", "--source", "redshift")
    assert refused.returncode == 2 and "source system redshift" in refused.stderr, refused.stderr
    adopted = cli("home", "adopt")
    assert adopted.returncode == 0, adopted.stderr
    assert "source system redshift: was postgresql://127.0.0.1" in adopted.stdout
    shown = cli("home", "show")
    assert shown.returncode == 0 and "differs" not in shown.stdout, shown.stdout
    assert home_record.read(settings)["source_systems"]["redshift"].startswith(
        "postgresql://localhost:"
    )
    [fx] = steps.ingest(load_settings(), ["fx"])
    assert fx.rows_by_table["rates"] > 0


def test_home_without_record_is_adopted_only_when_its_data_match(home: Path, monkeypatch) -> None:
    """Homes filled before homes remembered: all-local stand-ins whose Snowflake data are the
    current settings' world get the record; anything that cannot be shown to match is refused."""
    settings = load_settings()
    steps.ingest(settings, LOADED)
    home_record.record_file(settings).unlink()
    monkeypatch.delenv("REDSHIFT_URL")
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS")

    monkeypatch.setenv("LAKEHOUSE_SCALE", OTHER_SCALE)
    with pytest.raises(home_record.HomeMismatch, match="local Snowflake customers"):
        home_record.check(load_settings())
    monkeypatch.setenv("LAKEHOUSE_DIRTY_SHARE", "0.2")
    monkeypatch.setenv("LAKEHOUSE_SCALE", SCALE)
    with pytest.raises(home_record.HomeMismatch, match="not those of the current"):
        home_record.check(load_settings())
    monkeypatch.setenv("LAKEHOUSE_DIRTY_SHARE", DIRTY_SHARE)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "10.0.0.7:9092")
    with pytest.raises(home_record.HomeMismatch, match="kafka from production"):
        home_record.check(load_settings())
    assert home_record.read(settings) is None, "a refused check wrote a record"

    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS")
    said = home_record.check(load_settings())
    assert said and "recorded" in said
    assert home_record.read(settings)["sample_world"]["scale"] == float(SCALE)
