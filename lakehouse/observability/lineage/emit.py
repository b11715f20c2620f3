"""Sending OpenLineage events: where they go, and the events of the platform's own jobs.

Every emitter of the platform is configured here alike: this module's client (dlt loads,
publishes) and ``dbt-ol`` (dbt runs, lakehouse/transform/dbt_cli.py) write to
``<home>/lineage/events.jsonl``
by default, one JSON event per line; Airflow's provider writes ``airflow.jsonl`` beside it. Set
``OPENLINEAGE_URL`` (Marquez or any OpenLineage backend), ``OPENLINEAGE_CONFIG`` or the client's
``OPENLINEAGE__TRANSPORT__*`` variables and every emitter sends there instead;
``OPENLINEAGE_DISABLED=true`` turns lineage off. Whichever transport is chosen, it is wrapped in
openlineage-python's ``transform`` transport with the platform's transformer
(lakehouse/observability/lineage/transform.py): lake tables named by location, no phantom
datasets, transformation types on column lineage.

A job run emits START before it touches data and COMPLETE (or FAIL, with the error) after, so a
run that dies half-way is visible as such. Under Airflow, ``OPENLINEAGE_PARENT_ID``
(``namespace/job/run id`` of the task) makes the run a child of the task's run.
"""

from __future__ import annotations

import json
import logging
import os
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import (
    Job,
    Run,
    RunEvent,
    RunState,
)
from openlineage.client.facet_v2 import (
    error_message_run,
    job_type_job,
    parent_run,
    processing_engine_run,
)
from openlineage.client.transport import get_default_factory
from openlineage.client.uuid import generate_new_uuid

from lakehouse.core import naming
from lakehouse.core.config import Settings
from lakehouse.core.datasets import Dataset
from lakehouse.observability.lineage import transform

log = logging.getLogger(__name__)
NAMESPACE = "lakehouse"  # job namespace, shared with Airflow's (AIRFLOW__OPENLINEAGE__NAMESPACE)
PRODUCER = f"urn:lakehouse:{version('lakehouse')}"
_ELSEWHERE = ("OPENLINEAGE_URL", "OPENLINEAGE_CONFIG")
TRANSFORMER = f"{transform.__name__}.{transform.LakeTransformer.__name__}"


def events_file(settings: Settings) -> Path:
    """Where the platform's own emitters write by default."""
    return settings.home / "lineage" / "events.jsonl"


def disabled() -> bool:
    return os.environ.get("OPENLINEAGE_DISABLED", "").strip().lower() == "true"


def user_transport() -> dict[str, Any] | None:
    """The transport the user configured, as the client would resolve it: ``OPENLINEAGE__
    TRANSPORT*`` variables, then the ``OPENLINEAGE_CONFIG`` file, then ``OPENLINEAGE_URL``."""
    from_env = (OpenLineageClient._load_config_from_env_variables() or {}).get("transport")
    if from_env and from_env.get("type"):
        return from_env
    if path := os.environ.get("OPENLINEAGE_CONFIG"):
        from_file = OpenLineageClient._get_config_file_content(path).get("transport")
        if from_file and from_file.get("type"):
            return from_file
    if url := os.environ.get("OPENLINEAGE_URL"):
        endpoint = os.environ.get("OPENLINEAGE_ENDPOINT", "api/v1/lineage")
        http: dict[str, Any] = {"type": "http", "url": url, "endpoint": endpoint}
        if key := os.environ.get("OPENLINEAGE_API_KEY"):
            http["auth"] = {"type": "api_key", "apiKey": key}
        return http
    return None


def transformer_properties(settings: Settings) -> dict[str, Any]:
    """Where the engine's catalog keeps its tables, for transform.LakeTransformer."""

    def root(dataset: naming.DatasetId) -> dict[str, str]:
        return {"namespace": dataset.namespace, "name": dataset.name}

    return {
        "catalog": naming.spark_namespace(settings),
        "bronze": root(naming.location_dataset(settings.bronze)),
        "warehouse": root(naming.location_dataset(settings.warehouse)),
        "schemas": {"ops": root(naming.location_dataset(settings.lake / "ops"))},
    }


def transport_config(settings: Settings, inner: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``transform`` transport around ``inner`` (the user's transport, else the file)."""
    if inner is None:
        inner = user_transport()
    if inner is None:
        events_file(settings).parent.mkdir(parents=True, exist_ok=True)
        inner = {"type": "file", "log_file_path": str(events_file(settings)), "append": True}
    if inner.get("type") == "transform" and inner.get("transformer_class") == TRANSFORMER:
        return inner  # already ours
    return {
        "type": "transform",
        "transformer_class": TRANSFORMER,
        "transformer_properties": transformer_properties(settings),
        "transport": inner,
    }


def environment(settings: Settings) -> dict[str, str]:
    """Variables for any OpenLineage emitter the platform starts (dbt-ol reads the same ones):
    the user's transport, or the file, wrapped, as the one ``OPENLINEAGE__TRANSPORT``."""
    env = {"OPENLINEAGE_NAMESPACE": job_namespace()}
    if not disabled():
        env["OPENLINEAGE__TRANSPORT"] = json.dumps(transport_config(settings))
    return env


def emitter_environment(settings: Settings, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` with ``environment``, less the variables it replaces: a config file would win
    over it, and ``OPENLINEAGE__TRANSPORT__*`` would be merged into it."""
    if disabled():
        return {**base, **environment(settings)}
    kept = {k: v for k, v in base.items()
            if k not in _ELSEWHERE and not k.startswith("OPENLINEAGE__TRANSPORT")}  # fmt: skip
    return {**kept, **environment(settings)}


def client(settings: Settings) -> OpenLineageClient:
    if disabled():
        return OpenLineageClient()  # the client's no-op transport
    return OpenLineageClient(transport=get_default_factory().create(transport_config(settings)))


@dataclass
class JobRun:
    """One run of a job; ``outputs`` are set by the caller before the run completes."""

    name: str
    integration: str
    inputs: list[Dataset]
    outputs: list[Dataset] = field(default_factory=list)
    run_id: str = field(default_factory=lambda: str(generate_new_uuid()))


def job_namespace() -> str:
    return os.environ.get("OPENLINEAGE_NAMESPACE", NAMESPACE)


def _parent() -> dict[str, Any]:
    """The parent run named by OPENLINEAGE_PARENT_ID (``namespace/job/run id``), if any."""
    value = os.environ.get("OPENLINEAGE_PARENT_ID", "")
    namespace, _, rest = value.partition("/")
    job, _, run_id = rest.rpartition("/")
    if not (namespace and job and run_id):
        return {}
    return {
        "parent": parent_run.ParentRunFacet(
            run=parent_run.Run(runId=run_id), job=parent_run.Job(namespace=namespace, name=job)
        )
    }


def _event(run: JobRun, state: RunState, run_facets: dict[str, Any]) -> RunEvent:
    job_facets = {
        "jobType": job_type_job.JobTypeJobFacet(
            processingType="BATCH", integration=run.integration, jobType="JOB"
        )
    }
    return RunEvent(
        eventType=state,
        eventTime=datetime.now(UTC).isoformat(),
        run=Run(runId=run.run_id, facets=run_facets),
        job=Job(namespace=job_namespace(), name=run.name, facets=job_facets),
        producer=PRODUCER,
        inputs=[d.as_input() for d in run.inputs],
        outputs=[d.as_output() for d in run.outputs] if state != RunState.START else [],
    )


def _send(ol: OpenLineageClient, event: RunEvent) -> None:
    """Lineage never fails the job it describes: a backend that is down costs its events (said
    in the log), not the load or the publish."""
    try:
        ol.emit(event)
    except Exception as error:  # any transport error: HTTP status, connection, file system
        log.warning("OpenLineage %s event of %s not sent: %s", event.eventType.value,
                    event.job.name, error)  # fmt: skip


@contextmanager
def job_run(
    settings: Settings, name: str, integration: str, inputs: Sequence[Dataset], engine: str
) -> Iterator[JobRun]:
    """Emit START now, then COMPLETE with the outputs the block set, or FAIL with its error."""
    run = JobRun(name, integration, list(inputs))
    ol = client(settings)
    facets: dict[str, Any] = {
        **_parent(),
        "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
            version=version(engine),
            name=engine,
            openlineageAdapterVersion=version("openlineage-python"),
        ),
    }
    _send(ol, _event(run, RunState.START, facets))
    try:
        try:
            yield run
        except BaseException as error:
            failed = {
                **facets,
                "errorMessage": error_message_run.ErrorMessageRunFacet(
                    message=str(error) or type(error).__name__,
                    programmingLanguage="PYTHON",
                    stackTrace="".join(traceback.format_exception(error))[-4000:],
                ),
            }
            _send(ol, _event(run, RunState.FAIL, failed))
            raise
        _send(ol, _event(run, RunState.COMPLETE, facets))
    finally:
        ol.close()
