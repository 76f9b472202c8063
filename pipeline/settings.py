"""The one settings root. Built once at an entry point (CLI command) and passed down.

With no settings at all perfplat runs the embedded default: a local Tansu broker started as a
child process and chdb under ``./var``. Setting ``PERFPLAT_KAFKA__BOOTSTRAP`` (or its short
alias ``PERFPLAT_KAFKA_BOOTSTRAP``) and ``PERFPLAT_CLICKHOUSE__URL`` (``PERFPLAT_CLICKHOUSE_URL``)
selects the distributed mode: external Kafka and a ClickHouse server.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset({"change-me", "changeme", "secret", "password", "placeholder"})


class Mode(StrEnum):
    EMBEDDED = "embedded"
    DISTRIBUTED = "distributed"


class KafkaSettings(BaseModel):
    bootstrap: str = ""
    """Empty: the embedded broker decides (``127.0.0.1:<broker_port>``)."""
    broker_port: int = 19092
    partitions: int = 4
    replication_factor: int = 1
    linger_ms: int = 2
    delivery_timeout_ms: int = 5000
    session_timeout_ms: int = 6000
    fetch_max_wait_ms: int = Field(default=100, ge=1)
    """Longest a worker's Fetch may wait at the broker for data. Tansu holds a Fetch that finds
    nothing new for this whole time (Kafka answers when data arrives), so on Tansu it bounds how
    long a new event waits before the worker sees it (``stream_processors.kafka_transport``)."""
    heartbeat_interval_ms: int = 1000
    coalesce_window_ms: float = 2.0
    """How long the ingest publisher gathers events bound for one partition into one envelope."""
    coalesce_max_events: int = 500
    topic_prefix: str = "perfplat"


class ClickHouseSettings(BaseModel):
    url: str = ""
    """``clickhouse://user:password@host:9000/database``; empty: embedded chdb under ``data_dir``."""
    database: str = "perfplat"


class ApiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8000
    read_port: int = 8001
    """Embedded mode: the read side listens here; the public port proxies read routes to it."""
    ingest_processes: int = 1
    cors_origins: list[str] = Field(default_factory=lambda: ["*"])
    trusted_proxies: list[str] = Field(default_factory=list)
    """Peers whose ``X-Forwarded-For`` is believed (e.g. the load balancer's addresses)."""
    max_body_bytes: int = 1_048_576
    max_batch_events: int = 1000
    max_field_chars: int = 512
    users_now_cache_ms: int = 100
    kpi_cache_ms: int = 250
    """A service's KPI summary is computed at most once per this many ms, however many poll it."""
    sse_interval_ms: int = 1000
    """Live event streams read each service's (and the platform's) figures once per this many ms,
    however many subscribe, and push an event only when they changed."""
    retry_after_s: int = 5
    max_write_bytes: int = 10 * 1024 * 1024
    """Write API: largest request body, after gzip decompression (the original's 10 MiB)."""
    write_wait_ms: int = 10_000
    """``?wait=queryable`` (and DELETE/PATCH): how long a write waits for its records to be queryable."""


class WorkerSettings(BaseModel):
    app_id: str = "perfplat-worker"
    max_batch_messages: int = 2000
    flush_interval_ms: int = 100
    retry_backoff_ms: int = 500
    embedded_nice: int = 10
    """CPU niceness of the embedded core process (worker + chdb) relative to ingest."""


class AlertSettings(BaseModel):
    enabled: bool = True
    """Evaluate the services' alert rules in the process that reads the store (``api.alerts``)."""
    interval_s: float = Field(default=30.0, gt=0)
    """How often every rule is evaluated, and undelivered notifications are sent again."""
    webhook_timeout_s: float = Field(default=5.0, gt=0)
    webhook_attempts: int = Field(default=3, ge=1)
    """POSTs of one notification per evaluation before it waits for the next one."""
    webhook_backoff_ms: int = Field(default=500, ge=0)
    """Wait before the second POST, doubled before each further one."""
    max_delivery_age_s: int = Field(default=86_400, gt=0)
    """A notification not delivered within this long is no longer sent."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PERFPLAT_", env_nested_delimiter="__", extra="ignore", frozen=True
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    clickhouse: ClickHouseSettings = Field(default_factory=ClickHouseSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    data_dir: Path = Path("var")
    datasets_file: Path | None = None
    """The data-set registry (JSON); default ``<data_dir>/datasets.json``."""
    services_file: Path | None = None
    """The services registry (JSON): names, health checks, tokens; default ``<data_dir>/services.json``."""
    admin_token: SecretStr = SecretStr("")
    """Bearer token of the admin API (``/_admin/…``); empty: the admin API is switched off."""
    visitor_secret: SecretStr = SecretStr("")
    """Key for the daily visitor salt. Empty in embedded mode: generated once under data_dir."""
    log_level: str = "INFO"

    @model_validator(mode="before")
    @classmethod
    def _short_aliases(cls, data: Any) -> Any:
        """Accept ``PERFPLAT_KAFKA_BOOTSTRAP`` and ``PERFPLAT_CLICKHOUSE_URL`` as documented."""
        if not isinstance(data, dict):
            return data
        env = os.environ
        for short, section, key in (
            ("PERFPLAT_KAFKA_BOOTSTRAP", "kafka", "bootstrap"),
            ("PERFPLAT_CLICKHOUSE_URL", "clickhouse", "url"),
        ):
            if short in env:
                sec = dict(data.get(section) or {})
                sec.setdefault(key, env[short])
                data[section] = sec
        return data

    @model_validator(mode="after")
    def _check_mode(self) -> Settings:
        if bool(self.kafka.bootstrap) != bool(self.clickhouse.url):
            raise ValueError(
                "distributed mode needs both PERFPLAT_KAFKA_BOOTSTRAP and PERFPLAT_CLICKHOUSE_URL; "
                "set neither for the embedded default"
            )
        secret = self.visitor_secret.get_secret_value()
        if self.mode is Mode.DISTRIBUTED and not secret:
            raise ValueError("distributed mode needs PERFPLAT_VISITOR_SECRET (shared by every api process)")
        if secret.strip().lower() in PLACEHOLDER_SECRETS:
            raise ValueError("PERFPLAT_VISITOR_SECRET is a placeholder; set a random value of your own")
        return self

    @property
    def mode(self) -> Mode:
        return Mode.DISTRIBUTED if self.kafka.bootstrap else Mode.EMBEDDED

    @property
    def bootstrap(self) -> str:
        return self.kafka.bootstrap or f"127.0.0.1:{self.kafka.broker_port}"

    @property
    def registry_path(self) -> Path:
        return self.datasets_file or self.data_dir / "datasets.json"

    @property
    def services_path(self) -> Path:
        return self.services_file or self.data_dir / "services.json"

    @property
    def chdb_path(self) -> Path:
        return self.data_dir / "chdb"


def load_settings(**overrides: Any) -> Settings:
    """Read the environment once; entry points call this and pass the result down."""
    return Settings(**overrides)
