"""GET /v1/jobs/{id}: the state of a background job (viewer and up)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from starlette.responses import Response

from asinwatch.api_deps import (
    NOT_MODIFIED,
    Session,
    Viewer,
    errors,
    not_found,
    uncached_json,
    uuid_or_404,
)
from asinwatch.auth.guards import enforce_principal_rate_limit
from asinwatch.jobs import service as jobs
from asinwatch.jobs.api_schemas import JobOut

router = APIRouter(
    prefix="/v1", tags=["jobs"], dependencies=[Depends(enforce_principal_rate_limit)]
)


@router.get(
    "/jobs/{id}",
    response_model=JobOut,
    summary="A background job: status, result or error",
    responses={**NOT_MODIFIED, **errors(404)},
)
async def get_job(
    request: Request,
    job_id: Annotated[str, Path(alias="id", json_schema_extra={"format": "uuid"})],
    session: Session,
    _: Viewer,
) -> Response:
    job = await jobs.get_job_async(session, uuid_or_404(job_id, "job"))
    if job is None:
        raise not_found(f"no job {job_id}")
    # A running job changes: clients poll, and revalidate cheaply with If-None-Match.
    return uncached_json(request, JobOut.model_validate(job.model_dump()))
