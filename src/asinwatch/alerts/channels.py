"""Notification channel management for the REST layer: create / list / get / update / delete,
an alert's delivery log, retrying a failed delivery, and a test send.

Functions take the request's `AsyncSession` and leave committing to it. Targets are validated
(scheme, SSRF rule on literal hosts) on the way in and masked on the way out; errors are the
domain exceptions below, whose messages are safe to show.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from asinwatch.alerts import repository as alert_repository
from asinwatch.alerts.channel_schemas import (
    ChannelCreate,
    ChannelOut,
    ChannelTestOutcome,
    ChannelUpdate,
    DeliveryOut,
)
from asinwatch.alerts.delivery import retry_delivery_async
from asinwatch.alerts.models import NotificationChannel
from asinwatch.alerts.senders import ChannelSpec, build_payload, send
from asinwatch.alerts.targets import InvalidTargetError, mask_target, validate_target
from asinwatch.config import Settings, get_settings

log = structlog.get_logger(__name__)

__all__ = [
    "ChannelNameTakenError",
    "ChannelNotFoundError",
    "InvalidTargetError",
    "create_channel",
    "delete_channel",
    "get_channel",
    "list_channels",
    "list_deliveries",
    "retry_delivery_async",
    "send_test",
    "update_channel",
]


class ChannelNotFoundError(LookupError):
    """No channel with that id."""


class ChannelNameTakenError(ValueError):
    """Channel names are unique."""


def channel_out(ch: NotificationChannel) -> ChannelOut:
    return ChannelOut(
        id=ch.id,
        name=ch.name,
        kind=ch.kind,
        target=mask_target(ch.kind, ch.target),
        has_secret=bool(ch.secret),
        alert_types=list(ch.alert_types or []),
        min_severity=ch.min_severity,
        enabled=ch.enabled,
        created_at=ch.created_at,
        updated_at=ch.updated_at,
    )


def _validate(kind: str, target: str, settings: Settings) -> None:
    # Literal addresses only here: a name is resolved (and judged) just before each send.
    validate_target(kind, target, settings.alerts.delivery_allowed_hosts, resolve=False)


async def _load(session: AsyncSession, channel_id: int) -> NotificationChannel:
    ch = await session.get(NotificationChannel, channel_id)
    if ch is None:
        raise ChannelNotFoundError(f"channel {channel_id} not found")
    return ch


async def _save_unique(
    session: AsyncSession, ch: NotificationChannel, changes: dict[str, Any]
) -> None:
    """Apply `changes` (or add a new `ch`) and flush inside a savepoint, so a taken name
    becomes `ChannelNameTakenError` and leaves the caller's transaction usable."""
    # Read before the savepoint: a rollback expires `ch`, and reloading it here would block.
    name = changes.get("name", ch.name)
    try:
        async with session.begin_nested():
            if changes:
                for key, value in changes.items():
                    setattr(ch, key, value)
            else:
                session.add(ch)
            await session.flush()
    except IntegrityError as exc:
        raise ChannelNameTakenError(f"a channel named {name!r} already exists") from exc


async def create_channel(
    session: AsyncSession, data: ChannelCreate, settings: Settings | None = None
) -> ChannelOut:
    s = settings or get_settings()
    target = data.target.get_secret_value().strip()
    _validate(data.kind, target, s)
    ch = NotificationChannel(
        name=data.name,
        kind=data.kind,
        target=target,
        secret=data.secret.get_secret_value() if data.secret else None,
        alert_types=list(dict.fromkeys(data.alert_types)),
        min_severity=data.min_severity,
        enabled=data.enabled,
    )
    await _save_unique(session, ch, {})
    await session.refresh(ch)
    log.info("channel created", channel_id=ch.id, kind=ch.kind, target=mask_target(ch.kind, target))
    return channel_out(ch)


async def list_channels(session: AsyncSession) -> list[ChannelOut]:
    rows = await session.scalars(select(NotificationChannel).order_by(NotificationChannel.id))
    return [channel_out(ch) for ch in rows]


async def get_channel(session: AsyncSession, channel_id: int) -> ChannelOut:
    return channel_out(await _load(session, channel_id))


async def update_channel(
    session: AsyncSession, channel_id: int, data: ChannelUpdate, settings: Settings | None = None
) -> ChannelOut:
    s = settings or get_settings()
    ch = await _load(session, channel_id)
    given = data.model_fields_set
    changes: dict[str, Any] = {}
    if "kind" in given or "target" in given:
        kind = data.kind if data.kind is not None else ch.kind
        target = data.target.get_secret_value().strip() if data.target is not None else ch.target
        _validate(kind, target, s)
        changes.update(kind=kind, target=target)
    if "secret" in given:
        changes["secret"] = data.secret.get_secret_value() if data.secret else None
    if data.name is not None:
        changes["name"] = data.name
    if data.alert_types is not None:
        changes["alert_types"] = list(dict.fromkeys(data.alert_types))
    if data.min_severity is not None:
        changes["min_severity"] = data.min_severity
    if data.enabled is not None:
        changes["enabled"] = data.enabled
    if changes:
        await _save_unique(session, ch, changes)
    await session.refresh(ch)
    log.info("channel updated", channel_id=ch.id, fields=sorted(given))
    return channel_out(ch)


async def delete_channel(session: AsyncSession, channel_id: int) -> None:
    """Delete a channel; its deliveries go with it (the alerts stay)."""
    ch = await _load(session, channel_id)
    await session.delete(ch)
    await session.flush()
    log.info("channel deleted", channel_id=channel_id)


async def list_deliveries(session: AsyncSession, alert_id: int) -> list[DeliveryOut]:
    """The delivery log of one alert, oldest first."""
    rows = await alert_repository.deliveries_of(session, alert_id)
    return [
        DeliveryOut(
            id=d.id,
            delivery_id=d.delivery_id,
            alert_id=d.alert_id,
            channel_id=d.channel_id,
            channel_name=name,
            channel_kind=kind,
            event_key=d.event_key,
            status=d.status,
            attempts=d.attempts,
            last_status_code=d.last_status_code,
            last_error=d.last_error,
            next_attempt_at=d.next_attempt_at,
            delivered_at=d.delivered_at,
            created_at=d.created_at,
        )
        for d, name, kind in rows
    ]


async def send_test(
    session: AsyncSession, channel_id: int, settings: Settings | None = None
) -> ChannelTestOutcome:
    """Send a sample notification (event ``test``) once, no retry, nothing recorded."""
    s = settings or get_settings()
    ch = await _load(session, channel_id)
    spec = ChannelSpec(id=ch.id, name=ch.name, kind=ch.kind, target=ch.target, secret=ch.secret)
    delivery_id = uuid.uuid4()
    payload = build_payload(
        alert={
            "id": 0,
            "alert_type": "test",
            "severity": "info",
            "title": f"Test notification for channel {ch.name!r}",
            "details": {"note": "sent by asinwatch to check this channel"},
            "marketplace": s.default_marketplace,
            "asin": "-",
            "status": "open",
        },
        event_key="test",
        delivery_id=delivery_id,
        occurred_at=datetime.now(UTC),
    )
    # Senders are blocking (httpx sync client, Apprise); keep the event loop free.
    result = await asyncio.to_thread(send, spec, payload, s)
    log.info(
        "channel test sent",
        channel_id=ch.id,
        target=spec.masked_target,
        ok=result.ok,
        status_code=result.status_code,
    )
    return ChannelTestOutcome(
        ok=result.ok, delivery_id=delivery_id, status_code=result.status_code, error=result.error
    )
