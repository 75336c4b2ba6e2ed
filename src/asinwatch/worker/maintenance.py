"""Housekeeping tasks: metric partitions ahead of time, retention of raw events and keys."""

from __future__ import annotations

import structlog
from sqlalchemy import text

from asinwatch.config import get_settings
from asinwatch.kit.db import session_scope
from asinwatch.worker.celery_app import celery_app

log = structlog.get_logger(__name__)


@celery_app.task(name="maintenance.ensure_partitions")
def ensure_partitions() -> int:
    """Create the monthly metric partitions from this month to N months ahead."""
    months = get_settings().database.metric_partitions_ahead_months
    with session_scope() as session:
        created = session.execute(
            text("SELECT core.ensure_metric_partitions(current_date, :n)"), {"n": months}
        ).scalar_one()
    log.info("partitions ensured", created=created, months_ahead=months)
    return int(created)


@celery_app.task(name="maintenance.apply_retention")
def apply_retention() -> dict[str, int]:
    """Delete promoted raw events past retention and expired idempotency keys."""
    days = get_settings().database.raw_event_retention_days
    with session_scope() as session:
        raw = session.execute(  # type: ignore[attr-defined]
            text(
                "DELETE FROM staging_raw.raw_events WHERE status <> 'staged' "
                "AND received_at < now() - make_interval(days => :d)"
            ),
            {"d": days},
        ).rowcount
        keys = session.execute(  # type: ignore[attr-defined]
            text("DELETE FROM core.idempotency_keys WHERE expires_at < now()")
        ).rowcount
    log.info("retention applied", raw_events=raw, idempotency_keys=keys)
    return {"raw_events": int(raw or 0), "idempotency_keys": int(keys or 0)}
