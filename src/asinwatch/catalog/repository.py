"""Every query of the catalog (products and competitor links), and the product summary read:
core.products + mart.product_latest + the latest mart.product_kpis_daily row + the product's
unresolved alerts, assembled as JSON by PostgreSQL in one statement (its product and
latest-metrics fragments are reused by `metrics.queries`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from asinwatch.catalog.api_schemas import LatestMetrics, ProductInfo, ProductSummaryOut
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


# --- the product summary (one statement, JSON built by PostgreSQL) -----------------------

OPEN_ALERTS_LIMIT = 50


def json_object(alias: str, names: Sequence[str]) -> str:
    """SQL building a JSON object of `alias`'s columns `names` (keys = column names)."""
    return f"json_build_object({', '.join(f'{n!r}, {alias}.{n}' for n in names)})"


# The JSON fragments select exactly the fields of their API models (derived, not restated).
LATEST_JSON = json_object("l", tuple(LatestMetrics.model_fields))
PRODUCT_JSON = json_object("p", tuple(ProductInfo.model_fields))

_SUMMARY_SQL = text(f"""
SELECT {PRODUCT_JSON} AS product,
  (SELECT {LATEST_JSON} FROM mart.product_latest l
    WHERE l.marketplace = p.marketplace AND l.asin = p.asin) AS latest,
  (SELECT json_build_object('date', k.date, 'computed_at', k.computed_at, 'kpis', k.kpis)
     FROM mart.product_kpis_daily k
    WHERE k.marketplace = p.marketplace AND k.asin = p.asin
    ORDER BY k.date DESC LIMIT 1) AS kpis,
  (SELECT coalesce(json_agg(a ORDER BY a.opened_at DESC, a.id DESC), '[]'::json) FROM (
     SELECT id, alert_type, severity, status, title, occurrences, opened_at, last_seen_at
       FROM core.alerts
      WHERE marketplace = p.marketplace AND asin = p.asin AND status <> 'resolved'
      ORDER BY opened_at DESC, id DESC LIMIT {OPEN_ALERTS_LIMIT}) a) AS open_alerts
FROM core.products p
WHERE p.marketplace = :m AND p.asin = :a
""")


async def product_summary(
    conn: AsyncConnection, marketplace: str, asin: str
) -> dict[str, Any] | None:
    row = (await conn.execute(_SUMMARY_SQL, {"m": marketplace, "a": asin})).first()
    if row is None:
        return None
    out = ProductSummaryOut.model_validate(
        {
            "product": row.product,
            "latest": row.latest,
            "kpis": row.kpis,
            "open_alerts": row.open_alerts,
        }
    )
    return out.model_dump(mode="json", exclude={"stale_at"})
