"""Pipeline-level alerts (owns: the `ingest_dead_letter` finding, and applying any pipeline
finding, the spend cap's too), raised through the alerts domain like any detector's: the
lifecycle opens the one alert per marketplace (or bumps the open one, within its cooldown and
daily cap) and queues its deliveries, so every channel is told.

Pipeline alerts belong to no product (asin `-`). `raise_dead_letter` runs in the transaction
that parks the batch; the caller sends `alerts.deliver_alert` after the commit
(`send_delivery`; the periodic delivery sweep sends it anyway if that send is lost).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import structlog
from sqlalchemy.orm import Session

from asinwatch.alerts import repository as alert_repo
from asinwatch.alerts.detection import send_deliveries
from asinwatch.alerts.lifecycle import policy_for
from asinwatch.alerts.rules.base import Finding
from asinwatch.alerts.service import Applied, apply_finding
from asinwatch.config import get_settings

log = structlog.get_logger(__name__)

DEAD_LETTER = "ingest_dead_letter"
PIPELINE_ASIN = "-"  # pipeline-level alerts belong to no product


def raise_dead_letter(
    session: Session, marketplace: str, run_id: uuid.UUID, letter_id: int, error: str
) -> int | None:
    """Open (or bump) the critical dead-letter alert of `marketplace`; the alert id when
    deliveries were queued (send them after the commit), else None."""
    finding = Finding(
        DEAD_LETTER,
        "critical",
        f"Ingestion batch failed for good on {marketplace}",
        {"dead_letter_id": letter_id, "run_id": str(run_id), "error": error[:500]},
        kind="condition",
    )
    applied = apply_pipeline_finding(session, marketplace, finding, run_id)
    return applied.alert_id if applied.queued_deliveries else None


def apply_pipeline_finding(
    session: Session, marketplace: str, finding: Finding, run_id: uuid.UUID | None
) -> Applied:
    """Apply a pipeline-level finding to the marketplace's alert of its type (locked, through
    the lifecycle with that type's policy), in the caller's transaction."""
    alert_repo.lock_product(session, marketplace, PIPELINE_ASIN)
    current = alert_repo.current_alerts(session, marketplace, PIPELINE_ASIN)
    return apply_finding(
        session,
        marketplace=marketplace,
        asin=PIPELINE_ASIN,
        finding=finding,
        current=current.get(finding.alert_type),
        now=datetime.now(UTC),
        policy=policy_for(get_settings().alerts, finding.alert_type),
        run_id=run_id,
    )


def send_delivery(alert_id: int) -> None:
    """After the commit: ask the workers to deliver now; with the broker down, the periodic
    delivery sweep sends the queued deliveries later."""
    try:
        send_deliveries([alert_id])
    except Exception as exc:
        log.warning("pipeline alert delivery not sent now", alert_id=alert_id, error=str(exc))
