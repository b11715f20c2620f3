"""Is a new version of an event schema backward compatible with the one before it?

Compatible means both sides of a Kafka topic keep working while producers and consumers upgrade
at their own pace, and while the lake replays history: a reader written for version N-1 reads
events of version N (a consumer that has not upgraded yet), and a reader of version N reads the
events of N-1 still in the topic and in bronze (silver maps every version, a replay re-reads old
offsets). The rules, each refusing a change with a message naming the field:

1. ``removed-field``: every property of N-1 stays in N. Schemas are open (unknown fields are
   allowed), so a field dropped from N could come back with any type; deprecate it instead
   (``"deprecated": true``) and keep sending it while readers need it.
2. ``no-longer-required``: a field N-1 requires stays required (readers of N-1 rely on it).
3. ``new-required-field``: N requires no field N-1 did not, unless N gives it a ``default``
   (events of N-1 lack it; a reader fills the default).
4. ``type-changed``: a field keeps exactly its JSON types. Narrowing (number to integer, dropping
   null) refuses events of N-1; widening (integer to number, adding null) sends readers of N-1
   values they do not expect.
5. ``enum-narrowed``: an enum (or const) of N keeps every value of N-1 (events of N-1 carry them).
   An enum may gain values: readers must treat an unknown value as they treat null (silver's
   accepted-values test says when one arrives).
6. ``constraint-changed``: ``minLength``, ``maxLength``, ``minimum``, ``maximum`` and ``format``
   stay as they were (tightened, they refuse events of N-1; loosened, they send readers of N-1
   values outside what they were promised). An ``enum`` added to a free field is a narrowing.
7. New optional fields, and changed annotations (description, title, deprecated, examples,
   default), are compatible.

``additionalProperties`` must stay open in every version, and the event type cannot change; the
registry (``schema_registry.parse_schema``) refuses those on its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from ingestion.schema_registry import EventSchema, SchemaRegistry

CONSTRAINTS = ("minLength", "maxLength", "minimum", "maximum", "format")


@dataclass(frozen=True)
class Incompatibility:
    """One rule a new version breaks, on one field."""

    rule: str
    field: str
    detail: str

    def __str__(self) -> str:
        return f"{self.field}: {self.rule}: {self.detail}"


class IncompatibleSchema(ValueError):
    """A new version readers of the version before it could not read (or the reverse)."""


def incompatibilities(old: EventSchema, new: EventSchema) -> list[Incompatibility]:
    """Every rule ``new`` breaks against ``old``, field by field (empty: compatible)."""
    return sorted(_check(old, new), key=lambda i: (i.field, i.rule))


def _check(old: EventSchema, new: EventSchema) -> Iterator[Incompatibility]:
    before, after = old.schema.get("properties", {}), new.schema.get("properties", {})
    required_before = set(old.schema.get("required", []))
    required_after = set(new.schema.get("required", []))
    for name, spec in before.items():
        if name not in after:
            why = f"{old.label} has it, {new.label} does not (deprecate it and keep sending it)"
            yield Incompatibility("removed-field", name, why)
            continue
        if name in required_before and name not in required_after:
            why = f"required in {old.label}, optional in {new.label}: its readers rely on it"
            yield Incompatibility("no-longer-required", name, why)
        yield from _field(name, spec, after[name], old, new)
    for name in sorted(required_after - required_before):
        if "default" not in after[name]:
            was = "optional" if name in before else "absent"
            why = f"{was} in {old.label}, required in {new.label} without a default"
            yield Incompatibility("new-required-field", name, why)


def _field(
    name: str,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    old: EventSchema,
    new: EventSchema,
) -> Iterator[Incompatibility]:
    types_before, types_after = _types(before), _types(after)
    if types_before != types_after:
        yield Incompatibility("type-changed", name, f"{sorted(types_before)} in {old.label}, "
                              f"{sorted(types_after)} in {new.label}")  # fmt: skip
    values_before, values_after = _enum(before), _enum(after)
    if values_after is not None:
        if values_before is None:
            yield Incompatibility("enum-narrowed", name, f"free in {old.label}, limited to "
                                  f"{_show(values_after)} in {new.label}")  # fmt: skip
        elif lost := [v for v in values_before if v not in values_after]:
            yield Incompatibility("enum-narrowed", name, f"{new.label} no longer allows "
                                  f"{_show(lost)}, which events of {old.label} carry")  # fmt: skip
    for keyword in CONSTRAINTS:
        if before.get(keyword) != after.get(keyword):
            yield Incompatibility("constraint-changed", name, f"{keyword} "
                                  f"{before.get(keyword)!r} in {old.label}, "
                                  f"{after.get(keyword)!r} in {new.label}")  # fmt: skip


def _types(spec: Mapping[str, Any]) -> frozenset[str]:
    kinds = spec.get("type", [])
    return frozenset([kinds] if isinstance(kinds, str) else kinds)


def _enum(spec: Mapping[str, Any]) -> list[Any] | None:
    if "enum" in spec:
        return list(spec["enum"])
    return [spec["const"]] if "const" in spec else None


def _show(values: list[Any]) -> str:
    return ", ".join(map(repr, values))


def check(old: EventSchema, new: EventSchema) -> None:
    """Raise ``IncompatibleSchema`` naming every field ``new`` breaks, if any."""
    found = incompatibilities(old, new)
    if found:
        raise IncompatibleSchema(
            f"{new.path} is not backward compatible with {old.path}: " + "; ".join(map(str, found))
        )


def check_registry(registry: SchemaRegistry) -> None:
    """``check`` every consecutive pair of versions of every event type."""
    for event_type in registry.event_types():
        versions = registry.versions(event_type)
        for older, newer in pairwise(versions):
            check(registry.schemas[event_type][older], registry.schemas[event_type][newer])
