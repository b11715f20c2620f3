"""The guard at the door of bronze, rule by rule, with the real CRM contacts contract.

Each record that breaks one rule of ingestion/contracts.py ends in quarantine with its raw payload
and the reason naming the rule; a good record passes with its values typed as declared and the
load's metadata. No loader, no dlt pipeline: the guard itself, as every loader calls it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from ingestion.contracts import (
    QUARANTINE_TABLE,
    GuardStats,
    SchemaContractViolation,
    guard_one,
)
from ingestion.crm import CONTACTS
from lakehouse.core.config import SchemaPolicy

LOADED_AT = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
QUARANTINE = SchemaPolicy(mode="schema_on_write", unknown_columns="quarantine")
GOOD = {
    "contact_id": "c-1",
    "customer_id": 7,
    "account_id": "12",  # text of an integer: coerced to the declared bigint
    "email": "a@example.com",
    "owner": "owner@example.com",
    "segment": "smb",
    "lifecycle_stage": "lead",
    "updated_at": "2026-03-09T08:00:00+00:00",
}


def _guard(record, policy: SchemaPolicy = QUARANTINE, parse=None) -> tuple[list, GuardStats]:
    stats = GuardStats()
    out = list(
        guard_one(record, source="crm", contract=CONTACTS, policy=policy, stats=stats,
                  loaded_at=LOADED_AT, parse=parse)
    )  # fmt: skip
    assert len(out) == 1, "every record ends in exactly one place"
    return out, stats


def _quarantined(record, policy: SchemaPolicy = QUARANTINE, parse=None) -> dict:
    """The quarantine row the guard made of ``record`` (it must make one)."""
    [item], stats = _guard(record, policy, parse)
    assert hasattr(item, "meta"), f"passed, not quarantined: {item}"
    assert item.meta.hints["table_name"] == QUARANTINE_TABLE
    assert stats.passed["contacts"] == 0 and stats.read["contacts"] == 1
    assert sum(stats.quarantined.values()) == 1
    return item.data


def test_a_good_record_passes_typed_with_the_load_metadata() -> None:
    [row], stats = _guard(dict(GOOD))
    assert not hasattr(row, "meta"), "a good record is no quarantine item"
    assert row["account_id"] == 12 and row["customer_id"] == 7
    assert row["updated_at"] == datetime(2026, 3, 9, 8, 0, tzinfo=UTC)
    assert (row["_source"], row["_loaded_at"]) == ("crm", LOADED_AT)
    assert set(row) == set(CONTACTS.columns) | {"_source", "_loaded_at"}
    assert (stats.read["contacts"], stats.passed["contacts"]) == (1, 1)
    assert not stats.quarantined and not stats.unbalanced()


@pytest.mark.parametrize(
    ("label", "record", "reason"),
    [
        ("unknown column", {**GOOD, "legacy_score": 3}, "unknown columns: legacy_score"),
        ("missing required key", {k: v for k, v in GOOD.items() if k != "contact_id"},
         "missing required value: contact_id"),
        ("empty required key", {**GOOD, "contact_id": ""}, "missing required value: contact_id"),
        ("value not of its type", {**GOOD, "customer_id": "seven"}, "bad value for customer_id"),
        ("integer beyond int64", {**GOOD, "account_id": 2**63}, "bad value for account_id"),
        ("not a timestamp", {**GOOD, "updated_at": "yesterday"}, "bad value for updated_at"),
        ("cursor from the future", {**GOOD, "updated_at": "2026-03-12T12:00:01+00:00"},
         "cursor in the future: updated_at"),
        ("not an object", ["c-1", "a@example.com"], "malformed record: expected an object"),
    ],
)  # fmt: skip
def test_a_record_breaking_a_rule_is_quarantined_with_payload_and_reason(
    label: str, record, reason: str
) -> None:
    row = _quarantined(record)
    assert row["reason"].startswith(reason), (label, row["reason"])
    assert (row["source"], row["source_table"]) == ("crm", "contacts")
    assert row["quarantined_at"] == LOADED_AT
    # the payload as received, losslessly: the parsed record rendered as JSON
    assert row["payload_encoding"] == "json"
    assert json.loads(row["raw_payload"]) == record


def test_a_payload_that_does_not_parse_is_kept_as_the_bytes_received() -> None:
    raw = b'{"contact_id": "c-1", "updated_at": '  # cut short
    row = _quarantined(raw, parse=json.loads)
    assert row["reason"].startswith("malformed record: ")
    assert (row["raw_payload"], row["payload_encoding"]) == (raw.decode(), "utf-8")
    not_utf8 = b"\xff\xfe{}"
    row = _quarantined(not_utf8, parse=json.loads)
    assert row["payload_encoding"] == "base64"


def test_unknown_columns_follow_the_policy() -> None:
    extra = {**GOOD, "legacy_score": 3}
    drop = SchemaPolicy(mode="schema_on_write", unknown_columns="drop")
    [row], stats = _guard(dict(extra), drop)
    assert "legacy_score" not in row and row["contact_id"] == "c-1"
    assert stats.dropped_values == {"contacts.legacy_score": 1}

    on_read = SchemaPolicy(mode="schema_on_read")
    [row], _ = _guard(dict(extra), on_read)
    assert row["legacy_score"] == 3, "schema_on_read: the table evolves with the new column"

    fail = SchemaPolicy(mode="schema_on_write", unknown_columns="fail")
    with pytest.raises(SchemaContractViolation, match=r"legacy_score.*nothing was loaded"):
        _guard(dict(extra), fail)


def test_the_same_bad_record_twice_in_a_run_gets_two_ids_and_again_the_same_next_run() -> None:
    """A rerun never quarantines a record twice (the id is the merge key), yet two equal bad
    records of one run are two rows."""
    bad = {**GOOD, "customer_id": "seven"}

    def ids() -> list[str]:
        stats = GuardStats()
        return [
            item.data["quarantine_id"]
            for _ in range(2)
            for item in guard_one(dict(bad), source="crm", contract=CONTACTS, policy=QUARANTINE,
                                  stats=stats, loaded_at=LOADED_AT + timedelta(hours=1))
        ]  # fmt: skip

    first = ids()
    assert len(set(first)) == 2
    assert ids() == first
