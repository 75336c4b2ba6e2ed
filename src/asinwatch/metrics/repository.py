"""SQL reads and writes of the analytics layer over the metric tables (sync sessions).

Owns: the history reads of one product (daily metric rows, reviews, listing snapshots), the
product facts the detectors need (allow-list, invalid runs, competitor links), the products
of an ingest run, and the upsert of `mart.product_kpis_daily`. Never commits: the caller's
unit of work does (a Celery task's `session_scope`, or the async service via `run_sync`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import text
from sqlalchemy.orm import Session

from asinwatch.ingestion.records import ListingContent, ReviewRecord
from asinwatch.metrics.models import METRIC_COLUMNS
from asinwatch.metrics.series import MetricPoint, point_from_row

HISTORY_DAYS = 120
_ROW_COLUMNS = ", ".join(("date", *METRIC_COLUMNS))


@dataclass(frozen=True, slots=True)
class ProductFacts:
    """The catalog row of a product, as the analytics layer reads it."""

    marketplace: str
    asin: str
    title: str | None
    is_own: bool
    seller_allowlist: tuple[str, ...]
    invalid_runs: int
    tracking_state: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One stored listing content, with when it was first seen and by which run."""

    content: ListingContent
    observed_at: datetime
    run_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class RunScope:
    """The products an ingest run asked for, and the day its observations count for."""

    run_id: uuid.UUID
    marketplace: str
    asins: tuple[str, ...]
    observed_at: datetime | None
    kind: str


def load_history(
    session: Session, marketplace: str, asin: str, *, end: date, days: int = HISTORY_DAYS
) -> list[MetricPoint]:
    """Validated daily rows of the `days` days ending on `end` (inclusive), oldest first."""
    rows = session.execute(
        text(
            f"SELECT {_ROW_COLUMNS} FROM core.product_metrics_daily"
            " WHERE marketplace = :m AND asin = :a AND date > :start AND date <= :end"
            " ORDER BY date"
        ),
        {"m": marketplace, "a": asin, "start": end - timedelta(days=days), "end": end},
    ).mappings()
    return [point_from_row(dict(row)) for row in rows]


def metric_row_of_run(
    session: Session, marketplace: str, asin: str, run_id: uuid.UUID
) -> MetricPoint | None:
    """The stored observation that this run produced for the product, if any.

    A quarantined or missing item never becomes a metric row, so it is never "current".
    """
    row = (
        session.execute(
            text(
                f"SELECT {_ROW_COLUMNS} FROM core.product_metrics_daily"
                " WHERE marketplace = :m AND asin = :a AND run_id = :r"
                " ORDER BY date DESC LIMIT 1"
            ),
            {"m": marketplace, "a": asin, "r": run_id},
        )
        .mappings()
        .first()
    )
    return point_from_row(dict(row)) if row is not None else None


def latest_metric_date(session: Session, marketplace: str, asin: str) -> date | None:
    value = session.execute(
        text(
            "SELECT max(date) FROM core.product_metrics_daily WHERE marketplace = :m AND asin = :a"
        ),
        {"m": marketplace, "a": asin},
    ).scalar_one_or_none()
    return value if isinstance(value, date) else None


def load_reviews(
    session: Session, marketplace: str, asin: str, *, since: date, until: date
) -> list[ReviewRecord]:
    """Reviews dated in (since, until], oldest first."""
    rows = session.execute(
        text(
            "SELECT review_id, rating, title, body, review_date, is_verified, is_vine, variant,"
            " first_seen_at FROM core.reviews WHERE marketplace = :m AND asin = :a"
            " AND review_date > :since AND review_date <= :until ORDER BY review_date, review_id"
        ),
        {"m": marketplace, "a": asin, "since": since, "until": until},
    ).all()
    return [
        ReviewRecord(
            marketplace=marketplace,
            asin=asin,
            review_id=r.review_id,
            rating=r.rating,
            title=r.title,
            body=r.body,
            review_date=r.review_date,
            is_verified=r.is_verified,
            is_vine=r.is_vine,
            variant=r.variant,
            observed_at=r.first_seen_at,
        )
        for r in rows
    ]


def listing_from_content(content: Mapping[str, Any]) -> ListingContent:
    """A ListingContent from the JSON stored in `core.listing_snapshots.content`."""

    def strings(key: str) -> tuple[str, ...]:
        value = content.get(key) or ()
        return tuple(str(v) for v in value) if isinstance(value, (list, tuple)) else ()

    def opt(key: str) -> str | None:
        value = content.get(key)
        return None if value is None else str(value)

    return ListingContent(
        title=opt("title"),
        bullets=strings("bullets"),
        description=opt("description"),
        images=strings("images"),
        aplus=opt("aplus"),
        variants=strings("variants"),
    )


def latest_snapshots(
    session: Session, marketplace: str, asin: str, *, until: datetime | None = None, limit: int = 2
) -> list[Snapshot]:
    """The newest listing snapshots seen at or before `until`, newest first."""
    rows = session.execute(
        text(
            "SELECT content, observed_at, run_id FROM core.listing_snapshots"
            " WHERE marketplace = :m AND asin = :a"
            " AND (CAST(:until AS timestamptz) IS NULL OR observed_at <= :until)"
            " ORDER BY observed_at DESC, id DESC LIMIT :n"
        ),
        {"m": marketplace, "a": asin, "until": until, "n": limit},
    ).all()
    return [Snapshot(listing_from_content(r.content), r.observed_at, r.run_id) for r in rows]


def product_facts(session: Session, marketplace: str, asin: str) -> ProductFacts | None:
    row = session.execute(
        text(
            "SELECT title, is_own, seller_allowlist, invalid_runs, tracking_state"
            " FROM core.products WHERE marketplace = :m AND asin = :a"
        ),
        {"m": marketplace, "a": asin},
    ).one_or_none()
    if row is None:
        return None
    return ProductFacts(
        marketplace=marketplace,
        asin=asin,
        title=row.title,
        is_own=bool(row.is_own),
        seller_allowlist=tuple(row.seller_allowlist or ()),
        invalid_runs=int(row.invalid_runs or 0),
        tracking_state=row.tracking_state,
    )


def competitor_asins(session: Session, marketplace: str, asin: str) -> list[str]:
    return list(
        session.execute(
            text(
                "SELECT competitor_asin FROM core.competitor_links"
                " WHERE marketplace = :m AND asin = :a ORDER BY competitor_asin"
            ),
            {"m": marketplace, "a": asin},
        ).scalars()
    )


def own_products_linking(session: Session, marketplace: str, asins: Sequence[str]) -> list[str]:
    """Own products that have any of `asins` as a competitor (their reports depend on them)."""
    if not asins:
        return []
    return list(
        session.execute(
            text(
                "SELECT DISTINCT asin FROM core.competitor_links"
                " WHERE marketplace = :m AND competitor_asin = ANY(:c) ORDER BY asin"
            ),
            {"m": marketplace, "c": list(asins)},
        ).scalars()
    )


def latest_points(
    session: Session, marketplace: str, asins: Sequence[str]
) -> dict[str, MetricPoint]:
    """`mart.product_latest` of several products (their latest validated observation)."""
    if not asins:
        return {}
    rows = session.execute(
        text(
            f"SELECT asin, {_ROW_COLUMNS} FROM mart.product_latest"
            " WHERE marketplace = :m AND asin = ANY(:a)"
        ),
        {"m": marketplace, "a": list(asins)},
    ).mappings()
    return {row["asin"]: point_from_row(dict(row)) for row in rows}


def run_scope(session: Session, run_id: uuid.UUID) -> RunScope | None:
    """The run's marketplace, requested ASINs (batch order) and its observation time."""
    run = session.execute(
        text(
            "SELECT marketplace, kind, started_at, created_at FROM core.ingest_runs WHERE id = :r"
        ),
        {"r": run_id},
    ).one_or_none()
    if run is None:
        return None
    batches = session.execute(
        text(
            "SELECT asins, observed_at FROM core.ingest_batches WHERE run_id = :r ORDER BY batch_no"
        ),
        {"r": run_id},
    ).all()
    seen: dict[str, None] = {}
    for b in batches:
        for a in b.asins:
            seen.setdefault(a, None)
    observed = [b.observed_at for b in batches if b.observed_at is not None]
    return RunScope(
        run_id=run_id,
        marketplace=run.marketplace,
        asins=tuple(seen),
        observed_at=max(observed) if observed else (run.started_at or run.created_at),
        kind=run.kind,
    )


def own_products_of_run(session: Session, run_id: uuid.UUID) -> tuple[str, list[str]] | None:
    """Own products whose report and recommendations may change after a run: own products of
    the run, and own products linked to a competitor of the run (with the run's marketplace)."""
    scope = run_scope(session, run_id)
    if scope is None:
        return None
    own = [
        a
        for a in scope.asins
        if (f := product_facts(session, scope.marketplace, a)) is not None and f.is_own
    ]
    linked = own_products_linking(session, scope.marketplace, scope.asins)
    return scope.marketplace, sorted(set(own) | set(linked))


def upsert_kpis(
    session: Session, marketplace: str, asin: str, day: date, kpis: Mapping[str, Any]
) -> None:
    session.execute(
        text(
            "INSERT INTO mart.product_kpis_daily (marketplace, asin, date, kpis, computed_at)"
            " VALUES (:m, :a, :d, :k, now()) ON CONFLICT (marketplace, asin, date)"
            " DO UPDATE SET kpis = EXCLUDED.kpis, computed_at = now()"
        ),
        {"m": marketplace, "a": asin, "d": day, "k": Jsonb(dict(kpis))},
    )
