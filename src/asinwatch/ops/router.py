"""GET /v1/health and GET /v1/metrics (Prometheus text format); neither needs a token."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from asinwatch.kit.cache import Cache
from asinwatch.ops.health import health_report

router = APIRouter(prefix="/v1", tags=["ops"])


@router.get(
    "/health",
    summary="Liveness, readiness of each dependency, and the schema version",
    responses={
        200: {"description": "Ready (status ok, or degraded when Redis is down)"},
        503: {"description": "The database is not ready"},
    },
)
async def health(request: Request) -> Response:
    status, body = await health_report()
    cache = getattr(request.app.state, "cache", None)
    if isinstance(cache, Cache):
        # Ask Redis now: this process's cache flag also recovers here when Redis is back.
        ok = await cache.ping()
        body["cache"] = {"healthy": ok}
        if not ok and body.get("status") == "ok":
            body["status"] = "degraded"
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics() -> Response:
    return Response(
        generate_latest(REGISTRY),
        media_type=CONTENT_TYPE_LATEST,
        headers={"Cache-Control": "no-store"},
    )
