"""Background jobs (`core.jobs`): what the REST layer creates and polls, what tasks update.

A job moves queued -> running -> succeeded | failed. The API creates it (`create_job_async`)
and enqueues the task with the job id; the task calls `mark_running` (which counts the attempt
and tells it whether to work: a finished job is never redone on re-delivery), then
`mark_done` with a JSON result or `mark_failed` with a readable error.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from asinwatch.jobs.api_schemas import JobOut
from asinwatch.jobs.models import Job
from asinwatch.metrics.kpis import to_jsonable

MAX_ERROR_CHARS = 2000


def _new(kind: str, params: dict[str, Any], created_by: str | None) -> Job:
    if not kind:
        raise ValueError("a job needs a kind")
    return Job(
        id=uuid.uuid4(),
        kind=kind,
        status="queued",
        params=to_jsonable(params),
        created_by=created_by,
        attempts=0,
    )


def create_job(
    session: Session, kind: str, params: dict[str, Any], *, created_by: str | None = None
) -> JobOut:
    job = _new(kind, params, created_by)
    session.add(job)
    session.flush()
    session.refresh(job)
    return JobOut.model_validate(job)


async def create_job_async(
    session: AsyncSession, kind: str, params: dict[str, Any], *, created_by: str | None = None
) -> JobOut:
    """Insert a queued job (the caller commits, then enqueues the task with `job.id`)."""
    job = _new(kind, params, created_by)
    session.add(job)
    await session.flush()
    await session.refresh(job)
    return JobOut.model_validate(job)


def get_job(session: Session, job_id: uuid.UUID) -> JobOut | None:
    job = session.execute(
        select(Job).where(Job.id == job_id).execution_options(populate_existing=True)
    ).scalar_one_or_none()
    return None if job is None else JobOut.model_validate(job)


async def get_job_async(session: AsyncSession, job_id: uuid.UUID) -> JobOut | None:
    result = await session.execute(
        select(Job).where(Job.id == job_id).execution_options(populate_existing=True)
    )
    job = result.scalar_one_or_none()
    return None if job is None else JobOut.model_validate(job)


def mark_running(session: Session, job_id: uuid.UUID) -> bool:
    """Count an attempt and move to running; False when the job is unknown or finished."""
    row = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(("queued", "running")))
        .values(
            status="running",
            attempts=Job.attempts + 1,
            started_at=datetime.now(UTC),
            error=None,
        )
        .returning(Job.id)
    ).first()
    return row is not None


def mark_done(session: Session, job_id: uuid.UUID, result: dict[str, Any]) -> None:
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(
            status="succeeded",
            result=to_jsonable(result),
            error=None,
            finished_at=datetime.now(UTC),
        )
    )


def mark_failed(session: Session, job_id: uuid.UUID, error: str) -> None:
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(status="failed", error=error[:MAX_ERROR_CHARS], finished_at=datetime.now(UTC))
    )
