"""Where the lake lives: ``storage.root`` and the one place its URIs are converted per client."""

from __future__ import annotations

import stat

import pytest

from lakehouse.core import storage
from lakehouse.core.config import ConfigError, load_settings
from lakehouse.core.storage import Location


def test_nothing_configured_keeps_the_lake_in_the_home(tmp_settings) -> None:
    home = tmp_settings.home
    assert tmp_settings.storage.root is None
    assert tmp_settings.lake.path == tmp_settings.lake_dir == home / "lake"
    assert tmp_settings.bronze_dir == home / "lake" / "bronze"
    assert tmp_settings.warehouse.spark == str(home / "warehouse")
    assert tmp_settings.bronze.url == (home / "lake" / "bronze").as_uri()
    assert tmp_settings.storage_env() == {}
    assert tmp_settings.bronze.storage_options() is None


def test_an_s3_root_gives_s3_to_delta_rs_and_s3a_to_spark(monkeypatch, tmp_settings) -> None:
    monkeypatch.setenv("LAKEHOUSE_STORAGE__ROOT", "s3://lake-bucket/dev/")
    settings = load_settings()
    assert settings.lake.uri == "s3://lake-bucket/dev/lake"
    assert (
        str(settings.bronze / "crm" / "contacts") == "s3://lake-bucket/dev/lake/bronze/crm/contacts"
    )
    assert settings.warehouse.spark == "s3a://lake-bucket/dev/warehouse"
    assert settings.lake.spark == "s3a://lake-bucket/dev/lake"
    assert storage.bucket_of(settings.lake.uri) == "lake-bucket"
    with pytest.raises(ValueError, match="not a local folder"):
        _ = settings.lake_dir  # no code path may fall back to a local folder silently


def test_the_conversion_goes_both_ways_and_leaves_paths_alone() -> None:
    assert storage.to_spark("s3://b/p/t") == "s3a://b/p/t"
    assert storage.to_delta("s3a://b/p/t") == "s3://b/p/t"
    assert storage.to_spark("/data/lake") == storage.to_delta("/data/lake") == "/data/lake"
    assert Location.of("s3a://b/p/").uri == "s3://b/p"
    assert (Location.of("s3://b/p") / "t").relative_to(Location.of("s3://b")) == "p/t"


@pytest.mark.parametrize("root", ["http://host/lake", "s3://", "s3:///prefix"])
def test_a_root_that_is_neither_a_path_nor_s3_is_refused(monkeypatch, tmp_settings, root) -> None:
    monkeypatch.setenv("LAKEHOUSE_STORAGE__ROOT", root)
    with pytest.raises(ConfigError, match="LAKEHOUSE_STORAGE__ROOT"):
        load_settings()


def test_the_local_server_key_pair_is_generated_private_and_handed_as_aws_variables(
    monkeypatch, tmp_settings
) -> None:
    monkeypatch.setenv("LAKEHOUSE_STORAGE__ROOT", "s3://lake/dev")
    monkeypatch.setenv("LAKEHOUSE_S3_PORT", "41999")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "a-developers-real-key")  # pragma: allowlist secret
    settings = load_settings()
    env = settings.storage_env()
    keys = storage.credentials_file(settings.home)
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:41999"
    assert env["AWS_ACCESS_KEY_ID"].startswith("lakehouse-")  # the local pair, not the real one
    assert settings.bronze.storage_options()["AWS_ACCESS_KEY_ID"] == env["AWS_ACCESS_KEY_ID"]
    assert load_settings().storage_env() == env  # generated once, then read


def test_a_real_s3_takes_endpoint_and_credentials_from_the_environment_only(
    monkeypatch, tmp_settings
) -> None:
    monkeypatch.setenv("LAKEHOUSE_STORAGE__ROOT", "s3://prod-lake/platform")
    monkeypatch.setenv("LAKEHOUSE_STORAGE__LOCAL_SERVER", "false")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-the-environment")  # pragma: allowlist secret
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    settings = load_settings()
    assert settings.storage_env() == {}
    assert not storage.credentials_file(settings.home).exists()
    options = settings.bronze.storage_options()
    assert options["AWS_ACCESS_KEY_ID"] == "from-the-environment"
    assert "AWS_ENDPOINT_URL" not in options
