"""Where a setting comes from: the environment first, then ``lakehouse.yml``, then the defaults.

``Settings`` (lakehouse/core/config.py) is a pydantic-settings ``BaseSettings``; these are its two
sources. The environment has two kinds of names, both documented in docs/configuration.md:

- the *named variables* (``LAKEHOUSE_THRIFT_PORT``, ``LAKEHOUSE_SCALE``...), which scripts, the
  Makefile, the test suite, dbt's ``profiles.yml`` and Airflow's environment have always used,
  each for one setting; and
- pydantic-settings' own scheme, ``LAKEHOUSE_<SECTION>__<KEY>[__<KEY>...]``, which reaches every
  setting of ``lakehouse.yml`` without a name being added here (a list or a mapping as JSON).

Both kinds set the same setting only if they agree: two variables that disagree about one value
are refused, so which one is in effect is never a question of precedence rules. Every value keeps
a record of the variable it came from, so a value that fails validation is reported with the
variable's name and not the file's.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource
from pydantic_settings.exceptions import SettingsError

ENV_PREFIX = "LAKEHOUSE_"
NESTED_DELIMITER = "__"
# Which file is read (not a setting: it decides where the settings come from).
CONFIG_ENV = "LAKEHOUSE_CONFIG"

# The named variables and the setting each one sets. They keep their names and meaning;
# LAKEHOUSE_HOME is also the generic scheme's name for ``home``.
NAMED_VARIABLES: dict[str, tuple[str, ...]] = {
    "LAKEHOUSE_HOME": ("home",),
    "LAKEHOUSE_THRIFT_HOST": ("engine", "host"),
    "LAKEHOUSE_THRIFT_PORT": ("engine", "port"),
    "LAKEHOUSE_ENGINE_BIND_ADDRESS": ("engine", "bind_address"),
    "LAKEHOUSE_POSTGRES_PORT": ("services", "postgres_port"),
    "LAKEHOUSE_SNOWFLAKE_PORT": ("services", "snowflake_port"),
    "LAKEHOUSE_KAFKA_PORT": ("services", "kafka_port"),
    "LAKEHOUSE_KAFKA_CONTROLLER_PORT": ("services", "kafka_controller_port"),
    "LAKEHOUSE_AIRFLOW_PORT": ("orchestration", "api_port"),
    "LAKEHOUSE_S3_PORT": ("services", "s3_port"),
    "LAKEHOUSE_SCALE": ("sample_data", "scale"),
    "LAKEHOUSE_DIRTY_SHARE": ("sample_data", "dirty_share"),
}


class SourceError(ValueError):
    """A source cannot be read; the message names the variable or the file."""


@dataclass(frozen=True)
class Origin:
    """An environment variable and the part of the settings its value sets."""

    variable: str
    value: str
    path: tuple[str, ...]

    def covers(self, loc: tuple[str, ...]) -> bool:
        return loc[: len(self.path)] == self.path


class Environment(EnvSettingsSource):
    """The environment: pydantic-settings' nested scheme, then the named variables on top.

    Prefix, delimiter and the rule that an empty variable counts as unset come from the settings
    class's ``model_config``. ``origins`` records, after a call, which variable set what.
    """

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        self.origins: list[Origin] = []

    def __call__(self) -> dict[str, Any]:
        self._refuse_unknown_sections()
        self.origins = self._nested_origins()
        try:
            values = super().__call__()
        except SettingsError as exc:  # a section or a list given as something other than JSON
            raise SourceError(self._unparsable(exc)) from exc
        for name, path in NAMED_VARIABLES.items():
            raw = os.environ.get(name)
            if not raw:
                continue
            set_by = self.origin(path)
            if set_by is not None and set_by.variable != name and _get(values, path) != raw:
                raise SourceError(
                    f"{name}={raw!r} and {set_by.variable}={set_by.value!r} both set "
                    f"{'.'.join(path)}: set one of them"
                )
            _put(values, path, raw)
            self.origins.append(Origin(name, raw, path))
        return values

    def origin(self, loc: tuple[str, ...]) -> Origin | None:
        """The variable a value at ``loc`` (or a part of it) came from; None: not from here."""
        covering = [o for o in self.origins if o.covers(loc)]
        return max(covering, key=lambda o: len(o.path)) if covering else None

    def _nested_origins(self) -> list[Origin]:
        """What each non-empty variable of the nested scheme sets (named as the environment
        spells it; pydantic-settings matches the names without regard to case)."""
        origins = []
        for name, value in os.environ.items():
            path = tuple(name[len(ENV_PREFIX) :].lower().split(NESTED_DELIMITER))
            known = path[0] in self.settings_cls.model_fields
            if name.upper().startswith(ENV_PREFIX) and value and known:
                origins.append(Origin(name, value, path))
        return origins

    def _refuse_unknown_sections(self) -> None:
        """A ``LAKEHOUSE_<X>__<KEY>`` whose X is no section is a typo: pydantic-settings would
        ignore it (it reads only the names of fields), so the setting meant would not change."""
        sections = self.settings_cls.model_fields
        for name in os.environ:
            if not name.upper().startswith(ENV_PREFIX) or NESTED_DELIMITER not in name:
                continue
            section = name[len(ENV_PREFIX) :].split(NESTED_DELIMITER)[0].lower()
            if section not in sections:
                raise SourceError(
                    f"{name}: no section {section!r} in the settings "
                    f"(sections: {', '.join(sorted(sections))}; docs/configuration.md)"
                )

    def _unparsable(self, exc: SettingsError) -> str:
        """Name the variables of the field pydantic-settings could not parse (its message names
        the field and the source class only)."""
        found = re.search(r'field "(\w+)"', str(exc))
        field = found.group(1) if found else ""
        names = sorted(o.variable for o in self.origins if o.path[0] == field)
        cause = f": {exc.__cause__}" if exc.__cause__ else ""
        return (
            f"{', '.join(names) or str(exc)}: not valid for {field} (a section, a list or a "
            f"mapping is given as JSON){cause}"
        )


class ConfigFile(PydanticBaseSettingsSource):
    """``lakehouse.yml``, read strictly: a missing file, YAML that does not parse or a top level
    that is not a mapping is an error naming the file. (pydantic-settings' own
    ``YamlConfigSettingsSource`` reads a missing file as empty and matches top-level keys without
    regard to case; the file's mapping is passed on here as written, for the model to judge.)"""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls)
        self.path = path
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise SourceError(f"{path}: configuration file not found") from exc
        except yaml.YAMLError as exc:
            raise SourceError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(raw, dict):
            raise SourceError(f"{path}: top level must be a mapping, got {type(raw).__name__}")
        self.values: dict[str, Any] = raw

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.values)


def environment_then_file(
    settings_cls: type[BaseSettings], path: Path
) -> tuple[Environment, ConfigFile]:
    """The sources, highest priority first; the model's defaults fill what neither gives."""
    return Environment(settings_cls), ConfigFile(settings_cls, path)


def _get(values: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(values, dict) or key not in values:
            return None
        values = values[key]
    return str(values) if not isinstance(values, dict | list) else values


def _put(values: dict[str, Any], path: tuple[str, ...], value: str) -> None:
    *parents, leaf = path
    for key in parents:
        values = values.setdefault(key, {})
    values[leaf] = value
