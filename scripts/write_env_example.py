"""Write .env.example from the Settings model and the one-line meanings below.

Run after adding a setting: `.venv/bin/python scripts/write_env_example.py`; the test
tests/test_env_example.py fails while a setting has no line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel, SecretStr

from asinwatch.config import Settings

MEANINGS: dict[str, str] = {
    "ENV": "dev | test | production (production refuses default or empty secrets)",
    "SERVICE_NAME": "service name in logs",
    "DATA_DIR": "folder of the embedded default (PostgreSQL, Redis, local object storage)",
    "DEFAULT_MARKETPLACE": "marketplace used when a request or command names none",
    "DATABASE__URL": "PostgreSQL URL; unset = `asinwatch up` starts an embedded server",
    "DATABASE__POOL_SIZE": "connections kept per process",
    "DATABASE__MAX_OVERFLOW": "extra connections allowed above the pool under load",
    "DATABASE__STATEMENT_TIMEOUT_MS": "server-side statement timeout",
    "DATABASE__METRIC_PARTITIONS_AHEAD_MONTHS": "monthly metric partitions kept ahead",
    "DATABASE__RAW_EVENT_RETENTION_DAYS": "days promoted raw upstream items are kept",
    "REDIS__URL": "Redis URL (cache, locks, rate limits, broker default); unset = embedded",
    "REDIS__KEY_PREFIX": "prefix of every Redis key this deployment writes",
    "REDIS__SOCKET_TIMEOUT_S": "Redis socket timeout; past it the cache fails open",
    "BROKER__URL": "Celery broker URL if not the Redis URL",
    "BROKER__VISIBILITY_TIMEOUT_S": "seconds before an unacked task is redelivered",
    "BROKER__TASK_MAX_ATTEMPTS": "attempts before a batch is parked as a dead letter",
    "RECOVERY__RECONCILE_INTERVAL_S": "seconds between reconciler sweeps (lost batches, runs)",
    "RECOVERY__STALE_AFTER_S": "seconds without heartbeat or message before work is re-sent",
    "RECOVERY__HEARTBEAT_S": "seconds between a busy batch's heartbeats and slot renewals",
    "RECOVERY__SLOT_LEASE_S": "seconds an unrenewed batch slot stays taken (dead worker)",
    "RECOVERY__OUTAGE_RETRY_S": "seconds a task retries a database/broker outage with backoff",
    "RECOVERY__BEAT_LOCK_TIMEOUT_S": "beat lock TTL: how soon a standby beat takes over",
    "RECOVERY__BEAT_LOOP_S": "longest beat sleep between ticks",
    "APIFY__TOKEN": "Apify API token (Authorization header only, never logged); unset = simulator",
    "APIFY__BASE_URL": "Apify API base URL",
    "APIFY__ALLOWED_HOSTS": "hosts outbound Apify calls may reach (JSON list or a,b)",
    "APIFY__PRODUCT_ACTOR": "actor id for product details",
    "APIFY__REVIEWS_ACTOR": "actor id for reviews",
    "APIFY__MAX_REVIEWS_PER_ASIN": "reviews fetched per ASIN and run (0 = none)",
    "APIFY__REQUEST_TIMEOUT_S": "timeout of one HTTP request to Apify",
    "APIFY__RUN_TIMEOUT_S": "time budget of one actor run; over it the run is aborted",
    "APIFY__MAX_RUN_COST_USD": "money budget of one actor run; over it the run is aborted",
    "APIFY__MAX_RETRIES": "retries of a 429 / 5xx / transport error",
    "APIFY__BACKOFF_BASE_S": "first backoff delay (full jitter, doubling)",
    "APIFY__BACKOFF_MAX_S": "longest backoff delay",
    "APIFY__POLL_WAIT_S": "waitForFinish seconds per run-status poll (<= 60)",
    "APIFY__POLL_OUTAGE_S": "seconds 404/5xx/connection errors on an in-flight run are retried",
    "APIFY__RECONCILE_SCAN_RUNS": "newest runs checked for our marker after an ambiguous start",
    "APIFY__DATASET_ITEM_SLACK": "items read beyond maxItems; the rest is dropped and noted",
    "APIFY__MAX_DATASET_BYTES": "bytes of dataset items read per run at most",
    "APIFY__MAX_DATASET_PAGES": "dataset pages read per run at most, whatever the headers claim",
    "APIFY__MAX_SANE_RUN_COST_USD": "a run cost above this (or < 0, not finite) is unknown",
    "APIFY__MAX_COST_USD_PER_DAY": "upstream spend cap, USD per UTC day (new runs refused past it)",
    "INGEST__BATCH_SIZE": "ASINs per batch (1-100)",
    "INGEST__MAX_CONCURRENT_BATCHES": "batches fetched at once across all workers",
    "INGEST__RATE_LIMIT_PER_S": "global upstream requests per second (halved on 429s)",
    "INGEST__RATE_LIMIT_BURST": "burst allowed by the global rate limit",
    "INGEST__TIMEZONE": "time zone of the schedule",
    "INGEST__DAILY_AT": "time of the daily full batch (HH:MM)",
    "INGEST__HEALTH_SAMPLE_EVERY_HOURS": "hours between health samples",
    "INGEST__HEALTH_SAMPLE_SIZE": "ASINs in a health sample",
    "INGEST__HEALTH_SAMPLE_INTERVAL_S": "health sample every N seconds instead (tests, demos)",
    "INGEST__AFTER_RUN_HOOK": "run KPIs, detection, reports and recommendations after each run",
    "INGEST__STALE_AFTER_RUNS": "runs without valid data before a tracking-stale alert",
    "INGEST__FETCH_REVIEWS": "also fetch reviews for each batch",
    "INGEST__ADMIN_RUN_SIZE": "runs over more ASINs than this (or untracked ones) need admin",
    "AUTH__JWT_SECRET": "HS256 secret (Supabase project JWT secret); 32+ chars in production",
    "AUTH__JWKS_URL": "JWKS URL for RS256/ES256 tokens (the only place keys are fetched from)",
    "AUTH__ALGORITHMS": "accepted JWT algorithms (JSON list or a,b)",
    "AUTH__ISSUER": "required `iss` claim",
    "AUTH__AUDIENCE": "required `aud` claim",
    "AUTH__ROLE_CLAIM": "dotted path of the role claim (viewer, operator, admin)",
    "AUTH__LEEWAY_S": "clock leeway for exp / nbf",
    "AUTH__JWKS_CACHE_S": "seconds the JWKS is cached",
    "API__HOST": "API bind address",
    "API__PORT": "API port",
    "API__CORS_ORIGINS": "origins allowed by CORS, JSON list or a,b (empty = none)",
    "API__MAX_BODY_BYTES": "largest request body (413 above it)",
    "API__MAX_PAGE_SIZE": "largest page of a list",
    "API__DEFAULT_PAGE_SIZE": "page size when none is asked",
    "API__RATE_LIMIT_PER_MINUTE": "requests per minute per token",
    "API__RATE_LIMIT_PER_IP_PER_MINUTE": "requests per minute per client IP",
    "API__IDEMPOTENCY_TTL_S": "seconds an Idempotency-Key's first response is kept",
    "API__READ_CACHE_ENABLED": "cache-first reads (off only to measure the uncached path)",
    "API__MAX_HEADER_BYTES": "largest request line + headers (431 above it)",
    "API__HEADER_TIMEOUT_S": "seconds a client has to send its request headers (then 408)",
    "API__KEEP_ALIVE_TIMEOUT_S": "seconds an idle keep-alive connection stays open",
    "API__GRACEFUL_SHUTDOWN_S": "seconds in-flight requests get on SIGTERM/SIGINT",
    "API__TRUSTED_PROXIES": "JSON list of proxy IPs/CIDRs whose X-Forwarded-* are trusted",
    "API__OPENAPI_IN_PRODUCTION": "serve /v1/openapi.json and /docs in production too",
    "API__DB_CONNECT_ATTEMPTS": "tries to reach PostgreSQL for a request before a 503",
    "API__DB_RETRY_BACKOFF_S": "first wait between those tries (doubling, jittered)",
    "API__UNAVAILABLE_RETRY_AFTER_S": "Retry-After of a 503 while PostgreSQL/Redis is down",
    "CACHE__SUMMARY_FRESH_S": "seconds a product summary is fresh",
    "CACHE__METRICS_FRESH_S": "seconds a metric range is fresh",
    "CACHE__COMPARE_FRESH_S": "seconds a competitor comparison is fresh",
    "CACHE__RECOMMENDATION_FRESH_S": "seconds recommendations are fresh",
    "CACHE__REPORT_FRESH_S": "seconds a report is fresh",
    "CACHE__STALE_S": "seconds a stale entry may still be served while refreshing",
    "CACHE__LOCAL_TTL_S": "TTL of the in-process cache (backstop for lost invalidations)",
    "STORAGE__BACKEND": "local | s3 (S3-compatible: Supabase Storage, MinIO, AWS)",
    "STORAGE__LOCAL_PATH": "folder of the local object store (default DATA_DIR/objects)",
    "STORAGE__S3_ENDPOINT_URL": "S3 endpoint URL",
    "STORAGE__S3_BUCKET": "S3 bucket",
    "STORAGE__S3_ACCESS_KEY": "S3 access key",
    "STORAGE__S3_SECRET_KEY": "S3 secret key",
    "STORAGE__S3_REGION": "S3 region",
    "ALERTS__COOLDOWN_S": "seconds before an open alert notifies again",
    "ALERTS__MAX_PER_DAY": "notifications per product and alert type per day",
    "ALERTS__WEBHOOK_SECRET": "HMAC-SHA256 secret of signed webhooks",
    "ALERTS__DELIVERY_MAX_ATTEMPTS": "delivery attempts before a delivery is marked failed",
    "ALERTS__DELIVERY_TIMEOUT_S": "timeout of one delivery",
    "ALERTS__DELIVERY_ALLOWED_HOSTS": "internal hosts deliveries may reach (JSON list or a,b)",
    "ALERTS__DELIVERY_BACKOFF_BASE_S": "first delivery retry delay (full jitter, doubling)",
    "ALERTS__DELIVERY_BACKOFF_MAX_S": "longest delivery retry delay",
    "ALERTS__DELIVERY_BATCH_SIZE": "deliveries claimed per round",
    "LLM__ENABLED": "write an LLM narrative for reports (off by default)",
    "LLM__BASE_URL": "OpenAI-compatible API base URL",
    "LLM__API_KEY": "LLM API key",
    "LLM__MODEL": "model name",
    "LLM__MAX_COST_USD_PER_DAY": "daily LLM spending cap, checked before each call",
    "LLM__USD_PER_1K_INPUT_TOKENS": "price of 1,000 input tokens",
    "LLM__USD_PER_1K_OUTPUT_TOKENS": "price of 1,000 output tokens",
    "LLM__TIMEOUT_S": "timeout of one LLM call",
    "LLM__MAX_OUTPUT_TOKENS": "output tokens asked for (bounds the worst-case cost)",
    "LLM__MAX_INPUT_CHARS": "largest report sent to the LLM",
    "SIMULATOR__HOST": "simulator bind address (loopback only)",
    "SIMULATOR__PORT": "simulator port",
    "SIMULATOR__SEED": "seed of the simulated marketplace",
    "SIMULATOR__LATENCY_MS": "latency added to each simulated request",
    "SIMULATOR__ERROR_RATE": "share of simulated 429 / 5xx answers",
    "SIMULATOR__BLOCK_RATE": "share of simulated block pages",
    "SIMULATOR__TOKEN": "token the simulator accepts",
    "UP__DEMO": "on first `up` with the simulator, track a demo catalogue and ingest it",
    "UP__DEMO_PRODUCTS": "own products in the demo catalogue (each with two competitors)",
    "LOG__LEVEL": "DEBUG | INFO | WARNING | ERROR",
    "LOG__JSON_FORMAT": "JSON lines (true) or human-readable console output",
    "PROMETHEUS__MULTIPROCESS": "sum the metrics of every API and worker process in /v1/metrics",
    "PROMETHEUS__MULTIPROC_DIR": "folder the processes share for that (unset: "
    "$PROMETHEUS_MULTIPROC_DIR, else <data_dir>/prometheus); one per host",
}


def _lines(model: type[BaseModel], instance: BaseModel, prefix: str) -> list[str]:
    out: list[str] = []
    for name, field in model.model_fields.items():
        value = getattr(instance, name)
        key = f"{prefix}{name.upper()}"
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out.append(f"\n# --- {name}")
            out += _lines(ann, value, f"{key}__")
            continue
        short = key.removeprefix("ASINWATCH_")
        meaning = MEANINGS.get(short)
        if meaning is None:
            sys.exit(f"no meaning written for {short}")
        if isinstance(value, SecretStr):
            shown = ""
        elif isinstance(value, list):
            shown = json.dumps(value)
        elif value is None:
            shown = ""
        elif isinstance(value, bool):
            shown = str(value).lower()
        else:
            shown = str(value)
        out.append(f"# {meaning}")
        out.append(f"# {key}={shown}")
    return out


def main() -> None:
    header = [
        "# asinwatch settings: copy to .env and uncomment what you change.",
        "# Every key is ASINWATCH_<AREA>__<NAME>; the value shown is the default.",
    ]
    body = _lines(Settings, Settings(_env_file=None), "ASINWATCH_")  # type: ignore[call-arg]
    Path(".env.example").write_text("\n".join(header + body) + "\n")


if __name__ == "__main__":
    main()
