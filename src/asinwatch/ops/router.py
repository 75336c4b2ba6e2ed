"""GET /v1/health and GET /v1/metrics (Prometheus text format); neither needs a token.

/v1/metrics serves the samples of every process sharing the multiprocess folder (this API's
processes and the Celery workers), not only the process that answers."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from asinwatch.kit.cache import Cache
from asinwatch.observability import multiproc
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
    # Every API and worker process's samples, summed; it reads one file per process, so it
    # runs off the event loop.
    body = await run_in_threadpool(lambda: generate_latest(multiproc.registry()))
    return Response(
        body,
        media_type=CONTENT_TYPE_LATEST,
        headers={"Cache-Control": "no-store"},
    )
