"""One validated view of the platform's configuration.

Everything that differs between a laptop and production (paths, ports, source settings) is read
once here, from ``lakehouse.yml`` plus environment overrides, and validated, so a typo fails at
start-up with the file and key named instead of surfacing later as a Spark or dbt error.
"""

from __future__ import annotations

import ipaddress
import os
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

REPO_ROOT = Path(__file__).resolve().parents[2]  # lakehouse/core/config.py
DEFAULT_CONFIG_FILE = REPO_ROOT / "lakehouse.yml"

CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EngineConfig(_Strict):
    host: str = "127.0.0.1"
    # Where the engine's driver (RPC, block manager) and Spark UI listen: loopback, so nothing
    # is reachable from beyond this machine. A cluster's executors need the driver reachable:
    # an interface address opens exactly that one, 0.0.0.0 every interface (Spark's default).
    bind_address: str = "127.0.0.1"
    port: int = Field(10000, ge=1, le=65535)
    driver_memory: str = Field("4g", pattern=r"^\d+[mg]$")
    shuffle_partitions: int = Field(4, ge=1)
    startup_timeout_s: int = Field(180, ge=10)
    # Rounds of the warm-up the engine runs once it answers (lakehouse/transform/warmup.py); 0:
    # none.
    warmup_rounds: int = Field(3, ge=0)

    @field_validator("bind_address")
    @classmethod
    def _an_ip_address(cls, value: str) -> str:
        ipaddress.ip_address(value)  # ValueError names the value: an address, not a host name
        return value


class SchemaPolicy(_Strict):
    """What happens to a record whose shape differs from the declared bronze columns."""

    mode: Literal["schema_on_write", "schema_on_read"] = "schema_on_write"
    unknown_columns: Literal["quarantine", "drop", "fail"] = "quarantine"


class _Source(_Strict):
    schema_policy: SchemaPolicy = SchemaPolicy()


class SnowflakeSourceConfig(_Source):
    tables: list[str]


class CrmSourceConfig(_Source):
    page_size: int = Field(200, ge=1, le=10_000)


class RedshiftSourceConfig(_Source):
    schema_: str = Field("web", alias="schema")
    tables: list[str]
    chunk_size: int = Field(50_000, ge=100)


class FxSourceConfig(_Source):
    base_currency: CurrencyCode = "USD"
    currencies: list[CurrencyCode]


class KafkaSourceConfig(_Source):
    topic: str
    group_id: str
    batch_size: int = Field(5000, ge=1)


class SourceRetryConfig(_Strict):
    """How long a failing source system is retried before its load stops (ingestion/retry.py).

    A system that is down, answers 5xx or 429, stalls or drops the connection is retried with
    backoff: ``backoff_s``, doubling, at most ``max_backoff_s`` per wait (a Retry-After header
    too). HTTP requests are retried one by one by dlt's client (so a failed page is fetched
    again, not the whole load); SQL and Kafka loads are retried whole (they resume from the
    last committed state). ``timeout_s`` bounds one request, connect or broker call. A record
    that fails is never retried: it is quarantined. The defaults give up on a dead system
    within about a minute: attempts x timeout_s plus the waits.
    """

    attempts: int = Field(4, ge=1, le=20)
    backoff_s: float = Field(1.0, ge=0, le=60)
    max_backoff_s: float = Field(20.0, ge=0, le=600)
    timeout_s: float = Field(15.0, gt=0, le=600)


class SourcesConfig(_Strict):
    """The built-in sources' sections, validated here at start-up. A section for another source
    (one registered at runtime, ingestion/registry.py) is kept as written and validated by the
    model its module declares, when the registry reads it (``registry.conf``)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    snowflake: SnowflakeSourceConfig
    crm: CrmSourceConfig
    redshift: RedshiftSourceConfig
    fx: FxSourceConfig
    kafka: KafkaSourceConfig


class ServicesConfig(_Strict):
    postgres_port: int = Field(5433, ge=1, le=65535)
    snowflake_port: int = Field(8085, ge=1, le=65535)
    kafka_port: int = Field(9092, ge=1, le=65535)
    kafka_controller_port: int = Field(9093, ge=1, le=65535)


class PublishTableConfig(_Strict):
    """A gold table served in the warehouses (dbt_project/models/publish has its models)."""

    unique_key: list[str] = Field(min_length=1)
    # Reconciliation compares row count and a checksum of these columns, lake vs warehouse.
    checksum_columns: list[str] = Field(min_length=1)


class PublishConfig(_Strict):
    warehouses: list[Literal["snowflake", "redshift"]] = ["snowflake", "redshift"]
    # Rows per INSERT when staging a snapshot in Redshift (a Redshift statement is at most 16 MB).
    insert_batch_rows: int = Field(1000, ge=1, le=100_000)
    # Rows per Parquet file when staging in Snowflake (PUT to the table's stage, then COPY INTO).
    stage_file_rows: int = Field(250_000, ge=1, le=10_000_000)
    # A dbt publish run still going after this long is killed and the publish fails (a client
    # retrying a warehouse error forever must not hang the pipeline).
    dbt_timeout_s: int = Field(1800, ge=10)
    tables: dict[str, PublishTableConfig] = Field(min_length=1)


class RetryConfig(_Strict):
    """Airflow task retries: ``retries`` more tries, waits growing by ``backoff_multiplier``."""

    retries: int = Field(2, ge=0, le=10)
    delay_s: int = Field(30, ge=1)
    backoff_multiplier: float = Field(2.0, ge=1.0)
    max_delay_s: int = Field(600, ge=1)


class AlertConfig(_Strict):
    """Where alerts go. ``log`` (always on) appends to ``<home>/alerts/alerts.jsonl``; ``webhook``
    POSTs JSON to the URL in LAKEHOUSE_ALERT_WEBHOOK_URL; ``email`` mails ``email_to`` through
    Airflow's SMTP connection (credentials in the environment, never here)."""

    channels: list[Literal["log", "webhook", "email"]] = ["log"]
    email_to: list[str] = []


class WatchdogConfig(_Strict):
    """Thresholds of the hourly dq_watchdog DAG (``lakehouse watchdog``)."""

    # today's rows per bronze table may differ this much (share) from the trailing daily average
    volume_tolerance: float = Field(0.5, gt=0)
    trailing_days: int = Field(7, ge=1)
    # fewer days of history than this: volume is reported, not judged
    min_history_days: int = Field(3, ge=1)
    # rows quarantined in the last `quarantine_window_h` hours, as a share of the rows loaded
    quarantine_max_share: float = Field(0.10, ge=0, le=1)
    quarantine_window_h: int = Field(1, ge=1)


class SchedulesConfig(_Strict):
    """Cron expressions or presets; null = triggered only (build_analytics runs on assets)."""

    ingest_sources: str | None = "0 2 * * *"
    dq_watchdog: str | None = "@hourly"


class OrchestrationConfig(_Strict):
    """The local Airflow (``make airflow``) and the promises its DAGs make."""

    api_port: int = Field(8080, ge=1, le=65535)
    schedules: SchedulesConfig = SchedulesConfig()
    parallelism: int = Field(4, ge=1)
    ingest_deadline_s: int = Field(1800, ge=1)
    build_deadline_s: int = Field(3600, ge=1)
    retry: RetryConfig = RetryConfig()
    alerts: AlertConfig = AlertConfig()
    watchdog: WatchdogConfig = WatchdogConfig()


class SampleDataConfig(_Strict):
    seed: int = 42
    scale: float = Field(0.05, gt=0, le=10)
    dirty_share: float = Field(0.03, ge=0, le=0.5)
    start_date: date
    days: int = Field(60, ge=7)


class CostConfig(_Strict):
    """Prices a job's cost is estimated with (lakehouse/observability/run_metrics.py). Defaults are
    list prices of a
    general-purpose cloud vCPU-hour and of object storage; set your own."""

    currency: CurrencyCode = "USD"
    per_core_hour: float = Field(0.05, ge=0)
    per_gb_month: float = Field(0.023, ge=0)
    # Cores a job of each step occupies: ingestion and publish are one Python process each;
    # dbt's work runs on the engine (local[*]: every core of this machine by default).
    cores: dict[Literal["ingest", "dbt", "publish"], float] = {
        "ingest": 1.0,
        "dbt": float(os.cpu_count() or 1),
        "publish": 1.0,
    }


class OpsConfig(_Strict):
    cost: CostConfig = CostConfig()


class Settings(_Strict):
    """The whole configuration. ``home`` is where the lake, warehouse and metastore live."""

    home: Path
    engine: EngineConfig
    reporting_currency: CurrencyCode = "USD"
    services: ServicesConfig = ServicesConfig()
    sample_data: SampleDataConfig
    sources: SourcesConfig
    source_retry: SourceRetryConfig = SourceRetryConfig()
    publish: PublishConfig
    orchestration: OrchestrationConfig = OrchestrationConfig()
    ops: OpsConfig = OpsConfig()

    @property
    def lake_dir(self) -> Path:
        """Ingestion writes bronze Delta tables under ``<lake>/bronze/<source>/<table>``."""
        return self.home / "lake"

    @property
    def bronze_dir(self) -> Path:
        return self.lake_dir / "bronze"

    @property
    def warehouse_dir(self) -> Path:
        """Spark's managed tables: what dbt builds (silver, gold)."""
        return self.home / "warehouse"

    @property
    def metastore_dir(self) -> Path:
        return self.home / "metastore"

    @property
    def state_dir(self) -> Path:
        """Engine pid file, dlt pipeline state and run artefacts."""
        return self.home / "state"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def source_systems_dir(self) -> Path:
        """Data of the local source-system stand-ins (the Snowflake file, PostgreSQL, Kafka)."""
        return self.home / "sources"


class ConfigError(RuntimeError):
    """A configuration file is invalid; the message names the file, the key and the problem."""


def _env_overrides(raw: dict) -> dict:
    """Apply the documented environment overrides on top of the file's values."""
    raw = dict(raw)
    raw["home"] = os.environ.get("LAKEHOUSE_HOME", raw.get("home") or REPO_ROOT / ".lakehouse")
    engine = dict(raw.get("engine") or {})
    services = dict(raw.get("services") or {})
    for key in ("postgres_port", "snowflake_port", "kafka_port", "kafka_controller_port"):
        if value := os.environ.get(f"LAKEHOUSE_{key.upper()}"):
            services[key] = value
    raw["services"] = services
    sample = dict(raw.get("sample_data") or {})
    if scale := os.environ.get("LAKEHOUSE_SCALE"):
        sample["scale"] = scale
    if dirty := os.environ.get("LAKEHOUSE_DIRTY_SHARE"):
        sample["dirty_share"] = dirty
    if sample:
        raw["sample_data"] = sample
    orchestration = dict(raw.get("orchestration") or {})
    if port := os.environ.get("LAKEHOUSE_AIRFLOW_PORT"):
        orchestration["api_port"] = port
    if orchestration:
        raw["orchestration"] = orchestration
    if port := os.environ.get("LAKEHOUSE_THRIFT_PORT"):
        engine["port"] = port
    if host := os.environ.get("LAKEHOUSE_THRIFT_HOST"):
        engine["host"] = host
    if bind := os.environ.get("LAKEHOUSE_ENGINE_BIND_ADDRESS"):
        engine["bind_address"] = bind
    raw["engine"] = engine
    return raw


def load_settings(path: Path | None = None) -> Settings:
    """Read, override and validate the configuration; raise ConfigError naming file and key."""
    path = Path(path or os.environ.get("LAKEHOUSE_CONFIG", DEFAULT_CONFIG_FILE))
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: configuration file not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(raw).__name__}")
    try:
        settings = Settings.model_validate(_env_overrides(raw))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from exc
    home = settings.home.expanduser().resolve()
    return settings.model_copy(update={"home": home})
