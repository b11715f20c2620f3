"""Airflow DAG ``lakehouse_backfill``: reload a window of one source, rebuild what depends on it.

Triggered by hand, with parameters (``lakehouse backfill``, docs/operations.md):

- ``source``: snowflake, crm, redshift, fx or kafka;
- ``mode``: ``window`` (crm, redshift, kafka: ``[from, to)`` in ISO-8601, UTC unless zoned; fx:
  the days ``from``..``to``, both included), ``ids`` (redshift: ``[from_id, to_id)``),
  ``reload`` (snowflake: the snapshot as of now) or ``downstream-only`` (snowflake: no load);
- ``tables``: only these bronze tables (snowflake, redshift); empty: all of them;
- ``rebuild``: rebuild the dbt models downstream of what was reloaded (default yes).

Each parameter's shape is checked when the run is triggered (its JSON Schema); whether the
source supports the mode and the window is sound (not empty, not in the future) is checked by the
first task, ``check``: the platform's own validation (``lakehouse backfill --dry-run``), before
anything is touched. ``backfill`` then reloads and rebuilds exactly the models downstream.
Parameters reach the commands as environment variables, never spliced into the shell line.
Do not run a backfill of a source while ``ingest_sources`` loads it (one dlt pipeline state).
"""

from __future__ import annotations

from airflow.sdk import DAG, Param

from lakehouse_airflow.commands import LINEAGE_ENV, MACROS, PlatformCommand
from lakehouse_airflow.defaults import default_args
from lakehouse_airflow.settings import load

cfg = load()

MODES = ["window", "ids", "reload", "downstream-only"]
# ISO-8601: a day, or a day and a time (with a zone or not); the platform parses it
ISO_8601 = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?)?$"
# the parameters, as the commands read them ("" for an unset one)
PARAM_ENV = {
    "BACKFILL_SOURCE": "{{ params.source }}",
    "BACKFILL_MODE": "{{ params.mode }}",
    "BACKFILL_FROM": "{{ params['from'] or '' }}",
    "BACKFILL_TO": "{{ params.to or '' }}",
    "BACKFILL_FROM_ID": "{{ '' if params.from_id is none else params.from_id }}",
    "BACKFILL_TO_ID": "{{ '' if params.to_id is none else params.to_id }}",
    "BACKFILL_TABLES": "{{ (params.tables or []) | join(' ') }}",
    "BACKFILL_REBUILD": "{{ 'yes' if params.rebuild else 'no' }}",
}

PARAMS = {
    "source": Param(
        "fx", type="string", enum=sorted(cfg.bronze_tables), description="the source to backfill"
    ),
    "mode": Param(
        "window",
        type="string",
        enum=MODES,
        description="window (crm, redshift, fx, kafka), ids (redshift), reload or "
        "downstream-only (snowflake)",
    ),
    "from": Param(
        None,
        type=["null", "string"],
        pattern=ISO_8601,
        description="window start (fx: first day), ISO-8601",
    ),
    "to": Param(
        None,
        type=["null", "string"],
        pattern=ISO_8601,
        description="window end, excluded (fx: last day, included), ISO-8601",
    ),
    "from_id": Param(
        None, type=["null", "integer"], minimum=0, description="redshift ids: first row id"
    ),
    "to_id": Param(
        None,
        type=["null", "integer"],
        minimum=1,
        description="redshift ids: end of the range, excluded",
    ),
    "tables": Param(
        [],
        type="array",
        uniqueItems=True,
        items={"type": "string", "pattern": "^[a-z_][a-z0-9_]*$"},
        description="only these bronze tables (snowflake, redshift)",
    ),
    "rebuild": Param(
        True, type="boolean", description="rebuild the dbt models downstream of what was reloaded"
    ),
}


def backfill_command(*extra: str) -> str:
    """``lakehouse backfill`` with the run's parameters: each one quoted, present only when set.
    ``tables`` are names of the platform's tables (the pattern of the param admits no space)."""
    mode_flag = ('$( [ "$BACKFILL_MODE" = reload ] && echo --reload; '
                 '[ "$BACKFILL_MODE" = downstream-only ] && echo --downstream-only )')  # fmt: skip
    return " ".join([
        f"{cfg.lakehouse}", "backfill", '--source "$BACKFILL_SOURCE"', mode_flag,
        '${BACKFILL_FROM:+--from "$BACKFILL_FROM"}', '${BACKFILL_TO:+--to "$BACKFILL_TO"}',
        '${BACKFILL_FROM_ID:+--from-id "$BACKFILL_FROM_ID"}',
        '${BACKFILL_TO_ID:+--to-id "$BACKFILL_TO_ID"}',
        "$(for t in $BACKFILL_TABLES; do printf -- '--table %s ' \"$t\"; done)",
        '$( [ "$BACKFILL_REBUILD" = no ] && echo --no-rebuild )', *extra,
    ])  # fmt: skip


with DAG(
    dag_id="lakehouse_backfill",
    description="reload a window of one source into bronze, then rebuild its downstream models",
    schedule=None,  # by hand, with parameters
    catchup=False,
    max_active_runs=1,
    default_args=default_args(cfg),
    params=PARAMS,
    user_defined_macros=MACROS,
    tags=["lakehouse", "bronze", "backfill"],
    doc_md=__doc__,
):
    check = PlatformCommand(
        task_id="check",
        bash_command=backfill_command("--dry-run"),
        env={**LINEAGE_ENV, **PARAM_ENV},
        retries=0,  # a refused request stays refused
        doc_md="The platform's validation of the request (source, mode, window): nothing runs.",
    )
    run = PlatformCommand(
        task_id="backfill",
        bash_command=backfill_command(),
        env={**LINEAGE_ENV, **PARAM_ENV},
        doc_md="Reload the window into bronze, then dbt build of exactly what is downstream.",
    )
    check >> run
