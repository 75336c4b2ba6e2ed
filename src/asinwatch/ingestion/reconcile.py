"""The reconciler: the database says what work is left; re-send what the broker lost.

Run when a worker starts and every `recovery.reconcile_interval_s` by beat
(`ingestion.recover_stalled`). It never asks the broker what is queued; it judges from the
database and PostgreSQL's advisory locks alone:

- a batch of a running run that is not final, that no live worker holds (its advisory lock
  is free: the lock dies with a killed worker's connection) and that had no message sent
  and no heartbeat for `recovery.stale_after_s` is lost: it is re-sent (on worker start,
  every unheld unfinished batch is re-sent at once);
- a queued run never dispatched for that long gets its dispatch re-sent;
- an open run whose batches are all final is finalised (the after-run hook fires once);
- an analytics step that is due and quiet for that long, and whose lock is free, is re-sent.

A re-sent message that turns out to be a duplicate is a no-op (batch lock + batch state,
step lock + step state), so erring on the side of re-sending loses nothing.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field

import structlog

from asinwatch.config import get_settings
from asinwatch.ingestion import chain_progress, flows, pipeline, repository
from asinwatch.ingestion.service import BATCH_TASKS, DISPATCH_TASK, RunNotFoundError
from asinwatch.kit.db import session_scope
from asinwatch.kit.outage import outage_retry
from asinwatch.worker.celery_app import celery_app

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class Reconciled:
    batches: list[tuple[uuid.UUID, int]] = field(default_factory=list)
    dispatched: list[uuid.UUID] = field(default_factory=list)
    finalised: list[uuid.UUID] = field(default_factory=list)
    steps: list[tuple[uuid.UUID, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.batches) + len(self.dispatched) + len(self.finalised) + len(self.steps)


def resend_batches(
    run_id: uuid.UUID | None, stale_after_s: float | None
) -> list[tuple[uuid.UUID, int]]:
    """Re-send the quiet, unheld unfinished batches (of one run, or of every running run)."""
    with session_scope() as session:
        candidates = repository.stalled_batches(session, stale_after_s=stale_after_s, run_id=run_id)
    free = repository.unlocked([repository.batch_lock_key(r, b) for r, b, _ in candidates])
    lost = [c for c, ok in zip(candidates, free, strict=True) if ok]
    by_run: dict[uuid.UUID, list[int]] = defaultdict(list)
    for rid, batch_no, kind in lost:
        celery_app.send_task(BATCH_TASKS[kind], args=[str(rid), batch_no])
        by_run[rid].append(batch_no)
    with session_scope() as session:
        for rid, nos in by_run.items():
            repository.mark_enqueued(session, rid, nos)
    return [(r, b) for r, b, _ in lost]


def resend_steps(stale_after_s: float, max_runs: int) -> list[tuple[uuid.UUID, str]]:
    with session_scope() as session:
        candidates = chain_progress.stale_steps(session, flows.AFTER, stale_after_s, max_runs)
    free = repository.unlocked([repository.analytics_lock_key(r, s) for r, s in candidates])
    lost = [c for c, ok in zip(candidates, free, strict=True) if ok]
    for rid, step in lost:
        flows.send_steps(rid, [step])
    return lost


def reconcile(*, on_start: bool = False) -> Reconciled:
    """One sweep (each part retried through a short outage)."""
    s = get_settings()
    stale = float(s.recovery.stale_after_s)
    done = Reconciled()
    done.batches = outage_retry(resend_batches, None, None if on_start else stale)

    def queued() -> list[uuid.UUID]:
        with session_scope() as session:
            return repository.queued_runs_older_than(session, stale)

    for run_id in outage_retry(queued):
        celery_app.send_task(DISPATCH_TASK, args=[str(run_id)])
        done.dispatched.append(run_id)

    def finishable() -> list[uuid.UUID]:
        with session_scope() as session:
            return repository.finishable_runs(session)

    for run_id in outage_retry(finishable):
        if pipeline.finish_run(run_id) is not None:
            done.finalised.append(run_id)
    done.steps = outage_retry(resend_steps, 0 if on_start else stale, s.broker.task_max_attempts)
    if done.total:
        log.warning(
            "reconciler re-sent lost work",
            batches=len(done.batches),
            dispatched=len(done.dispatched),
            finalised=len(done.finalised),
            analytics_steps=len(done.steps),
        )
    return done


@dataclass(frozen=True, slots=True)
class Resumed:
    run_id: uuid.UUID
    status: str
    enqueued: list[int]
    finalised: bool


def resume_run(run_id: uuid.UUID) -> Resumed:
    """Operator's (and a repeated job id's) nudge: re-send the run's unheld unfinished batches
    (or its dispatch if it never started); finalise it if every batch is final."""
    with session_scope() as session:
        run = repository.get_run(session, run_id)
        if run is None:
            raise RunNotFoundError(f"no ingestion run {run_id}")
        status = run.status
    if status not in repository.OPEN_RUN:
        return Resumed(run_id, status, [], False)
    if status == "queued":
        celery_app.send_task(DISPATCH_TASK, args=[str(run_id)])
        return Resumed(run_id, status, [], False)
    enqueued = [b for _, b in resend_batches(run_id, None)]
    final = pipeline.finish_run(run_id)
    log.info("ingest run resumed", run_id=str(run_id), batches=enqueued, finalised=final)
    return Resumed(run_id, final or status, enqueued, final is not None)
