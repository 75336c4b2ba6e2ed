"""Every Prometheus metric asinwatch exports, in one place (names `asinwatch_*`).

Every process (API, Celery worker and its prefork children, CLI) writes its samples to the
shared multiprocess folder (observability.multiproc, setting `prometheus.multiproc_dir`), and
GET /v1/metrics sums them all, so ingest, upstream, dead-letter, delivery and LLM counters
incremented in a worker show up in the API's scrape. With `prometheus.multiprocess` off they
stay per process.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from asinwatch.observability.multiproc import activate

# Before the first metric: picks prometheus_client's file-backed values for this process.
activate()

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
# Each API process checks on its own; the scrape shows the latest check of any live process.
DEPENDENCY_UP = Gauge(
    "asinwatch_dependency_up",
    "1 when a dependency is ready",
    ["dependency"],
    multiprocess_mode="livemostrecent",
)

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
