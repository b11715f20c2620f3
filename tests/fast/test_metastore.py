"""The engine's shared metastore settings, its password and what a Derby-era home holds."""

from __future__ import annotations

import stat

from lakehouse.core.config import Settings
from lakehouse.stack import engine, metastore


def test_the_engine_uses_the_postgres_metastore_not_derby(tmp_settings: Settings) -> None:
    conf = engine.spark_conf(tmp_settings)
    port = tmp_settings.services.postgres_port
    assert conf["spark.hadoop.javax.jdo.option.ConnectionURL"] == (
        f"jdbc:postgresql://127.0.0.1:{port}/metastore?sslmode=disable"
    )
    assert conf["spark.hadoop.javax.jdo.option.ConnectionDriverName"] == "org.postgresql.Driver"
    assert conf["spark.hadoop.javax.jdo.option.ConnectionUserName"] == "lakehouse_metastore"
    assert not any("derby" in f"{key}={value}".lower() for key, value in conf.items())
    # no foreign keys: DataNucleus adding one inside an open transaction hangs the engine
    assert conf["spark.hadoop.datanucleus.schema.autoCreateConstraints"] == "false"


def test_the_password_is_generated_once_per_home_and_private(
    tmp_settings: Settings, monkeypatch
) -> None:
    monkeypatch.delenv(metastore.PASSWORD_ENV, raising=False)
    first = metastore.password(tmp_settings)
    assert len(first) >= 24 and metastore.password(tmp_settings) == first
    path = tmp_settings.metastore_dir / "postgres.password"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    monkeypatch.setenv(metastore.PASSWORD_ENV, "from-the-environment")  # pragma: allowlist secret
    assert metastore.password(tmp_settings) == "from-the-environment"
    assert metastore.session_env(tmp_settings)[metastore.PASSWORD_ENV] == "from-the-environment"


def test_only_a_complete_derby_database_is_adopted(tmp_settings: Settings) -> None:
    derby = tmp_settings.metastore_dir / "metastore_db"
    assert metastore.derby_to_adopt(tmp_settings.metastore_dir) is None
    derby.mkdir(parents=True)
    assert metastore.derby_to_adopt(tmp_settings.metastore_dir) is None  # creation interrupted
    (derby / "service.properties").write_text("")
    assert metastore.derby_to_adopt(tmp_settings.metastore_dir) == derby


def test_warehouse_tables_are_the_delta_tables_under_schema_folders(
    tmp_settings: Settings,
) -> None:
    warehouse = tmp_settings.warehouse_dir
    for folder in ("gold.db/customer_360/_delta_log", "silver.db/stg_orders/_delta_log",
                   "silver.db/not_delta/part-0", "stray/_delta_log"):  # fmt: skip
        (warehouse / folder).mkdir(parents=True)
    assert metastore.warehouse_tables(warehouse) == [
        ("gold", "customer_360", warehouse / "gold.db" / "customer_360"),
        ("silver", "stg_orders", warehouse / "silver.db" / "stg_orders"),
    ]


def test_the_password_reaches_the_engine_in_a_private_file_not_its_command_line(
    tmp_settings: Settings, monkeypatch
) -> None:
    monkeypatch.delenv(metastore.PASSWORD_ENV, raising=False)
    secret = metastore.password(tmp_settings)
    cmd = engine.server_command(tmp_settings)
    assert not [part for part in cmd if secret in part]  # `ps` shows every user the command line
    path = engine.write_secrets(tmp_settings)
    assert cmd[cmd.index("--properties-file") + 1] == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == f"spark.hadoop.javax.jdo.option.ConnectionPassword={secret}\n"
