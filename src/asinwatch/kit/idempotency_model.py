"""The core.idempotency_keys table: where kit.idempotency keeps each POST's Idempotency-Key
and the response to replay. Kit's own storage, so the mechanism needs no domain's models."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from asinwatch.kit.db import Base


class IdempotencyKey(Base):
    """A POST's Idempotency-Key, scoped to the caller: the first response is replayed."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        PrimaryKeyConstraint("principal", "key"),
        CheckConstraint("state IN ('in_flight','done')", name="state"),
        Index("ix_idempotency_keys_expires_at", "expires_at"),
        {"schema": "core"},
    )

    principal: Mapped[str] = mapped_column(Text, nullable=False)
    key: Mapped[str] = mapped_column(String(255), nullable=False)
    method: Mapped[str] = mapped_column(String(8), nullable=False)
    path: Mapped[str] = mapped_column(Text, nullable=False)
    request_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="in_flight")
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_headers: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
