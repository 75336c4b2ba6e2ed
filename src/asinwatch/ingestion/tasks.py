"""Celery tasks of ingestion (names are the contract with beat and other modules).

- `ingestion.dispatch_run(run_id)`: fan out one batch task per unfinished batch of a queued
  run (chord-less: no result backend, each batch finalises the run when it is the last).
- `ingestion.fetch_product_details(run_id, batch_no)`: product details (and reviews when
  `ingest.fetch_reviews`) of one batch, staged then promoted (pipeline.run_batch).
- `ingestion.fetch_reviews_summary(run_id, batch_no)`: the same for a reviews-only run.
- `ingestion.run_scheduled()`: the daily full batch per marketplace, job id
  `schedule:<marketplace>:<YYYY-MM-DD>` (date in `ingest.timezone`), so a double fire is a no-op.
- `ingestion.run_health_sample()`: a random sample of active ASINs, job id
  `health:<marketplace>:<YYYY-MM-DDTHH>`.
- `ingestion.recover_stalled()`: the reconciler (reconcile.py): re-sends lost batches,
  dispatches and analytics steps and finalises finished runs, judged from the database
  (also sent once when a worker starts, so a crashed-and-restarted worker resumes its runs
  at once instead of after the broker's visibility timeout).
- `ingestion.analytics_step(run_id, step)`: one step of a finished run's analytics chain.

Bounded concurrency: a batch occupies one worker process (prefetch 1), and at most
`ingest.max_concurrent_batches` batches are fetching upstream at once across all workers
(a Redis lease semaphore, ratelimit.BatchSlots).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from celery import Task
from celery.signals import worker_process_init, worker_ready

from asinwatch.config import get_settings
from asinwatch.ingestion import flows, pipeline, reconcile, repository, service, spend
from asinwatch.kit.db import dispose_sync_engines, session_scope
from asinwatch.worker.celery_app import celery_app

log = structlog.get_logger(__name__)


@worker_process_init.connect
def _fresh_pool_after_fork(**_: Any) -> None:
    # Connections must never be shared across forked pool processes.
    dispose_sync_engines()


@worker_ready.connect
def _recover_on_start(**_: Any) -> None:
    celery_app.send_task("ingestion.recover_stalled", kwargs={"include_pending": True})


@celery_app.task(name="ingestion.dispatch_run")
def dispatch_run(run_id: str) -> int:
    rid = uuid.UUID(run_id)
    with session_scope() as session:
        run = repository.get_run(session, rid)
        if run is None or run.status not in repository.OPEN_RUN:
            return 0
        todo = [
            b.batch_no
            for b in repository.list_batches(session, rid)
            if b.status not in repository.FINAL_BATCH
        ]
        task = service.BATCH_TASKS[run.kind]
    # Messages first, then the state: a dispatch killed in between is simply re-delivered
    # and re-sends (duplicate batch deliveries are no-ops).
    for batch_no in todo:
        celery_app.send_task(task, args=[run_id, batch_no])
    with session_scope() as session:
        repository.mark_run_running(session, rid)
        repository.mark_enqueued(session, rid, todo)
    if not todo:
        pipeline.finish_run(rid)
    log.info("ingest run dispatched", run_id=run_id, batches=len(todo))
    return len(todo)


def _batch(task: Task, run_id: str, batch_no: int) -> str:
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(run_id=run_id, batch=batch_no)
    outcome = pipeline.run_batch(uuid.UUID(run_id), int(batch_no), task.name)
    if outcome.status == "retry":
        # Raised outside the batch lock, so the retry never finds its own lock held.
        raise task.retry(countdown=outcome.retry_in_s, max_retries=None)
    return outcome.status


@celery_app.task(name="ingestion.fetch_product_details", bind=True, max_retries=None)
def fetch_product_details(self: Task, run_id: str, batch_no: int) -> str:
    return _batch(self, run_id, batch_no)


@celery_app.task(name="ingestion.fetch_reviews_summary", bind=True, max_retries=None)
def fetch_reviews_summary(self: Task, run_id: str, batch_no: int) -> str:
    return _batch(self, run_id, batch_no)


def _start_scheduled(trigger: str, job_prefix: str, slot: str, sample: int | None) -> list[str]:
    with session_scope() as session:
        markets = repository.marketplaces_with_active(session)
    started: list[str] = []
    for market in markets:
        job_id = f"{job_prefix}:{market}:{slot}"
        try:
            with session_scope() as session:
                run, created = service.prepare_run(
                    session,
                    marketplace=market,
                    asins=None,
                    all_tracked=sample is None,
                    trigger=trigger,
                    job_id=job_id,
                    sample=sample,
                )
        except service.NothingToIngestError:
            continue
        except spend.SpendCapReachedError as exc:
            spend.raise_cap_alert(exc)
            log.error("scheduled ingestion refused", job_id=job_id, error=str(exc))
            continue
        if created:
            service.enqueue_run_sync(run.id)
            started.append(job_id)
    log.info("scheduled ingestion", trigger=trigger, started=started)
    return started


@celery_app.task(name="ingestion.run_scheduled")
def run_scheduled(trigger: str = "schedule") -> list[str]:
    s = get_settings()
    day = datetime.now(ZoneInfo(s.ingest.timezone)).date().isoformat()
    return _start_scheduled("schedule", "schedule", day, None)


@celery_app.task(name="ingestion.run_health_sample")
def run_health_sample() -> list[str]:
    s = get_settings()
    hour = datetime.now(ZoneInfo(s.ingest.timezone)).strftime("%Y-%m-%dT%H")
    return _start_scheduled("health", "health", hour, s.ingest.health_sample_size)


@celery_app.task(name="ingestion.recover_stalled")
def recover_stalled(include_pending: bool = False) -> int:
    """The reconciler (reconcile.py); `include_pending`: the sweep of a starting worker."""
    return reconcile.reconcile(on_start=include_pending).total


@celery_app.task(name=flows.STEP_TASK)
def analytics_step(run_id: str, step: str) -> str:
    """One step of a finished run's analytics chain, exactly once (flows.run_step)."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(run_id=run_id, analytics_step=step)
    if step not in flows.STEPS:
        log.error("unknown analytics step", step=step)
        return "unknown"
    return flows.run_step(uuid.UUID(run_id), step)
