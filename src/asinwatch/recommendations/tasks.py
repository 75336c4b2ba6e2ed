"""Celery tasks `recommendations.refresh` (a job from the API) and
`recommendations.refresh_for_run` (the analytics chain after a run).

`refresh(job_id, marketplace, asin)` moves the `core.jobs` row to running, recomputes, and
records the outcome (succeeded with the version, or failed with a readable error); a finished
job is not redone when the message is delivered again. The Redis key of the product is
invalidated only after the new version committed.
"""

from __future__ import annotations

import uuid

import structlog

from asinwatch.jobs import service as jobs
from asinwatch.kit.db import session_scope
from asinwatch.kit.per_product import for_each_product
from asinwatch.metrics.repository import own_products_of_run
from asinwatch.recommendations.cache_keys import recommendation_key
from asinwatch.recommendations.service import (
    RecommendationTargetError,
    RefreshOutcome,
    refresh_product,
)
from asinwatch.reports.service import invalidate_cached
from asinwatch.worker.celery_app import celery_app

log = structlog.get_logger(__name__)


def _refresh_one(marketplace: str, asin: str) -> RefreshOutcome:
    with session_scope() as session:
        outcome = refresh_product(session, marketplace, asin)
    if outcome.created:
        invalidate_cached([recommendation_key(marketplace, asin)])
    return outcome


def run_refresh_job(job_id: uuid.UUID, marketplace: str, asin: str) -> dict[str, object] | None:
    """The body of `recommendations.refresh`; returns the job result (None: job not runnable)."""
    with session_scope() as session:
        runnable = jobs.mark_running(session, job_id)
    if not runnable:
        log.info("recommendations.job_skipped", job_id=str(job_id))
        return None
    try:
        outcome = _refresh_one(marketplace, asin)
    except RecommendationTargetError as exc:
        with session_scope() as session:
            jobs.mark_failed(session, job_id, str(exc))
        return None
    except Exception as exc:
        log.exception("recommendations.job_failed", job_id=str(job_id))
        with session_scope() as session:
            jobs.mark_failed(session, job_id, f"{type(exc).__name__}: {exc}")
        raise
    result = outcome.as_dict()
    with session_scope() as session:
        jobs.mark_done(session, job_id, result)
    return result


@celery_app.task(name="recommendations.refresh")
def refresh(job_id: str, marketplace: str, asin: str) -> dict[str, object] | None:
    """Recompute one product's recommendations for an API job."""
    return run_refresh_job(uuid.UUID(str(job_id)), marketplace, asin)


@celery_app.task(name="recommendations.refresh_for_run")
def refresh_for_run(run_id: str) -> dict[str, object]:
    """Recompute the recommendations of the own products a run touched."""
    with session_scope() as session:
        targets = own_products_of_run(session, uuid.UUID(str(run_id)))
    if targets is None:
        return {"created": [], "unchanged": [], "failed": {}, "error": "unknown run"}
    marketplace, asins = targets
    return for_each_product(
        asins,
        lambda asin: _refresh_one(marketplace, asin).created,
        expected=(RecommendationTargetError,),
        event="recommendations.failed",
        marketplace=marketplace,
    )
