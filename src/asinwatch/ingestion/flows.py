"""What happens after a run's batches are all promoted: the analytics chain, tracked in the DB.

The chain of a finished run, for its products:

    metrics.compute_kpis -> alerts.detect_anomalies
        -> (reports.gen_competitive_report | recommendations.refresh_for_run)

Each step is one `ingestion.analytics_step(run_id, step)` message. Its progress lives in
`core.ingest_run_analytics` (chain_progress.py), written in the transaction that finalises
the run (`record_chain`), so the chain survives a worker killed right after finalisation and
a broker that lost its queue: the reconciler re-sends a step that is due and quiet.

A step runs exactly once: its worker takes the step's advisory lock (a duplicate delivery
while it runs returns at once, a killed worker's lock dies with its connection), skips a step
already done, runs the analytics task in-process, marks it done and sends the steps that
waited for it. Analytics tasks are referenced by name, so this module imports none of them.
"""

from __future__ import annotations

import uuid

import structlog

from asinwatch.ingestion import chain_progress, repository
from asinwatch.kit.db import session_scope
from asinwatch.worker.celery_app import celery_app

log = structlog.get_logger(__name__)

STEP_TASK = "ingestion.analytics_step"
KPI_TASK = "metrics.compute_kpis"
DETECT_TASK = "alerts.detect_anomalies"
REPORT_TASK = "reports.gen_competitive_report"
RECOMMEND_TASK = "recommendations.refresh_for_run"

# step -> (analytics task, steps it waits for)
STEPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "kpis": (KPI_TASK, ()),
    "detect": (DETECT_TASK, ("kpis",)),
    "report": (REPORT_TASK, ("detect",)),
    "recommend": (RECOMMEND_TASK, ("detect",)),
}
AFTER = {step: deps for step, (_, deps) in STEPS.items()}


def after_run_promoted(run_id: uuid.UUID) -> None:
    """Hook: the run is finalised (its chain recorded); send the steps that are due."""
    sent = send_due_steps(run_id)
    log.info("analytics chain enqueued", run_id=str(run_id), steps=sent)


def restart_chain(run_id: uuid.UUID) -> None:
    """Run the whole chain again (a replay changed the core rows)."""
    with session_scope() as session:
        chain_progress.record_chain(session, run_id, list(STEPS))
    after_run_promoted(run_id)


def due_steps(state: dict[str, chain_progress.StepState]) -> list[str]:
    """Steps not done or sent whose prerequisites are all done (pure)."""
    return [
        step
        for step, deps in AFTER.items()
        if step in state
        and not state[step].done
        and not state[step].sent
        and all(state[d].done for d in deps if d in state)
    ]


def send_steps(run_id: uuid.UUID, steps: list[str]) -> None:
    """Messages first, then `sent_at`: a crash in between is a re-send, never a loss."""
    for step in steps:
        celery_app.send_task(STEP_TASK, args=[str(run_id), step])
    if steps:
        with session_scope() as session:
            chain_progress.mark_sent(session, run_id, steps)


def send_due_steps(run_id: uuid.UUID) -> list[str]:
    with session_scope() as session:
        steps = due_steps(chain_progress.chain_state(session, run_id))
    send_steps(run_id, steps)
    return steps


def run_step(run_id: uuid.UUID, step: str) -> str:
    """One delivery of a step: busy | done | ran | failed."""
    task_name, _ = STEPS[step]
    with repository.advisory_lock(repository.analytics_lock_key(run_id, step)) as got:
        if not got:
            return "busy"
        with session_scope() as session:
            runs = chain_progress.start_step(session, run_id, step)
        if runs is None:
            return "done"
        error: str | None = None
        try:
            celery_app.tasks[task_name](str(run_id))
        except Exception as exc:
            log.exception("analytics step failed", run_id=str(run_id), step=step)
            error = f"{type(exc).__name__}: {exc}"
        with session_scope() as session:
            chain_progress.finish_step(session, run_id, step, error)
    if error is not None:
        return "failed"
    log.info("analytics step done", run_id=str(run_id), step=step, runs=runs)
    send_due_steps(run_id)
    return "ran"
