"""Warm the engine's JVM up on the paths a dbt build takes, before the first build needs them.

A fresh JVM interprets Spark's, Delta's and the metastore's code until the JIT compiles it, and
Spark compiles every new query shape to Java bytecode: the first `dbt build` after the engine
started cost ~1.8x a warm one. Running the kinds of statements dbt issues (a Delta CTAS with a
CHECK constraint, describes, `show table extended`, a temporary view and a MERGE, aggregate
tests, a window) a few times on a scratch table moves that cost to start-up, where
`make run` hides it behind ingestion (the engine boots while ingestion runs).

Then it loads the Delta log of every table the catalog already holds (``describe detail``): a
restarted engine has no table's snapshot in memory, and the first build otherwise replayed each
table's log (checkpoint and commits, a Spark job) when it first read or replaced it. On an
empty lake there is nothing to load; later commits update a loaded snapshot incrementally.

Nothing the platform reads is touched: the scratch schema is dropped before and after, and a
failed warm-up only costs the first build its speed, never the engine its start.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from lakehouse.core.config import Settings
from lakehouse.transform.sql import connect

log = logging.getLogger(__name__)
SCHEMA = "lakehouse_warmup"
TABLE = f"{SCHEMA}.orders"

_ROWS = """
    select id as order_id, id % 97 as customer_id, cast(id % 13 as string) as currency_code,
           cast(id * 1.25 as decimal(18, 2)) as amount,
           date_add(date'2024-01-01', cast(id % 60 as int)) as order_date,
           current_timestamp() as loaded_at
    from range({start}, {stop})
"""

# One round: the statement kinds of a dbt build, in the order a model and its tests run them.
ROUND = [
    f"create or replace table {TABLE} using delta"
    " tblproperties ('delta.constraints.contract_not_null'"
    " = 'order_id is not null and customer_id is not null')"
    f" as select * from ({_ROWS.format(start=0, stop=2000)}) as model_subq",
    f"show table extended in {SCHEMA} like '*'",
    f"show tables in {SCHEMA}",
    f"describe extended {TABLE}",
    f"select * from (select * from {TABLE}) as __dbt_sbq where false limit 0",
    f"create or replace temporary view orders__dbt_tmp as {_ROWS.format(start=1500, stop=2500)}",
    f"merge into {TABLE} as t using orders__dbt_tmp as s on s.order_id = t.order_id"
    " when matched and not (t.amount <=> s.amount) then update set *"
    " when not matched then insert * when not matched by source and t.order_id < 10 then delete",
    f"insert into {TABLE} {_ROWS.format(start=5000, stop=5100)}",
    "select count(*) as failures, count(*) != 0 as should_warn, count(*) != 0 as should_error"
    f" from (select order_id from {TABLE} where order_id is not null"
    " group by order_id having count(*) > 1) dbt_internal_test",
    "select count(*) as failures, count(*) != 0 as should_warn, count(*) != 0 as should_error"
    f" from (select o.customer_id from {TABLE} o left join (select distinct customer_id"
    f" from {TABLE} where customer_id < 50) c on o.customer_id = c.customer_id"
    " where c.customer_id is null) dbt_internal_test",
    "select currency_code, order_date, count(*), sum(amount), max(loaded_at),"
    " row_number() over (partition by currency_code order by order_date desc) as rn"
    f" from {TABLE} group by currency_code, order_date order by rn limit 10",
]


def _rows(cursor: Any, statement: str) -> list[tuple[Any, ...]]:
    cursor.execute(statement)
    return cursor.fetchall()


def load_snapshots(cursor: Any) -> list[str]:
    """Load the Delta snapshot of every table in the catalog; return the tables loaded.

    One table that cannot be described (a plain Parquet table, one whose files are gone) is
    passed over: the build that reads it reports it, with dbt's context."""
    loaded = []
    for (schema,) in _rows(cursor, "show databases"):
        if schema.lower() == SCHEMA:
            continue
        for _, table, is_temporary in _rows(cursor, f"show tables in `{schema}`"):
            if is_temporary:
                continue
            try:
                _rows(cursor, f"describe detail `{schema}`.`{table}`")
                loaded.append(f"{schema}.{table}".lower())
            except Exception:  # any table that cannot load is passed over, see above
                continue
    return loaded


def warm_up(settings: Settings) -> float:
    """Run the warm-up rounds on one session; return the seconds spent. Never raises."""
    started = time.perf_counter()
    rounds = settings.engine.warmup_rounds
    if rounds <= 0:
        return 0.0
    try:
        with connect(settings) as conn:
            cursor = conn.cursor()
            try:
                try:
                    cursor.execute(f"drop schema if exists {SCHEMA} cascade")
                    cursor.execute(f"create schema if not exists {SCHEMA}")
                    for _ in range(rounds):
                        for statement in ROUND:
                            cursor.execute(statement)
                            if cursor.description:
                                cursor.fetchall()
                finally:
                    cursor.execute(f"drop schema if exists {SCHEMA} cascade")
                load_snapshots(cursor)
            finally:
                cursor.close()
    except Exception as exc:  # a cold first build is slower, not wrong
        # the first line only: a Thrift error carries the engine's whole Java stack trace
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        log.warning(f"engine warm-up failed: {type(exc).__name__}: {first[:500]}")
    return time.perf_counter() - started
