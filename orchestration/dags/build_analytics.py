"""Airflow DAG ``build_analytics``: dbt silver and gold through Cosmos, then publish.

Scheduled on the bronze Assets ingest_sources updates. Cosmos renders the dbt graph (from the
precompiled manifest: no ``dbt ls`` at parse time) as one task per model with its tests, in
WATCHER mode: a single ``dbt build`` (the producer) runs the whole graph with dbt's own
threads against the long-running Spark Thrift Server, and each model's task watches its node
finish, so the DAG costs about what the CLI ``dbt build`` costs while every model can still be
seen, retried (a retry re-runs just that model) and alerted on. Unit tests run in that build.
Like ``lakehouse build``, the producer builds only what changed since the last successful build
(the bronze tables whose Delta version changed, with their downstream; ``state:modified+``; the
time-based tests; everything when there is no saved state): model tasks with nothing new end
``skipped``.
Then gold is published to each warehouse (idempotent, so retries are safe). The run promises
to finish within ``build_deadline_s`` of being queued.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import ExecutionMode, InvocationMode, LoadMode, TestBehavior

from lakehouse_airflow import assets
from lakehouse_airflow.build_selection import remember_build, select_changed
from lakehouse_airflow.commands import MACROS, PlatformCommand, command
from lakehouse_airflow.defaults import deadline, default_args, record_dbt_metrics
from lakehouse_airflow.settings import load

cfg = load()

with DAG(
    dag_id="build_analytics",
    description="dbt build of silver and gold (Cosmos, WATCHER mode), then publish to warehouses",
    schedule=assets.bronze_inputs(cfg),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(cfg),
    deadline=deadline(cfg, cfg.build_deadline, f"build_analytics within {cfg.build_deadline}"),
    user_defined_macros=MACROS,
    params={
        "dbt_vars": Param({}, type="object", description="extra dbt --vars for this run"),
    },
    render_template_as_native_obj=True,  # dbt_vars reaches Cosmos as a dict, not its repr
    tags=["lakehouse", "silver", "gold", "dbt", "publish"],
    doc_md=__doc__,
):
    dbt = DbtTaskGroup(
        group_id="dbt",
        project_config=ProjectConfig(
            manifest_path=cfg.manifest,
            project_name="lakehouse",
            install_dbt_deps=False,  # local packages, linked by `make setup`
        ),
        profile_config=ProfileConfig(
            profile_name="lakehouse", target_name="local", profiles_yml_filepath=cfg.profiles_yml
        ),
        execution_config=ExecutionConfig(
            execution_mode=ExecutionMode.WATCHER,
            invocation_mode=InvocationMode.SUBPROCESS,  # dbt lives in the other environment
            dbt_executable_path=cfg.dbt,
            dbt_project_path=cfg.dbt_project_dir,
            # Build what changed since the last successful build (lakehouse_airflow/
            # build_selection.py): right before the producer's dbt build, the callback narrows
            # it and marks the model tasks it leaves out skipped.
            setup_operator_args={"on_execute_callback": select_changed},
        ),
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST, test_behavior=TestBehavior.AFTER_EACH
        ),
        operator_args={
            # no --vars flag unless the run asks for some: a changed --vars defeats partial parsing
            "vars": "{{ params.dbt_vars or none }}",
            # the watching tasks poll the producer's XCom in their slot, no deferral round trip
            "deferrable": False,
            "poke_interval": 2,
            # a model built downstream of one left out (skipped) still reports its own state
            "trigger_rule": "none_failed",
            # the task that ran dbt records its models in ops.run_metrics
            # (lakehouse/observability/run_metrics.py) and what the build changed in each gold
            # model it rebuilt in ops.table_changes (lakehouse/observability/table_changes.py);
            # the producer's successful build becomes the state the next one compares with
            "callback": [record_dbt_metrics, remember_build],
            "callback_args": {
                "lakehouse": str(cfg.lakehouse),
                "log_file": str(cfg.home / "logs" / "ops-record.log"),
            },
        },
    )

    for warehouse in cfg.warehouses:
        publish = PlatformCommand(
            task_id=f"publish_{warehouse}",
            bash_command=command(cfg.lakehouse, "publish", "--warehouse", warehouse),
            doc_md="Stage the gold snapshot, serve it with dbt, reconcile "
            "(lakehouse/publish/publisher.py).",
            trigger_rule="none_failed",  # after a build that skipped what had nothing new
            outlets=[assets.published(warehouse, t) for t in cfg.gold_tables],
        )
        dbt >> publish
