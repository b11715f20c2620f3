"""The event schema registry: one JSON Schema (draft 2020-12) per Kafka event type and version.

The registry is a directory in the repository, ``ingestion/event_schemas/<event_type>/v<N>.json``,
reviewed like code: a producer team adds a version by adding a file (docs/ingestion.md), and
``ingestion/schema_compatibility.py`` refuses it in the fast tests unless it is backward
compatible with the version before it. Why files and not a registry server: the platform runs
with no service it does not start itself, and a schema in the repository is versioned, reviewed
and tested with the silver model that reads it.

Every message declares its version in its ``schema_version`` Kafka header (ingestion/kafka_events.py
says why a header); its event type is the payload's ``event_type`` field, which every schema pins
with ``const``. The loader validates the message against that schema; the bronze table is the
union of every schema's properties (``bronze_columns``), so a version adding a field adds a
nullable bronze column, and a message of any version lands in the same table with its
``_schema_version``.

What a schema may say is kept to what the loader can check a whole column at a time
(``EventSchema.unvouched``) and map to a bronze column: an open object of scalar properties, each
with a ``type`` (string, integer, number, boolean, each optionally with null) and optionally
``minLength``/``maxLength``, ``minimum``/``maximum``, ``enum``/``const``, ``format`` (an
annotation in 2020-12, not asserted; ``date-time`` makes the bronze column a timestamp, which the
bronze guard parses), and annotations. A file using anything else is refused when the registry
loads, naming the file and the keyword, rather than validated one way row by row and another way
by the column check.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache, partial
from itertools import repeat
from operator import is_not
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError

REGISTRY_DIR = Path(__file__).parent / "event_schemas"
VERSION_HEADER = "schema_version"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
# Part of a bronze row's key the loader sets itself (beside Kafka's coordinates).
SCHEMA_VERSION_COLUMN = "_schema_version"

ANNOTATIONS = frozenset({"title", "description", "$comment", "examples", "default", "deprecated"})
TOP_KEYWORDS = frozenset({"$schema", "$id", "type", "properties", "required",
                          "additionalProperties"}) | ANNOTATIONS  # fmt: skip
PROPERTY_KEYWORDS = frozenset({"type", "enum", "const", "minLength", "maxLength", "minimum",
                               "maximum", "format"}) | ANNOTATIONS  # fmt: skip
JSON_TYPES = ("string", "integer", "number", "boolean", "null")
# The bronze (dlt) type of each JSON type; a nullable property maps as its non-null type.
DLT_TYPES = {"string": "text", "integer": "bigint", "number": "double", "boolean": "bool"}
# The Python types ``json``/``orjson`` give each JSON type, as the column check tests them with
# ``type()`` (bool is not an integer for JSON Schema; a float like 1.0 is one for jsonschema,
# so the column check leaves it to jsonschema rather than vouch for it).
PY_TYPES: dict[str, frozenset[type]] = {
    "string": frozenset({str}),
    "integer": frozenset({int}),
    "number": frozenset({int, float}),
    "boolean": frozenset({bool}),
    "null": frozenset({type(None)}),
}
VERSION_FILE = re.compile(r"^v([1-9][0-9]*)\.json$")
REASON_MESSAGE_CHARS = 120


class _Missing:
    """An absent property (its own type, so the column check finds it with the others)."""


_MISSING = _Missing()


class RegistryError(ValueError):
    """A schema file the registry refuses (names the file and what is wrong)."""


@dataclass(frozen=True)
class PropertyRule:
    """What one property's schema asserts, as the column check tests it."""

    name: str
    types: frozenset[str]
    required: bool
    enum: tuple[Any, ...] | None = None
    min_length: int | None = None
    max_length: int | None = None
    minimum: float | None = None
    maximum: float | None = None

    @property
    def py_types(self) -> frozenset[type]:
        return frozenset().union(*(PY_TYPES[t] for t in self.types))

    def column_fits(self, values: list[Any]) -> bool:
        """True only if jsonschema would pass every value of the column (``_MISSING``: absent).

        Tests over the whole column at once (``set(map(type, ...))``, ``min``, ``max``); False
        says only that it cannot vouch for all of them: ``value_fits`` then finds which.
        """
        types = set(map(type, values))
        if _Missing in types:
            if self.required:
                return False
            values = list(filter(partial(is_not, _MISSING), values))
            types.discard(_Missing)
        if not types <= self.py_types:
            return False
        if self.enum is not None and (not types <= {str, type(None)}
                                      or not set(values) <= set(self.enum)):  # fmt: skip
            return False
        if self.min_length == 1 and self.max_length is None:
            if "" in values:  # the common case (a required text), without measuring each
                return False
        elif self.min_length is not None or self.max_length is not None:
            lengths = [len(v) for v in values if type(v) is str]
            if lengths and not self._length_fits(min(lengths), max(lengths)):
                return False
        if self.minimum is not None or self.maximum is not None:
            numbers = list(filter(partial(is_not, None), values)) if None in values else values
            if numbers and not types <= {int, float, type(None)}:
                numbers = [v for v in numbers if type(v) in (int, float)]
            if numbers and not self._range_fits(numbers, float in types):
                return False
        return True

    def value_fits(self, value: Any) -> bool:
        """``column_fits`` of one value."""
        return self.column_fits([value])

    def _length_fits(self, shortest: int, longest: int) -> bool:
        return (self.min_length is None or shortest >= self.min_length) and (
            self.max_length is None or longest <= self.max_length
        )

    def _range_fits(self, numbers: list[Any], floats: bool) -> bool:
        if floats and not all(map(math.isfinite, [v for v in numbers if type(v) is float])):
            return False  # NaN compares false with everything: leave it to jsonschema
        low, high = min(numbers), max(numbers)
        return (self.minimum is None or low >= self.minimum) and (
            self.maximum is None or high <= self.maximum
        )


@dataclass(frozen=True)
class EventSchema:
    """One version of one event type: its JSON Schema, validator and column rules."""

    event_type: str
    version: str
    schema: Mapping[str, Any]
    path: Path
    rules: tuple[PropertyRule, ...]
    validator: Draft202012Validator = field(compare=False, repr=False)

    @property
    def label(self) -> str:
        return f"{self.event_type} v{self.version}"

    def violation(self, event: Any) -> str | None:
        """Why ``event`` is invalid against this version (every field at fault: which field,
        which rule, jsonschema's words), or None when it is valid."""
        errors = sorted(self.validator.iter_errors(event), key=_error_order)
        if not errors:
            return None
        return "; ".join(describe(error) for error in errors)

    def unvouched(self, events: list[dict]) -> set[int]:
        """Indexes of the ``events`` the column check cannot vouch valid; jsonschema decides
        those. Every other one jsonschema would pass (tests/fast/test_kafka_arrow.py holds the
        two to the same outcome)."""
        bad: set[int] = set()
        for rule in self.rules:
            values = list(map(dict.get, events, repeat(rule.name), repeat(_MISSING)))
            if not rule.column_fits(values):
                bad.update(i for i, value in enumerate(values) if not rule.value_fits(value))
        return bad


def describe(error: ValidationError) -> str:
    """One validation error as ``<field>: <rule>: <message>``, the message cut short (a value
    can be a megabyte long)."""
    name = _error_field(error)
    message = error.message
    if len(message) > REASON_MESSAGE_CHARS:
        message = message[: REASON_MESSAGE_CHARS - 1] + "…"
    return f"{name}: {error.validator}: {message}"


def _error_field(error: ValidationError) -> str:
    if error.validator == "required":  # the message is "<repr of the name> is a required ..."
        try:
            return str(ast.literal_eval(error.message.rsplit(" is a required property", 1)[0]))
        except (ValueError, SyntaxError):
            return "(event)"
    return ".".join(map(str, error.absolute_path)) or "(event)"


def _error_order(error: ValidationError) -> tuple[str, str]:
    return _error_field(error), str(error.validator)


@dataclass(frozen=True)
class SchemaRegistry:
    """Every event schema by event type and version."""

    schemas: Mapping[str, Mapping[str, EventSchema]]

    def get(self, event_type: Any, version: str) -> EventSchema | None:
        if not isinstance(event_type, str):
            return None
        return self.schemas.get(event_type, {}).get(version)

    def versions(self, event_type: str) -> list[str]:
        """The event type's versions, oldest first."""
        return sorted(self.schemas.get(event_type, {}), key=int)

    def event_types(self) -> list[str]:
        return sorted(self.schemas)

    def all(self) -> Iterable[EventSchema]:
        for event_type in self.event_types():
            for version in self.versions(event_type):
                yield self.schemas[event_type][version]

    def bronze_columns(self) -> dict[str, dict[str, Any]]:
        """The bronze columns every version of every event type maps to: the union of their
        properties, in the order they first appear (oldest versions first), each typed once.

        A property two schemas type differently (``amount`` a number in one, a string in
        another) would need two bronze columns of one name: refused, naming both files.
        """
        columns: dict[str, dict[str, Any]] = {}
        where: dict[str, Path] = {}
        for schema in sorted(self.all(), key=lambda s: (int(s.version), s.event_type)):
            for rule in schema.rules:
                column = _dlt_column(schema, rule.name)
                if rule.name in columns and columns[rule.name] != column:
                    raise RegistryError(
                        f"{schema.path}: {rule.name} maps to bronze {column}, but "
                        f"{where[rule.name]} maps it to {columns[rule.name]}; one field, one type"
                    )
                columns.setdefault(rule.name, column)
                where.setdefault(rule.name, schema.path)
        return columns


def _dlt_column(schema: EventSchema, name: str) -> dict[str, Any]:
    spec = schema.schema["properties"][name]
    (kind,) = [t for t in _types(spec) if t != "null"] or ["string"]
    if kind == "string" and spec.get("format") == "date-time":
        return {"data_type": "timestamp", "timezone": True}
    return {"data_type": DLT_TYPES[kind]}


def _types(spec: Mapping[str, Any]) -> list[str]:
    kinds = spec.get("type")
    return [kinds] if isinstance(kinds, str) else list(kinds or [])


@cache
def load(root: Path = REGISTRY_DIR) -> SchemaRegistry:
    """Read and check every schema file under ``root`` (cached: the files are part of the
    release). Raise ``RegistryError`` naming the file for anything the loader could not honour."""
    schemas: dict[str, dict[str, EventSchema]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(folder.glob("*.json"))
        versions = {}
        for path in files:
            match = VERSION_FILE.match(path.name)
            if not match:
                raise RegistryError(f"{path}: a schema file is named v<N>.json (N = 1, 2, ...)")
            versions[match.group(1)] = read_schema(path, folder.name, match.group(1))
        numbers = sorted(map(int, versions))
        if numbers != list(range(1, len(numbers) + 1)):
            raise RegistryError(f"{folder}: versions {numbers} are not 1, 2, ... without a gap")
        if versions:
            schemas[folder.name] = versions
    registry = SchemaRegistry(schemas)
    registry.bronze_columns()  # refuses two types for one field now, not at the first load
    return registry


def read_schema(path: Path, event_type: str, version: str) -> EventSchema:
    """One schema file, checked: valid JSON Schema 2020-12, within what the loader checks."""
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise RegistryError(f"{path}: not JSON: {exc}") from None
    return parse_schema(schema, event_type, version, path)


def parse_schema(
    schema: Any, event_type: str, version: str, path: Path = Path("<schema>")
) -> EventSchema:
    """``read_schema`` of a schema already parsed (the compatibility tests build them inline)."""
    if not isinstance(schema, dict):
        raise RegistryError(f"{path}: a schema is a JSON object")
    if schema.get("$schema") != DRAFT:
        raise RegistryError(f"{path}: $schema must be {DRAFT}")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(map(str, exc.path)) or "(top)"
        raise RegistryError(f"{path}: not a valid JSON Schema at {where}: {exc.message}") from None
    _only(path, "", schema, TOP_KEYWORDS)
    if schema.get("type") != "object":
        raise RegistryError(f"{path}: an event schema has type object")
    if schema.get("additionalProperties", True) is not True:
        raise RegistryError(
            f"{path}: additionalProperties must stay open (true or absent): fields no version "
            "declares are the loader's schema_policy's to judge, and a reader ignores them"
        )
    properties = schema.get("properties", {})
    required = set(schema.get("required", []))
    if missing := sorted(required - set(properties)):
        raise RegistryError(f"{path}: required {missing} not among the properties")
    pinned = properties.get("event_type", {})
    if pinned.get("const") != event_type or "event_type" not in required:
        raise RegistryError(
            f"{path}: event_type must be required, with const {event_type!r} (its folder's name)"
        )
    rules = []
    for name, spec in properties.items():
        if not isinstance(spec, dict):
            raise RegistryError(f"{path}: property {name}: a schema object is expected")
        _only(path, f"property {name}: ", spec, PROPERTY_KEYWORDS)
        kinds = _types(spec)
        if not kinds or not set(kinds) <= set(JSON_TYPES) or len(set(kinds) - {"null"}) != 1:
            raise RegistryError(
                f"{path}: property {name}: type must name one of string, integer, number, "
                "boolean (optionally with null)"
            )
        enum = spec.get("enum", [spec["const"]] if "const" in spec else None)
        rules.append(PropertyRule(
            name=name, types=frozenset(kinds), required=name in required,
            enum=tuple(enum) if enum is not None else None,
            min_length=spec.get("minLength"), max_length=spec.get("maxLength"),
            minimum=spec.get("minimum"), maximum=spec.get("maximum"),
        ))  # fmt: skip
    return EventSchema(event_type, version, schema, path, tuple(rules),
                       Draft202012Validator(schema))  # fmt: skip


def _only(path: Path, where: str, spec: Mapping[str, Any], allowed: frozenset[str]) -> None:
    if extra := sorted(set(spec) - allowed):
        raise RegistryError(
            f"{path}: {where}keyword {extra[0]!r} is not supported by the registry (allowed: "
            f"{', '.join(sorted(allowed))})"
        )
