"""Every Prometheus metric asinwatch exports, in one place (names `asinwatch_*`).

The API exposes them at /v1/metrics; Celery workers push theirs through the multiprocess
directory when PROMETHEUS_MULTIPROC_DIR is set, otherwise they are per process.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# --- API
HTTP_REQUESTS = Counter(
    "asinwatch_http_requests_total", "HTTP requests", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "asinwatch_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CACHE_EVENTS = Counter(
    "asinwatch_cache_events_total", "Cache lookups by outcome", ["kind", "outcome"]
)
DEPENDENCY_UP = Gauge("asinwatch_dependency_up", "1 when a dependency is ready", ["dependency"])

# --- ingestion
INGEST_ASINS = Counter(
    "asinwatch_ingest_asins_total", "ASINs processed by outcome", ["kind", "outcome"]
)
INGEST_BATCHES = Counter("asinwatch_ingest_batches_total", "Batches by outcome", ["outcome"])
UPSTREAM_REQUESTS = Counter(
    "asinwatch_upstream_requests_total", "Requests to Apify by status", ["endpoint", "status"]
)
UPSTREAM_COST_USD = Counter("asinwatch_upstream_cost_usd_total", "Apify cost in USD", ["actor"])
UPSTREAM_LATENCY = Histogram(
    "asinwatch_upstream_request_duration_seconds", "Apify request latency", ["endpoint"]
)
UPSTREAM_RETRIES = Counter(
    "asinwatch_upstream_retries_total", "Apify requests retried, by reason", ["endpoint", "reason"]
)
UPSTREAM_RUNS = Counter(
    "asinwatch_upstream_runs_total",
    "Apify actor runs by final outcome (budget_cost / budget_time: aborted by us)",
    ["actor", "outcome"],
)
RATE_LIMIT_WAIT = Histogram(
    "asinwatch_rate_limit_wait_seconds", "Time spent waiting for the global upstream rate limit"
)
DEAD_LETTERS = Counter("asinwatch_dead_letters_total", "Tasks parked as dead letters", ["task"])
UPSTREAM_GUARDS = Counter(
    "asinwatch_upstream_guards_total",
    "Upstream spend guards that acted (run reused/adopted, dataset truncated, cost unknown, cap)",
    ["guard"],
)

# --- analytics
ALERTS_RAISED = Counter(
    "asinwatch_alerts_total", "Alert lifecycle events", ["alert_type", "severity", "event"]
)
DELIVERIES = Counter(
    "asinwatch_alert_deliveries_total", "Alert deliveries by channel kind", ["kind", "outcome"]
)
LLM_COST_USD = Counter("asinwatch_llm_cost_usd_total", "LLM narrative cost in USD")
