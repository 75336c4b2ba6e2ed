"""Pydantic schemas of notification channels and their delivery log (the REST layer's shapes).

Targets and secrets come in as `SecretStr` so they never print; they go out masked
(`target`) or not at all (`has_secret`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, field_validator

Severity = Literal["info", "warning", "critical"]
ChannelKindName = Literal["webhook", "apprise"]
AlertTypeName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=40, pattern=r"^[a-z0-9_]+$"),
]
ChannelName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


def _check_secret(v: SecretStr | None) -> SecretStr | None:
    if v is not None and not 16 <= len(v.get_secret_value()) <= 256:
        raise ValueError("secret must be 16 to 256 characters")
    return v


def _check_target(v: SecretStr | None) -> SecretStr | None:
    if v is not None and not 1 <= len(v.get_secret_value().strip()) <= 2048:
        raise ValueError("target must be 1 to 2048 characters")
    return v


class ChannelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ChannelName
    kind: ChannelKindName
    target: SecretStr = Field(description="https URL (webhook) or an Apprise URL")
    secret: SecretStr | None = Field(None, description="webhook signing secret (optional)")
    alert_types: list[AlertTypeName] = Field(default_factory=list, max_length=50)
    min_severity: Severity = "info"
    enabled: bool = True

    _target = field_validator("target")(_check_target)
    _secret = field_validator("secret")(_check_secret)


class ChannelUpdate(BaseModel):
    """A partial update: only the fields given change (`secret: null` clears the secret)."""

    model_config = ConfigDict(extra="forbid")

    name: ChannelName | None = None
    kind: ChannelKindName | None = None
    target: SecretStr | None = None
    secret: SecretStr | None = None
    alert_types: list[AlertTypeName] | None = Field(None, max_length=50)
    min_severity: Severity | None = None
    enabled: bool | None = None

    _target = field_validator("target")(_check_target)
    _secret = field_validator("secret")(_check_secret)


class ChannelOut(BaseModel):
    id: int
    name: str
    kind: ChannelKindName
    target: str = Field(description="masked: no tokens, passwords or paths")
    has_secret: bool
    alert_types: list[str]
    min_severity: Severity
    enabled: bool
    created_at: datetime
    updated_at: datetime


class DeliveryOut(BaseModel):
    """One row of an alert's delivery log."""

    id: int
    delivery_id: uuid.UUID
    alert_id: int
    channel_id: int
    channel_name: str
    channel_kind: ChannelKindName
    event_key: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime
    delivered_at: datetime | None
    created_at: datetime


class ChannelTestOutcome(BaseModel):
    ok: bool
    delivery_id: uuid.UUID
    status_code: int | None = None
    error: str | None = None
