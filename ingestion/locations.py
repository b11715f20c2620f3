"""Where each source system answers for one run, as the loaders see it.

A source names the arguments of its dlt source that locate its system (``SourceSpec.location``:
``base_url``, ``token``, ``credentials``, ``bootstrap_servers``). Each is resolved, first found:

1. dlt's own configuration: ``SOURCES__<NAME>__<ARGUMENT>`` in the environment, or
   ``[sources.<name>]`` in ``.dlt/config.toml`` / ``secrets.toml`` (the key dlt injects into the
   source function's ``dlt.config.value`` / ``dlt.secrets.value`` argument);
2. the production variable the platform has always read (``CRM_BASE_URL``, ``SNOWFLAKE_URL``...,
   docs/operations.md);
3. the local stand-in the stack started (lakehouse/stack/source_systems.py fills ``Locations``).

The stack asks ``configured`` before starting a stand-in; the loader reads ``Locations.of``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import dlt

from ingestion.spec import SourceSpec


def configured(spec: SourceSpec, argument: str) -> str | None:
    """The value set for ``argument`` of ``spec``'s source outside this project, if any."""
    accessor = dlt.secrets if argument in spec.secrets else dlt.config
    value = accessor.get(f"sources.{spec.name}.{argument}")
    if value is None and (variable := spec.location.get(argument)):
        value = os.environ.get(variable) or None
    return None if value is None else str(value)


def address(spec: SourceSpec) -> str | None:
    """The configured address of the source's system: its first location argument (a URL,
    brokers, a credentials URL), or None when the local stand-in serves it."""
    return configured(spec, next(iter(spec.location))) if spec.location else None


def address_setting(spec: SourceSpec) -> str:
    """The setting an operator sets to point the source elsewhere, as messages name it: the
    production variable of its address, or dlt's name for it."""
    argument, variable = next(iter(spec.location.items()), ("", ""))
    return variable or f"SOURCES__{spec.name.upper()}__{argument.upper()}"


def production(spec: SourceSpec) -> bool:
    """Whether the source reads a production system (its address is configured), not a stand-in.
    Its credentials may still be missing: then its load fails, naming them."""
    return address(spec) is not None


@dataclass(frozen=True)
class Locations:
    """Where each source system answers this run: what the stack filled, per source, by
    argument name; an argument it did not fill is resolved by ``configured``."""

    filled: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    local: frozenset[str] = frozenset()  # sources served by a local stand-in

    def of(self, spec: SourceSpec) -> dict[str, str]:
        """``spec``'s location for this run; ValueError naming what nobody configured."""
        given = self.filled.get(spec.name, {})
        resolved = {a: given.get(a) or configured(spec, a) for a in spec.location}
        if missing := [a for a, v in resolved.items() if not v]:
            variables = [f"SOURCES__{spec.name.upper()}__{a.upper()}" for a in missing]
            raise ValueError(f"source {spec.name}: set {', '.join(variables)}")
        return {a: str(v) for a, v in resolved.items()}
