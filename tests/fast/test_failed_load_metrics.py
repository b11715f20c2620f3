"""A load that fails still leaves its run-metrics row (with the error) and still raises: the
metrics never hide a failure. The CRM comes from the local HTTP service, the lake is temporary.
"""

from __future__ import annotations

import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from lakehouse.core.config import SchemaPolicy, Settings
from lakehouse.observability import run_metrics
from lakehouse.pipeline import loads
from lakehouse.stack import http_standin
from lakehouse.stack import source_systems as systems
from lakehouse.stack.sample_data.world import World


def test_a_failed_load_is_recorded_with_its_error(tmp_settings: Settings) -> None:
    """A CRM load that breaks its schema contract (unknown columns: fail) records an error row
    and still raises: the metrics never hide a failure."""
    crm = tmp_settings.sources.crm.model_copy(
        update={"schema_policy": SchemaPolicy(unknown_columns="fail")}
    )
    sources = tmp_settings.sources.model_copy(update={"crm": crm})
    settings = tmp_settings.model_copy(update={"sources": sources})
    world = World(scale=0.01, dirty_share=0.05)
    with http_standin.serving_service(world) as service:
        endpoints = systems.Endpoints(
            snowflake_url="", crm_base_url=service.url, crm_token="local-crm-token",
            redshift_url="", fx_base_url="", kafka_bootstrap="",
        )  # fmt: skip
        with pytest.raises(PipelineStepFailed, match="legacy_score"):
            loads.ingest(settings, endpoints, ["crm"])
    [row] = run_metrics.read(settings)
    assert (row["step"], row["job"], row["status"]) == ("ingest", "bronze_crm", "error")
    assert "legacy_score" in row["error"]
    assert row["rows_written"] is None
    assert row["compute_cost"] > 0
