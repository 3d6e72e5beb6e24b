"""`config/operations.yaml`, typed: the response cache, batching, metrics export, the run queue
and the state database. Every section has defaults, so the file may be missing.

Each section belongs to the engine module that uses it: `cache` to `crewkit.models.cache`,
`batching` to the default flow's executor, `metrics` to `crewkit.observability`, `queue` to
`crewkit.scheduling.queue`, `database` to `crewkit.runtime.store`. Secrets (a broker password,
a database password) never live here: a section names the environment variable that holds
the URL, and `crewkit.settings.env` reads it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SemanticCache(_Strict):
    """Opt-in: a new prompt close enough to a cached one (same model, same tenant) gets its answer."""

    enabled: bool = False
    threshold: float = Field(0.95, gt=0, le=1, strict=False)  # cosine similarity of the prompts' embeddings
    max_entries: int = Field(2000, ge=1)  # per model and tenant; the least recently used go first


class CacheConfig(_Strict):
    """The response cache of model calls (exact: same model, parameters, messages and tenant)."""

    enabled: bool = True  # exact cache, used only for deterministic calls (temperature 0 / greedy)
    ttl_seconds: float | None = Field(7 * 24 * 3600.0, gt=0)  # None: entries never expire
    max_entries: int = Field(10_000, ge=1)  # all models and tenants together, least recently used go first
    max_bytes: int = Field(64 * 1024 * 1024, ge=1024)  # total size of the cached answers
    semantic: SemanticCache = SemanticCache()


class BatchingConfig(_Strict):
    """Independent subtasks of a plan run at the same time, up to `max_concurrency`."""

    enabled: bool = True
    max_concurrency: int = Field(2, ge=1, le=64)


class PrometheusEndpoint(_Strict):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(9464, ge=1, le=65535)


class OtelExport(_Strict):
    """OpenTelemetry metrics export over OTLP/HTTP; nothing leaves the machine unless enabled."""

    enabled: bool = False
    endpoint_env: str = "OTEL_EXPORTER_OTLP_ENDPOINT"  # the variable holding the collector's URL
    interval_seconds: float = Field(30.0, gt=0)


class MetricsConfig(_Strict):
    enabled: bool = True  # the event listener's records in state.db (`crewkit metrics` reads them)
    retention_days: float = Field(30.0, gt=0)
    slo_window: str = "1h"  # the window SLOs are checked over (e.g. 15m, 1h, 1d)
    slo_min_calls: int = Field(20, ge=1)  # fewer calls than this in the window: no verdict, no alert
    prometheus: PrometheusEndpoint = PrometheusEndpoint()
    otel: OtelExport = OtelExport()

    @field_validator("slo_window")
    @classmethod
    def _window_is_a_duration(cls, value: str) -> str:
        from crewkit.observability.metrics import parse_duration  # raises ValueError with the fix

        parse_duration(value)
        return value


class QueueConfig(_Strict):
    """Runs queued to Celery workers (`crewkit run --queue`, `crewkit worker`)."""

    broker_url_env: str = "CREWKIT_BROKER_URL"  # its value, e.g. redis://127.0.0.1:6379/0
    default_broker_url: str = "redis://127.0.0.1:6379/0"  # used when the variable is unset
    queue: str = "crewkit"
    concurrency: int = Field(1, ge=1, le=64)  # runs one worker process works on at once
    visibility_timeout: float = Field(3600.0, gt=0)  # seconds before a lost worker's run is redelivered
    max_retries: int = Field(3, ge=0)  # times a run is taken over after its worker died; then it fails
    heartbeat_seconds: float = Field(15.0, gt=0)  # a worker marks its run alive this often; another
    # host's worker takes the run over once 4 heartbeats were missed (same host: the pid is checked)


class DatabaseConfig(_Strict):
    """Where state.db's tables live: SQLite under CREWKIT_HOME (default) or a PostgreSQL URL."""

    url_env: str = "CREWKIT_DATABASE_URL"  # e.g. postgresql://user:pass@db:5432/crewkit; unset: SQLite


class OperationsConfig(_Strict):
    cache: CacheConfig = CacheConfig()
    batching: BatchingConfig = BatchingConfig()
    metrics: MetricsConfig = MetricsConfig()
    queue: QueueConfig = QueueConfig()
    database: DatabaseConfig = DatabaseConfig()
