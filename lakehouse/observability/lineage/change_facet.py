"""The change audit in lineage: a custom OpenLineage dataset facet, ``tableChanges``.

After a build, the summary of what it changed in each gold table (table_changes.py) is sent as
the ``tableChanges`` facet of that table, through the platform's client and so through the
``transform`` transport (emit.py) like every other event. The event is a run of the job
``change_audit``, which reads the gold tables (inputs: it writes none, so the graph shows no
phantom writer); it carries dbt-ol's own ``dbt_run`` run facet with the build's invocation_id,
the id dbt-ol's model runs of the same build carry, and under Airflow the task's run as parent.
The facet's JSON Schema is ``schemas/TableChangesDatasetFacet.json`` (tests/fast validates an
emitted facet against it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attr
from openlineage.client.event_v2 import InputDataset, Job, Run, RunEvent, RunState
from openlineage.client.facet_v2 import DatasetFacet, job_type_job
from openlineage.client.uuid import generate_new_uuid
from openlineage.common.provider.dbt.facets import DbtRunRunFacet

from lakehouse.core import naming
from lakehouse.core.config import Settings
from lakehouse.core.datasets import Dataset
from lakehouse.observability.lineage import emit

FACET = "tableChanges"
JOB = "change_audit"
SCHEMA_FILE = Path(__file__).parent / "schemas" / "TableChangesDatasetFacet.json"
SCHEMA_URL = "urn:lakehouse:schemas:TableChangesDatasetFacet.json#/$defs/TableChangesDatasetFacet"


@attr.define
class TableChangesDatasetFacet(DatasetFacet):
    """What one build changed in the table (the columns of ``ops.table_changes``)."""

    buildId: str
    key: list[str]
    fromVersion: int
    toVersion: int
    rowsBefore: int
    rowsAfter: int
    added: int
    removed: int
    changed: int
    changeShare: float
    columns: dict[str, int]
    alertShare: float
    overThreshold: bool

    @staticmethod
    def _get_schema() -> str:
        return SCHEMA_URL


def facet(row: dict[str, Any], key: Sequence[str], columns: dict[str, int]) -> DatasetFacet:
    """The facet of one ``ops.table_changes`` row."""
    return TableChangesDatasetFacet(
        buildId=row["build_id"],
        key=list(key),
        fromVersion=row["from_version"],
        toVersion=row["to_version"],
        rowsBefore=row["rows_before"],
        rowsAfter=row["rows_after"],
        added=row["added"],
        removed=row["removed"],
        changed=row["changed"],
        changeShare=row["change_share"],
        columns=columns,
        alertShare=row["alert_share"],
        overThreshold=row["over_threshold"],
        producer=emit.PRODUCER,
    )


def events(
    settings: Settings, build_id: str, audited: Sequence[tuple[str, DatasetFacet]]
) -> list[RunEvent]:
    """The ``change_audit`` run of the build ``build_id``, START then COMPLETE as every run of
    the platform: each audited table (``schema.table``) an input, carrying its facet on
    COMPLETE."""
    run_facets: dict[str, Any] = {
        **emit._parent(),
        "dbt_run": DbtRunRunFacet(
            invocation_id=build_id, project_name="lakehouse", dbt_runtime="core",
            producer=emit.PRODUCER,
        ),
    }  # fmt: skip
    job_facets = {
        "jobType": job_type_job.JobTypeJobFacet(
            processingType="BATCH", integration="LAKEHOUSE", jobType="JOB"
        )
    }
    run = Run(runId=str(generate_new_uuid()), facets=run_facets)
    job = Job(namespace=emit.job_namespace(), name=JOB, facets=job_facets)
    sent = []
    for state in (RunState.START, RunState.COMPLETE):
        inputs = []
        for table, changes in audited:
            dataset = Dataset(
                naming.lake_table(settings, table),
                symlink=naming.catalog_table(settings, table),
                storage=("delta", "parquet"),
            )
            facets = dataset.facets()
            if state == RunState.COMPLETE:
                facets[FACET] = changes
            inputs.append(
                InputDataset(namespace=dataset.id.namespace, name=dataset.id.name, facets=facets)
            )
        sent.append(
            RunEvent(
                eventType=state,
                eventTime=datetime.now(UTC).isoformat(),
                run=run,
                job=job,
                producer=emit.PRODUCER,
                inputs=inputs,
                outputs=[],
            )
        )
    return sent


def send(settings: Settings, build_id: str, audited: Sequence[tuple[str, DatasetFacet]]) -> None:
    """Emit the build's audit (nothing when nothing was audited); never fails the build."""
    if not audited:
        return
    ol = emit.client(settings)
    try:
        for event in events(settings, build_id, audited):
            emit._send(ol, event)
    finally:
        ol.close()
