"""Dataset identities: one OpenLineage name per dataset, the same whoever emits it, never with
credentials in it (lakehouse/core/naming.py)."""

from __future__ import annotations

from lakehouse.core import naming
from lakehouse.core.config import Settings


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
    assert naming.kafka_topic(" b1:9092,b2:9092", "events") == naming.DatasetId(
        "kafka://b1:9092", "events"
    )
    assert naming.sql_table("postgresql://u@h:5432/web", "public", "sessions") == (
        naming.DatasetId("postgres://h:5432", "web.public.sessions")
    )
    # the schema in the URL's path counts when the caller names none
    assert naming.sql_table("redshift+psycopg2://h/db/raw", None, "t").name == "db.raw.t"
    # a SQLite file (the Snowflake stand-in): the file is the database, named as its URL
    url = "sqlite:////tmp/shop.db"
    assert naming.sql_table(url, None, "orders") == naming.DatasetId(url, "main.orders")
    # a trailing slash on the base URL makes no second dataset
    assert (
        naming.http_endpoint("http://h:8080/", "/fx/v1/rates")
        == naming.http_endpoint("http://h:8080", "fx/v1/rates")
        == naming.DatasetId("http://h:8080", "/fx/v1/rates")
    )
