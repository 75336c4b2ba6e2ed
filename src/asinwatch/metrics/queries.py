"""The API's async read queries over products and metrics (one round trip each).

- `product_summary`: core.products + mart.product_latest + the latest mart.product_kpis_daily
  row + the product's unresolved alerts, assembled as JSON by PostgreSQL in one statement;
- `metric_range`: core.product_metrics_daily by (marketplace, asin, date window); it selects
  only the columns the covering index ``ix_product_metrics_daily_latest`` INCLUDEs, so the
  read is index-only (partition pruning on ``date`` keeps it to the months asked for);
- `competition`: our product's latest metrics and each linked competitor's, with the gaps
  computed by the report's pure `compare`.

Each returns plain JSON-able data (or None: unknown product), ready for the cache.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from asinwatch.metrics.api_schemas import (
    CompetitionOut,
    MetricsRangeOut,
    ProductSummaryOut,
)
from asinwatch.reports.competitive import ProductSnapshot, compare

OPEN_ALERTS_LIMIT = 50

_LATEST_JSON = """json_build_object(
    'date', l.date, 'observed_at', l.observed_at, 'buybox_price', l.buybox_price,
    'list_price', l.list_price, 'shipping_price', l.shipping_price,
    'lowest_offer_price', l.lowest_offer_price, 'currency', l.currency,
    'in_stock', l.in_stock, 'availability_text', l.availability_text,
    'buybox_seller_id', l.buybox_seller_id, 'buybox_seller_name', l.buybox_seller_name,
    'offer_count', l.offer_count, 'bsr', l.bsr, 'bsr_category', l.bsr_category,
    'rating', l.rating, 'review_count', l.review_count,
    'monthly_purchase_volume', l.monthly_purchase_volume, 'image_count', l.image_count,
    'bullet_count', l.bullet_count, 'has_aplus', l.has_aplus)"""

_PRODUCT_JSON = """json_build_object(
    'marketplace', p.marketplace, 'asin', p.asin, 'title', p.title, 'brand', p.brand,
    'category', p.category, 'is_own', p.is_own, 'tracking_state', p.tracking_state,
    'tags', p.tags, 'last_seen_at', p.last_seen_at, 'last_valid_at', p.last_valid_at)"""

_SUMMARY_SQL = text(f"""
SELECT {_PRODUCT_JSON} AS product,
  (SELECT {_LATEST_JSON} FROM mart.product_latest l
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

_RANGE_SQL = text("""
SELECT EXISTS (SELECT 1 FROM core.products WHERE marketplace = :m AND asin = :a) AS known,
  (SELECT coalesce(json_agg(json_build_object(
      'date', d.date, 'buybox_price', d.buybox_price, 'in_stock', d.in_stock, 'bsr', d.bsr,
      'rating', d.rating, 'review_count', d.review_count) ORDER BY d.date), '[]'::json)
     FROM core.product_metrics_daily d
    WHERE d.marketplace = :m AND d.asin = :a AND d.date BETWEEN :f AND :t) AS points
""")

_COMPETITION_SQL = text(f"""
SELECT {_PRODUCT_JSON} AS product,
  (SELECT {_LATEST_JSON} FROM mart.product_latest l
    WHERE l.marketplace = p.marketplace AND l.asin = p.asin) AS latest,
  (SELECT coalesce(json_agg(json_build_object(
      'asin', c.asin, 'title', c.title, 'brand', c.brand, 'note', cl.note,
      'linked_at', cl.created_at,
      'latest', CASE WHEN l.asin IS NULL THEN NULL ELSE {_LATEST_JSON} END)
      ORDER BY c.asin), '[]'::json)
     FROM core.competitor_links cl
     JOIN core.products c ON c.marketplace = cl.marketplace AND c.asin = cl.competitor_asin
     LEFT JOIN mart.product_latest l ON l.marketplace = c.marketplace AND l.asin = c.asin
    WHERE cl.marketplace = p.marketplace AND cl.asin = p.asin) AS competitors
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


async def metric_range(
    conn: AsyncConnection,
    marketplace: str,
    asin: str,
    start: date,
    end: date,
    range_name: str | None,
) -> dict[str, Any] | None:
    row = (
        await conn.execute(_RANGE_SQL, {"m": marketplace, "a": asin, "f": start, "t": end})
    ).first()
    if row is None or not row.known:
        return None
    out = MetricsRangeOut.model_validate(
        {
            "marketplace": marketplace,
            "asin": asin,
            "range": range_name,
            "from": start,
            "to": end,
            "points": row.points,
        }
    )
    return out.model_dump(mode="json", by_alias=True, exclude={"stale_at"})


def snapshot_of(asin: str, title: str | None, latest: dict[str, Any] | None) -> ProductSnapshot:
    """The report's comparison input from a latest-metrics JSON object (pure)."""
    m = latest or {}

    def num(key: str) -> float | None:
        value = m.get(key)
        return float(value) if value is not None else None

    bsr = m.get("bsr")
    return ProductSnapshot(
        asin=asin,
        title=title,
        price=num("buybox_price"),
        currency=m.get("currency"),
        rating=num("rating"),
        review_count=m.get("review_count"),
        bsr=int(bsr) if bsr is not None else None,
        bsr_category=m.get("bsr_category"),
        buybox_seller_id=m.get("buybox_seller_id"),
        buybox_seller_name=m.get("buybox_seller_name"),
        in_stock=m.get("in_stock"),
    )


async def competition(conn: AsyncConnection, marketplace: str, asin: str) -> dict[str, Any] | None:
    row = (await conn.execute(_COMPETITION_SQL, {"m": marketplace, "a": asin})).first()
    if row is None:
        return None
    own = snapshot_of(asin, row.product.get("title"), row.latest)
    competitors = [
        {**c, "comparison": compare(own, snapshot_of(c["asin"], c.get("title"), c.get("latest")))}
        for c in row.competitors
    ]
    out = CompetitionOut.model_validate(
        {"product": row.product, "latest": row.latest, "competitors": competitors}
    )
    return out.model_dump(mode="json", exclude={"stale_at"})
