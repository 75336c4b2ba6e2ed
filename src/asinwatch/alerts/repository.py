"""SQL of alerts: the current alert per (product, type), history events, and the reads the
REST layer pages through. Never commits (the caller's unit of work does).

Detection of one product runs under a transaction-level advisory lock on the product, so two
detections never race to open the same alert; the alert rows it may change are then locked
with ``FOR UPDATE`` so an acknowledge/resolve from the API is never overwritten.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from asinwatch.alerts.lifecycle import AlertState, AlertStatus
from asinwatch.alerts.models import Alert, AlertDelivery, AlertEvent, NotificationChannel
from asinwatch.alerts.rules.base import Severity
from asinwatch.metrics.kpis import to_jsonable


def lock_product(session: Session, marketplace: str, asin: str) -> None:
    """Serialise alert decisions of one product until the transaction ends."""
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
        {"k": f"asinwatch.alerts:{marketplace}:{asin}"},
    )


def current_alerts(session: Session, marketplace: str, asin: str) -> dict[str, Alert]:
    """Per alert type, the unresolved alert or else the latest one, locked FOR UPDATE."""
    ids = list(
        session.execute(
            text(
                "SELECT DISTINCT ON (alert_type) id FROM core.alerts"
                " WHERE marketplace = :m AND asin = :a"
                " ORDER BY alert_type, (status <> 'resolved') DESC, id DESC"
            ),
            {"m": marketplace, "a": asin},
        ).scalars()
    )
    if not ids:
        return {}
    rows = session.execute(
        select(Alert)
        .where(Alert.id.in_(ids))
        .order_by(Alert.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalars()
    return {a.alert_type: a for a in rows}


def state_of(alert: Alert) -> AlertState:
    """The lifecycle's view of a stored alert."""
    status = cast(AlertStatus, alert.status)
    severity = cast(Severity, alert.severity)
    return AlertState(
        status=status,
        severity=severity,
        opened_at=alert.opened_at,
        last_seen_at=alert.last_seen_at,
        occurrences=alert.occurrences,
        last_notified_at=alert.last_notified_at,
        notified_today=alert.notified_today,
        notified_day=alert.notified_day,
        acknowledged_at=alert.acknowledged_at,
        resolved_at=alert.resolved_at,
    )


def add_event(
    session: Session | None,
    alert_id: int,
    event: str,
    *,
    actor: str | None = None,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AlertEvent:
    """A history row (added to the session when one is given)."""
    row = AlertEvent(
        alert_id=alert_id, event=event, actor=actor, details=to_jsonable(details or {})
    )
    if at is not None:
        row.at = at
    if session is not None:
        session.add(row)
    return row


# --- async reads for the REST layer


@dataclass(frozen=True, slots=True)
class AlertFilters:
    status: str | None = None
    alert_type: str | None = None
    severity: str | None = None
    marketplace: str | None = None
    asin: str | None = None


async def list_alerts(
    session: AsyncSession, filters: AlertFilters, *, after_id: int | None, limit: int
) -> list[Alert]:
    """Alerts newest first (id descending), strictly below `after_id` when given."""
    q = select(Alert).order_by(Alert.id.desc()).limit(limit)
    if filters.status is not None:
        q = q.where(Alert.status == filters.status)
    if filters.alert_type is not None:
        q = q.where(Alert.alert_type == filters.alert_type)
    if filters.severity is not None:
        q = q.where(Alert.severity == filters.severity)
    if filters.marketplace is not None:
        q = q.where(Alert.marketplace == filters.marketplace)
    if filters.asin is not None:
        q = q.where(Alert.asin == filters.asin)
    if after_id is not None:
        q = q.where(Alert.id < after_id)
    return list((await session.execute(q)).scalars())


async def get_alert(session: AsyncSession, alert_id: int, *, lock: bool = False) -> Alert | None:
    q = select(Alert).where(Alert.id == alert_id).execution_options(populate_existing=True)
    if lock:
        q = q.with_for_update()
    return (await session.execute(q)).scalar_one_or_none()


async def events_of(session: AsyncSession, alert_id: int) -> list[AlertEvent]:
    q = select(AlertEvent).where(AlertEvent.alert_id == alert_id)
    return list((await session.execute(q.order_by(AlertEvent.id))).scalars())


async def deliveries_of(
    session: AsyncSession, alert_id: int
) -> Sequence[tuple[AlertDelivery, str, str]]:
    """The alert's deliveries with the channel name and kind, oldest first."""
    q = (
        select(AlertDelivery, NotificationChannel.name, NotificationChannel.kind)
        .join(NotificationChannel, NotificationChannel.id == AlertDelivery.channel_id)
        .where(AlertDelivery.alert_id == alert_id)
        .order_by(AlertDelivery.created_at, AlertDelivery.id)
    )
    return [(d, name, kind) for d, name, kind in (await session.execute(q)).all()]
