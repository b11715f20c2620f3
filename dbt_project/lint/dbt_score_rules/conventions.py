"""Rules for the project's models and sources: each docstring is the convention it checks."""

import json
import re
from functools import cache
from pathlib import PurePosixPath
from typing import Any

from dbt_score import Exposure, Macro, Model, RuleViolation, Source, rule
from dbt_score.dbt_utils import get_default_manifest_path

# models/<layer>/... -> the name a model there must have (the folder below it fills {0})
_STAGING = re.compile(r"^models/silver/staging/(?P<folder>[a-z0-9_]+)/")
_INTERMEDIATE = "models/silver/intermediate/"
_GOLD = "models/gold/"
_PUBLISH = re.compile(r"^models/publish/(?P<folder>[a-z0-9_]+)/")
# Entities and verbs are snake_case words; `__` separates the parts of a name.
_WORDS = r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*"


def _path(model: Model) -> str:
    return PurePosixPath(model.original_file_path).as_posix()


def _is_gold(model: Model) -> bool:
    return _path(model).startswith(_GOLD)


def _is_publish(model: Model) -> bool:
    return _PUBLISH.match(_path(model)) is not None


@cache
def _unit_tested_models() -> frozenset[str]:
    """Models with at least one dbt unit test, from the manifest dbt-score is reading."""
    manifest: dict[str, Any] = json.loads(get_default_manifest_path().read_text())
    return frozenset(test["model"] for test in manifest.get("unit_tests", {}).values())


@rule
def name_follows_layer(model: Model) -> RuleViolation | None:
    """stg_<source>__<entity> in staging/<source>/, int_<entity>__<verb> in intermediate,
    business nouns (no fct_/dim_ prefix) in gold, pub_<warehouse>__<table> in publish/<warehouse>/.
    """
    path, name = _path(model), model.name
    if staging := _STAGING.match(path):
        pattern = rf"stg_{staging['folder']}__{_WORDS}"
    elif path.startswith(_INTERMEDIATE):
        pattern = rf"int_{_WORDS}__{_WORDS}"
    elif path.startswith(_GOLD):
        pattern = rf"(?!fct_|dim_|stg_|int_|pub_){_WORDS}"
    elif publish := _PUBLISH.match(path):
        pattern = rf"pub_{publish['folder']}__{_WORDS}"
    else:
        return RuleViolation(
            f"{path} is in no layer folder (silver/staging, intermediate, gold, publish)."
        )
    if not re.fullmatch(pattern, name):
        return RuleViolation(f"Name does not match {pattern} for its folder.")
    return None


@rule
def properties_in_folder_yml(model: Model) -> RuleViolation | None:
    """A model is described in its folder's `_<folder>__models.yml`, never a yml of its own."""
    if not model.patch_path:
        return RuleViolation("Model is in no properties yml.")
    folder = PurePosixPath(_path(model)).parent
    expected = folder / f"_{folder.name}__models.yml"
    actual = PurePosixPath(model.patch_path.split("://", 1)[-1])
    if actual != expected:
        return RuleViolation(f"Properties in {actual}, not {expected}.")
    return None


@rule
def has_group(model: Model) -> RuleViolation | None:
    """Every model belongs to a group, which names its owner (models/_groups.yml)."""
    if not model.group:
        return RuleViolation("Model has no group (owner).")
    return None


@rule
def contract_enforced_in_gold_and_publish(model: Model) -> RuleViolation | None:
    """Gold and publish models enforce their contract: the served shape is declared."""
    if not (_is_gold(model) or _is_publish(model)):
        return None
    if not (model.config.get("contract") or {}).get("enforced"):
        return RuleViolation("Gold/publish model without an enforced contract.")
    return None


# Model-level tests that make a set of columns unique, and the argument naming the set.
_COMPOUND_UNIQUE = {
    "unique_combination_of_columns": "combination_of_columns",
    "expect_compound_columns_to_be_unique": "column_list",
}


def _compound_keys(model: Model) -> list[frozenset[str]]:
    return [
        frozenset(test.kwargs.get(argument) or [])
        for test in model.tests
        if (argument := _COMPOUND_UNIQUE.get(test.type))
    ]


@rule
def publish_key_tested_unique_and_not_null(model: Model) -> RuleViolation | None:
    """A publish model's key is tested unique and each of its columns not null. The key is the
    mirror's unique_key, or the history's compound-unique test (batch id and gold key)."""
    if not _is_publish(model):
        return None
    key = model.config.get("unique_key")
    columns = {column.name: column for column in model.columns}
    compound = _compound_keys(model)
    if key:
        keys = [key] if isinstance(key, str) else list(key)
        single = len(keys) == 1 and any(
            test.type == "unique" for test in getattr(columns.get(keys[0]), "tests", [])
        )
        unique = single or frozenset(keys) in compound
    elif compound:
        keys, unique = sorted(compound[0]), True
    else:
        return RuleViolation(
            "Publish model declares no key (unique_key or a compound-unique test)."
        )
    missing = [] if unique else [f"unique({', '.join(keys)})"]
    missing += [
        f"not_null({name})"
        for name in keys
        if not any(test.type == "not_null" for test in getattr(columns.get(name), "tests", []))
    ]
    if missing:
        return RuleViolation(f"Key tests missing: {'; '.join(missing)}.")
    return None


@rule
def unit_tested_where_required(model: Model) -> RuleViolation | None:
    """Every staging model (its parsing, normalisation, de-duplication) and customer_360 (its
    joins) has a dbt unit test."""
    if not (_STAGING.match(_path(model)) or model.name == "customer_360"):
        return None
    if model.name not in _unit_tested_models():
        return RuleViolation("No unit test.")
    return None


@rule
def gold_has_exposure(model: Model) -> RuleViolation | None:
    """Every gold model has an exposure saying who consumes it."""
    if not _is_gold(model):
        return None
    if not any(isinstance(child, Exposure) for child in model.children):
        return RuleViolation("No exposure depends on this gold model.")
    return None


@rule
def source_has_loader(source: Source) -> RuleViolation | None:
    """Every source names its loader (`loader: dlt`)."""
    if not source.loader:
        return RuleViolation("Source names no loader.")
    return None


@rule
def source_table_has_description(source: Source) -> RuleViolation | None:
    """Every source table is described."""
    if not source.description:
        return RuleViolation("Source table has no description.")
    return None


# `{% macro name(a, b=1) %}` or `{% test name(model, column_name) %}`: the signature's arguments
_SIGNATURE = re.compile(r"{%-?\s*(?:macro|test)\s+\w+\s*\((?P<args>[^)]*)\)", re.DOTALL)


@rule
def macro_arguments_documented(macro: Macro) -> RuleViolation | None:
    """Every argument a macro's signature takes is documented in its properties yml (dbt-score's
    own rule checks only the arguments a yml already lists)."""
    signature = _SIGNATURE.search(macro.macro_sql)
    if not signature:
        return None
    taken = [arg.split("=")[0].strip() for arg in signature["args"].split(",") if arg.strip()]
    documented = {arg.get("name") for arg in macro.arguments if arg.get("description")}
    undocumented = [name for name in taken if name not in documented]
    if undocumented:
        return RuleViolation(f"Arguments not documented: {', '.join(undocumented)}.")
    return None
