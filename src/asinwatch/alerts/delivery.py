"""Alert delivery: routing an alert to channels, and the retrying delivery loop.

- `enqueue_deliveries` queues one `core.alert_deliveries` row per enabled channel whose
  alert types (empty = all) and minimum severity match; the unique (alert, channel, event key)
  makes re-queuing the same notification a no-op. The statement is built once and runs from a
  sync or an async session.
- `process_due` claims due pending rows with ``FOR UPDATE SKIP LOCKED`` (several workers never
  take the same row), leases them by pushing `next_attempt_at` out and committing, sends outside
  any transaction, then records the outcome: delivered; or the next attempt after a full-jitter
  exponential backoff (tenacity's `wait_random_exponential`); or failed once attempts reach
  `delivery_max_attempts`. A worker that dies mid-send leaves the row to be re-sent once its
  lease runs out — receivers de-duplicate by the stable `X-Asinwatch-Delivery` id.
- The alert row itself is only read here, never changed.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import structlog
from sqlalchemy import (
    BigInteger,
    Insert,
    Select,
    Text,
    Update,
    any_,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from asinwatch.alerts.models import SEVERITIES, Alert, AlertDelivery, NotificationChannel
from asinwatch.alerts.senders import ChannelSpec, SendResult, build_payload, send
from asinwatch.config import Settings, get_settings
from asinwatch.kit.db import session_scope
from asinwatch.kit.outage import retry_delay_s
from asinwatch.observability.metrics import DELIVERIES

log = structlog.get_logger(__name__)

# Max rounds of `batch_size` one `process_due` call works through before returning.
MAX_ROUNDS = 20


class DeliveryNotFoundError(LookupError):
    """No delivery with that id."""


class DeliveryNotRetryableError(ValueError):
    """Only failed deliveries can be retried (pending ones are already queued)."""


# --- routing


def _severity_rank(severity: Any) -> Any:
    return func.array_position(literal(list(SEVERITIES), ARRAY(Text)), severity)


def enqueue_statement(alert: Alert, event_key: str) -> Insert:
    """INSERT ... SELECT over matching channels, ON CONFLICT DO NOTHING, RETURNING id."""
    if alert.id is None:
        raise ValueError("the alert must be flushed (have an id) before queuing deliveries")
    if alert.severity not in SEVERITIES:
        raise ValueError(f"unknown severity {alert.severity!r}")
    if not event_key:
        raise ValueError("event_key must not be empty")
    channel = NotificationChannel
    matching = select(
        literal(alert.id, BigInteger),
        channel.id,
        literal(event_key, Text),
        func.gen_random_uuid(),
        literal("pending"),
        literal(0),
    ).where(
        channel.enabled.is_(True),
        or_(
            func.cardinality(channel.alert_types) == 0,
            literal(alert.alert_type, Text) == any_(channel.alert_types),
        ),
        _severity_rank(channel.min_severity) <= SEVERITIES.index(alert.severity) + 1,
    )
    return (
        insert(AlertDelivery)
        .from_select(
            ["alert_id", "channel_id", "event_key", "delivery_id", "status", "attempts"], matching
        )
        .on_conflict_do_nothing(index_elements=["alert_id", "channel_id", "event_key"])
        .returning(AlertDelivery.id)
    )


def enqueue_deliveries(session: Session, alert: Alert, event_key: str) -> int:
    """Queue the notification `event_key` of `alert` to every matching channel.

    Returns how many deliveries were newly queued (0 when all already existed). Runs inside
    the caller's transaction; after commit, `alerts.deliver_alert` may send at once.
    """
    result = session.execute(enqueue_statement(alert, event_key))
    return len(result.scalars().all())


async def enqueue_deliveries_async(session: AsyncSession, alert: Alert, event_key: str) -> int:
    """`enqueue_deliveries` for an async session."""
    result = await session.execute(enqueue_statement(alert, event_key))
    return len(result.scalars().all())


# --- retry of failed deliveries


def _delivery_key(delivery_id: int | uuid.UUID) -> Any:
    if isinstance(delivery_id, uuid.UUID):
        return AlertDelivery.delivery_id == delivery_id
    return AlertDelivery.id == delivery_id


def retry_statement(delivery_id: int | uuid.UUID) -> Update:
    """Re-queue a failed delivery now, with a fresh attempt budget (same delivery id)."""
    return (
        update(AlertDelivery)
        .where(_delivery_key(delivery_id), AlertDelivery.status == "failed")
        .values(status="pending", attempts=0, next_attempt_at=func.now())
        .returning(AlertDelivery)
    )


def _status_statement(delivery_id: int | uuid.UUID) -> Select[str]:
    return select(AlertDelivery.status).where(_delivery_key(delivery_id))


def _retry_refused(delivery_id: int | uuid.UUID, status: str | None) -> Exception:
    if status is None:
        return DeliveryNotFoundError(f"delivery {delivery_id} not found")
    return DeliveryNotRetryableError(f"delivery {delivery_id} is {status}, not failed")


def retry_delivery(session: Session, delivery_id: int | uuid.UUID) -> AlertDelivery:
    """Re-queue a failed delivery (by row id or delivery UUID); raises if not failed."""
    row = session.execute(retry_statement(delivery_id)).scalar_one_or_none()
    if row is None:
        raise _retry_refused(delivery_id, session.execute(_status_statement(delivery_id)).scalar())
    return row


async def retry_delivery_async(
    session: AsyncSession, delivery_id: int | uuid.UUID
) -> AlertDelivery:
    """`retry_delivery` for an async session."""
    row = (await session.execute(retry_statement(delivery_id))).scalar_one_or_none()
    if row is None:
        status = (await session.execute(_status_statement(delivery_id))).scalar()
        raise _retry_refused(delivery_id, status)
    return row


# --- the delivery loop


@dataclass(frozen=True, slots=True)
class Claimed:
    """A leased delivery with everything needed to send it (detached from the session)."""

    id: int
    delivery_id: uuid.UUID
    event_key: str
    attempts: int  # including this one
    created_at: datetime
    channel: ChannelSpec
    channel_enabled: bool
    alert: dict[str, Any]


@dataclass(slots=True)
class DeliveryRunResult:
    claimed: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def lease_s(settings: Settings) -> float:
    """How long a claimed row stays invisible to other workers: longer than one send."""
    return max(60.0, settings.alerts.delivery_timeout_s * 4)


def claim_due(
    session: Session, limit: int, settings: Settings, alert_id: int | None = None
) -> list[Claimed]:
    """Lock up to `limit` due pending deliveries (skipping rows others hold) and lease them."""
    stmt = (
        select(AlertDelivery, NotificationChannel, Alert)
        .join(NotificationChannel, NotificationChannel.id == AlertDelivery.channel_id)
        .join(Alert, Alert.id == AlertDelivery.alert_id)
        .where(AlertDelivery.status == "pending", AlertDelivery.next_attempt_at <= func.now())
        .order_by(AlertDelivery.next_attempt_at, AlertDelivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=AlertDelivery)
    )
    if alert_id is not None:
        stmt = stmt.where(AlertDelivery.alert_id == alert_id)
    rows = session.execute(stmt).all()
    if not rows:
        return []
    ids = [d.id for d, _, _ in rows]
    session.execute(
        update(AlertDelivery)
        .where(AlertDelivery.id.in_(ids))
        .values(
            attempts=AlertDelivery.attempts + 1,
            next_attempt_at=func.now() + timedelta(seconds=lease_s(settings)),
        )
        .execution_options(synchronize_session=False)
    )
    claimed = []
    for d, ch, a in rows:
        claimed.append(
            Claimed(
                id=d.id,
                delivery_id=d.delivery_id,
                event_key=d.event_key,
                attempts=d.attempts + 1,
                created_at=d.created_at,
                channel=ChannelSpec(
                    id=ch.id, name=ch.name, kind=ch.kind, target=ch.target, secret=ch.secret
                ),
                channel_enabled=ch.enabled,
                alert={
                    "id": a.id,
                    "alert_type": a.alert_type,
                    "severity": a.severity,
                    "title": a.title,
                    "details": a.details,
                    "marketplace": a.marketplace,
                    "asin": a.asin,
                    "status": a.status,
                },
            )
        )
    return claimed


def attempt(job: Claimed, settings: Settings, client: httpx.Client | None = None) -> SendResult:
    if not job.channel_enabled:
        return SendResult(ok=False, error="channel disabled", permanent=True)
    payload = build_payload(
        alert=job.alert,
        event_key=job.event_key,
        delivery_id=job.delivery_id,
        occurred_at=job.created_at,
    )
    return send(job.channel, payload, settings, client)


def record_outcome(session: Session, job: Claimed, result: SendResult, settings: Settings) -> str:
    """Write the attempt's outcome; returns delivered / retrying / failed."""
    values: dict[str, Any] = {
        "last_status_code": result.status_code,
        "last_error": result.error,
    }
    if result.ok:
        outcome = "delivered"
        values.update(status="delivered", delivered_at=func.now(), last_error=None)
    elif result.permanent or job.attempts >= settings.alerts.delivery_max_attempts:
        outcome = "failed"
        values.update(status="failed")
    else:
        outcome = "retrying"
        delay = retry_delay_s(
            job.attempts,
            settings.alerts.delivery_backoff_base_s,
            settings.alerts.delivery_backoff_max_s,
        )
        values.update(next_attempt_at=func.now() + timedelta(seconds=delay))
    # Guarded on pending: a row someone else settled (or re-queued) is left alone.
    session.execute(
        update(AlertDelivery)
        .where(AlertDelivery.id == job.id, AlertDelivery.status == "pending")
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return outcome


def process_due(
    *,
    alert_id: int | None = None,
    settings: Settings | None = None,
    client: httpx.Client | None = None,
    max_rounds: int = MAX_ROUNDS,
) -> DeliveryRunResult:
    """Send due deliveries (of one alert, or all) until none is due or `max_rounds` batches."""
    s = settings or get_settings()
    totals = DeliveryRunResult()
    for _ in range(max_rounds):
        with session_scope() as session:
            jobs = claim_due(session, s.alerts.delivery_batch_size, s, alert_id)
        if not jobs:
            break
        totals.claimed += len(jobs)
        for job in jobs:
            result = attempt(job, s, client)
            with session_scope() as session:
                outcome = record_outcome(session, job, result, s)
            DELIVERIES.labels(kind=job.channel.kind, outcome=outcome).inc()
            setattr(totals, outcome, getattr(totals, outcome) + 1)
            log.info(
                "alert delivery attempt",
                delivery_id=str(job.delivery_id),
                alert_id=job.alert["id"],
                channel_id=job.channel.id,
                channel_kind=job.channel.kind,
                target=job.channel.masked_target,
                attempt=job.attempts,
                outcome=outcome,
                status_code=result.status_code,
                error=result.error,
            )
    return totals
