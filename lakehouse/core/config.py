"""One validated view of the platform's configuration.

Everything that differs between a laptop and production (paths, ports, source settings) is read
once here, from ``lakehouse.yml`` plus environment overrides (pydantic-settings: the sources are
in lakehouse/core/settings_sources.py), and validated, so a typo fails at start-up with the file
and key, or the variable, named instead of surfacing later as a Spark or dbt error.
"""

from __future__ import annotations

import ipaddress
import os
from datetime import date
from pathlib import Path
from typing import Annotated, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from lakehouse.core import storage
from lakehouse.core.settings_sources import (
    CONFIG_ENV,
    ENV_PREFIX,
    NESTED_DELIMITER,
    Environment,
    SourceError,
    environment_then_file,
)

REPO_ROOT = Path(__file__).resolve().parents[2]  # lakehouse/core/config.py
DEFAULT_CONFIG_FILE = REPO_ROOT / "lakehouse.yml"

CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StandaloneConfig(_Strict):
    """The Spark standalone cluster ``engine.mode: standalone`` runs on this machine (a master and
    ``workers`` workers, lakehouse/stack/spark_cluster.py). Each worker offers ``worker_cores``
    and ``worker_memory``; each executor takes ``executor_cores`` and ``executor_memory`` of one,
    so the defaults give one executor per worker. Ports: none of them Spark's defaults (8080 and
    8081 are Airflow's API and many a developer's), each worker's UI at ``worker_ui_port`` + i."""

    master_port: int = Field(7177, ge=1, le=65535)
    master_ui_port: int = Field(8180, ge=1, le=65535)
    worker_ui_port: int = Field(8181, ge=1, le=65535)
    workers: int = Field(2, ge=1, le=16)
    worker_cores: int = Field(1, ge=1)
    worker_memory: str = Field("1g", pattern=r"^\d+[mg]$")
    executor_cores: int = Field(1, ge=1)
    executor_memory: str = Field("1g", pattern=r"^\d+[mg]$")
    # Heap of the master and of each worker daemon (they schedule, they hold no data).
    daemon_memory: str = Field("512m", pattern=r"^\d+[mg]$")
    startup_timeout_s: int = Field(60, ge=5)

    @model_validator(mode="after")
    def _an_executor_fits_a_worker(self) -> StandaloneConfig:
        # Otherwise the master never grants an executor and every query waits for good.
        if self.executor_cores > self.worker_cores:
            raise ValueError(f"executor_cores {self.executor_cores} > worker_cores "
                             f"{self.worker_cores}: no worker could run an executor")  # fmt: skip
        if megabytes(self.executor_memory) > megabytes(self.worker_memory):
            raise ValueError(f"executor_memory {self.executor_memory} > worker_memory "
                             f"{self.worker_memory}: no worker could run an executor")  # fmt: skip
        return self


def megabytes(size: str) -> int:
    """``512m`` -> 512, ``2g`` -> 2048 (the size strings of Spark's memory settings)."""
    return int(size[:-1]) * (1024 if size[-1] == "g" else 1)


class MetastoreConfig(_Strict):
    """The engine's Hive metastore: a database of the project's PostgreSQL server
    (services.postgres_port), reached as its own role (lakehouse/stack/metastore.py). Shared,
    unlike the embedded Derby it replaces: every engine of one home sees the same tables."""

    database: str = Field("metastore", pattern=r"^[a-z_][a-z0-9_]*$")
    user: str = Field("lakehouse_metastore", pattern=r"^[a-z_][a-z0-9_]*$")


class EngineConfig(_Strict):
    # local: the Thrift server runs every task in its own JVM (local[*]); standalone: it submits
    # them to a Spark master and workers it starts on this machine (docs/deploy.md).
    mode: Literal["local", "standalone"] = "local"
    standalone: StandaloneConfig = StandaloneConfig()
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
    metastore: MetastoreConfig = MetastoreConfig()

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


class StandInsConfig(_Strict):
    """What lineage names the local stand-ins that emulate another system by: that system, under
    the address a production deploy would set for it (credentials aside), so the stand-in's
    datasets are named as the real system's are (docs/lineage.md). The stand-ins themselves are
    a SQLite file of the home and HTTP servers on a port of the day: not names a lineage tool can
    join across runs, nor any system the spec names. The real PostgreSQL and Kafka broker are
    named by their own addresses."""

    # the Snowflake source, as SNOWFLAKE_URL would set it: snowflake://<org>-<account>/<DB>/<SCHEMA>
    snowflake: str = "snowflake://lakehouse-shop/SHOP/PUBLIC"
    crm: str = "https://crm.lakehouse.example:443"  # the CRM API, as CRM_BASE_URL would set it
    fx: str = "https://fx.lakehouse.example:443"  # the FX API, as FX_BASE_URL would set it
    # the Snowflake warehouse (the fakesnow emulator), as SNOWFLAKE_ACCOUNT would set it
    snowflake_warehouse: str = "lakehouse-analytics"

    @field_validator("snowflake")
    @classmethod
    def _a_snowflake_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme != "snowflake" or not parts.hostname or parts.path.count("/") != 2:
            raise ValueError(f"{value!r}: not snowflake://<org>-<account>/<DATABASE>/<SCHEMA>")
        return value

    @field_validator("crm", "fx")
    @classmethod
    def _an_http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname or parts.password:
            raise ValueError(f"{value!r}: not an http(s)://<host>[:<port>] URL without credentials")
        return value

    @field_validator("snowflake_warehouse")
    @classmethod
    def _an_account(cls, value: str) -> str:
        if not value or any(c in value for c in "/:@"):
            raise ValueError(f"{value!r}: not a Snowflake account identifier (<org>-<account>)")
        return value

    def of_source(self, source: str) -> str | None:
        """The identity of ``source``'s stand-in; None: the stand-in is named by its address."""
        return getattr(self, source, None) if source in {"snowflake", "crm", "fx"} else None


class ServicesConfig(_Strict):
    postgres_port: int = Field(5433, ge=1, le=65535)
    snowflake_port: int = Field(8085, ge=1, le=65535)
    kafka_port: int = Field(9092, ge=1, le=65535)
    kafka_controller_port: int = Field(9093, ge=1, le=65535)
    # The local S3-compatible server (lakehouse/stack/services/s3.py), for a lake on s3://.
    s3_port: int = Field(9000, ge=1, le=65535)
    stand_ins: StandInsConfig = StandInsConfig()


class StorageConfig(_Strict):
    """Where the lake lives (docs/storage.md). ``root`` unset: ``<home>``, as always, so the
    lake is ``<home>/lake`` and the warehouse ``<home>/warehouse``. Else a local path or
    ``s3://bucket/prefix``, under which ``lake/`` and ``warehouse/`` are kept.

    ``local_server``: an ``s3://`` root is served by the local S3-compatible server (started by
    ``make up``, its bucket created if missing). False: a real S3, whose endpoint and
    credentials come from the environment only (AWS_* variables), never from this file.
    """

    root: str | None = None
    local_server: bool = True

    @field_validator("root")
    @classmethod
    def _a_uri(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if "://" in value and not storage.is_s3(value):
            raise ValueError("a local path or s3://bucket/prefix")
        if storage.is_s3(value) and not storage.bucket_of(value):
            raise ValueError("s3:// needs a bucket: s3://bucket/prefix")
        return value


# The warehouses gold can be published to (lakehouse/publish/warehouses.py serves each).
WarehouseName = Literal["snowflake", "redshift"]
WAREHOUSE_NAMES: tuple[str, ...] = get_args(WarehouseName)


class PublishTableConfig(_Strict):
    """A gold table served in the warehouses (dbt_project/models/publish has its models)."""

    unique_key: list[str] = Field(min_length=1)
    # Reconciliation compares row count and a checksum of these columns, lake vs warehouse.
    checksum_columns: list[str] = Field(min_length=1)


class PublishConfig(_Strict):
    warehouses: list[WarehouseName] = list(WAREHOUSE_NAMES)
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


class AuditConfig(_Strict):
    """The gold change audit (lakehouse/observability/table_changes.py, docs/change_audit.md)."""

    # a build that adds, removes or changes more than this share of a table's rows is flagged
    # (ops.table_changes.over_threshold, a warning; the watchdog alerts on it)
    alert_share: float = Field(0.2, ge=0)
    # columns that change on every build by design, never counted as a change: a column name
    # (any table), or `table.column` / `schema.table.column` (one table)
    ignore_columns: list[str] = ["loaded_at", "dlt_load_id"]
    # examples kept per kind of change (changed, added, removed), in key order
    examples: int = Field(10, ge=0, le=1000)


class Settings(BaseSettings):
    """The whole configuration. ``home`` is where the lake, warehouse and metastore live.

    Built by ``load_settings``: from the environment first, then ``lakehouse.yml``, then these
    defaults (lakehouse/core/settings_sources.py; every variable in docs/configuration.md).
    """

    model_config = SettingsConfigDict(
        extra="forbid",
        frozen=True,
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED_DELIMITER,
        env_ignore_empty=True,  # LAKEHOUSE_SCALE= (empty) is unset, as it always was
    )

    home: Path = REPO_ROOT / ".lakehouse"
    engine: EngineConfig
    reporting_currency: CurrencyCode = "USD"
    services: ServicesConfig = ServicesConfig()
    sample_data: SampleDataConfig
    sources: SourcesConfig
    source_retry: SourceRetryConfig = SourceRetryConfig()
    publish: PublishConfig
    orchestration: OrchestrationConfig = OrchestrationConfig()
    ops: OpsConfig = OpsConfig()
    audit: AuditConfig = AuditConfig()
    storage: StorageConfig = StorageConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """``Settings()`` reads what ``load_settings()`` does (no dotenv file, no secrets
        directory: secrets are read where they are used, never kept in the settings)."""
        return (init_settings, *environment_then_file(settings_cls, config_path()))

    @property
    def storage_root(self) -> storage.Location:
        """Under which the lake and the warehouse live: ``storage.root``, else the home."""
        root = self.storage.root or self.home
        if not storage.is_s3(root):
            root = (self.home / Path(root).expanduser()).resolve()  # relative: to the home
        return storage.Location.of(root, self.storage_env())

    def storage_env(self) -> dict[str, str]:
        """The AWS_* variables every process of the platform gets (none for a local lake)."""
        return storage.environment(
            self.storage.root, self.storage.local_server, self.home, self.services.s3_port
        )

    @property
    def lake(self) -> storage.Location:
        """Ingestion writes bronze Delta tables under ``<lake>/bronze/<source>/<table>``; the
        ops tables live under ``<lake>/ops``."""
        return self.storage_root / "lake"

    @property
    def bronze(self) -> storage.Location:
        return self.lake / "bronze"

    @property
    def warehouse(self) -> storage.Location:
        """Spark's managed tables: what dbt builds (silver, gold, dq)."""
        return self.storage_root / "warehouse"

    @property
    def lake_dir(self) -> Path:
        """``lake`` as a local folder (an error when the lake is on S3)."""
        return self.lake.path

    @property
    def bronze_dir(self) -> Path:
        return self.bronze.path

    @property
    def warehouse_dir(self) -> Path:
        return self.warehouse.path

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


def config_path() -> Path:
    """The configuration file: ``$LAKEHOUSE_CONFIG``, else the repository's ``lakehouse.yml``."""
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_FILE)


class ConfigError(RuntimeError):
    """The configuration is invalid; the message names the file and key, or the environment
    variable, and the problem."""


def load_settings(path: Path | None = None) -> Settings:
    """Read, override and validate the configuration; raise ConfigError naming file and key.

    ``path`` defaults to ``$LAKEHOUSE_CONFIG``, else the repository's ``lakehouse.yml``.
    """
    path = Path(path or config_path())
    try:
        environment, file = environment_then_file(Settings, path)
        settings = Settings(_build_sources=((environment, file), {}))
    except SourceError as exc:
        raise ConfigError(str(exc)) from exc
    except ValidationError as exc:
        raise ConfigError(_problems(exc, path, environment)) from exc
    home = settings.home.expanduser().resolve()
    return settings.model_copy(update={"home": home})


def _problems(exc: ValidationError, path: Path, environment: Environment) -> str:
    """One line for all the problems: those of the file after its name, each of the
    environment's with the variable that gave the value."""
    in_file, in_environment = [], []
    for err in exc.errors():
        loc = tuple(str(part) for part in err["loc"])
        key = ".".join(loc)
        origin = environment.origin(loc)
        if origin is None:
            in_file.append(f"{key}: {err['msg']}")
        else:
            in_environment.append(f"{origin.variable}={origin.value!r} ({key}): {err['msg']}")
    file_part = [f"{path}: {'; '.join(in_file)}"] if in_file else []
    return "; ".join(file_part + in_environment)
