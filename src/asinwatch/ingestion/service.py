"""Ingestion use cases: start, enqueue, list and replay runs (REST layer, CLI, scheduler).

The REST layer (async, FastAPI) calls:

    run = await service.start_run(uow.session, marketplace=..., asins=[...] | None,
                                  all_tracked=False, trigger="api", job_id=key_or_None)
    uow.after_commit(lambda: service.enqueue_run(run.id))  # sent once the run is durable

`start_run` never enqueues: a task sent before the commit could run before the rows exist.
Starting an existing job id returns the existing run; `enqueue_run` sends at most one
dispatch message per run (a Redis marker), and the dispatch itself only fans out a queued run,
so a repeated start enqueues nothing new. The CLI and the scheduler use the sync twins
(`prepare_run`, `enqueue_run_sync`) over `session_scope()`; the rules are the same functions.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import structlog
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from asinwatch.auth.roles import Role
from asinwatch.catalog.marketplaces import get_marketplace, normalise_asin
from asinwatch.config import get_settings
from asinwatch.ingestion import flows, repository, spend
from asinwatch.ingestion.models import DeadLetter, IngestBatch, IngestRun
from asinwatch.ingestion.promotion import BulkMode, promote_batch
from asinwatch.kit.db import session_scope

log = structlog.get_logger(__name__)

RunKind = Literal["product_details", "reviews"]
TRIGGERS = ("schedule", "health", "manual", "api", "replay")
DISPATCH_TASK = "ingestion.dispatch_run"
BATCH_TASKS = {
    "product_details": "ingestion.fetch_product_details",
    "reviews": "ingestion.fetch_reviews_summary",
}


class NothingToIngestError(ValueError):
    """The run would have no ASIN (no list given, or no active tracked product)."""


class RunNotFoundError(LookupError):
    """No ingestion run (or dead letter) with that id."""


def resolve_asins(
    session: Session, marketplace: str, asins: Sequence[str] | None, all_tracked: bool
) -> list[str]:
    if all_tracked == (asins is not None):
        raise NothingToIngestError("give either a list of ASINs or all_tracked, not both")
    if asins is not None:
        wanted = list(dict.fromkeys(normalise_asin(a) for a in asins))
    else:
        wanted = repository.active_asins(session, marketplace)
    if not wanted:
        raise NothingToIngestError(f"no ASIN to ingest on {marketplace}")
    return wanted


def prepare_run(
    session: Session,
    *,
    marketplace: str | None,
    asins: Sequence[str] | None,
    all_tracked: bool,
    trigger: str,
    job_id: str | None,
    kind: RunKind = "product_details",
    sample: int | None = None,
    role: Role | None = None,
) -> tuple[IngestRun, bool]:
    """Create a run and its batches (caller commits); an existing job id returns it, False.

    A new run is refused with `spend.SpendCapReachedError` once the day's upstream spend cap
    is reached. With `role` (a person's: API, CLI), a run over untracked ASINs or more than
    `ingest.admin_run_size` needs admin (`spend.AdminRequiredError`); None is the system
    (schedule, health sample), which only runs tracked products.
    """
    if trigger not in TRIGGERS:
        raise ValueError(f"unknown trigger {trigger!r}")
    if kind not in BATCH_TASKS:
        raise ValueError(f"unknown run kind {kind!r}")
    s = get_settings()
    market = get_marketplace(marketplace or s.default_marketplace).domain
    job = job_id or f"{trigger}:{uuid.uuid4().hex}"
    if sample is not None:
        wanted = repository.active_asins(session, market, sample=sample)
        if not wanted:
            raise NothingToIngestError(f"no active tracked product on {market}")
    else:
        wanted = resolve_asins(session, market, asins, all_tracked)
    if repository.get_run_by_job(session, job) is None:  # an existing job id just returns
        if role is not None:
            spend.check_admin(session, market, wanted, role, s)
        spend.check_cap(session, market)
    params: dict[str, Any] = {
        "batch_size": s.ingest.batch_size,
        "fetch_reviews": s.ingest.fetch_reviews,
        "selection": "sample" if sample else ("all" if all_tracked else "list"),
    }
    run, created = repository.create_run(
        session,
        job_id=job,
        trigger=trigger,
        kind=kind,
        marketplace=market,
        asins=wanted,
        batch_size=s.ingest.batch_size,
        params=params,
    )
    log.info(
        "ingest run prepared", run_id=str(run.id), job_id=job, created=created, asins=len(wanted)
    )
    return run, created


async def start_run(
    session: AsyncSession,
    *,
    marketplace: str | None,
    asins: list[str] | None,
    all_tracked: bool,
    trigger: str,
    job_id: str | None,
    kind: RunKind = "product_details",
    role: Role | None = None,
) -> IngestRun:
    """Create (or find, by job id) a run. Commit, then call `enqueue_run(run.id)`."""
    run, _ = await session.run_sync(
        lambda s: prepare_run(
            s,
            marketplace=marketplace,
            asins=asins,
            all_tracked=all_tracked,
            trigger=trigger,
            job_id=job_id,
            kind=kind,
            role=role,
        )
    )
    return run


def enqueue_run_sync(run_id: uuid.UUID) -> bool:
    """Send the run's dispatch task once (after the run is committed). False if already sent."""
    from asinwatch.kit.redis_client import prefixed, sync_redis
    from asinwatch.worker.celery_app import celery_app

    client = sync_redis()
    marker = prefixed(f"ingest:enqueued:{run_id}")
    try:
        if not client.set(marker, "1", nx=True, ex=7 * 86_400):
            return False
        try:
            celery_app.send_task(DISPATCH_TASK, args=[str(run_id)])
        except Exception:
            client.delete(marker)
            raise
    finally:
        client.close()
    log.info("ingest run enqueued", run_id=str(run_id))
    return True


async def enqueue_run(run_id: uuid.UUID) -> bool:
    """Async twin of `enqueue_run_sync` for the API (the broker client is blocking)."""
    return await asyncio.to_thread(enqueue_run_sync, run_id)


async def get_run(session: AsyncSession, run_id: uuid.UUID) -> IngestRun | None:
    return await session.run_sync(lambda s: repository.get_run(s, run_id))


async def list_runs(
    session: AsyncSession, limit: int = 50, before: datetime | None = None
) -> list[IngestRun]:
    """Most recent first; `before` (a created_at) pages backwards."""
    return await session.run_sync(lambda s: repository.list_runs(s, limit, before))


async def list_batches(session: AsyncSession, run_id: uuid.UUID) -> list[IngestBatch]:
    return await session.run_sync(lambda s: repository.list_batches(s, run_id))


async def list_dead_letters(
    session: AsyncSession, limit: int = 50, open_only: bool = False
) -> list[DeadLetter]:
    return await session.run_sync(
        lambda s: repository.list_dead_letters(s, limit, open_only=open_only)
    )


# ---------------------------------------------------------------- replay


@dataclass(slots=True)
class ReplayReport:
    run_id: uuid.UUID
    promoted: list[int] = field(default_factory=list)
    enqueued: list[int] = field(default_factory=list)  # never fetched: sent to a worker
    skipped: dict[int, str] = field(default_factory=dict)  # batch no -> why
    final_status: str | None = None


def replay_run(run_id: uuid.UUID, *, bulk: BulkMode = "copy") -> ReplayReport:
    """Re-promote every staged batch of a run from staging; upstream is never called for them.

    A batch that was never fetched (pending, or a fetch that died) has nothing staged: it is
    re-enqueued (fetched by a worker) unless a live worker holds it. Each staged batch is its
    own transaction under the batch's advisory lock (a batch a live worker
    holds is skipped and reported). Core rows come out the same as the first promotion.
    """
    with session_scope() as session:
        run = repository.get_run(session, run_id)
        if run is None:
            raise RunNotFoundError(f"no ingestion run {run_id}")
        batches = [(b.batch_no, b.status) for b in repository.list_batches(session, run_id)]
        kind = run.kind
    report = ReplayReport(run_id)
    unfetched = [no for no, status in batches if status not in ("fetched", "promoted", "dead")]
    free = repository.unlocked([repository.batch_lock_key(run_id, no) for no in unfetched])
    report.enqueued = [no for no, ok in zip(unfetched, free, strict=True) if ok]
    for no, ok in zip(unfetched, free, strict=True):
        if not ok:
            report.skipped[no] = "a worker is fetching it"
    if report.enqueued:
        _send_batches(run_id, kind, report.enqueued)
    for batch_no, _ in batches:
        if batch_no in unfetched:
            continue
        with repository.batch_lock(run_id, batch_no) as got:
            if not got:
                report.skipped[batch_no] = "a worker is processing it"
                continue
            with session_scope() as session:
                result = promote_batch(session, run_id, batch_no, bulk=bulk)
        if result is None:
            report.skipped[batch_no] = "nothing staged"
        else:
            report.promoted.append(batch_no)
    with session_scope() as session:
        report.final_status = repository.finalise_run(session, run_id)
    if report.promoted and not report.enqueued and get_settings().ingest.after_run_hook:
        # The core rows may have changed (e.g. a fixed normaliser): analytics recompute once.
        # (With batches re-enqueued, the run's own finalisation starts the chain.)
        flows.restart_chain(run_id)
    log.info(
        "ingest run replayed",
        run_id=str(run_id),
        promoted=len(report.promoted),
        skipped=len(report.skipped),
    )
    return report


def _send_batches(run_id: uuid.UUID, kind: str, batch_nos: list[int]) -> None:
    from asinwatch.worker.celery_app import celery_app

    for no in batch_nos:
        celery_app.send_task(BATCH_TASKS[kind], args=[str(run_id), no])
    with session_scope() as session:
        repository.mark_enqueued(session, run_id, batch_nos)


def replay_dead_letter(letter_id: int) -> DeadLetter:
    """Put a dead batch back in the queue (it is fetched again) and mark the letter replayed."""
    with session_scope() as session:
        letter = repository.reopen_dead_batch(session, letter_id)
        if letter is None:
            raise RunNotFoundError(f"no dead letter {letter_id} with a batch to replay")
        kind = repository.get_run(session, letter.run_id) if letter.run_id else None
        task = BATCH_TASKS[kind.kind if kind else "product_details"]
    from asinwatch.worker.celery_app import celery_app

    celery_app.send_task(task, args=[str(letter.run_id), letter.batch_no])
    log.info("dead letter replayed", dead_letter_id=letter_id, run_id=str(letter.run_id))
    return letter
