"""GET /v1/health and GET /v1/metrics (Prometheus text format)."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from asinwatch.ops.health import health_report

router = APIRouter(prefix="/v1", tags=["ops"])


@router.get(
    "/health",
    summary="Liveness, readiness of each dependency, and the schema version",
    responses={503: {"description": "The database is not ready"}},
)
async def health() -> Response:
    status, body = await health_report()
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
