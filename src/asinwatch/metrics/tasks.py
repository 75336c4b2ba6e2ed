"""Celery task `metrics.compute_kpis`: the KPIs of every product of a promoted run.

Idempotent (upserts by product and day), so late acks and re-delivery are safe.
"""

from __future__ import annotations

import uuid

from asinwatch.kit.db import session_scope
from asinwatch.metrics.service import compute_kpis_for_run
from asinwatch.worker.celery_app import celery_app


@celery_app.task(name="metrics.compute_kpis")
def compute_kpis(run_id: str) -> dict[str, object]:
    """Compute and store the KPIs of the run's products; returns the run id for the chain."""
    with session_scope() as session:
        summary = compute_kpis_for_run(session, uuid.UUID(str(run_id)))
    return {
        "run_id": str(summary.run_id),
        "day": summary.day.isoformat() if summary.day else None,
        "products": summary.products,
    }
