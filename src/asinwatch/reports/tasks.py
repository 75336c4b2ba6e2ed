"""Celery task `reports.gen_competitive_report`: the reports a run may have changed, or one.

Each product is its own transaction, so one bad product never blocks the others; the Redis
key of a product is invalidated only after its new version committed. Idempotent: the same
inputs give the same version.
"""

from __future__ import annotations

import uuid

import structlog

from asinwatch.kit.db import session_scope
from asinwatch.kit.per_product import for_each_product
from asinwatch.metrics.repository import own_products_of_run
from asinwatch.reports.service import (
    ReportTargetError,
    generate_competitive_report,
    invalidate_report,
)
from asinwatch.worker.celery_app import celery_app

log = structlog.get_logger(__name__)


def generate_for(marketplace: str, asins: list[str]) -> dict[str, object]:
    def one(asin: str) -> bool:
        with session_scope() as session:
            result = generate_competitive_report(session, marketplace, asin)
        if result.created:
            invalidate_report(marketplace, asin)
        return result.created

    return for_each_product(
        asins, one, expected=(ReportTargetError,), event="report.failed", marketplace=marketplace
    )


@celery_app.task(name="reports.gen_competitive_report")
def gen_competitive_report(
    run_id: str | None = None, marketplace: str | None = None, asin: str | None = None
) -> dict[str, object]:
    """With `run_id`: every own product the run touched; else the one (marketplace, asin)."""
    if run_id is not None:
        with session_scope() as session:
            targets = own_products_of_run(session, uuid.UUID(str(run_id)))
        if targets is None:
            return {"created": [], "unchanged": [], "failed": {}, "error": "unknown run"}
        return generate_for(*targets)
    if marketplace is None or asin is None:
        raise ValueError("give a run_id, or a marketplace and an asin")
    return generate_for(marketplace, [asin])
