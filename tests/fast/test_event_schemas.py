"""The event schema registry (ingestion/event_schemas): every version loads, every version is
backward compatible with the one before it, each compatibility rule refuses a change naming the
field, and the loader's column check never vouches for an event jsonschema refuses.

A producer team adding an incompatible version fails here, in the fast tier, before any load.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_record_properties import floats, integers, json_values, texts

from ingestion import kafka_events, schema_registry
from ingestion.schema_compatibility import (
    IncompatibleSchema,
    check,
    check_registry,
    incompatibilities,
)
from ingestion.schema_registry import EventSchema, RegistryError, parse_schema

REGISTRY = schema_registry.load()


def test_every_event_type_the_topic_carries_has_a_v1_and_orders_a_v2() -> None:
    assert REGISTRY.event_types() == ["checkout_started", "click", "order_placed"]
    assert {t: REGISTRY.versions(t) for t in REGISTRY.event_types()} == {
        "checkout_started": ["1"], "click": ["1"], "order_placed": ["1", "2"],
    }  # fmt: skip


def test_every_consecutive_pair_of_versions_is_backward_compatible() -> None:
    """What fails `make test` when a producer team adds an incompatible version."""
    check_registry(REGISTRY)


def test_bronze_has_a_column_for_every_field_of_every_version() -> None:
    columns = kafka_events.EVENTS.columns
    for schema in REGISTRY.all():
        assert set(schema.schema["properties"]) <= set(columns), schema.label
    assert columns["_schema_version"] == {"data_type": "text", "nullable": False}
    assert columns["event_time"]["data_type"] == "timestamp"
    assert columns["payment_method"] == {"data_type": "text"}


# ---- the compatibility rules, each refusing a change and naming the field ----------------------


def order_v1() -> dict[str, Any]:
    return copy.deepcopy(dict(REGISTRY.get("order_placed", "1").schema))


def as_version(schema: dict[str, Any], version: str = "2") -> EventSchema:
    return parse_schema(schema, "order_placed", version, Path(f"order_placed/v{version}.json"))


def refusal(change) -> str:
    """The message refusing ``change`` applied to order_placed v1 as its v2."""
    new = order_v1()
    change(new)
    with pytest.raises(IncompatibleSchema) as refused:
        check(as_version(order_v1(), "1"), as_version(new))
    return str(refused.value)


def _remove(name: str):
    def change(schema: dict) -> None:
        del schema["properties"][name]
        schema["required"] = [r for r in schema["required"] if r != name]

    return change


def _set(name: str, **spec: Any):
    def change(schema: dict) -> None:
        schema["properties"][name] = {**schema["properties"][name], **spec}

    return change


def _unset(name: str, keyword: str):
    def change(schema: dict) -> None:
        del schema["properties"][name][keyword]

    return change


def _require(name: str, spec: dict | None = None):
    def change(schema: dict) -> None:
        if spec is not None:
            schema["properties"][name] = spec
        schema["required"].append(name)

    return change


def _not_required(name: str):
    def change(schema: dict) -> None:
        schema["required"] = [r for r in schema["required"] if r != name]

    return change


REFUSED = {  # rule -> (change, field, words the message says)
    "removed-field": (_remove("page_url"), "page_url", "deprecate"),
    "removed required field": (_remove("event_time"), "event_time", "removed-field"),
    "no-longer-required": (_not_required("event_id"), "event_id", "readers rely on it"),
    "new-required-field": (_require("coupon", {"type": "string"}), "coupon", "without a default"),
    "optional made required": (_require("amount"), "amount", "new-required-field"),
    "type-changed (narrowed)": (_set("amount", type="integer"), "amount", "type-changed"),
    "type-changed (widened)": (
        _set("customer_id", type=["number", "null"]),
        "customer_id",
        "type-changed",
    ),
    "type-changed (null dropped)": (_set("currency", type="string"), "currency", "type-changed"),
    "enum-narrowed": (_set("currency", enum=["EUR", "USD", None]), "currency", "enum-narrowed"),
    "const changed": (_set("event_type", const="order_paid"), "event_type", "const"),
    "constraint-changed (tightened)": (_set("event_id", minLength=8), "event_id", "minLength"),
    "constraint-changed (loosened)": (_unset("customer_id", "minimum"), "customer_id", "minimum"),
    "format changed": (_set("event_time", format="date"), "event_time", "format"),
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_each_rule_refuses_an_incompatible_change_naming_the_field(case: str) -> None:
    change, field, words = REFUSED[case]
    try:
        message = refusal(change)
    except RegistryError as exc:  # what the registry itself refuses before any comparison
        message = str(exc)
    assert field in message and words in message, message


def test_a_narrowed_enum_names_the_values_old_events_carry() -> None:
    old = order_v1()
    old["properties"]["payment_method"] = {"type": ["string", "null"], "enum": ["card", "cash"]}
    new = copy.deepcopy(old)
    new["properties"]["payment_method"]["enum"] = ["card"]
    found = incompatibilities(as_version(old, "1"), as_version(new))
    assert [(i.rule, i.field) for i in found] == [("enum-narrowed", "payment_method")]
    assert "'cash'" in found[0].detail


def test_compatible_changes_pass() -> None:
    """A new optional field, a widened enum, a deprecated field, a new required field with a
    default, changed descriptions: all readable both ways."""
    old = order_v1()
    old["properties"]["payment_method"] = {"type": ["string", "null"], "enum": ["card"]}
    new = copy.deepcopy(old)
    new["properties"]["payment_method"]["enum"] = ["card", "paypal"]
    new["properties"]["coupon"] = {"type": ["string", "null"]}
    new["properties"]["channel"] = {"type": "string", "default": "web"}
    new["required"].append("channel")
    new["properties"]["currency"]["deprecated"] = True
    new["properties"]["amount"]["description"] = "said better"
    assert incompatibilities(as_version(old, "1"), as_version(new)) == []


def test_several_breaks_are_all_named() -> None:
    def change(schema: dict) -> None:
        _remove("page_url")(schema)
        _set("amount", type="string")(schema)

    message = refusal(change)
    assert "page_url: removed-field" in message and "amount: type-changed" in message
    assert "order_placed/v2.json" in message and "order_placed/v1.json" in message


def test_an_incompatible_version_in_a_registry_directory_fails_the_check(tmp_path: Path) -> None:
    """The test above over a registry a producer team broke: the same check, the file named."""
    for schema in REGISTRY.all():
        folder = tmp_path / schema.event_type
        folder.mkdir(exist_ok=True)
        (folder / f"v{schema.version}.json").write_text(json.dumps(schema.schema))
    v3 = copy.deepcopy(dict(REGISTRY.get("order_placed", "2").schema))
    v3["properties"]["payment_method"]["enum"] = ["card", None]
    (tmp_path / "order_placed" / "v3.json").write_text(json.dumps(v3))
    with pytest.raises(IncompatibleSchema, match=r"v3\.json .*payment_method: enum-narrowed"):
        check_registry(schema_registry.load(tmp_path))


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda s: s.update(additionalProperties=False), "additionalProperties"),
        (lambda s: s["properties"].update(items={"type": "array"}), "property items: type"),
        (lambda s: s["properties"]["amount"].update(multipleOf=0.01), "'multipleOf'"),
        (lambda s: s.update({"$schema": "http://json-schema.org/draft-07/schema#"}), "2020-12"),
        (lambda s: s["properties"]["amount"].update(type=["number", "string"]), "amount: type"),
        (lambda s: s["required"].append("nowhere"), "nowhere"),
        (lambda s: s["properties"]["amount"].update(minimum="zero"), "properties/amount/minimum"),
    ],
)
def test_the_registry_refuses_what_the_loader_cannot_check(change, words: str) -> None:
    schema = order_v1()
    change(schema)
    with pytest.raises(RegistryError, match=words.replace("(", r"\(")):
        as_version(schema)


def test_the_registry_refuses_gaps_and_odd_file_names(tmp_path: Path) -> None:
    (tmp_path / "order_placed").mkdir()
    v1 = json.dumps(order_v1())
    (tmp_path / "order_placed" / "v1.json").write_text(v1)
    (tmp_path / "order_placed" / "v3.json").write_text(v1.replace('"v1.json"', '"v3.json"'))
    with pytest.raises(RegistryError, match="without a gap"):
        schema_registry.load(tmp_path)
    (tmp_path / "order_placed" / "v3.json").rename(tmp_path / "order_placed" / "v02.json")
    with pytest.raises(RegistryError, match=r"v<N>\.json"):
        schema_registry.load(tmp_path)


def test_one_field_cannot_have_two_bronze_types(tmp_path: Path) -> None:
    for kind in ("click", "order_placed"):
        (tmp_path / kind).mkdir()
        schema = copy.deepcopy(dict(REGISTRY.get(kind, "1").schema))
        if kind == "order_placed":
            schema["properties"]["amount"]["type"] = ["string", "null"]
        (tmp_path / kind / "v1.json").write_text(json.dumps(schema))
    with pytest.raises(RegistryError, match="amount maps to bronze"):
        schema_registry.load(tmp_path)


# ---- the column check vouches only for what jsonschema passes ---------------------------------

field_values = st.one_of(
    st.none(), st.booleans(), integers, floats, texts, st.sampled_from(["", "card", "cash", "x"]),
    st.just(2**63), st.just(-(2**63) - 1), st.just(1.0), json_values,
)  # fmt: skip
names = st.sampled_from([*kafka_events.EVENTS.columns, "mystery"])
events = st.dictionaries(names, field_values, max_size=12)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    schema=st.sampled_from(list(REGISTRY.all())),
    batch=st.lists(events | st.builds(dict), min_size=1, max_size=8),
    data=st.data(),
)
def test_the_column_check_vouches_only_for_valid_events(schema, batch, data) -> None:
    """Every event ``unvouched`` does not return is valid for jsonschema (the converse need not
    hold: what it cannot vouch for, jsonschema judges)."""
    for event in batch:  # mostly well-typed events of the schema's type
        if data.draw(st.booleans()):
            event["event_type"] = schema.event_type
    bad = schema.unvouched(batch)
    for i, event in enumerate(batch):
        if i not in bad:
            assert schema.violation(event) is None, (event, schema.violation(event))


def test_a_violation_says_which_field_and_which_rule() -> None:
    v2 = REGISTRY.get("order_placed", "2")
    event = {"event_type": "order_placed", "event_time": "2025-01-01T00:00:00Z",
             "customer_id": "42", "payment_method": "cash"}  # fmt: skip
    assert v2.violation(event) == (
        "customer_id: type: '42' is not of type 'integer', 'null'; "
        "event_id: required: 'event_id' is a required property; "
        "payment_method: enum: 'cash' is not one of ['card', 'paypal', 'bank_transfer', "
        "'gift_card', None]"
    )
    assert (
        v2.violation({**event, "customer_id": 1, "event_id": "e", "payment_method": None}) is None
    )
