"""Configuration is validated at start-up, with errors that name the file, key and problem."""

from pathlib import Path

import pytest
from config_files import write_config

from lakehouse.core.config import ConfigError, load_settings


@pytest.fixture(autouse=True)
def _no_overrides(monkeypatch) -> None:
    """The suite points LAKEHOUSE_* at its test engine; these tests read the files alone."""
    for name in ("LAKEHOUSE_HOME", "LAKEHOUSE_THRIFT_PORT", "LAKEHOUSE_THRIFT_HOST"):
        monkeypatch.delenv(name, raising=False)


def test_shipped_config_is_valid() -> None:
    settings = load_settings()
    assert settings.home.is_absolute()
    assert settings.lake_dir == settings.home / "lake"
    assert "EUR" in settings.sources.fx.currencies


def test_wrong_type_names_file_and_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, lambda raw: raw["engine"].update(port="ten thousand"))
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert str(path) in str(err.value)
    assert "engine.port" in str(err.value)


def test_missing_key_names_it(tmp_path: Path) -> None:
    path = write_config(tmp_path, lambda raw: raw["sources"]["fx"].pop("currencies"))
    with pytest.raises(ConfigError, match=r"sources\.fx\.currencies: Field required"):
        load_settings(path)


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path, lambda raw: raw["engine"].update(prot=10000))
    with pytest.raises(ConfigError, match=r"engine\.prot: Extra inputs are not permitted"):
        load_settings(path)


def test_currency_codes_are_checked(tmp_path: Path) -> None:
    path = write_config(
        tmp_path, lambda raw: raw["sources"]["fx"].update(currencies=["EUR", "euro"])
    )
    with pytest.raises(ConfigError, match=r"sources\.fx\.currencies\.1"):
        load_settings(path)


def test_a_stand_in_identity_must_be_an_address_of_the_system_it_stands_in_for(
    tmp_path: Path,
) -> None:
    """services.stand_ins names what lineage calls each stand-in (docs/lineage.md): a value that
    is no such address is refused at start-up, naming the key, not emitted as a broken name."""
    for key, value in [("snowflake", "sqlite:///shop.db"), ("crm", "crm.example.com"),
                       ("snowflake_warehouse", "snowflake://acme-prod")]:  # fmt: skip
        path = write_config(
            tmp_path, lambda raw, k=key, v=value: raw["services"]["stand_ins"].update({k: v})
        )
        with pytest.raises(ConfigError, match=rf"services\.stand_ins\.{key}"):
            load_settings(path)


def test_environment_overrides_paths_and_port(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("LAKEHOUSE_THRIFT_PORT", "12345")
    settings = load_settings()
    assert settings.home == (tmp_path / "elsewhere").resolve()
    assert settings.engine.port == 12345
    assert settings.metastore_dir == settings.home / "metastore"
