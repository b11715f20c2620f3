"""The sources the platform loads, in load order: the one list every layer above reads.

Each built-in source is a module of this package that ends with a ``SPEC`` (ingestion/spec.py);
another one joins at runtime with ``register(spec)``. Names are known without importing a source
module, so ``lakehouse --help`` and the CLI's ``--source`` choices cost no dlt or Kafka client
import: a module is imported the first time its spec is asked for.
"""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import BaseModel, ValidationError

from ingestion.spec import SourceSpec
from lakehouse.core.config import ConfigError, Settings

# Built-in sources in load order: name -> the module that declares it.
BUILT_IN = {
    "snowflake": "ingestion.snowflake",
    "crm": "ingestion.crm",
    "redshift": "ingestion.redshift",
    "fx": "ingestion.fx_rates",
    "kafka": "ingestion.kafka_events",
}
SOURCES = tuple(BUILT_IN)  # what `make run` loads

_registered: dict[str, SourceSpec] = {}


def register(spec: SourceSpec) -> SourceSpec:
    """Add a source defined elsewhere (a plugin, a test); loaded after the built-in ones."""
    if spec.name in BUILT_IN:
        raise ValueError(f"source {spec.name!r} is built in (ingestion/registry.py)")
    _registered[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    _registered.pop(name, None)


def names() -> tuple[str, ...]:
    """Every source this process knows: the built-in ones, then the registered ones."""
    return (*SOURCES, *_registered)


def spec(name: str) -> SourceSpec:
    """The declaration of source ``name``; ValueError naming the choices if there is none."""
    if name in _registered:
        return _registered[name]
    if name not in BUILT_IN:
        raise ValueError(f"unknown source {name!r}; choose from {', '.join(names())}")
    declared: SourceSpec = importlib.import_module(BUILT_IN[name]).SPEC
    return declared


def conf(name: str, settings: Settings) -> Any:
    """The source's ``sources.<name>`` settings, validated by the model its module declares.

    The built-in sources' sections are validated with the whole configuration at start-up
    (lakehouse/core/config.py); another source's section is optional (its model's defaults) and
    validated here, with the key named as a configuration error names it.
    """
    model = spec(name).settings
    section = getattr(settings.sources, name, None)
    if isinstance(section, BaseModel):
        return section
    try:
        return model.model_validate(section or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"sources.{name}.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"configuration: {problems}") from exc


def check(settings: Settings) -> None:
    """Refuse a ``sources`` section of no known source (a typo) and any invalid section."""
    extra = settings.sources.model_extra or {}
    for name in extra:
        if name not in names():
            raise ConfigError(
                f"configuration: sources.{name}: no such source; known: {', '.join(names())}"
            )
    for name in names():
        conf(name, settings)
