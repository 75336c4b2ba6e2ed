"""Alert lifecycle persistence (sync, for detection) and the alert API services (async).

Owns:
- `apply_finding`: one detector `Finding` for one product -> `lifecycle.decide` on the stored
  state -> the insert/update of `core.alerts`, the `core.alert_events` history rows (opened,
  rearmed, repeated, escalated, resolved, notified), the notification bookkeeping
  (last_notified_at, notified_day, notified_today) and, when the decision notifies, the
  delivery rows through `alerts.delivery.enqueue_deliveries` (the caller sends
  `alerts.deliver_alert` after COMMIT);
- for the REST layer: `list_alerts`, `get_alert`, `acknowledge`, `resolve`, with errors the
  API maps to problems (`AlertNotFoundError` 404, `AlertStateError` 409, `AlertQueryError` 422).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from asinwatch.alerts import repository as repo
from asinwatch.alerts.channel_schemas import DeliveryOut
from asinwatch.alerts.channels import list_deliveries
from asinwatch.alerts.delivery import enqueue_deliveries
from asinwatch.alerts.lifecycle import Decision, LifecyclePolicy, decide
from asinwatch.alerts.models import ALERT_STATUSES, SEVERITIES, Alert, AlertEvent
from asinwatch.alerts.rules.base import Finding
from asinwatch.kit.pagination import Page, PageParams, paginate
from asinwatch.metrics.kpis import to_jsonable
from asinwatch.observability.metrics import ALERTS_RAISED

SYSTEM_ACTOR = "system"
_CURSOR_SCOPE = "alerts"


class AlertNotFoundError(LookupError):
    """No alert with that id (404)."""


class AlertStateError(ValueError):
    """The action does not apply to the alert's status, e.g. acknowledging a resolved one (409)."""


class AlertQueryError(ValueError):
    """A filter value that cannot match anything valid (422)."""


# ---------------------------------------------------------------------------- detection side


@dataclass(frozen=True, slots=True)
class Applied:
    """What one finding did: the alert touched (if any), the decision, deliveries queued."""

    alert_type: str
    alert_id: int | None
    decision: Decision
    event: str | None
    queued_deliveries: int


def apply_finding(
    session: Session,
    *,
    marketplace: str,
    asin: str,
    finding: Finding,
    current: Alert | None,
    now: datetime,
    policy: LifecyclePolicy,
    run_id: uuid.UUID | None = None,
    context: dict[str, Any] | None = None,
) -> Applied:
    """Decide and persist what `finding` does to the (product, type)'s alert `current`.

    `current` must be the unresolved-or-last alert of the (product, type), locked FOR UPDATE
    (see `repository.current_alerts`). `context` is merged into the alert details (e.g. the
    observation's day) so the history says what was seen when.
    """
    decision = decide(repo.state_of(current) if current else None, finding, now, policy)
    event = decision.event
    if decision.action == "ignore" or decision.state is None:
        return Applied(finding.alert_type, None, decision, None, 0)
    state = decision.state
    details = {**to_jsonable(finding.details), **to_jsonable(context or {})}
    history = {"reason": decision.reason, "title": finding.title, "details": details}

    if decision.action == "open":
        alert = Alert(
            marketplace=marketplace,
            asin=asin,
            alert_type=finding.alert_type,
            severity=state.severity,
            status="open",
            title=finding.title,
            details=details,
            occurrences=1,
            run_id=run_id,
            opened_at=now,
            last_seen_at=now,
        )
        session.add(alert)
        session.flush()
        repo.add_event(session, alert.id, "opened", actor=SYSTEM_ACTOR, details=history, at=now)
        if current is not None:
            repo.add_event(
                session,
                alert.id,
                "rearmed",
                actor=SYSTEM_ACTOR,
                details={"previous_alert_id": current.id},
                at=now,
            )
    else:
        assert current is not None
        alert = current
        alert.last_seen_at = state.last_seen_at
        if decision.action == "bump":
            alert.occurrences = state.occurrences
            alert.severity = state.severity
            alert.title = finding.title
            alert.details = details
            alert.run_id = run_id
        else:  # resolve
            alert.status = "resolved"
            alert.resolved_at = now
            alert.resolved_by = SYSTEM_ACTOR
        assert event is not None
        repo.add_event(session, alert.id, event, actor=SYSTEM_ACTOR, details=history, at=now)
    alert.last_notified_at = state.last_notified_at
    alert.notified_day = state.notified_day
    alert.notified_today = state.notified_today
    queued = 0
    if decision.notify:
        assert event is not None
        key = f"{event}:{alert.occurrences}"
        repo.add_event(
            session,
            alert.id,
            "notified",
            actor=SYSTEM_ACTOR,
            details={"event_key": key, "reason": decision.reason},
            at=now,
        )
        session.flush()
        queued = enqueue_deliveries(session, alert, key)
    session.flush()
    ALERTS_RAISED.labels(finding.alert_type, alert.severity, event or "none").inc()
    return Applied(finding.alert_type, alert.id, decision, event, queued)


# ---------------------------------------------------------------------------- REST services


class AlertOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    marketplace: str
    asin: str
    alert_type: str
    severity: str
    status: str
    title: str
    details: dict[str, Any]
    occurrences: int
    run_id: uuid.UUID | None
    opened_at: datetime
    last_seen_at: datetime
    last_notified_at: datetime | None
    notified_day: date | None
    notified_today: int
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None


class AlertEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    event: str
    actor: str | None
    details: dict[str, Any]
    at: datetime


class AlertDetail(BaseModel):
    alert: AlertOut
    history: list[AlertEventOut]
    deliveries: list[DeliveryOut]


def _check_filters(filters: repo.AlertFilters) -> None:
    problems: list[str] = []
    if filters.status is not None and filters.status not in ALERT_STATUSES:
        problems.append(f"status must be one of {', '.join(ALERT_STATUSES)}")
    if filters.severity is not None and filters.severity not in SEVERITIES:
        problems.append(f"severity must be one of {', '.join(SEVERITIES)}")
    if problems:
        raise AlertQueryError("; ".join(problems))


async def list_alerts(
    session: AsyncSession,
    page: PageParams,
    *,
    status: str | None = None,
    alert_type: str | None = None,
    severity: str | None = None,
    marketplace: str | None = None,
    asin: str | None = None,
) -> Page[AlertOut]:
    """Alerts newest first, filtered; the cursor is the last alert id of the previous page."""
    filters = repo.AlertFilters(status, alert_type, severity, marketplace, asin)
    _check_filters(filters)
    after = page.after(scope=_CURSOR_SCOPE)
    if after is not None and (isinstance(after, bool) or not isinstance(after, int)):
        raise AlertQueryError("cursor does not hold an alert id")
    rows = await repo.list_alerts(session, filters, after_id=after, limit=page.fetch_limit)
    out = [AlertOut.model_validate(a) for a in rows]
    return paginate(out, page, key=lambda a: a.id, scope=_CURSOR_SCOPE)


async def get_alert(session: AsyncSession, alert_id: int) -> AlertDetail:
    """An alert with its full history and delivery log."""
    alert = await repo.get_alert(session, alert_id)
    if alert is None:
        raise AlertNotFoundError(f"no alert {alert_id}")
    events = await repo.events_of(session, alert_id)
    return AlertDetail(
        alert=AlertOut.model_validate(alert),
        history=[AlertEventOut.model_validate(e) for e in events],
        deliveries=await list_deliveries(session, alert_id),
    )


async def _locked(session: AsyncSession, alert_id: int) -> Alert:
    alert = await repo.get_alert(session, alert_id, lock=True)
    if alert is None:
        raise AlertNotFoundError(f"no alert {alert_id}")
    return alert


def _event(alert_id: int, event: str, actor: str, now: datetime) -> AlertEvent:
    return repo.add_event(None, alert_id, event, actor=actor, details={}, at=now)


async def acknowledge(session: AsyncSession, alert_id: int, actor: str) -> AlertOut:
    """Open -> acknowledged (it stays quiet unless it escalates). Idempotent; a resolved alert
    raises `AlertStateError`."""
    alert = await _locked(session, alert_id)
    if alert.status == "resolved":
        raise AlertStateError(f"alert {alert_id} is resolved; it cannot be acknowledged")
    if alert.status == "open":
        now = datetime.now(UTC)
        alert.status = "acknowledged"
        alert.acknowledged_at = now
        alert.acknowledged_by = actor
        session.add(_event(alert.id, "acknowledged", actor, now))
        await session.flush()
    return AlertOut.model_validate(alert)


async def resolve(session: AsyncSession, alert_id: int, actor: str) -> AlertOut:
    """Open/acknowledged -> resolved; the next detection of the problem opens a new alert
    (re-armed). Idempotent on a resolved alert."""
    alert = await _locked(session, alert_id)
    if alert.status != "resolved":
        now = datetime.now(UTC)
        alert.status = "resolved"
        alert.resolved_at = now
        alert.resolved_by = actor
        session.add(_event(alert.id, "resolved", actor, now))
        await session.flush()
    return AlertOut.model_validate(alert)
