"""Property-based tests: whatever a record contains, it ends in exactly one of bronze or quarantine.

Hypothesis generates records no fixture would think of (any JSON value, any bytes, numbers of
every size, strings with any code point including lone surrogates and dlt's private-use markers,
deep nesting) and feeds them to the guard through each source's own parse path: the Kafka message
parse, the CRM page step, the FX answer rows, SQL rows. The invariants:

- no exception escapes but a ``fail`` policy's ``SchemaContractViolation``;
- every input record yields exactly one row: clean (bronze) or quarantine, and the stats agree;
- quarantine keeps the raw payload losslessly (Kafka bytes come back byte for byte);
- a clean row is writable: the last test writes what the guard yields through a real dlt
  pipeline into a Delta lake and reads back exactly the clean rows and the quarantine rows.
"""

from __future__ import annotations

import base64
import json
import math
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import deltalake
import dlt
import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, Message
from dlt.common.json import PUA_START
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ingestion import crm, fx_rates, kafka_events, redshift, snowflake
from ingestion.contracts import (
    INT64_MAX,
    INT64_MIN,
    QUARANTINE_TABLE,
    CountLoaded,
    GuardStats,
    GuardStep,
    SchemaContractViolation,
    TableContract,
    dlt_schema_contract,
    guard,
    guard_one,
)
from lakehouse.core.config import SchemaPolicy

NOW = datetime(2026, 1, 1, tzinfo=UTC)
POLICIES = [
    SchemaPolicy(mode="schema_on_write", unknown_columns="quarantine"),
    SchemaPolicy(mode="schema_on_write", unknown_columns="drop"),
    SchemaPolicy(mode="schema_on_write", unknown_columns="fail"),
    SchemaPolicy(mode="schema_on_read"),
]
CONTRACTS = [kafka_events.EVENTS, crm.CONTACTS, crm.ACCOUNTS, fx_rates.RATES,
             *snowflake.CONTRACTS.values(), *redshift.CONTRACTS.values()]  # fmt: skip
FAST = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))

# ---- strategies ---------------------------------------------------------------------------------

chars = st.one_of(
    st.characters(),
    st.characters(categories=["Cs"]),  # lone surrogates, as JSON "\ud800" escapes decode
    st.sampled_from([chr(PUA_START + i) for i in range(9)] + ["\x00", "\ufeff", "\U0010ffff"]),
)
texts = st.text(chars, max_size=12)
integers = st.one_of(
    st.integers(min_value=INT64_MIN, max_value=INT64_MAX),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([INT64_MAX, INT64_MAX + 1, INT64_MIN, INT64_MIN - 1, 10**400]),
)
floats = st.floats(allow_nan=True, allow_infinity=True)
iso_like = st.one_of(
    st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat()),
    st.dates().map(date.isoformat),
    st.sampled_from(
        [
            "0001-01-01T00:00:00-01:00",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59+00:00",
            "9999-12-31T23:00:00-05:00",
            "2025-13-01",
            "",
            "now",
        ]
    ),
)
scalars = st.one_of(st.none(), st.booleans(), integers, floats, texts, iso_like)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=12,
)


def deep(depth: int) -> Any:
    value: Any = "bottom"
    for level in range(depth):
        value = [value] if level % 2 else {"x": value}
    return value


deep_values = st.integers(min_value=1, max_value=5000).map(deep)


def records_for(contract: TableContract, nested: bool = True) -> st.SearchStrategy[Any]:
    """Dicts that look like the contract's rows (declared keys, any values, extra keys), and any
    JSON value at all."""
    names = st.sampled_from(list(contract.columns))
    typed = {
        "bigint": integers | iso_like,
        "double": floats | integers,
        "text": texts | integers | floats,
        "timestamp": iso_like,
        "date": iso_like,
    }
    value_for = {n: typed.get(c.get("data_type"), scalars) for n, c in contract.columns.items()}
    plausible = st.fixed_dictionaries(
        {},
        optional={
            n: st.one_of(value_for[n], json_values, *[deep_values] * nested)
            for n in contract.columns
        },
    )
    extra = st.dictionaries(texts | names, json_values, max_size=2)
    return st.one_of(
        st.builds(lambda a, b: {**a, **b}, plausible, extra),
        plausible,
        json_values,
        *[deep_values] * nested,
    )


# ---- invariants ---------------------------------------------------------------------------------


def is_quarantine(item: Any) -> bool:
    return hasattr(item, "meta") and item.meta.hints.get("table_name") == QUARANTINE_TABLE


def check_writable(row: dict, contract: TableContract) -> None:
    """What the guard lets through is what dlt and delta-rs write: typed, in range, encodable."""
    assert isinstance(row["_source"], str) and row["_loaded_at"].tzinfo is not None
    for name, value in row.items():
        column = contract.columns.get(name, {})
        if value is None:
            assert column.get("nullable", True), name
            continue
        kind = column.get("data_type")
        if isinstance(value, str):
            value.encode("utf-8")
            assert not value or not 0 <= ord(value[0]) - PUA_START <= 8
            assert kind in (None, "text")
        elif isinstance(value, bool):
            assert kind in (None, "bool")
        elif isinstance(value, int):
            assert INT64_MIN <= value <= INT64_MAX and kind in (None, "bigint")
        elif isinstance(value, float):
            assert math.isfinite(value) and kind in (None, "double")
        elif isinstance(value, datetime):
            assert value.tzinfo is not None and kind in (None, "timestamp")
        elif isinstance(value, date):
            assert kind in (None, "date")
        else:
            raise AssertionError(f"{name}: {type(value).__name__} reached bronze")
    for name in contract.required:
        assert row.get(name) not in (None, ""), name


def check_quarantine(item: Any) -> dict:
    row = item.data
    for name in ("quarantine_id", "source", "source_table", "reason", "raw_payload", "locator"):
        row[name].encode("utf-8")  # every text column is valid UTF-8
    json.loads(row["locator"])
    assert row["payload_encoding"] in ("utf-8", "base64", "json", "null")
    return row


def run_guard(records: list, contract: TableContract, policy: SchemaPolicy, **kwargs: Any):
    """Guard each record alone; return (outputs per record, stats, fail raised?)."""
    stats, outputs, failed = GuardStats(), [], 0
    for record in records:
        try:
            outputs.append(list(guard([record], source="test", contract=contract, policy=policy,
                                      stats=stats, loaded_at=NOW, **kwargs)))  # fmt: skip
        except SchemaContractViolation:
            assert policy.unknown_columns == "fail" and policy.mode == "schema_on_write"
            failed += 1
    return outputs, stats, failed


def check_one_place_each(outputs: list, stats: GuardStats, contract: TableContract, failed: int):
    clean = quarantined = 0
    for produced in outputs:
        assert len(produced) == 1, "one record, one row"
        if is_quarantine(produced[0]):
            check_quarantine(produced[0])
            quarantined += 1
        else:
            check_writable(produced[0], contract)
            clean += 1
    table = contract.name
    assert stats.read[table] == clean + quarantined + failed
    assert stats.passed[table] == clean
    assert stats.quarantined_by_table()[table] == quarantined


# ---- the guard over every contract and policy --------------------------------------------------


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_guard_puts_every_record_in_exactly_one_place(data) -> None:
    contract = data.draw(st.sampled_from(CONTRACTS), label="contract")
    policy = data.draw(st.sampled_from(POLICIES), label="policy")
    records = data.draw(st.lists(records_for(contract), max_size=4))
    outputs, stats, failed = run_guard(records, contract, policy)
    check_one_place_each(outputs, stats, contract, failed)


# ---- Kafka: the message parse with any bytes, keys, headers, timestamps ------------------------

event_values = st.one_of(
    st.none(),  # tombstone
    st.binary(max_size=64),
    json_values.map(lambda v: json.dumps(v).encode()),
    records_for(kafka_events.EVENTS, nested=False).map(lambda v: json.dumps(v).encode()),
    st.integers(min_value=1, max_value=3000).map(lambda n: b"[" * n + b"]" * n),
    st.just(b'{"event_id": "a", "event_id": "b", "event_type": "x", "event_time": "2025-01-01"}'),
)


def surrogate_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # lone surrogates as (invalid) UTF-8 bytes


# the schema_version header the topic's producers set (ingestion/event_schemas)
versions = st.sampled_from([b"1", b"2"]).map(lambda v: [("schema_version", v)])


@st.composite
def messages(draw: st.DrawFn) -> Message:
    header = st.tuples(st.text(max_size=5), st.none() | st.binary(max_size=8))
    return Message(
        topic=draw(st.sampled_from(["events", "other"])),
        partition=draw(st.integers(min_value=0, max_value=8)),
        offset=draw(st.integers(min_value=0, max_value=INT64_MAX)),
        key=draw(st.none() | st.binary(max_size=8) | texts.map(surrogate_bytes)),
        value=draw(event_values),
        headers=draw(st.none() | st.lists(header, max_size=3) | versions),
        timestamp=(TIMESTAMP_CREATE_TIME, draw(st.integers(min_value=-1, max_value=INT64_MAX))),
    )  # fmt: skip


@FAST
@given(message=messages())
def test_kafka_messages_end_in_one_place_with_their_bytes(message: Message) -> None:
    stats = GuardStats()
    policy = POLICIES[0]
    produced = list(guard_one(message, source="kafka", contract=kafka_events.EVENTS, policy=policy,
                              stats=stats, loaded_at=NOW, parse=kafka_events._parse,
                              origin=kafka_events.origin(message)))  # fmt: skip
    check_one_place_each([produced], stats, kafka_events.EVENTS, 0)
    if not is_quarantine(produced[0]):
        row = produced[0]
        assert (row["kafka_partition"], row["kafka_offset"]) == (
            message.partition(),
            message.offset(),
        )
        return
    row = check_quarantine(produced[0])
    value, encoding = message.value(), row["payload_encoding"]
    kept = {"null": lambda t: None, "utf-8": str.encode,
            "base64": base64.b64decode}[encoding](row["raw_payload"])  # fmt: skip
    assert kept == value, "quarantine keeps the value byte for byte"
    key = message.key()
    if key is not None:
        decode = base64.b64decode if row["kafka_key_encoding"] == "base64" else str.encode
        assert decode(row["kafka_key"]) == key
    assert (row["kafka_topic"], row["kafka_partition"], row["kafka_offset"]) == (
        message.topic(), message.partition(), message.offset())  # fmt: skip


def test_kafka_offsets_are_kept_by_topic_and_old_state_migrates() -> None:
    state = {"offsets": {"0": 12, "2": 40}}
    offsets = kafka_events.offsets_state(state, "events")
    assert offsets == {"0": 12, "2": 40} and "offsets" not in state
    offsets["1"] = 7
    other = kafka_events.offsets_state(state, "events_v2")
    assert other == {}, "another topic starts from its own offsets, not the old topic's"
    assert state == {"topic_offsets": {"events": {"0": 12, "2": 40, "1": 7}, "events_v2": {}}}


# ---- CRM: pages of any JSON values through the guard step ---------------------------------------


@FAST
@given(pages=st.lists(st.lists(records_for(crm.CONTACTS), max_size=5), min_size=1, max_size=3))
def test_crm_pages_put_every_element_in_one_place(pages: list[list]) -> None:
    stats = GuardStats()

    def locate(page: int, index: int, _record: Any, _params: dict) -> dict:
        return {"page": page, "index": index}

    step = GuardStep("crm", crm.CONTACTS, POLICIES[0], stats, NOW, locate)
    for number, page in enumerate(pages, start=1):
        produced = list(step(page))
        assert len(produced) == len(page), "one row per element of the data array"
        for index, item in enumerate(produced):
            if is_quarantine(item):
                assert json.loads(check_quarantine(item)["locator"]) == {
                    "page": number,
                    "index": index,
                }
            else:
                check_writable(item, crm.CONTACTS)
    read = sum(len(p) for p in pages)
    assert (
        stats.read["contacts"]
        == read
        == stats.passed["contacts"] + stats.quarantined_by_table()["contacts"]
    )


# ---- FX: any answer to a day's request ----------------------------------------------------------

fx_answers = st.one_of(
    json_values,
    st.fixed_dictionaries({
        "date": iso_like | json_values,
        "base": texts | json_values,
        "rates": st.dictionaries(texts, floats | integers | json_values, max_size=4) | json_values,
    }),
    st.binary(max_size=16),
)  # fmt: skip


@FAST
@given(answers=st.lists(fx_answers, min_size=1, max_size=3))
def test_fx_answers_put_every_rate_in_one_place(answers: list) -> None:
    seen: set[str] = set()
    records = [record for answer in answers for record, _ in fx_rates.published_rows(answer, seen)]
    outputs, stats, failed = run_guard(records, fx_rates.RATES, POLICIES[0])
    check_one_place_each(outputs, stats, fx_rates.RATES, failed)


# ---- SQL rows: what a driver hands over ---------------------------------------------------------

sql_values = st.one_of(
    scalars, st.binary(max_size=8), st.decimals(allow_nan=True),
    st.datetimes(timezones=st.none() | st.timezones()), st.dates(),
)  # fmt: skip


@FAST
@given(data=st.data())
def test_sql_rows_put_every_row_in_one_place(data) -> None:
    contract = data.draw(
        st.sampled_from([*snowflake.CONTRACTS.values(), *redshift.CONTRACTS.values()])
    )
    rows = data.draw(
        st.lists(
            st.fixed_dictionaries({}, optional=dict.fromkeys(contract.columns, sql_values)),
            max_size=4,
        )
    )
    outputs, stats, failed = run_guard(rows, contract, POLICIES[1])
    check_one_place_each(outputs, stats, contract, failed)


# ---- what the guard yields, written for real by dlt into Delta ----------------------------------


def write_through_dlt(records: list, contract: TableContract, policy: SchemaPolicy, home: Path):
    stats = GuardStats()

    @dlt.source(name="prop")
    def source():
        @dlt.resource(name=contract.name, write_disposition="append",
                      schema_contract=dlt_schema_contract(policy))  # fmt: skip
        def table():
            yield from guard(records, source="prop", contract=contract, policy=policy,
                             stats=stats, loaded_at=NOW)  # fmt: skip

        contract.register(dlt.current.source_schema())
        yield table.add_step(CountLoaded(contract.name, stats))

    pipe = dlt.pipeline(
        pipeline_name="prop",
        destination=dlt.destinations.filesystem(bucket_url=(home / "lake").as_uri()),
        dataset_name="prop",
        pipelines_dir=str(home / "state"),
    )
    pipe.run(source(), table_format="delta").raise_on_failed_jobs()

    def read(table: str) -> list[dict]:
        path = home / "lake" / "prop" / table
        return (
            deltalake.DeltaTable(str(path)).to_pyarrow_table().to_pylist() if path.exists() else []
        )

    return stats, read(contract.name), read(QUARANTINE_TABLE)


@pytest.mark.parametrize("policy", [POLICIES[0], POLICIES[3]], ids=["quarantine", "schema_on_read"])
@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
)  # a dlt run per example: no slow shrinking
@given(records=st.lists(records_for(kafka_events.EVENTS, nested=False), min_size=5, max_size=25))
def test_what_the_guard_passes_dlt_writes_to_delta(records: list, policy: SchemaPolicy) -> None:
    contract = kafka_events.EVENTS
    # distinct records: identical bad ones are one quarantine row (the quarantine id is a hash)
    produced = list(guard(records, source="prop", contract=contract, policy=policy,
                          stats=GuardStats(), loaded_at=NOW))  # fmt: skip
    expected = [row for row in produced if not is_quarantine(row)]
    quarantine_ids = {row.data["quarantine_id"] for row in produced if is_quarantine(row)}
    with tempfile.TemporaryDirectory() as home:
        stats, bronze_rows, quarantine_rows = write_through_dlt(
            records, contract, policy, Path(home)
        )
    assert stats.read["events"] == len(records) == len(produced)
    assert stats.loaded["events"] == len(bronze_rows) == len(expected)
    assert sorted(q["quarantine_id"] for q in quarantine_rows) == sorted(quarantine_ids)
    assert len(quarantine_ids) == len(produced) - len(expected), "one row per bad record"

    def declared(row: dict) -> str:
        values = [row.get(name) for name in contract.columns]
        return repr([v.isoformat() if isinstance(v, date) else v for v in values])

    assert sorted(map(declared, bronze_rows)) == sorted(map(declared, expected)), (
        "every declared value round-trips exactly through dlt and Delta"
    )


# ---- the guard comes first in every resource's pipe ---------------------------------------------


def test_the_guard_runs_before_the_incremental_cursor(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "web.db"
    with sqlite3.connect(db) as conn:
        conn.execute("create table page_views (page_view_id integer, session_id integer)")
    resources = [
        *crm.crm_source("http://127.0.0.1:9", "token").resources.values(),
        *redshift.redshift_source(f"sqlite:///{db}", None, ["page_views"]).resources.values(),
    ]
    for resource in resources:
        steps = [type(step).__name__ for step in resource._pipe._steps]
        assert steps[1] == "GuardStep", (resource.name, steps)
        assert steps.index("IncrementalResourceWrapper") > 1, (resource.name, steps)
        assert steps[-1] == "CountLoaded", (resource.name, steps)
