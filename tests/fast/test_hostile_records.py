"""Hostile records through the real loaders: every one ends in exactly one of bronze or quarantine.

CRM records go through the real local HTTP service (spliced into its answers as raw JSON text),
SQL rows through the real SQLite file the Snowflake loader reads; Kafka messages, which need the
real broker, are the engine tier's (tests/test_hostile_kafka.py). Each case says where it must
end and why; the tests check every record by its coordinates, the counts against the Delta
tables, and that the load finished and moved on.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import deltalake
import pytest

from ingestion import bronze
from ingestion.contracts import (
    QUARANTINE_COLUMNS,
    QUARANTINE_TABLE,
    GuardStats,
    Origin,
    guard_one,
    quarantine_record,
)
from ingestion.crm import crm_source
from ingestion.fx_rates import RATES
from ingestion.snowflake import snowflake_source
from lakehouse.core.config import SchemaPolicy
from lakehouse.stack import http_standin
from lakehouse.stack.sample_data import fill
from lakehouse.stack.sample_data.world import World

WORLD = World(scale=0.01, dirty_share=0.0)
QUARANTINE = SchemaPolicy(mode="schema_on_write", unknown_columns="quarantine")
DROP = SchemaPolicy(mode="schema_on_write", unknown_columns="drop")


def rows(settings, dataset: str, table: str) -> list[dict]:
    path = settings.bronze_dir / dataset / table
    return deltalake.DeltaTable(str(path)).to_pyarrow_table().to_pylist()


def raw_bytes(quarantined: dict) -> bytes | None:
    """The payload quarantine kept, back as the bytes that were received."""
    decode = {"utf-8": str.encode, "base64": base64.b64decode, "null": lambda _: None}
    return decode[quarantined["payload_encoding"]](quarantined["raw_payload"])


# ---- CRM through the local HTTP service ---------------------------------------------------------

TS = '"updated_at": "2025-01-03T00:00:00+00:00"'
CRM_CASES: list[tuple[str, str, str]] = [  # label, record as raw JSON text, expected
    ("null", "null", "malformed record"),
    ("array", "[1, 2]", "malformed record"),
    ("string", '"a string"', "malformed record"),
    ("number", "42", "malformed record"),
    ("boolean", "true", "malformed record"),
    ("garbage cursor", '{"contact_id": "h1", "updated_at": "not a date"}', "bad value"),
    ("object cursor", '{"contact_id": "h2", "updated_at": {"x": 1}}', "bad value"),
    ("number cursor", '{"contact_id": "h3", "updated_at": 12345}', "bad value"),
    ("null cursor", '{"contact_id": "h4", "updated_at": null}', "missing required value"),
    ("object as key", '{"contact_id": {"nested": 1}, ' + TS + "}", "bad value"),
    ("lone surrogate", '{"contact_id": "h5", "email": "\\ud800", ' + TS + "}", "bad value"),
    (
        "int beyond int64",
        '{"contact_id": "h6", "customer_id": 18446744073709551616, ' + TS + "}",
        "bad value",
    ),
    ("NaN", '{"contact_id": "h7", "customer_id": NaN, ' + TS + "}", "bad value"),
    (
        "nested 300 deep",
        '{"contact_id": "h8", "owner": ' + "[" * 300 + "]" * 300 + ", " + TS + "}",
        "bad value",
    ),
    ("missing key", "{" + TS + "}", "missing required value"),
    ("unknown column", '{"contact_id": "h9", "mystery": 1, ' + TS + "}", "unknown columns"),
    ("dlt's PUA marker", '{"contact_id": "h10", "email": "\\uf026123", ' + TS + "}", "bad value"),
    (  # would move the watermark past every later record: quarantined, the watermark stays
        "cursor in the future",
        '{"contact_id": "h14", "updated_at": "9999-01-01T00:00:00+00:00"}',
        "cursor in the future",
    ),
    ("duplicate keys", '{"contact_id": "h11", "contact_id": "h12", ' + TS + "}", "bronze"),
    ("good", '{"contact_id": "h13", "customer_id": 7, "email": "a@b.c", ' + TS + "}", "bronze"),
]


def test_hostile_crm_records_each_end_in_one_place(tmp_settings) -> None:
    world = replace(WORLD, dirty=Counter())
    contacts = world.crm_contacts
    assert all(c["contact_id"] and "legacy_score" not in c for c in contacts), "a clean world"
    stats = GuardStats()
    with http_standin.serving_service(world) as service:
        service.extra_crm = {"contacts": [case[1] for case in CRM_CASES]}
        source = crm_source(service.url, "local-crm-token", 50, QUARANTINE, stats)
        summary = bronze.run(tmp_settings, "crm", source, stats)
        stored = {c["contact_id"] for c in rows(tmp_settings, "crm", "contacts")}
        quarantined = rows(tmp_settings, "crm", QUARANTINE_TABLE)
        again = bronze.run(tmp_settings, "crm", crm_source(service.url, "local-crm-token", 50,
                                                           QUARANTINE, GuardStats()))  # fmt: skip
    hostile_in_bronze = stored - {c["contact_id"] for c in contacts}
    assert hostile_in_bronze == {"h12", "h13"}
    assert len(quarantined) == sum(case[2] != "bronze" for case in CRM_CASES)
    by_index = {json.loads(q["locator"])["index"]: q for q in quarantined}
    first_extra = min(50, len(contacts))  # spliced after page 1's own records
    for offset, (label, text, expected) in enumerate(CRM_CASES):
        if expected == "bronze":
            continue
        kept = by_index[first_extra + offset]
        assert kept["reason"].startswith(expected), (label, kept["reason"])
        payload = None if kept["payload_encoding"] == "null" else json.loads(kept["raw_payload"])
        assert payload == json.loads(text) or label == "NaN", label
        locator = json.loads(kept["locator"])
        assert (locator["endpoint"], locator["page"]) == ("crm/v1/contacts", 1)
    assert summary.balanced and summary.read == len(contacts) + len(world.crm_accounts) + len(
        CRM_CASES
    )
    assert summary.quarantined == len(quarantined)
    assert again.tables.get(QUARANTINE_TABLE, bronze.TableLoad()).inserted == 0, "re-served: no dup"


def test_a_cursor_from_the_future_is_quarantined_not_made_the_watermark() -> None:
    now = datetime.now(UTC)
    stats = GuardStats()
    outcomes = {}
    for days in (0, 1, 2, 3650):
        day = (now + timedelta(days=days)).date().isoformat()
        row = {"rate_date": day, "base_currency": "USD", "currency": "EUR", "rate": 0.9}
        (out,) = guard_one(row, source="fx", contract=RATES, policy=QUARANTINE, stats=stats,
                           loaded_at=now)  # fmt: skip
        row = getattr(out, "data", out)  # a quarantine record comes wrapped in dlt's table hints
        outcomes[days] = "bronze" if "rate_date" in row else row["reason"].split(":")[0]
    assert outcomes == {0: "bronze", 1: "bronze", 2: "cursor in the future",
                        3650: "cursor in the future"}  # fmt: skip
    assert stats.unbalanced() == {}


# ---- SQL rows: the SQLite stand-in types nothing ------------------------------------------------

SQL_CASES = [  # table, SQL that inserts one hostile row, expected
    (
        "customers",
        "insert into customers (customer_id, email) values ('abc', 'x@y.z')",
        "bad value",
    ),
    (
        "customers",
        "insert into customers (customer_id, email) values (900001, cast(x'ff41' as text))",
        "bad value",
    ),
    (
        "customers",
        "insert into customers (customer_id, first_name) values (900002, x'fffe00')",
        "bad value",
    ),
    (
        "customers",
        "insert into customers (customer_id, last_name) values (900003, cast(x'eda080' as text))",
        "bad value",
    ),  # a UTF-8-encoded lone surrogate
    ("customers", "insert into customers (customer_id) values (92233720368547758070)", "bad value"),
    (
        "customers",
        "insert into customers (customer_id, email) values (null, 'n@u.ll')",
        "missing required value",
    ),
    (
        "customers",
        "insert into customers (customer_id, updated_at) values (900004, 'yesterday')",
        "bad value",
    ),
    (
        "customers",
        "insert into customers (customer_id, email) values (900005, cast(x'4f4b' as blob))",
        "bronze",
    ),  # fmt: skip  (UTF-8 bytes in a text column are its text)
    (
        "products",
        "insert into products (product_id, list_price) values (900006, 1e999)",
        "bad value",
    ),
    (
        "products",
        "insert into products (product_id, list_price) values (900007, 'cheap')",
        "bad value",
    ),
    ("orders", "insert into orders (order_id, customer_id) values (900008, 1.5)", "bad value"),
    ("orders", "insert into orders (order_id, status) values (900009, 'ok')", "bronze"),
    (
        "order_lines",
        "insert into order_lines (order_line_id) values (900010)",
        "missing required value",
    ),
]


def test_hostile_sql_rows_each_end_in_one_place(tmp_settings) -> None:
    db = tmp_settings.source_systems_dir / "snowflake.db"
    counts = fill.fill_snowflake(WORLD, db)
    with sqlite3.connect(db) as conn:
        for _, sql, _ in SQL_CASES:
            conn.execute(sql)
    tables = ["customers", "products", "orders", "order_lines"]
    stats = GuardStats()
    source = snowflake_source(fill.snowflake_url(db), tables, DROP, stats)
    summary = bronze.run(tmp_settings, "snowflake", source, stats)
    quarantined = rows(tmp_settings, "snowflake", QUARANTINE_TABLE)
    expected = Counter(expected.split(" ")[0] for _, _, expected in SQL_CASES)
    assert len(quarantined) == len(SQL_CASES) - expected["bronze"]
    for table in tables:
        hostile = [c for c in SQL_CASES if c[0] == table]
        loaded = len(rows(tmp_settings, "snowflake", table))
        kept = [q for q in quarantined if q["source_table"] == table]
        assert loaded + len(kept) == counts[table] + len(hostile), table
        assert all(json.loads(q["locator"])["table"] == table for q in kept)
    reasons = Counter(q["reason"].split(":")[0] for q in quarantined)
    assert reasons["missing required value"] == 2
    non_utf8 = [q for q in quarantined if "not UTF-8" in q["reason"]]
    assert len(non_utf8) == 3 and all(q["payload_encoding"] == "json" for q in non_utf8)
    assert {"base64": base64.b64encode(b"\xff\x41").decode()} in [
        json.loads(q["raw_payload"]).get("email") for q in non_utf8
    ], "bytes that are not UTF-8 are kept in base64"
    assert summary.balanced and summary.read == sum(counts.values()) + len(SQL_CASES)


# ---- lakes whose quarantine table predates the new columns --------------------------------------


def load_crm_with(settings, extra: list[str]) -> bronze.LoadSummary:
    stats = GuardStats()
    with http_standin.serving_service(replace(WORLD, dirty=Counter())) as service:
        service.extra_crm = {"contacts": extra}
        source = crm_source(service.url, "local-crm-token", 50, QUARANTINE, stats)
        return bronze.run(settings, "crm", source, stats)


OLD_COLUMNS = ("quarantine_id", "source", "source_table", "reason", "raw_payload", "quarantined_at")


@pytest.mark.parametrize("old", ["written by dlt", "created empty"])
def test_an_old_quarantine_table_gains_the_new_columns(tmp_settings, old: str) -> None:
    import dlt

    old_columns = {name: QUARANTINE_COLUMNS[name] for name in OLD_COLUMNS}
    if old == "written by dlt":
        at = datetime.now(UTC)
        record = quarantine_record("crm", "contacts", "old reason", {"a": 1}, at, Origin({"a": 1}))
        row = {name: record.data[name] for name in OLD_COLUMNS}
        hints = dlt.mark.make_hints(table_name=QUARANTINE_TABLE, columns=old_columns,
                                    write_disposition={"disposition": "merge",
                                                       "strategy": "insert-only"},
                                    primary_key="quarantine_id")  # fmt: skip

        @dlt.source(name="crm")
        def released_crm():
            yield dlt.resource([dlt.mark.with_hints(row, hints)], name="contacts")

        bronze.run(tmp_settings, "crm", released_crm())
    else:  # a first load quarantined nothing; ensure_quarantine_table made it empty, old style
        import shutil

        import pyarrow as pa

        load_crm_with(tmp_settings, [])
        shutil.rmtree(tmp_settings.bronze_dir / "crm" / QUARANTINE_TABLE)
        fields = [pa.field(n, bronze.ARROW_TYPES[c["data_type"]], nullable=False)
                  for n, c in {**old_columns, "_dlt_load_id": {"data_type": "text"},
                               "_dlt_id": {"data_type": "text"}}.items()]  # fmt: skip
        path = tmp_settings.bronze_dir / "crm" / QUARANTINE_TABLE
        deltalake.write_deltalake(str(path), pa.schema(fields).empty_table(), mode="error")
    load_crm_with(tmp_settings, ["null", '{"contact_id": "x", "updated_at": 1}'])
    quarantined = rows(tmp_settings, "crm", QUARANTINE_TABLE)
    assert len(quarantined) == 2 + (old == "written by dlt")
    assert set(QUARANTINE_COLUMNS) <= set(quarantined[0])
    new = [q for q in quarantined if q["reason"] != "old reason"]
    assert all(q["payload_encoding"] in ("json", "null") and q["locator"] for q in new)
