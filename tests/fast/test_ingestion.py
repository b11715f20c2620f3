"""Each source without a server lands in bronze by its own strategy, through the real loaders.

Snowflake (a SQL database file) and the CRM API (the local HTTP service, in this process), each
test into its own temporary lake. Redshift and Kafka, which need real servers, are the engine
tier's (tests/test_ingestion_servers.py).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import deltalake
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from ingestion import bronze
from ingestion.contracts import GuardStats, SchemaContractViolation
from ingestion.crm import crm_source
from ingestion.snowflake import snowflake_source
from lakehouse.core.config import SchemaPolicy
from lakehouse.stack import http_standin
from lakehouse.stack.sample_data import fill
from lakehouse.stack.sample_data.world import World

WORLD = World(scale=0.01, dirty_share=0.05)
WORLD_2 = replace(WORLD, generation=2, dirty=Counter())
QUARANTINE = SchemaPolicy(mode="schema_on_write", unknown_columns="quarantine")
DROP = SchemaPolicy(mode="schema_on_write", unknown_columns="drop")


def rows(settings, dataset: str, table: str) -> list[dict]:
    path = settings.bronze_dir / dataset / table
    return deltalake.DeltaTable(str(path)).to_pyarrow_table().to_pylist()


def causes(error: BaseException) -> list[BaseException]:
    chain = []
    while error is not None and error not in chain:
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


def version(settings, dataset: str, table: str) -> int:
    return deltalake.DeltaTable(str(settings.bronze_dir / dataset / table)).version()


# ---- Snowflake: batch replace ------------------------------------------------------------------


def load_snowflake(settings, world: World, policy: SchemaPolicy = DROP):
    db = settings.source_systems_dir / "snowflake.db"
    fill.fill_snowflake(world, db)
    stats = GuardStats()
    tables = ["customers", "products", "orders", "order_lines"]
    source = snowflake_source(fill.snowflake_url(db), tables, policy, stats)
    return bronze.run(settings, "snowflake", source, stats)


def test_snowflake_replace_leaves_only_the_latest_snapshot(tmp_settings) -> None:
    first = load_snowflake(tmp_settings, WORLD)
    assert first.rows_by_table["customers"] == len(WORLD.customers)
    second = load_snowflake(tmp_settings, WORLD_2)
    customers = rows(tmp_settings, "snowflake", "customers")
    assert len(customers) == len(WORLD_2.customers) > len(WORLD.customers)
    assert sorted(c["customer_id"] for c in customers) == sorted(
        c["customer_id"] for c in WORLD_2.customers
    )
    assert {c["_dlt_load_id"] for c in customers} == set(second.load_ids)
    orders = rows(tmp_settings, "snowflake", "orders")
    assert len(orders) == len(WORLD_2.orders)
    history = deltalake.DeltaTable(str(tmp_settings.bronze_dir / "snowflake" / "orders")).history()
    assert history[0]["operationParameters"]["mode"] == "Overwrite"


def test_snowflake_drop_policy_discards_the_unknown_column(tmp_settings) -> None:
    summary = load_snowflake(tmp_settings, WORLD)
    customers = rows(tmp_settings, "snowflake", "customers")
    assert "loyalty_tier" not in customers[0]
    assert summary.guard["dropped_values"] == {"customers.loyalty_tier": len(WORLD.customers)}
    assert len(customers) == len(WORLD.customers), "drop keeps the row"


# ---- CRM: incremental on updated_at, merged by key ------------------------------------------


def load_crm(settings, world: World, policy=QUARANTINE, only: tuple[str, ...] = ()):
    stats = GuardStats()
    with http_standin.serving_service(world) as service:
        source = crm_source(service.url, "local-crm-token", 50, policy, stats)
        if only:
            source = source.with_resources(*only)
        summary = bronze.run(settings, "crm", source, stats)
    return summary, service.served


def test_crm_rerun_fetches_only_past_the_watermark_and_updates_in_place(tmp_settings) -> None:
    _, served = load_crm(tmp_settings, WORLD)
    assert served["contacts"] == len(WORLD.crm_contacts)
    contacts_v1 = {c["contact_id"]: c for c in rows(tmp_settings, "crm", "contacts")}

    again, served = load_crm(tmp_settings, WORLD)
    assert served["contacts"] < len(WORLD.crm_contacts) / 4, "only the late-update window"
    assert again.tables["contacts"].inserted == 0

    later, served = load_crm(tmp_settings, WORLD_2)
    assert served["contacts"] < len(WORLD_2.crm_contacts) / 2, "unchanged records not re-sent"
    assert later.tables["contacts"].updated > 0 and later.tables["contacts"].inserted > 0
    stored = rows(tmp_settings, "crm", "contacts")
    contacts = {c["contact_id"]: c for c in stored}
    assert len(contacts) == len(stored), "no duplicate keys"
    # bronze now equals the CRM as it is a week later, late (out-of-order) updates included
    loadable = [c for c in WORLD_2.crm_contacts if c["contact_id"] and "legacy_score" not in c]
    assert set(contacts) == {c["contact_id"] for c in loadable}
    for record in loadable:
        stored_record = contacts[record["contact_id"]]
        assert (stored_record["owner"], stored_record["lifecycle_stage"]) == (
            record["owner"],
            record["lifecycle_stage"],
        )
        assert stored_record["updated_at"] == record["updated_at"]
    late = WORLD_2.dirty["crm_contacts.late_update"]
    assert late > 0, "the sample world must contain late updates"
    assert sum(c["contact_id"] in contacts_v1 for c in loadable) > 0


def test_every_crm_record_is_loaded_or_quarantined(tmp_settings) -> None:
    summary, _ = load_crm(tmp_settings, WORLD)
    loaded = len(rows(tmp_settings, "crm", "contacts")) + len(rows(tmp_settings, "crm", "accounts"))
    quarantined = rows(tmp_settings, "crm", "quarantine")
    assert loaded + len(quarantined) == len(WORLD.crm_contacts) + len(WORLD.crm_accounts)
    reasons = Counter(q["reason"].split(":")[0] for q in quarantined)
    assert reasons["unknown columns"] == WORLD.dirty["crm_contacts.unknown_column"]
    assert reasons["missing required value"] == WORLD.dirty["crm_contacts.missing_key"]
    assert all(q["source"] == "crm" and q["raw_payload"] for q in quarantined)
    assert summary.quarantined == len(quarantined)
    assert summary.balanced and summary.read == summary.loaded + summary.quarantined


@pytest.mark.parametrize("mode", ["quarantine", "drop", "fail", "schema_on_read"])
def test_unknown_column_policies(tmp_settings, mode: str) -> None:
    policy = (SchemaPolicy(mode="schema_on_read") if mode == "schema_on_read"
              else SchemaPolicy(unknown_columns=mode))  # fmt: skip
    extra = [c for c in WORLD.crm_contacts if "legacy_score" in c and c["contact_id"]]
    assert extra, "the sample world must contain contacts with an unknown column"
    if mode == "fail":
        load_crm(tmp_settings, WORLD, policy, only=("accounts",))  # an earlier, good load
        contacts_table = tmp_settings.bronze_dir / "crm" / "contacts"
        before = version(tmp_settings, "crm", "accounts"), rows(tmp_settings, "crm", "accounts")
        with pytest.raises(PipelineStepFailed, match="legacy_score") as err:
            load_crm(tmp_settings, WORLD, policy)
        assert any(isinstance(e, SchemaContractViolation) for e in causes(err.value))
        after = version(tmp_settings, "crm", "accounts"), rows(tmp_settings, "crm", "accounts")
        assert after == before, "a failed load leaves bronze exactly as it was"
        assert not contacts_table.exists()
        return
    load_crm(tmp_settings, WORLD, policy)
    contacts = {c["contact_id"]: c for c in rows(tmp_settings, "crm", "contacts")}
    if mode == "quarantine":
        assert not any(c["contact_id"] in contacts for c in extra)
        quarantined = rows(tmp_settings, "crm", "quarantine")
        assert {"unknown columns: legacy_score"} <= {q["reason"] for q in quarantined}
    elif mode == "drop":
        assert all(c["contact_id"] in contacts for c in extra)
        assert "legacy_score" not in next(iter(contacts.values()))
    else:
        assert all(contacts[c["contact_id"]]["legacy_score"] == c["legacy_score"] for c in extra)


# ---- Redshift: append-only -------------------------------------------------------------------


# ---- Kafka: stream, replayable ------------------------------------------------------------------
