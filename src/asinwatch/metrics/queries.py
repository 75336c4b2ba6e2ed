"""The API's async read queries over metrics (one round trip each; the product summary is
catalog's, `catalog.repository.product_summary`, whose JSON fragments these reuse).

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

from asinwatch.catalog.repository import LATEST_JSON, PRODUCT_JSON, json_object
from asinwatch.metrics.api_schemas import (
    CompetitionOut,
    MetricsRangeOut,
)
from asinwatch.metrics.models import RANGE_COLUMNS
from asinwatch.reports.competitive import ProductSnapshot, compare

_POINT_JSON = json_object("d", ("date", *RANGE_COLUMNS))

_RANGE_SQL = text(f"""
SELECT EXISTS (SELECT 1 FROM core.products WHERE marketplace = :m AND asin = :a) AS known,
  (SELECT coalesce(json_agg({_POINT_JSON} ORDER BY d.date), '[]'::json)
     FROM core.product_metrics_daily d
    WHERE d.marketplace = :m AND d.asin = :a AND d.date BETWEEN :f AND :t) AS points
""")

_COMPETITION_SQL = text(f"""
SELECT {PRODUCT_JSON} AS product,
  (SELECT {LATEST_JSON} FROM mart.product_latest l
    WHERE l.marketplace = p.marketplace AND l.asin = p.asin) AS latest,
  (SELECT coalesce(json_agg(json_build_object(
      'asin', c.asin, 'title', c.title, 'brand', c.brand, 'note', cl.note,
      'linked_at', cl.created_at,
      'latest', CASE WHEN l.asin IS NULL THEN NULL ELSE {LATEST_JSON} END)
      ORDER BY c.asin), '[]'::json)
     FROM core.competitor_links cl
     JOIN core.products c ON c.marketplace = cl.marketplace AND c.asin = cl.competitor_asin
     LEFT JOIN mart.product_latest l ON l.marketplace = c.marketplace AND l.asin = c.asin
    WHERE cl.marketplace = p.marketplace AND cl.asin = p.asin) AS competitors
FROM core.products p
WHERE p.marketplace = :m AND p.asin = :a
""")


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
