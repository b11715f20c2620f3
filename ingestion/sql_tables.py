"""A dlt ``sql_table`` held to a bronze contract: the wiring the SQL sources share."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import dlt
from dlt.sources.sql_database import sql_table

from ingestion.contracts import GuardStats, TableContract, dlt_schema_contract, guarded
from lakehouse.config import SchemaPolicy


def contracted_sql_table(
    source: str,
    contract: TableContract,
    policy: SchemaPolicy,
    stats: GuardStats,
    loaded_at: datetime,
    **sql_table_args: Any,
) -> Any:
    """``sql_table`` for ``contract.name`` whose columns come from the contract, not reflection.

    Call inside a ``@dlt.source``. Reflection stays minimal and its column hints are cleared, so
    a column the upstream table gained but the contract does not declare meets the source's
    unknown-column policy in the guard, which every row passes through.
    """
    contract.register(dlt.current.source_schema())
    resource = sql_table(
        table=contract.name, backend="sqlalchemy", reflection_level="minimal", **sql_table_args
    )
    resource.apply_hints(
        columns={},
        primary_key=contract.required[0],
        schema_contract=dlt_schema_contract(policy),
    )
    resource.add_yield_map(guarded(source, contract, policy, stats, loaded_at))
    return resource
