"""The built-in sources as the registry declares them, and where each system is looked for.

No engine, no service: specs, contracts, backfill declarations and the resolution of a source's
location (dlt's ``SOURCES__<NAME>__<ARGUMENT>`` first, then the production variable, then the
local stand-in) are plain data.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import date

import pytest

from ingestion import lineage, registry
from ingestion.locations import Locations, configured, production
from lakehouse.core.config import Settings, load_settings
from lakehouse.core.naming import DatasetId
from lakehouse.pipeline import backfill, loads

DAY = date(2025, 1, 1)
PRODUCTION_VARIABLES = {
    ("snowflake", "credentials"): "SNOWFLAKE_URL",
    ("crm", "base_url"): "CRM_BASE_URL",
    ("crm", "token"): "CRM_API_TOKEN",
    ("redshift", "credentials"): "REDSHIFT_URL",
    ("fx", "base_url"): "FX_BASE_URL",
    ("kafka", "bootstrap_servers"): "KAFKA_BOOTSTRAP_SERVERS",
}


@pytest.fixture()
def no_production(monkeypatch) -> None:
    """None of the built-in systems configured, whatever the shell running the tests set."""
    for (source, argument), variable in PRODUCTION_VARIABLES.items():
        monkeypatch.delenv(variable, raising=False)
        monkeypatch.delenv(f"SOURCES__{source.upper()}__{argument.upper()}", raising=False)


def test_the_five_built_in_sources_load_in_order_and_each_declares_itself() -> None:
    assert registry.SOURCES == ("snowflake", "crm", "redshift", "fx", "kafka")
    for name in registry.SOURCES:
        spec = registry.spec(name)
        assert spec.name == name
        assert spec.location, name
        assert spec.backfill.cursor or spec.backfill.why_not, name
    declared = {(s, a): v for s in registry.SOURCES for a, v in registry.spec(s).location.items()}
    assert declared == PRODUCTION_VARIABLES


def test_naming_the_sources_imports_no_source_module_nor_its_client_library() -> None:
    """The CLI's ``--source`` choices come from the registry; listing them stays cheap."""
    probe = (
        "import sys; from ingestion import registry; registry.names();"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('dlt', 'confluent_kafka', 'sqlalchemy') or m.startswith('ingestion.')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['ingestion.registry', 'ingestion.spec']"


def test_an_unknown_source_is_refused_naming_the_choices(tmp_settings: Settings) -> None:
    with pytest.raises(ValueError, match="unknown source 'crmm'; choose from snowflake, crm"):
        loads.ingest(tmp_settings, Locations(), ["crmm"])


def test_each_source_declares_its_backfill_modes_and_snowflake_says_what_to_do() -> None:
    declared = {name: registry.spec(name).backfill.supported for name in registry.SOURCES}
    assert declared == {
        "snowflake": ("reload", "downstream-only"),
        "crm": ("window",),
        "redshift": ("window", "ids"),
        "fx": ("window",),
        "kafka": ("window",),
    }
    assert registry.spec("fx").backfill.cursor == "rate_date"
    assert backfill.validate("fx", DAY, DAY).by == "days"
    assert backfill.validate("kafka", DAY, date(2025, 1, 2)).by == "time"
    with pytest.raises(backfill.BackfillError, match=r"replaced whole.*--reload"):
        backfill.validate("snowflake", DAY, DAY)


def test_contracts_follow_the_configured_tables(tmp_settings: Settings) -> None:
    tables = registry.spec("snowflake").contracts(registry.conf("snowflake", tmp_settings))
    assert list(tables) == tmp_settings.sources.snowflake.tables
    assert list(registry.spec("crm").contracts(registry.conf("crm", tmp_settings))) == [
        "contacts",
        "accounts",
    ]


def test_dlts_name_wins_over_the_production_variable_then_the_stand_in(
    no_production: None, monkeypatch
) -> None:
    crm = registry.spec("crm")
    assert configured(crm, "base_url") is None and not production(crm)
    stand_in = Locations({"crm": {"base_url": "http://127.0.0.1:1/", "token": "local"}})
    assert stand_in.of(crm) == {"base_url": "http://127.0.0.1:1/", "token": "local"}

    monkeypatch.setenv("CRM_BASE_URL", "https://crm.example.com/")
    monkeypatch.setenv("CRM_API_TOKEN", "from-the-old-name")
    assert configured(crm, "base_url") == "https://crm.example.com/"
    assert production(crm)
    monkeypatch.setenv("SOURCES__CRM__BASE_URL", "https://crm.example.org/")
    monkeypatch.setenv("SOURCES__CRM__TOKEN", "from-dlt")
    located = Locations().of(crm)
    assert set(located) == {"base_url", "token"}
    assert located["base_url"] == "https://crm.example.org/"
    assert located["token"] == "from-dlt"


def test_a_source_nobody_located_names_the_variable_to_set(no_production: None) -> None:
    with pytest.raises(ValueError, match="SOURCES__KAFKA__BOOTSTRAP_SERVERS"):
        Locations().of(registry.spec("kafka"))


def test_a_failure_names_the_system_without_its_password() -> None:
    # pragma: allowlist nextline secret
    where = Locations({"redshift": {"credentials": "postgresql://u:s3cret@db.example:5439/dev"}})
    said = loads.system("redshift", where)
    assert said == "Redshift database postgresql://u@db.example:5439/dev"
    assert "s3cret" not in said


def test_a_stand_in_is_named_as_the_system_it_stands_in_for(
    no_production: None, tmp_settings: Settings, monkeypatch
) -> None:
    """Lineage names an emulating stand-in (the SQLite file, the HTTP servers) as the system it
    stands in for, under the identity ``services.stand_ins`` configures, never where it listens
    this run; the real PostgreSQL and Kafka broker by their own addresses; a production system by
    its address. Every name follows OpenLineage's naming spec (docs/lineage.md)."""
    everything = frozenset(registry.names())
    where = Locations(
        {
            "snowflake": {"credentials": f"sqlite:///{tmp_settings.home}/sources/snowflake.db"},
            "crm": {"base_url": "http://127.0.0.1:40122/", "token": "local"},
            "fx": {"base_url": "http://127.0.0.1:40123/"},
            "redshift": {"credentials": "postgresql://lakehouse@127.0.0.1:41602/sources"},
            "kafka": {"bootstrap_servers": "127.0.0.1:41604"},
        },
        local=everything,
    )
    named = {
        (source, table): lineage.source_dataset(source, table, tmp_settings, where)
        for source, table in [("snowflake", "customers"), ("crm", "contacts"), ("fx", "rates"),
                              ("redshift", "sessions"), ("kafka", "events")]
    }  # fmt: skip
    assert named == {
        ("snowflake", "customers"): DatasetId(
            "snowflake://lakehouse-shop", "SHOP.PUBLIC.CUSTOMERS"
        ),
        ("crm", "contacts"): DatasetId("https://crm.lakehouse.example:443", "/crm/v1/contacts"),
        ("fx", "rates"): DatasetId("https://fx.lakehouse.example:443", "/fx/v1"),
        ("redshift", "sessions"): DatasetId("postgres://127.0.0.1:41602", "sources.web.sessions"),
        ("kafka", "events"): DatasetId("kafka://127.0.0.1:41604", "events"),
    }
    # the identity is a setting: a deploy names its stand-in as its own account
    monkeypatch.setenv("LAKEHOUSE_SERVICES__STAND_INS__SNOWFLAKE", "snowflake://acme-dev/RAW/SHOP")
    renamed = load_settings()
    assert lineage.source_dataset("snowflake", "orders", renamed, where) == (
        DatasetId("snowflake://acme-dev", "RAW.SHOP.ORDERS")
    )
    production_where = Locations({"fx": {"base_url": "https://fx.example.com:8443/"}})
    assert lineage.source_dataset("fx", "rates", tmp_settings, production_where) == (
        DatasetId("https://fx.example.com:8443", "/fx/v1")
    )
