"""Publish decisions that need no warehouse: the reconcile fingerprint, a publish model per table
and warehouse, and the SQL the real targets (Snowflake, Redshift) would run, compiled by dbt
without connecting (the local stand-ins cannot run it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from lakehouse.core.config import Settings
from lakehouse.core.dbt_paths import DBT_PROFILES_DIR, DBT_PROJECT_DIR
from lakehouse.publish import snapshot as snapshots
from lakehouse.publish.warehouses import warehouse


def test_fingerprint_is_order_free_and_counts_duplicates() -> None:
    rows = [(1, "a"), (2, "b")]
    fp = snapshots.fingerprint
    assert fp(rows) == fp(list(reversed(rows)))
    assert fp([*rows, (1, "a")]) != fp(rows)
    assert fp([(1, "a"), (2, "c")]) != fp(rows)


def _dbt_compile_inline(target: str, sql: str, env: dict[str, str]) -> str:
    """Compile ``sql`` for ``target`` without connecting (no cache, no introspection)."""
    cmd = [
        str(Path(sys.executable).parent / "dbt"), "compile", "--no-populate-cache",
        "--target", target, "--inline", sql, "--output", "json", "--log-format", "json",
        "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROFILES_DIR),
        "--target-path", f"target/compile_{target}",
    ]  # fmt: skip
    result = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    for line in result.stdout.splitlines():
        data = json.loads(line).get("data", {})
        if "compiled" in data:
            return data["compiled"]
    raise AssertionError(f"no compiled output in: {result.stdout[-2000:]}")


# Unroutable endpoints: nothing may be contacted while compiling.
REAL_SNOWFLAKE = {"SNOWFLAKE_ACCOUNT": "xy12345.eu-west-1", "SNOWFLAKE_USER": "ci",
                  "SNOWFLAKE_PASSWORD": "not-used"}  # fmt: skip


REAL_REDSHIFT = {"REDSHIFT_HOST": "127.0.0.1", "REDSHIFT_PORT": "1", "REDSHIFT_USER": "ci",
                 "REDSHIFT_PASSWORD": "not-used"}  # fmt: skip


def test_snowflake_mirror_merge_runs_in_one_transaction_on_real_snowflake() -> None:
    sql = """
    {%- set target_rel = api.Relation.create(
          database='ANALYTICS', schema='GOLD', identifier='CUSTOMER_360') -%}
    {%- set tmp_rel = api.Relation.create(
          database='ANALYTICS', schema='GOLD', identifier='CUSTOMER_360__DBT_TMP') -%}
    {%- set columns = [api.Column('customer_id', 'NUMBER'), api.Column('orders', 'NUMBER'),
                       api.Column('_row_hash', 'VARCHAR')] -%}
    {{ get_incremental_mirror_merge_sql({'target_relation': target_rel, 'temp_relation': tmp_rel,
        'unique_key': 'customer_id', 'dest_columns': columns, 'incremental_predicates': none}) }}
    """
    compiled = " ".join(_dbt_compile_inline("snowflake", sql, REAL_SNOWFLAKE).split())
    assert compiled.startswith("begin;") and compiled.endswith("commit;")
    assert "merge into ANALYTICS.GOLD.CUSTOMER_360 as DBT_INTERNAL_DEST" in compiled
    assert ("when matched and DBT_INTERNAL_DEST._row_hash <> DBT_INTERNAL_SOURCE._row_hash "
            "then update set") in compiled  # fmt: skip
    assert ("values (DBT_INTERNAL_SOURCE.customer_id, DBT_INTERNAL_SOURCE.orders, "
            "DBT_INTERNAL_SOURCE._row_hash)") in compiled  # fmt: skip
    assert compiled.index("merge into") < compiled.index("delete from") < compiled.index("commit")


def test_redshift_history_is_distributed_and_sorted_on_real_redshift() -> None:
    model = DBT_PROJECT_DIR / "models/publish/redshift/pub_redshift__customer_360_history.sql"
    config_call = next(line for line in model.read_text().splitlines() if "config(" in line)
    sql = (
        config_call
        + """
    {%- set rel = api.Relation.create(
          database='analytics', schema='gold', identifier='customer_360_history') -%}
    {{ get_create_table_as_sql(False, rel, 'select 1 as customer_id') }}
    """
    )
    compiled = " ".join(_dbt_compile_inline("redshift", sql, REAL_REDSHIFT).split())
    assert 'create table "analytics"."gold"."customer_360_history"' in compiled
    assert "diststyle key distkey (customer_id)" in compiled
    assert "compound sortkey(_batch_id,customer_id)" in compiled


def test_every_configured_table_has_a_publish_model_per_warehouse(settings: Settings) -> None:
    models = {p.stem for p in (DBT_PROJECT_DIR / "models" / "publish").rglob("*.sql")}
    for table in settings.publish.tables:
        for name in settings.publish.warehouses:
            assert warehouse(name, settings).model_name(table) in models
