"""Dataset identities: one OpenLineage name per dataset, the same whoever emits it, never with
credentials in it (lakehouse/core/naming.py)."""

from __future__ import annotations

from lakehouse.core import naming
from lakehouse.core.config import Settings
from lakehouse.publish.warehouses import warehouse


def test_dataset_names_never_carry_credentials() -> None:
    # pragma: allowlist nextline secret
    url = "postgresql+psycopg2://lakehouse:s3cr%40t@db.internal:5439/analytics"
    assert naming.sql_table(url, "web", "sessions") == naming.DatasetId(
        "postgres://db.internal:5439", "analytics.web.sessions"
    )
    account = "snowflake://loader:pw@acme-eu1/RAW/SHOP?warehouse=LOAD"
    assert naming.sql_table(account, None, "orders") == naming.DatasetId(
        "snowflake://acme-eu1", "RAW.SHOP.ORDERS"
    )
    with_token = "https://user:token@crm.example.com:8443/api"  # pragma: allowlist secret
    api = naming.http_endpoint(with_token, "crm/v1/contacts")
    assert api == naming.DatasetId("https://crm.example.com:8443", "/api/crm/v1/contacts")


def test_a_bronze_table_has_one_name_per_emitter(tmp_settings: Settings) -> None:
    """dbt-ol names it by table on the engine; dlt and Airflow's Asset by its path."""
    host, port = tmp_settings.engine.host, tmp_settings.engine.port
    assert naming.bronze_table(tmp_settings, "crm", "contacts") == naming.DatasetId(
        f"spark://{host}:{port}", "bronze_crm.contacts"
    )
    location = naming.bronze_location(tmp_settings, "crm", "contacts")
    assert location == naming.DatasetId(
        "file", str((tmp_settings.bronze_dir / "crm" / "contacts").resolve())
    )
    # silver/gold likewise by location, the catalog name kept as the alias dbt-ol emits
    assert naming.lake_table(tmp_settings, "gold.customer_360") == naming.location_dataset(
        tmp_settings.warehouse / "gold.db" / "customer_360"
    )
    assert naming.catalog_table(tmp_settings, "gold.customer_360") == naming.DatasetId(
        naming.spark_namespace(tmp_settings), "gold.customer_360"
    )


def test_source_systems_follow_openlineage_naming() -> None:
    """Each name is the one OpenLineage's naming spec gives the system (the client's helpers
    build them); an address without a port gets the system's default, as the spec's namespaces
    all carry one."""
    assert naming.kafka_topic(" b1:9092,b2:9092", "events") == naming.DatasetId(
        "kafka://b1:9092", "events"
    )
    assert naming.kafka_topic("broker", "events").namespace == "kafka://broker:9092"
    assert naming.sql_table("postgresql://u@h:5432/web", "public", "sessions") == (
        naming.DatasetId("postgres://h:5432", "web.public.sessions")
    )
    assert naming.sql_table("postgresql+psycopg2://h/web", "public", "s").namespace == (
        "postgres://h:5432"
    )
    # the schema in the URL's path counts when the caller names none
    assert naming.sql_table("redshift+psycopg2://h/db/raw", None, "t") == naming.DatasetId(
        "redshift://h:5439", "db.raw.t"
    )
    # Redshift: redshift://<cluster identifier>.<region>:<port>, read from the endpoint host
    endpoint = "redshift+psycopg2://u@analytics.c1x2y3.eu-west-1.redshift.amazonaws.com:5439/dw"
    assert naming.sql_table(endpoint, "web", "sessions") == naming.DatasetId(
        "redshift://analytics.eu-west-1:5439", "dw.web.sessions"
    )
    # Snowflake: snowflake://<organization>-<account>, DATABASE.SCHEMA.TABLE
    assert naming.snowflake_table("ACME-Prod", "analytics", "gold", "orders") == (
        naming.DatasetId("snowflake://acme-prod", "ANALYTICS.GOLD.ORDERS")
    )
    # a trailing slash on the base URL makes no second dataset
    assert (
        naming.http_endpoint("http://h:8080/", "/fx/v1/rates")
        == naming.http_endpoint("http://h:8080", "fx/v1/rates")
        == naming.DatasetId("http://h:8080", "/fx/v1/rates")
    )
    # HTTP has no spec entry: its general rule, scheme://authority with the port, path as name
    assert naming.http_endpoint("https://api.example.com/v2", "rates") == naming.DatasetId(
        "https://api.example.com:443", "/v2/rates"
    )


def test_the_warehouses_are_named_by_the_spec_the_emulator_as_its_configured_account(
    tmp_settings: Settings, monkeypatch
) -> None:
    """fakesnow is named as the Snowflake account it stands in for; the local PostgreSQL, a real
    PostgreSQL, as PostgreSQL; production by SNOWFLAKE_ACCOUNT and the Redshift endpoint."""
    for variable in ("SNOWFLAKE_ACCOUNT", "SNOWFLAKE_DATABASE", "REDSHIFT_HOST", "REDSHIFT_PORT",
                     "REDSHIFT_DATABASE"):  # fmt: skip
        monkeypatch.delenv(variable, raising=False)
    snowflake = warehouse("snowflake", tmp_settings)
    redshift = warehouse("redshift", tmp_settings)
    account = tmp_settings.services.stand_ins.snowflake_warehouse
    assert snowflake.dataset("customer_360") == naming.DatasetId(
        f"snowflake://{account}", "ANALYTICS.GOLD.CUSTOMER_360"
    )
    port = tmp_settings.services.postgres_port
    assert redshift.dataset("customer_360") == naming.DatasetId(
        f"postgres://127.0.0.1:{port}", "analytics.gold.customer_360_history"
    )
    monkeypatch.setenv("SNOWFLAKE_ACCOUNT", "acme-prod")
    monkeypatch.setenv("REDSHIFT_HOST", "dw.c1x2y3.us-east-1.redshift.amazonaws.com")
    assert snowflake.dataset("orders").namespace == "snowflake://acme-prod"
    assert redshift.dataset("orders") == naming.DatasetId(
        "redshift://dw.us-east-1:5439", "analytics.gold.orders_history"
    )
