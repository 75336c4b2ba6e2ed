"""GET /v1/recommendations/{asin} (latest set, viewer) and POST .../refresh (operator: 202 with
a job; the Celery task ``recommendations.refresh`` is queued on the request's unit of work and
sent only after the job row is committed, so the worker always finds it; a rolled-back request
sends nothing).
"""

from __future__ import annotations

import asyncio
import uuid

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from asinwatch.api_deps import (
    NOT_MODIFIED,
    Asin,
    Idem,
    Marketplace,
    Operator,
    OptionalCache,
    Uow,
    Viewer,
    cached_json,
    errors,
    require_product,
    write_json,
)
from asinwatch.auth.guards import enforce_principal_rate_limit
from asinwatch.config import get_settings
from asinwatch.jobs import service as jobs
from asinwatch.jobs.api_schemas import JobOut
from asinwatch.kit.db import async_session_scope
from asinwatch.kit.problems import ProblemError
from asinwatch.recommendations import service
from asinwatch.recommendations.api_schemas import RecommendationSetOut, RefreshAccepted

REFRESH_TASK = "recommendations.refresh"

router = APIRouter(
    prefix="/v1", tags=["recommendations"], dependencies=[Depends(enforce_principal_rate_limit)]
)


@router.get(
    "/recommendations/{asin}",
    response_model=RecommendationSetOut,
    summary="The latest recommendations of a product",
    responses={**NOT_MODIFIED, **errors(404)},
)
async def latest_recommendations(
    request: Request, asin: Asin, marketplace: Marketplace, _: Viewer, cache: OptionalCache
) -> Response:
    read = await service.read_latest(cache, marketplace, asin)
    return cached_json(
        request,
        read,
        max_age=get_settings().cache.recommendation_fresh_s,
        missing=f"no recommendations for {asin} on {marketplace} yet (POST .../refresh)",
    )


def send_refresh(job_id: str, marketplace: str, asin: str) -> None:
    from asinwatch.worker.celery_app import celery_app

    celery_app.send_task(REFRESH_TASK, args=[job_id, marketplace, asin])


@router.post(
    "/recommendations/{asin}/refresh",
    status_code=202,
    response_model=RefreshAccepted,
    summary="Recompute a product's recommendations in the background (202 with a job)",
    responses={
        **errors(404, 409),
        503: {"description": "The task queue is unavailable; nothing was started"},
    },
)
async def refresh_recommendations(
    asin: Asin, marketplace: Marketplace, uow: Uow, who: Operator, idem: Idem
) -> Response:
    async def work() -> Response:
        await require_product(uow.session, marketplace, asin)
        job = await jobs.create_job_async(
            uow.session,
            REFRESH_TASK,
            {"marketplace": marketplace, "asin": asin},
            created_by=who.sub,
        )
        uow.after_commit(lambda: enqueue_refresh(job.id, marketplace, asin))
        body = RefreshAccepted(job=JobOut.model_validate(job.model_dump()))
        return write_json(body, status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})

    return await idem.run(work)


async def enqueue_refresh(job_id: uuid.UUID, marketplace: str, asin: str) -> None:
    """After the job row is committed: send the task; the queue down marks the job failed (in
    a transaction of its own) and answers 503, so nothing runs and the client retries."""
    try:
        await asyncio.to_thread(send_refresh, str(job_id), marketplace, asin)
    except Exception as exc:
        error = f"could not enqueue: {type(exc).__name__}"
        async with async_session_scope() as session:
            await session.run_sync(lambda s: jobs.mark_failed(s, job_id, error))
        raise ProblemError(
            503,
            detail="the task queue is unavailable; retry later",
            type_suffix="queue-unavailable",
            headers={"Retry-After": "5"},
        ) from None
