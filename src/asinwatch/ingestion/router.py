"""Ingest runs: list and read them (viewer), start one (operator, 202 + Location).

Starting a run over untracked ASINs or more than `ingest.admin_run_size` needs admin (403
`admin-required`). Once the day's upstream spend cap is reached a new run is refused with 429
`upstream-spend-cap` and a Retry-After up to 00:00 UTC (429: a quota that resets, which the
caller can wait for; 402 would claim a payment problem, 409 a conflict with the resource).

A run is created on the request's unit of work and its dispatch task is queued on it, sent
only after the commit (ingestion.service): a task can never run before its rows exist. With an
Idempotency-Key and no ``job_id`` in the body, the run's job id is derived from the caller and
the key, so even a replay that misses the idempotency store cannot start a second run.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from asinwatch.api_deps import (
    NOT_MODIFIED,
    Idem,
    Marketplace,
    Operator,
    Paging,
    Session,
    Uow,
    UuidPath,
    Viewer,
    errors,
    not_found,
    uncached_json,
    uuid_or_404,
    validation_problem,
    write_json,
)
from asinwatch.auth.guards import enforce_principal_rate_limit
from asinwatch.ingestion import service, spend
from asinwatch.ingestion.api_schemas import IngestRunDetail, StartRunBody
from asinwatch.ingestion.schemas import IngestBatchOut, IngestRunOut
from asinwatch.kit.pagination import Page, paginate
from asinwatch.kit.problems import ProblemError

router = APIRouter(
    prefix="/v1", tags=["ingestion"], dependencies=[Depends(enforce_principal_rate_limit)]
)
_SCOPE = "ingest-runs"


@router.get(
    "/ingest/runs",
    response_model=Page[IngestRunOut],
    summary="Ingest runs, newest first (cursor pagination)",
    responses={**NOT_MODIFIED, **errors(404)},
)
async def list_runs(
    request: Request,
    page: Paging,
    session: Session,
    _: Viewer,
) -> Response:
    after = page.after(scope=_SCOPE)
    before: datetime | None = None
    if after is not None:
        try:
            before = datetime.fromisoformat(str(after))
        except ValueError:
            raise validation_problem(["query", "cursor"], "cursor does not belong here") from None
    rows = await service.list_runs(session, limit=page.fetch_limit, before=before)
    out = [IngestRunOut.model_validate(r) for r in rows]
    result = paginate(out, page, key=lambda r: r.created_at.isoformat(), scope=_SCOPE)
    return uncached_json(request, result)


@router.get(
    "/ingest/runs/{run_id}",
    response_model=IngestRunDetail,
    summary="One ingest run with its batches",
    responses={**NOT_MODIFIED, **errors(404)},
)
async def get_run(request: Request, run_id: UuidPath, session: Session, _: Viewer) -> Response:
    run_uuid = uuid_or_404(run_id, "ingest run")
    run = await service.get_run(session, run_uuid)
    if run is None:
        raise not_found(f"no ingest run {run_id}")
    batches = await service.list_batches(session, run_uuid)
    detail = IngestRunDetail(
        run=IngestRunOut.model_validate(run),
        batches=[IngestBatchOut.model_validate(b) for b in batches],
    )
    return uncached_json(request, detail)


@router.post(
    "/ingest/runs",
    status_code=202,
    response_model=IngestRunOut,
    summary="Start an ingest run over a list of ASINs or every tracked product",
    responses={
        **errors(409),
        503: {"description": "The task queue is unavailable; the run is queued but not sent"},
    },
)
async def start_run(
    marketplace: Marketplace,
    body: StartRunBody,
    uow: Uow,
    who: Operator,
    idem: Idem,
) -> Response:
    async def work() -> Response:
        data = body.to_service(marketplace)
        job_id = data.job_id or (f"api:{who.sub}:{idem.key}" if idem.key else None)
        try:
            run = await service.start_run(
                uow.session,
                marketplace=data.marketplace,
                asins=data.asins,
                all_tracked=data.all_tracked,
                trigger="api",
                job_id=job_id,
                kind=data.kind,
                role=who.role,
            )
        except service.NothingToIngestError as exc:
            # Only all_tracked can get here (a listed run has ASINs): the marketplace's
            # current state, not the request, is what is missing.
            raise ProblemError(409, detail=str(exc), type_suffix="nothing-to-ingest") from None
        except spend.AdminRequiredError as exc:
            raise ProblemError(403, detail=str(exc), type_suffix="admin-required") from None
        except spend.SpendCapReachedError as exc:
            await asyncio.to_thread(spend.raise_cap_alert, exc)
            raise ProblemError(
                429,
                detail=str(exc),
                type_suffix="upstream-spend-cap",
                headers={"Retry-After": str(exc.retry_after_s)},
                extra={"spent_usd": str(exc.spent), "cap_usd": exc.cap},
            ) from None
        out = IngestRunOut.model_validate(run)
        run_id = run.id
        uow.after_commit(lambda: send_run(run_id))
        return write_json(out, status_code=202, headers={"Location": f"/v1/ingest/runs/{run.id}"})

    return await idem.run(work)


async def send_run(run_id: uuid.UUID) -> None:
    """After the run and its batches are committed: send its dispatch task; the queue down is
    a 503 (the run stays queued; starting it again with the same job id sends it)."""
    try:
        await service.enqueue_run(run_id)
    except Exception:
        raise ProblemError(
            503,
            detail=f"run {run_id} is queued but the task queue is unavailable; retry later",
            type_suffix="queue-unavailable",
            headers={"Retry-After": "5"},
        ) from None
