"""KPIs of products, computed from their stored history and persisted in the mart (sync).

Owns: loading what `metrics.kpis.compute_kpis` needs for one product (the last 120 days of
validated daily rows, reviews, the current listing snapshot), computing it, upserting
`mart.product_kpis_daily`, and doing that for every product of an ingest run. The KPI day of a
run is the date, in the marketplace's time zone, of the run's observation (the same rule
promotion uses for the daily metric row).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta

import structlog
from sqlalchemy.orm import Session

from asinwatch.ingestion.promotion_plan import metric_date
from asinwatch.ingestion.records import ListingContent, ReviewRecord
from asinwatch.metrics import repository as repo
from asinwatch.metrics.kpis import KpiSettings, ProductKpis, compute_kpis
from asinwatch.metrics.series import MetricPoint

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ProductHistory:
    """Everything stored about a product that the KPIs read, up to one day."""

    facts: repo.ProductFacts | None
    points: list[MetricPoint]
    reviews: list[ReviewRecord]
    listing: ListingContent | None
    as_of: date


@dataclass(frozen=True, slots=True)
class KpiRunSummary:
    run_id: uuid.UUID
    day: date | None
    products: int


def load_product_history(
    session: Session, marketplace: str, asin: str, as_of: date | None = None
) -> ProductHistory | None:
    """The product's history up to `as_of` (default: its latest observed day); None if none."""
    day = as_of or repo.latest_metric_date(session, marketplace, asin)
    if day is None:
        return None
    points = repo.load_history(session, marketplace, asin, end=day)
    reviews = repo.load_reviews(
        session, marketplace, asin, since=day - timedelta(days=repo.HISTORY_DAYS), until=day
    )
    until = max((p.observed_at for p in points if p.observed_at is not None), default=None)
    snaps = repo.latest_snapshots(session, marketplace, asin, until=until, limit=1)
    return ProductHistory(
        facts=repo.product_facts(session, marketplace, asin),
        points=points,
        reviews=reviews,
        listing=snaps[0].content if snaps else None,
        as_of=day,
    )


def kpis_of(history: ProductHistory) -> ProductKpis:
    """KPIs of a loaded history (own products count their allow-listed sellers' buy box)."""
    own = frozenset(history.facts.seller_allowlist) if history.facts else frozenset()
    return compute_kpis(
        history.points,
        as_of=history.as_of,
        reviews=history.reviews,
        listing=history.listing,
        settings=KpiSettings(own_seller_ids=own),
    )


def product_kpis(
    session: Session, marketplace: str, asin: str, as_of: date | None = None
) -> ProductKpis | None:
    """Compute (without storing) a product's KPIs; None when it has no observation at all."""
    history = load_product_history(session, marketplace, asin, as_of)
    return None if history is None else kpis_of(history)


def compute_and_store(
    session: Session, marketplace: str, asin: str, as_of: date | None = None
) -> ProductKpis | None:
    """Compute a product's KPIs for `as_of` and upsert them into the mart."""
    history = load_product_history(session, marketplace, asin, as_of)
    if history is None:
        return None
    kpis = kpis_of(history)
    repo.upsert_kpis(session, marketplace, asin, history.as_of, kpis.to_dict())
    return kpis


def run_day(scope: repo.RunScope) -> date | None:
    """The day a run's observations count for (marketplace time zone)."""
    if scope.observed_at is None:
        return None
    return metric_date(scope.marketplace, scope.observed_at)


def compute_kpis_for_run(session: Session, run_id: uuid.UUID) -> KpiRunSummary:
    """KPIs of every product the run asked for, on the run's day (idempotent upserts)."""
    scope = repo.run_scope(session, run_id)
    if scope is None:
        log.warning("kpis.run_unknown", run_id=str(run_id))
        return KpiRunSummary(run_id, None, 0)
    day = run_day(scope)
    done = 0
    for asin in scope.asins:
        if compute_and_store(session, scope.marketplace, asin, day) is not None:
            done += 1
    log.info("kpis.computed", run_id=str(run_id), day=str(day), products=done)
    return KpiRunSummary(run_id, day, done)
