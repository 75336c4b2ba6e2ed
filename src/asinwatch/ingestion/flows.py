"""What happens after a run's batches are all promoted: the analytics chain.

`after_run_promoted(run_id)` is called exactly once per completed run (guarded by the
conditional UPDATE in `repository.finalise_run`), in the worker that finalised the run, after
the finalisation committed. It enqueues, for the run's products:

    metrics.compute_kpis -> alerts.detect_anomalies
        -> (reports.gen_competitive_report | recommendations.refresh_for_run)

Every step is idempotent (upserts, lifecycle de-duplication, versions only on changed
inputs), so a replay of a run calling this again is safe. Tasks are referenced by name, so
this module imports none of the analytics code.
"""

from __future__ import annotations

import uuid

import structlog
from celery import chain, group
from celery.canvas import Signature

from asinwatch.worker.celery_app import celery_app

log = structlog.get_logger(__name__)

KPI_TASK = "metrics.compute_kpis"
DETECT_TASK = "alerts.detect_anomalies"
REPORT_TASK = "reports.gen_competitive_report"
RECOMMEND_TASK = "recommendations.refresh_for_run"


def _step(name: str, run_id: str) -> Signature:
    # Immutable: each step gets the run id, not the previous step's return value.
    return celery_app.signature(name, args=(run_id,), immutable=True)


def analytics_chain(run_id: uuid.UUID) -> Signature:
    rid = str(run_id)
    return chain(
        _step(KPI_TASK, rid),
        _step(DETECT_TASK, rid),
        group(_step(REPORT_TASK, rid), _step(RECOMMEND_TASK, rid)),
    )


def after_run_promoted(run_id: uuid.UUID) -> None:
    """Hook: the run's data is in the core tables; enqueue the analytics chain."""
    analytics_chain(run_id).apply_async()
    log.info("analytics chain enqueued", run_id=str(run_id))
