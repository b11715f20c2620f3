"""Environment overrides through pydantic-settings: the same names as always, one generic scheme
beside them, a malformed value named by its variable, and docs/configuration.md checked against
the code so its table of variables cannot drift."""

from __future__ import annotations

import ast
import functools
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from config_files import write_config

from lakehouse.core.config import (
    DEFAULT_CONFIG_FILE,
    REPO_ROOT,
    ConfigError,
    Settings,
    load_settings,
)
from lakehouse.core.settings_sources import ENV_PREFIX, NAMED_VARIABLES

DOC = REPO_ROOT / "docs" / "configuration.md"
SHIPPED = yaml.safe_load(DEFAULT_CONFIG_FILE.read_text())

# A valid value, other than the shipped one, for each named variable.
SAMPLES = {
    "LAKEHOUSE_THRIFT_HOST": "10.0.0.7",
    "LAKEHOUSE_THRIFT_PORT": "12345",
    "LAKEHOUSE_ENGINE_BIND_ADDRESS": "0.0.0.0",
    "LAKEHOUSE_POSTGRES_PORT": "12346",
    "LAKEHOUSE_SNOWFLAKE_PORT": "12347",
    "LAKEHOUSE_KAFKA_PORT": "12348",
    "LAKEHOUSE_KAFKA_CONTROLLER_PORT": "12349",
    "LAKEHOUSE_S3_PORT": "12351",
    "LAKEHOUSE_AIRFLOW_PORT": "12350",
    "LAKEHOUSE_SCALE": "0.5",
    "LAKEHOUSE_DIRTY_SHARE": "0.2",
}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No LAKEHOUSE_* of the suite's (or the developer's): each test sets what it reads."""
    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path / "home"))


def _at(settings: Settings, path: tuple[str, ...]) -> Any:
    value: Any = settings
    for key in path:
        value = value[key] if isinstance(value, dict) else getattr(value, key)
    return value


# -- the named variables keep their names, meaning and precedence ------------------------------


def test_every_named_variable_has_a_sample() -> None:
    assert set(SAMPLES) == set(NAMED_VARIABLES) - {"LAKEHOUSE_HOME"}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_named_variable_sets_its_setting_over_the_file(name: str, monkeypatch) -> None:
    path = NAMED_VARIABLES[name]
    shipped = load_settings()
    monkeypatch.setenv(name, SAMPLES[name])
    overridden = load_settings()
    expected = type(_at(shipped, path))(SAMPLES[name])
    assert _at(overridden, path) == expected != _at(shipped, path)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_named_variable_equals_its_nested_name(name: str, monkeypatch) -> None:
    """LAKEHOUSE_THRIFT_PORT and LAKEHOUSE_ENGINE__PORT are one setting, two spellings."""
    nested = ENV_PREFIX + "__".join(NAMED_VARIABLES[name]).upper()
    monkeypatch.setenv(name, SAMPLES[name])
    by_name = load_settings()
    monkeypatch.delenv(name)
    monkeypatch.setenv(nested, SAMPLES[name])
    assert load_settings() == by_name


def test_home_from_the_environment_then_the_file_then_the_default(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("LAKEHOUSE_HOME")
    assert load_settings().home == REPO_ROOT / ".lakehouse"
    path = write_config(tmp_path, lambda raw: raw.update(home=str(tmp_path / "from-file")))
    assert load_settings(path).home == tmp_path / "from-file"
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path / "from-env"))
    settings = load_settings(path)
    assert settings.home == tmp_path / "from-env"
    assert settings.state_dir == tmp_path / "from-env" / "state"  # derived paths follow


def test_relative_home_is_made_absolute(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LAKEHOUSE_HOME", "relative/home")
    assert load_settings().home == tmp_path / "relative" / "home"


def test_config_variable_chooses_the_file(tmp_path, monkeypatch) -> None:
    path = write_config(tmp_path, lambda raw: raw["engine"].update(port=11111))
    monkeypatch.setenv("LAKEHOUSE_CONFIG", str(path))
    assert load_settings().engine.port == 11111
    assert load_settings(DEFAULT_CONFIG_FILE).engine.port == 10000  # an argument wins


def test_environment_over_file_over_defaults(tmp_path, monkeypatch) -> None:
    def mutate(raw: dict) -> None:
        raw["engine"]["port"] = 11111
        del raw["services"]  # every port from the model's defaults

    path = write_config(tmp_path, mutate)
    settings = load_settings(path)
    assert settings.engine.port == 11111
    assert settings.services.postgres_port == 5433
    monkeypatch.setenv("LAKEHOUSE_THRIFT_PORT", "12345")
    monkeypatch.setenv("LAKEHOUSE_POSTGRES_PORT", "12346")
    settings = load_settings(path)
    assert (settings.engine.port, settings.services.postgres_port) == (12345, 12346)
    assert settings.engine.driver_memory == SHIPPED["engine"]["driver_memory"]  # rest: the file


def test_empty_variable_is_unset(monkeypatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_SCALE", "")
    monkeypatch.setenv("LAKEHOUSE_ENGINE__SHUFFLE_PARTITIONS", "")
    settings = load_settings()
    assert settings.sample_data.scale == SHIPPED["sample_data"]["scale"]
    assert settings.engine.shuffle_partitions == SHIPPED["engine"]["shuffle_partitions"]


def test_settings_constructed_directly_read_the_same_sources(monkeypatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_SCALE", "0.5")
    monkeypatch.setenv("LAKEHOUSE_ENGINE__WARMUP_ROUNDS", "0")
    direct, loaded = Settings(), load_settings()
    assert direct.sample_data == loaded.sample_data and direct.engine == loaded.engine


# -- the nested scheme reaches every setting -----------------------------------------------------


def test_nested_names_reach_deep_settings(monkeypatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_ENGINE__SHUFFLE_PARTITIONS", "8")
    monkeypatch.setenv("LAKEHOUSE_ORCHESTRATION__WATCHDOG__TRAILING_DAYS", "14")
    monkeypatch.setenv("LAKEHOUSE_SOURCES__REDSHIFT__SCHEMA", "web2")  # an aliased key
    monkeypatch.setenv("LAKEHOUSE_OPS__COST__CORES__DBT", "8")
    settings = load_settings()
    assert settings.engine.shuffle_partitions == 8
    assert settings.orchestration.watchdog.trailing_days == 14
    assert settings.sources.redshift.schema_ == "web2"
    # one entry of a mapping; the file's others stay
    assert settings.ops.cost.cores == {**SHIPPED["ops"]["cost"]["cores"], "dbt": 8.0}
    assert settings.engine.port == SHIPPED["engine"]["port"]


def test_lists_are_json_and_replace_the_files(monkeypatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_SOURCES__FX__CURRENCIES", '["EUR", "GBP"]')
    assert load_settings().sources.fx.currencies == ["EUR", "GBP"]


def _nested_examples() -> list[str]:
    section = DOC.read_text().split("## The nested scheme")[1].split("\n## ")[0]
    return re.findall(r"^\| `(LAKEHOUSE_[A-Z_]+__[^`]+)` \|", section, flags=re.M)


@pytest.mark.parametrize("example", _nested_examples())
def test_documented_nested_examples_do_what_they_say(example: str, monkeypatch) -> None:
    name, _, raw = example.partition("=")
    value = raw.strip("'")
    monkeypatch.setenv(name, value)
    path = tuple(name[len(ENV_PREFIX) :].lower().split("__"))
    actual = _at(load_settings(), path)
    expected = json.loads(value)
    if isinstance(expected, dict):  # a section: merged into the file's
        actual = actual.model_dump()
        assert {key: actual[key] for key in expected} == expected
    else:
        assert actual == expected


def test_a_nested_name_and_its_named_variable_must_agree(monkeypatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_THRIFT_PORT", "12345")
    monkeypatch.setenv("LAKEHOUSE_ENGINE__PORT", "12345")
    assert load_settings().engine.port == 12345  # agreeing: fine
    monkeypatch.setenv("LAKEHOUSE_ENGINE__PORT", "1")
    with pytest.raises(ConfigError) as err:
        load_settings()
    message = str(err.value)
    assert "LAKEHOUSE_THRIFT_PORT='12345'" in message
    assert "LAKEHOUSE_ENGINE__PORT='1'" in message and "engine.port" in message


# -- a malformed override names its variable -----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("LAKEHOUSE_SCALE", "abc", r"LAKEHOUSE_SCALE='abc' \(sample_data\.scale\): .*valid number"),
        ("LAKEHOUSE_SCALE", "11", r"LAKEHOUSE_SCALE='11' \(sample_data\.scale\): .*less than or"),
        ("LAKEHOUSE_DIRTY_SHARE", "-1", r"LAKEHOUSE_DIRTY_SHARE='-1' \(sample_data\.dirty_share\)"),
        (
            "LAKEHOUSE_THRIFT_PORT",
            "70000",
            r"LAKEHOUSE_THRIFT_PORT='70000' \(engine\.port\): .*65535",
        ),
        ("LAKEHOUSE_KAFKA_PORT", "0", r"LAKEHOUSE_KAFKA_PORT='0' \(services\.kafka_port\)"),
        (
            "LAKEHOUSE_AIRFLOW_PORT",
            "http",
            r"LAKEHOUSE_AIRFLOW_PORT='http' \(orchestration\.api_port\)",
        ),
        (
            "LAKEHOUSE_ENGINE_BIND_ADDRESS",
            "my-laptop",
            r"LAKEHOUSE_ENGINE_BIND_ADDRESS='my-laptop'",
        ),
        ("LAKEHOUSE_ENGINE__SHUFFLE_PARTITIONS", "0", r"LAKEHOUSE_ENGINE__SHUFFLE_PARTITIONS='0'"),
        (
            "LAKEHOUSE_ENGINE__PROT",
            "1",
            r"LAKEHOUSE_ENGINE__PROT='1' \(engine\.prot\): Extra inputs",
        ),
        ("LAKEHOUSE_ENGIN__PORT", "1", r"LAKEHOUSE_ENGIN__PORT: no section 'engin'"),
        ("LAKEHOUSE_SOURCES__FX__CURRENCIES", '["euro"]', r"\(sources\.fx\.currencies\.0\)"),
        (
            "LAKEHOUSE_SOURCES__FX__CURRENCIES",
            "EUR,GBP",
            r"LAKEHOUSE_SOURCES__FX__CURRENCIES: .*JSON",
        ),
    ],
)
def test_malformed_override_names_the_variable(name, value, expected, monkeypatch) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=expected) as err:
        load_settings()
    assert str(DEFAULT_CONFIG_FILE) not in str(err.value)  # the file is not to blame


def test_file_and_environment_problems_are_reported_together(tmp_path, monkeypatch) -> None:
    path = write_config(tmp_path, lambda raw: raw["engine"].update(prot=1))
    monkeypatch.setenv("LAKEHOUSE_SCALE", "abc")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    message = str(err.value)
    assert f"{path}: engine.prot: Extra inputs are not permitted" in message
    assert "LAKEHOUSE_SCALE='abc' (sample_data.scale)" in message


def test_file_errors_name_the_file(tmp_path) -> None:
    missing = tmp_path / "missing.yml"
    with pytest.raises(ConfigError, match=f"{missing}: configuration file not found"):
        load_settings(missing)
    (bad := tmp_path / "bad.yml").write_text("engine: [port: 1\n")
    with pytest.raises(ConfigError, match=f"{bad}: not valid YAML"):
        load_settings(bad)
    (listed := tmp_path / "list.yml").write_text("- engine\n")
    with pytest.raises(ConfigError, match=f"{listed}: top level must be a mapping, got list"):
        load_settings(listed)
    # keys keep their case: `Engine` is no section (pydantic-settings' YAML source would take it)
    path = write_config(tmp_path, lambda raw: raw.update(Engine=raw.pop("engine")))
    with pytest.raises(ConfigError, match=r"engine: Field required.*Engine: Extra inputs"):
        load_settings(path)


# -- docs/configuration.md cannot drift from the code ------------------------------------------

VARIABLE = re.compile(r"LAKEHOUSE_[A-Z][A-Z0-9_]*[A-Z0-9]")
# Where the platform's variables are read or set (tests apart from conftest.py set them).
CODE = ["lakehouse", "ingestion", "orchestration", "profiles", "dbt_project/macros"]


@functools.cache
def _variables_in_code() -> dict[str, set[str]]:
    """Every LAKEHOUSE_* name the code spells (in a Python string, not an identifier such as
    ``LAKEHOUSE_VENV_BIN``), with the files it is in."""
    found: dict[str, set[str]] = {}
    files = [REPO_ROOT / "tests" / "conftest.py"]
    for folder in CODE:
        files += [p for p in (REPO_ROOT / folder).rglob("*") if p.suffix in {".py", ".sql", ".yml"}]
    for path in files:
        text = path.read_text()
        if path.suffix == ".py":
            strings = [n.value for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Constant)]
            text = "\n".join(s for s in strings if isinstance(s, str))
        for name in VARIABLE.findall(text):
            if "__" not in name:  # LAKEHOUSE_<SECTION>__<KEY>: the nested scheme's row
                found.setdefault(name, set()).add(str(path.relative_to(REPO_ROOT)))
    return found


def _table() -> dict[str, tuple[str, str]]:
    """The rows of *Every variable* naming one LAKEHOUSE_* variable: name -> (sets, default)."""
    section = DOC.read_text().split("## Every variable")[1]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and re.fullmatch(r"`LAKEHOUSE_[A-Z0-9_]+`", cells[0]):
            rows[cells[0].strip("`")] = (cells[1], cells[2])
    return rows


def test_every_variable_the_code_reads_is_documented() -> None:
    missing = set(_variables_in_code()) - set(_table())
    assert not missing, f"add to docs/configuration.md's table: {sorted(missing)}"


def test_every_documented_variable_is_in_the_code() -> None:
    stale = set(_table()) - set(_variables_in_code())
    assert not stale, f"documented in docs/configuration.md but read nowhere: {sorted(stale)}"


def test_named_variables_document_their_key_and_default() -> None:
    table = _table()
    for name, path in NAMED_VARIABLES.items():
        sets, default = table[name]
        assert sets == f"`{'.'.join(path)}`", name
        if path != ("home",):
            shipped: Any = SHIPPED
            for key in path:
                shipped = shipped[key]
            assert default == f"`{shipped}`", name


def test_other_variables_name_the_files_that_read_them() -> None:
    in_code = _variables_in_code()
    for name, (read_by, _) in _table().items():
        if name in NAMED_VARIABLES:
            continue
        assert read_by.startswith("read by "), name
        files = re.findall(r"`([^`]+)`", read_by)
        assert files and all(f in in_code[name] for f in files), (name, files, in_code[name])
