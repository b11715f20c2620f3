"""A source defined outside the platform joins it through the registry alone.

The source below (partners, read from a JSON-lines file) is declared in this test, as a new
module of ingestion/ would declare it: its dlt source, its contract, the dataset it reads, its
backfill cursor, where it lives (``SOURCES__PARTNERS__PATH``, injected by dlt) and its settings
model. Registered at runtime, it loads into bronze, shows in the lineage events and the dataset
registry, and is backfilled by date, without a line of any other module naming it. No engine
and no service: the five built-in systems are pointed elsewhere, so none is started.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import deltalake
import dlt
import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field

from ingestion import lineage as ingestion_lineage
from ingestion import registry
from ingestion.contracts import GuardStats, TableContract, attach_guard, dlt_schema_contract
from ingestion.locations import Locations
from ingestion.spec import Backfill, LoadRequest, SourceSpec
from lakehouse.core import naming
from lakehouse.core.config import (
    DEFAULT_CONFIG_FILE,
    ConfigError,
    SchemaPolicy,
    Settings,
    load_settings,
)
from lakehouse.observability.lineage import emit, graph
from lakehouse.observability.lineage import registry as dataset_registry
from lakehouse.pipeline import backfill, home_record, loads

# --- the source, as its module would declare it ------------------------------------------------

PARTNERS = TableContract(
    name="partners",
    columns={
        "partner_id": {"data_type": "bigint", "nullable": False},
        "name": {"data_type": "text"},
        "tier": {"data_type": "text"},
        "signed_on": {"data_type": "date", "nullable": False},
    },
    required=("partner_id", "signed_on"),
    cursor="signed_on",
)


class PartnersConfig(BaseModel):
    """``sources.partners`` in lakehouse.yml: optional; every field has a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    schema_policy: SchemaPolicy = SchemaPolicy()
    first_day: date = date(2025, 1, 1)
    page_lines: int = Field(100, ge=1)


@dlt.source(name="partners", section="partners")
def partners_source(
    path: str = dlt.config.value,
    first_day: date = date(2025, 1, 1),
    until: date | None = None,
    policy: SchemaPolicy | None = None,
    stats: GuardStats | None = None,
) -> Any:
    """Partners by ``signed_on``; with ``until``, exactly ``first_day``..``until`` (a backfill)."""
    policy = policy or SchemaPolicy()
    stats = stats if stats is not None else GuardStats()
    PARTNERS.register(dlt.current.source_schema())
    window = dlt.sources.incremental(
        "signed_on",
        initial_value=first_day,
        end_value=until + timedelta(days=1) if until else None,
    )

    @dlt.resource(
        name="partners",
        primary_key="partner_id",
        write_disposition={"disposition": "merge", "strategy": "upsert"},
        schema_contract=dlt_schema_contract(policy),
    )
    def partners(signed_on: Any = window) -> Iterator[dict]:
        for line in Path(path).read_text().splitlines():
            record = json.loads(line)
            yield {**record, "signed_on": date.fromisoformat(record["signed_on"])}

    def locate(page: int, index: int, record: Any, params: Any) -> dict[str, Any]:
        return {"file": path, "line": index}

    loaded_at = datetime.now(UTC)
    yield attach_guard(partners(), "partners", PARTNERS, policy, stats, loaded_at, locate)


def _build(load: LoadRequest) -> Any:
    window = load.window
    return partners_source(
        load.location["path"],
        window.start if window else load.conf.first_day,
        window.end if window else None,
        load.conf.schema_policy,
        load.stats,
    )


SPEC = SourceSpec(
    name="partners",
    build=_build,
    contracts=lambda conf: {PARTNERS.name: PARTNERS},
    reads=lambda table, conf, where, local: naming.path_dataset(Path(where["path"])),
    system=lambda where: f"partner file {where['path']}",
    settings=PartnersConfig,
    location={"path": ""},
    backfill=Backfill(cursor="signed_on"),
)

# --- the test -----------------------------------------------------------------------------------

ROWS = [
    {"partner_id": 1, "name": "Acme", "tier": "gold", "signed_on": "2025-01-02"},
    {"partner_id": 2, "name": "Globex", "tier": "silver", "signed_on": "2025-01-03"},
    {"partner_id": 3, "name": "Initech", "tier": "bronze", "signed_on": "2025-01-05"},
]
ELSEWHERE = {  # the five built-in systems, as production would point at them: nothing starts
    "SOURCES__SNOWFLAKE__CREDENTIALS": "sqlite:///unused.db",
    "SOURCES__CRM__BASE_URL": "http://127.0.0.1:9",
    "SOURCES__CRM__TOKEN": "unused",
    "SOURCES__REDSHIFT__CREDENTIALS": "postgresql://unused@127.0.0.1:9/unused",
    "SOURCES__FX__BASE_URL": "http://127.0.0.1:9",
    "SOURCES__KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9",
}


@pytest.fixture()
def partners(tmp_settings: Settings, tmp_path: Path, monkeypatch) -> Iterator[Path]:
    """The source registered, its file where ``SOURCES__PARTNERS__PATH`` says (dlt's name)."""
    data = tmp_path / "partners.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    monkeypatch.setenv("SOURCES__PARTNERS__PATH", str(data))
    for name, value in ELSEWHERE.items():
        monkeypatch.setenv(name, value)
    registry.register(SPEC)
    yield data
    registry.unregister(SPEC.name)


def _bronze(settings: Settings) -> dict[int, dict]:
    table = deltalake.DeltaTable(str(settings.bronze_dir / "partners" / "partners"))
    return {r["partner_id"]: r for r in table.to_pyarrow_table().to_pylist()}


def test_a_registered_source_loads_into_bronze_with_its_lineage_and_registry_row(
    partners: Path, tmp_settings: Settings
) -> None:
    assert "partners" in registry.names()
    [summary] = loads.ingest(tmp_settings, Locations(), ["partners"])
    assert summary.rows == len(ROWS)
    assert {k: r["tier"] for k, r in _bronze(tmp_settings).items()} == {
        1: "gold",
        2: "silver",
        3: "bronze",
    }

    # lineage: one START and one COMPLETE, reading the file, writing bronze column by column
    events, bad = graph.read_events([emit.events_file(tmp_settings)])
    assert bad == 0
    runs = [e for e in events if e["job"]["name"] == "dlt.bronze_partners"]
    assert [e["eventType"] for e in runs] == ["START", "COMPLETE"]
    read = naming.path_dataset(partners)
    assert [(i["namespace"], i["name"]) for i in runs[1]["inputs"]] == [(read.namespace, read.name)]
    bronze = str((tmp_settings.bronze_dir / "partners" / "partners").resolve())
    [written] = [o for o in runs[1]["outputs"] if o["name"] == bronze]
    assert set(written["facets"]["columnLineage"]["fields"]) == set(PARTNERS.columns)
    assert ingestion_lineage.contracts("partners", tmp_settings) == {"partners": PARTNERS}

    # the dataset registry lists its bronze tables, from its dlt pipeline
    rows = {r["name"]: r for r in dataset_registry.build(tmp_settings, {}, [])}
    row = rows["bronze_partners.partners"]
    assert row["kind"] == "dlt pipeline bronze_partners (Delta)"
    assert row["strategy"] == "merge (upsert)"
    assert row["location"] == str(tmp_settings.bronze_dir / "partners" / "partners")


def test_a_registered_source_is_backfilled_by_its_declared_cursor(
    partners: Path, tmp_settings: Settings
) -> None:
    home_record.remember(tmp_settings)  # as `lakehouse ingest` does before it loads
    loads.ingest(tmp_settings, Locations(), ["partners"])
    assert home_record.read(tmp_settings)["source_systems"]["partners"] == str(partners)
    # the publisher corrects one day; a later day changes too, outside the window
    changed = [{**r, "tier": "platinum"} for r in ROWS]
    partners.write_text("".join(json.dumps(r) + "\n" for r in changed))

    day = date(2025, 1, 3)
    result = backfill.backfill(tmp_settings, "partners", day, day, rebuild=False)  # fmt: skip
    assert result.load.rows == 1
    assert {k: r["tier"] for k, r in _bronze(tmp_settings).items()} == {
        1: "gold",
        2: "platinum",
        3: "bronze",
    }


def test_a_source_without_a_cursor_says_why_it_cannot_be_backfilled(partners: Path) -> None:
    registry.unregister("partners")
    registry.register(SourceSpec(**{**SPEC.__dict__, "backfill": Backfill(why_not="no dates")}))
    with pytest.raises(backfill.BackfillError, match="partners cannot be backfilled by date: no"):
        backfill.validate("partners", date(2025, 1, 1), date(2025, 1, 1))


def test_its_settings_section_is_optional_and_validated_by_its_own_model(
    partners: Path, tmp_path: Path, monkeypatch
) -> None:
    assert registry.conf("partners", load_settings()) == PartnersConfig()  # no section: defaults

    raw = yaml.safe_load(DEFAULT_CONFIG_FILE.read_text())
    raw["sources"]["partners"] = {"page_lines": 0}
    config = tmp_path / "lakehouse.yml"
    config.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("LAKEHOUSE_CONFIG", str(config))
    with pytest.raises(ConfigError, match=r"sources\.partners\.page_lines"):
        registry.check(load_settings())

    raw["sources"]["partnerz"] = {}
    del raw["sources"]["partners"]
    config.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"sources\.partnerz: no such source"):
        registry.check(load_settings())
