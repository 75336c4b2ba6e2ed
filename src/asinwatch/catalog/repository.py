"""Every query of the catalog (products and competitor links)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from asinwatch.catalog.models import CompetitorLink, Product
from asinwatch.catalog.schemas import ProductIn


async def upsert_products(
    session: AsyncSession, marketplace: str, products: Sequence[ProductIn]
) -> int:
    """Insert or re-activate products; returns how many rows were written."""
    if not products:
        return 0
    rows = [
        {
            "marketplace": p.marketplace or marketplace,
            "asin": p.asin,
            "is_own": p.is_own,
            "title": p.title,
            "brand": p.brand,
            "category": p.category,
            "seller_allowlist": p.seller_allowlist,
            "tags": p.tags,
            "tracking_state": "active",
        }
        for p in products
    ]
    insert_stmt = insert(Product).values(rows)
    stmt = insert_stmt.on_conflict_do_update(
        index_elements=["marketplace", "asin"],
        set_={
            "tracking_state": "active",
            "is_own": insert_stmt.excluded.is_own,
            "updated_at": insert_stmt.excluded.updated_at,
        },
    ).returning(Product.id)
    return len((await session.execute(stmt)).all())


async def list_products(
    session: AsyncSession,
    marketplace: str | None = None,
    *,
    include_untracked: bool = False,
    after_id: int | None = None,
    limit: int | None = None,
) -> list[Product]:
    stmt = select(Product).order_by(Product.id)
    if marketplace:
        stmt = stmt.where(Product.marketplace == marketplace)
    if not include_untracked:
        stmt = stmt.where(Product.tracking_state != "untracked")
    if after_id is not None:
        stmt = stmt.where(Product.id > after_id)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list((await session.scalars(stmt)).all())


async def get_product(session: AsyncSession, marketplace: str, asin: str) -> Product | None:
    return await session.scalar(
        select(Product).where(Product.marketplace == marketplace, Product.asin == asin)
    )


async def untrack_products(session: AsyncSession, marketplace: str, asins: Sequence[str]) -> int:
    """Stop tracking (history is kept); returns how many products changed."""
    result = await session.execute(
        update(Product)
        .where(
            Product.marketplace == marketplace,
            Product.asin.in_(list(asins)),
            Product.tracking_state != "untracked",
        )
        .values(tracking_state="untracked")
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def delete_competitor_links(session: AsyncSession, marketplace: str, asin: str) -> int:
    result = await session.execute(
        delete(CompetitorLink).where(
            CompetitorLink.marketplace == marketplace, CompetitorLink.asin == asin
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def list_competitor_links(
    session: AsyncSession,
    marketplace: str,
    asin: str,
    *,
    after: str | None = None,
    limit: int | None = None,
) -> list[CompetitorLink]:
    """The competitors of one product, by competitor ASIN (keyset pagination on it)."""
    stmt = (
        select(CompetitorLink)
        .where(CompetitorLink.marketplace == marketplace, CompetitorLink.asin == asin)
        .order_by(CompetitorLink.competitor_asin)
    )
    if after is not None:
        stmt = stmt.where(CompetitorLink.competitor_asin > after)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list((await session.scalars(stmt)).all())


async def upsert_competitor_link(
    session: AsyncSession, marketplace: str, asin: str, competitor_asin: str, note: str | None
) -> CompetitorLink:
    """Create the link (or update its note); both products must exist."""
    stmt = (
        insert(CompetitorLink)
        .values(marketplace=marketplace, asin=asin, competitor_asin=competitor_asin, note=note)
        .on_conflict_do_update(
            index_elements=["marketplace", "asin", "competitor_asin"],
            set_={"note": note, "updated_at": func.now()},
        )
        .returning(CompetitorLink)
    )
    link = (await session.scalars(stmt, execution_options={"populate_existing": True})).one()
    return link


async def delete_competitor_link(
    session: AsyncSession, marketplace: str, asin: str, competitor_asin: str
) -> bool:
    result = await session.execute(
        delete(CompetitorLink).where(
            CompetitorLink.marketplace == marketplace,
            CompetitorLink.asin == asin,
            CompetitorLink.competitor_asin == competitor_asin,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
