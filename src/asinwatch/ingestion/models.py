"""Tables of ingestion: runs, batches, raw staged items and dead letters."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from asinwatch.kit.db import Base

RUN_STATUSES = ("queued", "running", "succeeded", "partial", "failed", "cancelled")
BATCH_STATUSES = ("pending", "fetching", "fetched", "promoted", "failed", "dead")


class IngestRun(Base):
    """One ingestion run over a set of ASINs (a daily batch, a health sample, a manual run)."""

    __tablename__ = "ingest_runs"
    __table_args__ = (
        CheckConstraint(
            "status IN ('queued','running','succeeded','partial','failed','cancelled')",
            name="status",
        ),
        Index("ix_ingest_runs_created_at", text("created_at DESC")),
        Index(
            "ix_ingest_runs_open",
            "created_at",
            postgresql_where=text("status IN ('queued','running')"),
        ),
        {"schema": "core"},
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # Caller-chosen idempotency id: starting the same job id twice returns the same run.
    job_id: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    trigger: Mapped[str] = mapped_column(String(16), nullable=False)  # schedule|health|manual|api
    kind: Mapped[str] = mapped_column(String(24), nullable=False, default="product_details")
    marketplace: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")
    asins_requested: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    asins_succeeded: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    asins_quarantined: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    asins_failed: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    batches_total: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    batches_done: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(12, 4), nullable=False, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class IngestBatch(Base):
    """A slice of 50-100 ASINs of a run: the unit of fetching, retry and promotion."""

    __tablename__ = "ingest_batches"
    __table_args__ = (
        UniqueConstraint("run_id", "batch_no"),
        CheckConstraint(
            "status IN ('pending','fetching','fetched','promoted','failed','dead')", name="status"
        ),
        Index(
            "ix_ingest_batches_open",
            "run_id",
            postgresql_where=text("status NOT IN ('promoted','dead')"),
        ),
        {"schema": "core"},
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("core.ingest_runs.id", ondelete="CASCADE"), nullable=False
    )
    batch_no: Mapped[int] = mapped_column(Integer, nullable=False)
    asins: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    upstream_run_ids: Mapped[list[str]] = mapped_column(
        ARRAY(Text), nullable=False, default=list, server_default="{}"
    )
    succeeded: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    quarantined: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    failed: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(12, 4), nullable=False, default=0)
    observed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    fetched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    promoted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Last message sent for it / last sign of life of the worker on it (the reconciler's clock).
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RunAnalyticsStep(Base):
    """One step of a finished run's analytics chain: sent, started, done (exactly once)."""

    __tablename__ = "ingest_run_analytics"
    __table_args__ = (
        Index("ix_ingest_run_analytics_open", "run_id", postgresql_where=text("done_at IS NULL")),
        {"schema": "core"},
    )

    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("core.ingest_runs.id", ondelete="CASCADE"), primary_key=True
    )
    step: Mapped[str] = mapped_column(String(24), primary_key=True)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    runs: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)


class RawEvent(Base):
    """An upstream item exactly as received, kept for audit and replay."""

    __tablename__ = "raw_events"
    __table_args__ = (
        # One copy of an item per batch: a re-fetched batch replaces rather than duplicates.
        UniqueConstraint("run_id", "batch_no", "kind", "content_hash"),
        CheckConstraint("status IN ('staged','promoted','quarantined')", name="status"),
        Index("ix_raw_events_received_at", "received_at"),
        Index("ix_raw_events_product", "marketplace", "asin", "observed_at"),
        {"schema": "staging_raw"},
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(Text, nullable=False)  # e.g. apify:junglee~amazon-crawler
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # product | review
    run_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    batch_no: Mapped[int] = mapped_column(Integer, nullable=False)
    upstream_run_id: Mapped[str | None] = mapped_column(Text)
    marketplace: Mapped[str] = mapped_column(String(32), nullable=False)
    asin: Mapped[str | None] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    content_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    observed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="staged")
    quarantine_reason: Mapped[str | None] = mapped_column(Text)
    promoted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DeadLetter(Base):
    """A task that failed for good: kept with its payload, raised as an alert, replayable."""

    __tablename__ = "dead_letters"
    __table_args__ = (
        Index("ix_dead_letters_open", "replayed_at", "created_at"),
        {"schema": "core"},
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    task_name: Mapped[str] = mapped_column(Text, nullable=False)
    run_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    batch_no: Mapped[int | None] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    error: Mapped[str] = mapped_column(Text, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    replayed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
