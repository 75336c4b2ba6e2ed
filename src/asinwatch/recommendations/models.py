"""The versioned recommendation table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, String, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from asinwatch.kit.db import Base


class RecommendationSet(Base):
    """All recommendations for a product at one version of its inputs and of the rule set."""

    __tablename__ = "recommendations"
    __table_args__ = (UniqueConstraint("marketplace", "asin", "version"), {"schema": "core"})

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    marketplace: Mapped[str] = mapped_column(String(32), nullable=False)
    asin: Mapped[str] = mapped_column(String(10), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    ruleset_version: Mapped[str] = mapped_column(String(32), nullable=False)
    inputs_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    # [{"rule_id", "title", "evidence": {...}, "expected_impact", "priority"}]
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
