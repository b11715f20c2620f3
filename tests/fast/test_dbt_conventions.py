"""The dbt project's convention rules (dbt_project/lint/dbt_score_rules) reject what they name.

`make lint` runs them over the real project, where a broken convention may not occur today (no
gold model is called fct_ anything now): here each rule meets a model that breaks it and one
that keeps it, so a rule that passes everything cannot go unnoticed.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
from dbt_score import Macro, Model
from dbt_score.models import Column
from dbt_score.models import Test as DataTest

from lakehouse.core.config import REPO_ROOT

_SPEC = importlib.util.spec_from_file_location(
    "conventions", REPO_ROOT / "dbt_project/lint/dbt_score_rules/conventions.py"
)
assert _SPEC and _SPEC.loader
conventions = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(conventions)


def _model(path: str, **fields: Any) -> Model:
    name = path.rsplit("/", 1)[-1].removesuffix(".sql")
    values: dict[str, Any] = {
        "unique_id": f"model.lakehouse.{name}",
        "name": name,
        "relation_name": None,
        "description": "d",
        "original_file_path": path,
        "config": {},
        "meta": {},
        "columns": [],
        "package_name": "lakehouse",
        "database": "",
        "schema": "gold",
        "raw_code": "select 1",
        "language": "sql",
        "access": "protected",
        "group": None,
    }
    return Model(**(values | fields))


def _broken(rule: Any, item: Any) -> bool:
    return rule().evaluate(item) is not None


@pytest.mark.parametrize(
    ("path", "keeps"),
    [
        ("models/silver/staging/crm/stg_crm__contacts.sql", True),
        ("models/silver/staging/crm/stg_fx__rates.sql", False),  # another source's folder
        ("models/silver/staging/crm/stg_contacts.sql", False),
        ("models/silver/intermediate/int_orders__amounts.sql", True),
        ("models/silver/intermediate/orders_amounts.sql", False),
        ("models/gold/commerce/orders.sql", True),
        ("models/gold/commerce/fct_orders.sql", False),
        ("models/gold/customers/dim_customers.sql", False),
        ("models/publish/snowflake/pub_snowflake__customer_360.sql", True),
        ("models/publish/snowflake/pub_redshift__customer_360.sql", False),
    ],
)
def test_names_follow_their_layer(path: str, keeps: bool) -> None:
    assert _broken(conventions.name_follows_layer, _model(path)) is not keeps


def test_properties_live_in_the_folder_yml_only() -> None:
    path = "models/gold/finance/fx_rates_daily.sql"
    own = _model(path, patch_path="lakehouse://models/gold/finance/fx_rates_daily.yml")
    folder = _model(path, patch_path="lakehouse://models/gold/finance/_finance__models.yml")
    assert _broken(conventions.properties_in_folder_yml, own)
    assert not _broken(conventions.properties_in_folder_yml, folder)


def test_gold_and_publish_enforce_contracts_silver_need_not() -> None:
    rule = conventions.contract_enforced_in_gold_and_publish
    assert _broken(rule, _model("models/gold/commerce/orders.sql"))
    assert not _broken(
        rule, _model("models/gold/commerce/orders.sql", config={"contract": {"enforced": True}})
    )
    assert not _broken(rule, _model("models/silver/staging/fx/stg_fx__rates.sql"))


def _column(name: str, *tests: str) -> Column:
    return Column(name=name, description="d", tests=[DataTest(name=t, type=t) for t in tests])


def test_a_publish_key_needs_unique_and_not_null() -> None:
    rule = conventions.publish_key_tested_unique_and_not_null
    path = "models/publish/snowflake/pub_snowflake__customer_360.sql"
    unique_only = _column("customer_id", "unique")
    both = _column("customer_id", "unique", "not_null")
    config = {"unique_key": "customer_id"}
    assert _broken(rule, _model(path, config=config, columns=[unique_only]))
    assert not _broken(rule, _model(path, config=config, columns=[both]))
    history = "models/publish/redshift/pub_redshift__customer_360_history.sql"
    compound = DataTest(
        name="c",
        type="expect_compound_columns_to_be_unique",
        kwargs={"column_list": ["_batch_id", "customer_id"]},
    )
    keyed = [_column("_batch_id", "not_null"), _column("customer_id", "not_null")]
    assert not _broken(rule, _model(history, tests=[compound], columns=keyed))
    assert _broken(rule, _model(history, tests=[compound], columns=keyed[1:]))
    assert _broken(rule, _model(history))  # no key at all


def test_every_argument_of_a_macro_is_documented() -> None:
    def macro(arguments: list[dict[str, str]]) -> Macro:
        return Macro(
            unique_id="macro.lakehouse.url_host",
            name="url_host",
            description="d",
            original_file_path="macros/urls.sql",
            package_name="lakehouse",
            macro_sql="{% macro url_host(column, default=none) -%} x {%- endmacro %}",
            meta={},
            tags=[],
            depends_on={},
            arguments=arguments,
        )

    column = {"name": "column", "description": "the URL column"}
    default = {"name": "default", "description": "when not a URL"}
    assert _broken(conventions.macro_arguments_documented, macro([column]))
    assert not _broken(conventions.macro_arguments_documented, macro([column, default]))
