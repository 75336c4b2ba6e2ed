"""SQL of the versioned reports in `core.reports` (sync for the task, async for reads).

Versions of one (marketplace, asin, kind) are numbered 1, 2, ...; generation runs under a
transaction-level advisory lock on that key, so two workers never pick the same number.
Never commits.
"""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, load_only

from asinwatch.reports.models import Report

COMPETITIVE = "competitive"


def lock_report(session: Session, marketplace: str, asin: str, kind: str = COMPETITIVE) -> None:
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
        {"k": f"asinwatch.reports:{kind}:{marketplace}:{asin}"},
    )


def latest_report(
    session: Session, marketplace: str, asin: str, kind: str = COMPETITIVE
) -> Report | None:
    return session.execute(
        select(Report)
        .where(Report.marketplace == marketplace, Report.asin == asin, Report.kind == kind)
        .order_by(Report.version.desc())
        .limit(1)
    ).scalar_one_or_none()


async def get_report(
    session: AsyncSession,
    marketplace: str,
    asin: str,
    version: int | None = None,
    kind: str = COMPETITIVE,
) -> Report | None:
    """The latest report, or the given version."""
    q = select(Report).where(
        Report.marketplace == marketplace, Report.asin == asin, Report.kind == kind
    )
    if version is not None:
        q = q.where(Report.version == version)
    else:
        q = q.order_by(Report.version.desc()).limit(1)
    return (await session.execute(q)).scalar_one_or_none()


async def list_versions(
    session: AsyncSession,
    marketplace: str,
    asin: str,
    *,
    before_version: int | None,
    limit: int,
    kind: str = COMPETITIVE,
) -> list[Report]:
    """Versions newest first, strictly below `before_version` when given (the version,
    inputs hash and creation time only: not the report bodies)."""
    q = (
        select(Report)
        .options(load_only(Report.version, Report.inputs_hash, Report.created_at))
        .where(Report.marketplace == marketplace, Report.asin == asin, Report.kind == kind)
        .order_by(Report.version.desc())
        .limit(limit)
    )
    if before_version is not None:
        q = q.where(Report.version < before_version)
    return list((await session.execute(q)).scalars())
