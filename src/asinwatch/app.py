"""create_app(): the FastAPI application with its middleware, routers and lifespan.

- problem+json for every error, then the kit's middleware stack (request id, access log,
  security headers, CORS allow-list, per-IP rate limit, body size limit);
- the lifespan owns the process's cache (kit.cache.Cache: Redis + local layer + the pub/sub
  invalidation listener) and closes it, the rate limiter's client and the DB pools at exit;
  at the first start it also freezes the startup objects out of the garbage collector
  (`freeze_startup_objects`), which removes ~100 ms full-collection pauses under load;
- every /v1 router; all of them need a bearer token except GET /v1/health and GET /v1/metrics
  (probes and Prometheus scrape without credentials; restrict /v1/metrics at the edge);
- /v1/health (ops/router.py) is also "degraded" when this process's cache has lost Redis.
"""

from __future__ import annotations

import gc
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Request, Response
from sqlalchemy.exc import DataError

from asinwatch import __version__
from asinwatch.alerts.router import router as alerts_router
from asinwatch.auth.guards import known_subject
from asinwatch.catalog.router import router as catalog_router
from asinwatch.config import get_settings
from asinwatch.ingestion.router import router as ingestion_router
from asinwatch.jobs.router import router as jobs_router
from asinwatch.kit.cache import Cache
from asinwatch.kit.db import dispose_async_engines
from asinwatch.kit.http_middleware import install_middleware
from asinwatch.kit.problems import install_problem_handlers, problem_response, request_id_of
from asinwatch.kit.ratelimit import RateLimiter
from asinwatch.metrics.router import router as metrics_router
from asinwatch.observability.logging import configure_logging
from asinwatch.ops.router import router as ops_router
from asinwatch.recommendations.router import router as recommendations_router
from asinwatch.reports.router import router as reports_router

log = structlog.get_logger(__name__)

OPENAPI_TAGS = [
    {"name": "ops", "description": "Health and Prometheus metrics (no token)."},
    {"name": "products", "description": "Product summary and daily metrics (cache-first)."},
    {"name": "catalog", "description": "Tracking products and linking competitors."},
    {"name": "competitions", "description": "Our product against its competitors; reports."},
    {"name": "recommendations", "description": "Recommendations and their refresh."},
    {"name": "jobs", "description": "Background jobs."},
    {"name": "alerts", "description": "Alerts: list, acknowledge, resolve."},
    {"name": "thresholds", "description": "Per-product alert thresholds."},
    {"name": "channels", "description": "Notification channels."},
    {"name": "ingestion", "description": "Ingest runs."},
]


_startup_frozen = False


def freeze_startup_objects() -> None:
    """Once per process: move every object that exists at startup (modules, the app, its
    routes, schemas and settings, ~200k objects) out of the garbage collector's reach. They
    live as long as the process anyway, and otherwise every full collection walks them all,
    stalling every request in flight for tens of milliseconds (the P99 of the cached read)."""
    global _startup_frozen
    if not _startup_frozen:
        _startup_frozen = True
        gc.collect()
        gc.freeze()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    cache: Cache | None = None
    if get_settings().redis.url:
        cache = Cache()
        await cache.start()
    else:
        log.warning("no Redis configured: reads go to the database, rate limits are off")
    app.state.cache = cache
    freeze_startup_objects()
    try:
        yield
    finally:
        if cache is not None:
            await cache.aclose()
        limiter = getattr(app.state, "rate_limiter", None)
        if isinstance(limiter, RateLimiter):
            await limiter.aclose()
        await dispose_async_engines()


def _allowed_methods(app: FastAPI) -> list[tuple[re.Pattern[str], frozenset[str]]]:
    """Each documented path template as a regex, with its methods (computed once)."""
    table = getattr(app.state, "allowed_methods", None)
    if table is None:
        table = [
            (
                re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + "$"),
                frozenset(m.upper() for m in item),
            )
            for path, item in app.openapi()["paths"].items()
        ]
        app.state.allowed_methods = table
    return table


async def method_not_allowed(request: Request, exc: Exception) -> Response:
    """405 with an ``Allow`` listing every method of the path (RFC 9110 §15.5.6); Starlette's
    own lists only the first route that matched the path, and one path has several routes."""
    path = request.url.path
    allowed: set[str] = set()
    for pattern, methods in _allowed_methods(request.app):
        if pattern.match(path):
            allowed |= methods
    return problem_response(
        405,
        instance=path,
        request_id=request_id_of(request),
        headers={"Allow": ", ".join(sorted(allowed))},
    )


async def unstorable_value(request: Request, exc: Exception) -> Response:
    """A value the database refuses (a NUL character, a number out of range): the client's
    input, so 422, never 500. Schemas refuse most of these up front; this is the backstop."""
    log.warning("unstorable_value", path=request.url.path, error=type(exc).__name__)
    return problem_response(
        422,
        title="Request validation failed",
        detail="a value cannot be stored (NUL character or number out of range)",
        type_suffix="validation-error",
        instance=request.url.path,
        request_id=request_id_of(request),
        extra={"errors": []},
    )


def create_app() -> FastAPI:
    s = get_settings()
    configure_logging(s.service_name + "-api", s.log.level, s.log.json_format)
    app = FastAPI(
        title="asinwatch",
        version=__version__,
        description=(
            "Amazon product and competitor monitoring: metrics, alerts, reports.\n\n"
            "Every /v1 endpoint needs a bearer token (Supabase JWT) except /v1/health and "
            "/v1/metrics. Roles: viewer reads; operator also refreshes, ingests and handles "
            "alerts; admin also manages tracking, competitor links, thresholds and channels. "
            "Errors are RFC 9457 problem+json. See docs/API_DESIGN.md."
        ),
        lifespan=lifespan,
        docs_url="/docs" if s.env != "production" else None,
        redoc_url=None,
        openapi_url="/v1/openapi.json",
        openapi_tags=OPENAPI_TAGS,
    )
    install_problem_handlers(app)
    app.add_exception_handler(405, method_not_allowed)
    app.add_exception_handler(DataError, unstorable_value)
    install_middleware(app, s, rate_limit=bool(s.redis.url), known_subject=known_subject)
    for router in (
        ops_router,
        metrics_router,
        catalog_router,
        reports_router,
        recommendations_router,
        jobs_router,
        alerts_router,
        ingestion_router,
    ):
        app.include_router(router)
    return app
