"""SQL of the versioned recommendation sets in `core.recommendations`. Never commits.

Versions of one product are numbered 1, 2, ...; evaluation runs under a transaction-level
advisory lock on the product, so two workers never pick the same number.
"""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from asinwatch.recommendations.models import RecommendationSet


def lock_product(session: Session, marketplace: str, asin: str) -> None:
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
        {"k": f"asinwatch.recommendations:{marketplace}:{asin}"},
    )


def latest_set(session: Session, marketplace: str, asin: str) -> RecommendationSet | None:
    return session.execute(
        select(RecommendationSet)
        .where(RecommendationSet.marketplace == marketplace, RecommendationSet.asin == asin)
        .order_by(RecommendationSet.version.desc())
        .limit(1)
    ).scalar_one_or_none()


async def get_set(
    session: AsyncSession, marketplace: str, asin: str, version: int | None = None
) -> RecommendationSet | None:
    q = select(RecommendationSet).where(
        RecommendationSet.marketplace == marketplace, RecommendationSet.asin == asin
    )
    if version is not None:
        q = q.where(RecommendationSet.version == version)
    else:
        q = q.order_by(RecommendationSet.version.desc()).limit(1)
    return (await session.execute(q)).scalar_one_or_none()
