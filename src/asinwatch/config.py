"""The one settings object of asinwatch.

Every setting comes from the environment (prefix ``ASINWATCH_``, nested areas joined by ``__``,
e.g. ``ASINWATCH_DATABASE__URL``) or a ``.env`` file. ``.env.example`` lists every key.
Secrets are ``SecretStr`` so they never print; production mode refuses default or empty ones.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

# A value that works on a laptop and must never reach production: production mode refuses it.
DEV_JWT_SECRET = "dev-insecure-jwt-secret-change-me-0123456789"
DEV_WEBHOOK_SECRET = "dev-insecure-webhook-secret"


def _list_from_env(value: object) -> object:
    """A list setting as the environment spells it: a JSON list or comma-separated values."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ValueError(f'not a JSON list ({exc}); write ["a", "b"] or a,b') from None
    return [part.strip() for part in text.split(",") if part.strip()]


# A list of strings from the environment: ``["a", "b"]`` or ``a,b`` (NoDecode: pydantic-settings
# leaves the raw string to `_list_from_env` instead of requiring JSON).
StrList = Annotated[list[str], NoDecode, BeforeValidator(_list_from_env)]


class DatabaseSettings(BaseModel):
    """PostgreSQL. With no URL, `asinwatch up` starts an embedded server in the data folder."""

    url: str | None = None
    pool_size: int = Field(10, ge=1, le=200)
    max_overflow: int = Field(10, ge=0, le=200)
    statement_timeout_ms: int = Field(30_000, ge=100)
    metric_partitions_ahead_months: int = Field(3, ge=1, le=36)
    raw_event_retention_days: int = Field(90, ge=1)


class RedisSettings(BaseModel):
    """Redis for the cache, rate limits, locks and pub/sub (the broker may share it)."""

    url: str | None = None
    key_prefix: str = "aw:"
    socket_timeout_s: float = Field(0.5, gt=0)


class BrokerSettings(BaseModel):
    """Celery broker; defaults to the Redis URL. Keys use the Redis key prefix too."""

    url: str | None = None
    visibility_timeout_s: int = Field(7200, ge=60)
    task_max_attempts: int = Field(5, ge=1, le=50)


class RecoverySettings(BaseModel):
    """Self-healing of runs and the scheduler: the database, not the broker, says what is left."""

    reconcile_interval_s: int = Field(
        30, ge=5, le=3600, description="How often beat runs the reconciler (seconds)."
    )
    stale_after_s: int = Field(
        60,
        ge=5,
        description="A non-final batch no live worker holds, with no heartbeat or message sent"
        " for this long, is lost and re-enqueued; an analytics step sent this long ago and"
        " not started is re-sent.",
    )
    heartbeat_s: float = Field(
        5.0, gt=0, description="A batch's worker renews its heartbeat and batch slot this often."
    )
    slot_lease_s: float = Field(
        20.0,
        gt=0,
        description="A batch slot not renewed for this long belongs to a dead worker and is free.",
    )
    outage_retry_s: float = Field(
        90.0,
        ge=0,
        description="A database or broker outage inside a task is retried with backoff this long"
        " before the attempt is given up.",
    )
    beat_lock_timeout_s: int = Field(
        20, ge=5, description="Beat lock TTL: a standby beat takes over this soon after a crash."
    )
    beat_loop_s: int = Field(
        5, ge=1, description="Longest beat sleep between ticks (lock renewal, schedule check)."
    )


class ApifySettings(BaseModel):
    """The Apify API v2 and the actors used for product details and reviews."""

    token: SecretStr = SecretStr("")
    base_url: str = "https://api.apify.com/v2"
    allowed_hosts: StrList = ["api.apify.com"]
    product_actor: str = "junglee~amazon-crawler"
    reviews_actor: str = "junglee~amazon-reviews-scraper"
    max_reviews_per_asin: int = Field(20, ge=0, le=1000)
    request_timeout_s: float = Field(30.0, gt=0)
    run_timeout_s: int = Field(900, ge=10)
    max_run_cost_usd: float = Field(5.0, gt=0)
    max_retries: int = Field(6, ge=0, le=20)
    backoff_base_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(30.0, gt=0)
    poll_wait_s: int = Field(30, ge=0, le=60)
    poll_outage_s: float = Field(
        120.0,
        gt=0,
        description="How long 404/5xx/connection errors while polling an in-flight run are"
        " retried (with backoff) before the batch is handed back to the queue",
    )
    reconcile_scan_runs: int = Field(
        10,
        ge=1,
        le=1000,
        description="After an ambiguous answer to a run start, how many of the actor's newest"
        " runs are checked for our request marker before a new start is tried",
    )
    dataset_item_slack: int = Field(
        5, ge=0, description="Items read beyond a run's maxItems before the rest is dropped"
    )
    max_dataset_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="Bytes of dataset items read per run, at most"
    )
    max_dataset_pages: int = Field(
        200, ge=1, description="Dataset pages read per run, at most (whatever the headers say)"
    )
    max_sane_run_cost_usd: float = Field(
        10_000.0,
        gt=0,
        description="A run cost above this (or negative, or not a finite number) is recorded"
        " as unknown instead of being added to the spend",
    )
    max_cost_usd_per_day: float = Field(
        100.0,
        ge=0,
        description="Daily upstream spend cap (sum of ingest_runs.cost_usd for the UTC day);"
        " new runs and batches are refused once it is reached (0 refuses every run)",
    )


class IngestSettings(BaseModel):
    """Batching, concurrency, the global upstream rate limit and the schedule."""

    batch_size: int = Field(50, ge=1, le=100)
    max_concurrent_batches: int = Field(8, ge=1, le=100)
    rate_limit_per_s: float = Field(5.0, gt=0)
    rate_limit_burst: int = Field(10, ge=1)
    timezone: str = "UTC"
    daily_at: str = "00:30"
    health_sample_every_hours: int = Field(6, ge=1, le=24)
    health_sample_size: int = Field(20, ge=1)
    # Fire the health sample every N seconds instead of every N hours (tests and demos).
    health_sample_interval_s: int | None = Field(None, ge=1)
    # Start the analytics chain (flows.after_run_promoted) when a run completes; off for
    # ingestion-only backfills, benchmarks and the ingestion tests.
    after_run_hook: bool = True
    stale_after_runs: int = Field(3, ge=1)
    fetch_reviews: bool = True
    admin_run_size: int = Field(
        500,
        ge=1,
        description="A run over more ASINs than this, or over ASINs that are not tracked,"
        " needs the admin role",
    )

    @field_validator("daily_at")
    @classmethod
    def _hh_mm(cls, v: str) -> str:
        hh, _, mm = v.partition(":")
        if not (hh.isdigit() and mm.isdigit() and 0 <= int(hh) < 24 and 0 <= int(mm) < 60):
            raise ValueError("daily_at must be HH:MM")
        return v


class AuthSettings(BaseModel):
    """JWT as Supabase issues it: HS256 with the project secret, or RS256/ES256 via a JWKS.

    In production an unset `jwt_secret` is empty (HS* tokens refused), never the dev default.
    """

    jwt_secret: SecretStr = SecretStr(DEV_JWT_SECRET)
    jwks_url: str | None = None
    algorithms: StrList = ["HS256", "RS256", "ES256"]
    issuer: str = "asinwatch-dev"
    audience: str = "authenticated"
    role_claim: str = "app_metadata.role"
    leeway_s: int = Field(30, ge=0, le=300)
    jwks_cache_s: int = Field(600, ge=10)


class ApiSettings(BaseModel):
    """The HTTP service."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    cors_origins: StrList = []
    max_body_bytes: int = Field(1_048_576, ge=1024)
    max_page_size: int = Field(200, ge=1, le=1000)
    default_page_size: int = Field(50, ge=1, le=1000)
    rate_limit_per_minute: int = Field(600, ge=1)
    rate_limit_per_ip_per_minute: int = Field(1200, ge=1)
    idempotency_ttl_s: int = Field(86_400, ge=60)
    # Off: cache-first reads go straight to the database (benchmarks of the uncached path).
    read_cache_enabled: bool = True
    # -- the server (uvicorn) and the documentation
    max_header_bytes: int = Field(
        16_384, ge=1024, le=1_048_576, description="Request line + headers cap; more is a 431"
    )
    header_timeout_s: float = Field(
        10.0, gt=0, description="Seconds a client has to send the request line and headers"
    )
    keep_alive_timeout_s: int = Field(5, ge=1, description="Idle keep-alive connection timeout")
    graceful_shutdown_s: int = Field(
        10, ge=0, description="On SIGTERM/SIGINT, seconds in-flight requests get before exit"
    )
    trusted_proxies: list[str] = Field(
        ["127.0.0.1"],
        description="Proxy IPs/CIDRs whose X-Forwarded-For/-Proto are believed; [] ignores them",
    )
    openapi_in_production: bool = Field(
        False, description="Serve /v1/openapi.json and /docs when env is production"
    )
    # -- dependency outages
    db_connect_attempts: int = Field(
        3, ge=1, le=10, description="Tries to reach PostgreSQL for a request before a 503"
    )
    db_retry_backoff_s: float = Field(
        0.1, gt=0, le=5, description="First wait between those tries (doubles, with jitter)"
    )
    unavailable_retry_after_s: int = Field(
        5, ge=1, le=3600, description="Retry-After of the 503 answered while a dependency is down"
    )


class CacheSettings(BaseModel):
    """Cache-first reads: fresh for `fresh_s`, served stale up to `stale_s` while refreshing."""

    summary_fresh_s: int = Field(60, ge=1)
    metrics_fresh_s: int = Field(300, ge=1)
    compare_fresh_s: int = Field(300, ge=1)
    recommendation_fresh_s: int = Field(300, ge=1)
    report_fresh_s: int = Field(120, ge=1)
    stale_s: int = Field(3600, ge=1)
    local_ttl_s: float = Field(2.0, ge=0)


class StorageSettings(BaseModel):
    """Object storage for reports and exports: a local folder, or S3-compatible storage."""

    backend: Literal["local", "s3"] = "local"
    local_path: Path | None = None
    s3_endpoint_url: str | None = None
    s3_bucket: str = "asinwatch"
    s3_access_key: SecretStr = SecretStr("")
    s3_secret_key: SecretStr = SecretStr("")
    s3_region: str = "us-east-1"


class AlertSettings(BaseModel):
    """Alert noise control and delivery."""

    cooldown_s: int = Field(6 * 3600, ge=0)
    max_per_day: int = Field(5, ge=1)
    webhook_secret: SecretStr = SecretStr(DEV_WEBHOOK_SECRET)
    delivery_max_attempts: int = Field(8, ge=1)
    delivery_timeout_s: float = Field(10.0, gt=0)
    delivery_allowed_hosts: StrList = []
    # Full-jitter exponential backoff between attempts: uniform(0, min(max, base * 2**(n-1))).
    delivery_backoff_base_s: float = Field(15.0, ge=0)
    delivery_backoff_max_s: float = Field(3600.0, ge=0)
    delivery_batch_size: int = Field(50, ge=1, le=1000)


class LlmSettings(BaseModel):
    """Optional report narrative through an OpenAI-compatible API; off by default."""

    enabled: bool = False
    base_url: str = "https://api.openai.com/v1"
    api_key: SecretStr = SecretStr("")
    model: str = "gpt-4o-mini"
    max_cost_usd_per_day: float = Field(1.0, ge=0)
    usd_per_1k_input_tokens: float = Field(0.00015, ge=0)
    usd_per_1k_output_tokens: float = Field(0.0006, ge=0)
    timeout_s: float = Field(30.0, gt=0)
    # Bounds the worst-case cost of one call, so the daily cap can be checked before calling.
    max_output_tokens: int = Field(600, ge=16, le=16_384)
    max_input_chars: int = Field(60_000, ge=1000)


class SimulatorSettings(BaseModel):
    """The local Apify-compatible marketplace simulator (embedded default and tests)."""

    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    seed: int = 42
    latency_ms: int = Field(0, ge=0)
    error_rate: float = Field(0.0, ge=0, le=1)
    block_rate: float = Field(0.02, ge=0, le=1)
    token: SecretStr = SecretStr("sim-token")


class UpSettings(BaseModel):
    """`asinwatch up`: a demo catalogue on the first start with the simulator."""

    demo: bool = True
    demo_products: int = Field(10, ge=0, le=500)


class PrometheusSettings(BaseModel):
    """Prometheus multiprocess mode: every API and worker process (and each of their children)
    writes its samples to files in one folder, and GET /v1/metrics adds them all up.

    The processes that share the folder must share a PID namespace (one host or container):
    the files are named by process id. See docs/DESIGN_DECISIONS.md, "Worker metrics".
    """

    multiprocess: bool = Field(
        True,
        description="Share metrics across processes; off: each process keeps its own in "
        "memory and /v1/metrics shows only the API process that answers (no worker metrics)",
    )
    multiproc_dir: Path | None = Field(
        None,
        description="The shared folder (PROMETHEUS_MULTIPROC_DIR); unset: the "
        "PROMETHEUS_MULTIPROC_DIR environment variable, else <data_dir>/prometheus",
    )


class LogSettings(BaseModel):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_format: bool = True


class Settings(BaseSettings):
    """All of asinwatch's configuration, one object, nested by area."""

    model_config = SettingsConfigDict(
        env_prefix="ASINWATCH_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    env: Literal["dev", "test", "production"] = "dev"
    service_name: str = "asinwatch"
    data_dir: Path = Path(".asinwatch")
    default_marketplace: str = "amazon.com"

    database: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = RedisSettings()
    broker: BrokerSettings = BrokerSettings()
    recovery: RecoverySettings = RecoverySettings()
    apify: ApifySettings = ApifySettings()
    ingest: IngestSettings = IngestSettings()
    auth: AuthSettings = AuthSettings()
    api: ApiSettings = ApiSettings()
    cache: CacheSettings = CacheSettings()
    storage: StorageSettings = StorageSettings()
    alerts: AlertSettings = AlertSettings()
    llm: LlmSettings = LlmSettings()
    simulator: SimulatorSettings = SimulatorSettings()
    up: UpSettings = UpSettings()
    log: LogSettings = LogSettings()
    prometheus: PrometheusSettings = PrometheusSettings()

    @field_validator("default_marketplace")
    @classmethod
    def _known_marketplace(cls, v: str) -> str:
        from asinwatch.amazon_marketplaces import MARKETPLACES

        if v not in MARKETPLACES:
            raise ValueError(f"unknown marketplace {v!r}; known: {', '.join(sorted(MARKETPLACES))}")
        return v

    @model_validator(mode="after")
    def _production_refuses_defaults(self) -> Settings:
        if self.env != "production":
            return self
        problems = self._production_auth_problems()
        if self.alerts.webhook_secret.get_secret_value() in ("", DEV_WEBHOOK_SECRET):
            problems.append("ASINWATCH_ALERTS__WEBHOOK_SECRET must be set")
        if not self.apify.token.get_secret_value():
            problems.append("ASINWATCH_APIFY__TOKEN must be set")
        if not self.database.url:
            problems.append("ASINWATCH_DATABASE__URL must be set")
        if not self.redis.url:
            problems.append("ASINWATCH_REDIS__URL must be set")
        host = urlsplit(self.apify.base_url).hostname or ""
        if host not in self.apify.allowed_hosts:
            problems.append(f"Apify host {host!r} is not in ASINWATCH_APIFY__ALLOWED_HOSTS")
        if problems:
            raise ValueError("production mode refuses to start: " + "; ".join(problems))
        return self

    def _production_auth_problems(self) -> list[str]:
        """Production JWT rules (docs/DESIGN_DECISIONS.md, "Production auth").

        An unset secret is off, not the development default, so HS* tokens are refused when
        only a JWKS is configured; a secret that is set must be 32+ bytes and not the default.
        """
        auth = self.auth
        if "jwt_secret" not in auth.model_fields_set and (
            auth.jwt_secret.get_secret_value() == DEV_JWT_SECRET
        ):
            self.auth = auth = auth.model_copy(update={"jwt_secret": SecretStr("")})
        secret = auth.jwt_secret.get_secret_value()
        hmac_on = bool(secret) and any(a.startswith("HS") for a in auth.algorithms)
        jwks_on = bool(auth.jwks_url) and any(not a.startswith("HS") for a in auth.algorithms)
        problems: list[str] = []
        if secret == DEV_JWT_SECRET:
            problems.append("ASINWATCH_AUTH__JWT_SECRET is the development default")
        elif secret and len(secret.encode()) < 32:
            problems.append("ASINWATCH_AUTH__JWT_SECRET must be at least 32 bytes")
        elif not hmac_on and not jwks_on:
            problems.append(
                "no way to verify tokens: set ASINWATCH_AUTH__JWKS_URL (with an RS/ES "
                "algorithm) or ASINWATCH_AUTH__JWT_SECRET (32+ bytes, with an HS algorithm)"
            )
        return problems

    @property
    def broker_url(self) -> str | None:
        return self.broker.url or self.redis.url

    @property
    def storage_path(self) -> Path:
        return self.storage.local_path or (self.data_dir / "objects")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()


def settings_error_line(exc: BaseException) -> str | None:
    """One readable line for a settings failure (None when `exc` is not one)."""
    if isinstance(exc, ValidationError):
        errors = exc.errors()
        first = errors[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "settings"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return " ".join(f"invalid configuration {where}: {first.get('msg')}{more}".split())
    if isinstance(exc, SettingsError):
        cause = f": {exc.__cause__}" if exc.__cause__ is not None else ""
        return " ".join(f"invalid configuration: {exc}{cause}".split())
    return None


def reset_settings_cache() -> None:
    """Forget the cached settings (tests and `up` set environment variables, then re-read)."""
    get_settings.cache_clear()
