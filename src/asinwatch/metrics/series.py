"""The in-memory daily series of one product: `MetricPoint` and how to build it (pure).

A `MetricPoint` is one observation of a product on a day, with the columns of
`core.product_metrics_daily` that the analytics layer reads. Rows from the database are
validated observations; a caller may also build a point from an observation that failed
validation (a block page, say) with ``validated=False`` so detectors can ignore it
explicitly instead of trusting it.

Missing values stay None (never 0): a missing price is not a free product.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from asinwatch.ingestion.records import CategoryRank, ProductRecord

FINGERPRINT_FIELDS = ("title", "bullets", "description", "images", "aplus", "variants")


class MetricRowError(ValueError):
    """A row that cannot become a MetricPoint; the message names the column and the value."""


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One daily observation of a product (the latest validated one of that day)."""

    date: date
    observed_at: datetime | None = None
    buybox_price: Decimal | None = None
    list_price: Decimal | None = None
    currency: str | None = None
    in_stock: bool | None = None
    buybox_seller_id: str | None = None
    buybox_seller_name: str | None = None
    offer_count: int | None = None
    bsr: int | None = None
    bsr_category: str | None = None
    bsr_ranks: tuple[CategoryRank, ...] = ()
    rating: Decimal | None = None
    review_count: int | None = None
    stars_breakdown: Mapping[str, float] | None = None
    monthly_purchase_volume: int | None = None
    fingerprints: Mapping[str, str] = field(default_factory=dict)
    image_count: int | None = None
    bullet_count: int | None = None
    has_aplus: bool | None = None
    validated: bool = True


def _decimal(row: Mapping[str, Any], key: str) -> Decimal | None:
    value = row.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, float, str)):
        raise MetricRowError(f"{key}: expected a number, got {type(value).__name__} {value!r}")
    try:
        result = Decimal(str(value)) if not isinstance(value, Decimal) else value
    except InvalidOperation as exc:
        raise MetricRowError(f"{key}: not a number: {value!r}") from exc
    if not result.is_finite():
        raise MetricRowError(f"{key}: not a finite number: {value!r}")
    return result


def _int(row: Mapping[str, Any], key: str) -> int | None:
    value = row.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise MetricRowError(f"{key}: expected an integer, got {type(value).__name__} {value!r}")
    return value


def _bool(row: Mapping[str, Any], key: str) -> bool | None:
    value = row.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise MetricRowError(f"{key}: expected a boolean, got {type(value).__name__} {value!r}")


def _str(row: Mapping[str, Any], key: str) -> str | None:
    value = row.get(key)
    if value is None or isinstance(value, str):
        return value
    raise MetricRowError(f"{key}: expected text, got {type(value).__name__} {value!r}")


def _datetime(row: Mapping[str, Any], key: str) -> datetime | None:
    value = row.get(key)
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError as exc:
            raise MetricRowError(f"{key}: not an ISO datetime: {value!r}") from exc
    raise MetricRowError(f"{key}: expected a datetime, got {type(value).__name__} {value!r}")


def _date(row: Mapping[str, Any], observed_at: datetime | None) -> date:
    value = row.get("date")
    if value is None:
        if observed_at is None:
            raise MetricRowError("date: missing, and no observed_at to derive it from")
        return observed_at.date()
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError as exc:
            raise MetricRowError(f"date: not an ISO date: {value!r}") from exc
    raise MetricRowError(f"date: expected a date, got {type(value).__name__} {value!r}")


def _ranks(value: Any) -> tuple[CategoryRank, ...]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise MetricRowError(f"bsr_ranks: expected a list, got {type(value).__name__}")
    ranks: list[CategoryRank] = []
    for item in value:
        if isinstance(item, CategoryRank):
            ranks.append(item)
            continue
        if not isinstance(item, Mapping):
            raise MetricRowError(f"bsr_ranks: expected {{category, rank}} items, got {item!r}")
        category, rank = item.get("category"), item.get("rank")
        if not isinstance(category, str) or isinstance(rank, bool) or not isinstance(rank, int):
            raise MetricRowError(f"bsr_ranks: bad item {item!r}")
        ranks.append(CategoryRank(category=category, rank=rank))
    return tuple(ranks)


def _stars(value: Any) -> dict[str, float] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise MetricRowError(f"stars_breakdown: expected a mapping, got {type(value).__name__}")
    out: dict[str, float] = {}
    for key, share in value.items():
        if isinstance(share, bool) or not isinstance(share, (int, float, Decimal)):
            raise MetricRowError(f"stars_breakdown[{key!r}]: expected a number, got {share!r}")
        out[str(key)] = float(share)
    return out


def _fingerprints(row: Mapping[str, Any]) -> dict[str, str]:
    given = row.get("fingerprints")
    if given is not None:
        if not isinstance(given, Mapping):
            raise MetricRowError("fingerprints: expected a mapping")
        return {str(k): str(v) for k, v in given.items() if v is not None}
    # Database rows carry one column per fingerprint (title_fp, bullets_fp, ...).
    return {
        name: str(row[f"{name}_fp"])
        for name in FINGERPRINT_FIELDS
        if row.get(f"{name}_fp") is not None
    }


def point_from_row(row: Mapping[str, Any]) -> MetricPoint:
    """A MetricPoint from a row dict of `product_metrics_daily` (or `mart.product_latest`).

    Unknown keys are ignored (marketplace, asin, run_id, ...); a value of the wrong type raises
    `MetricRowError` naming the column. ``validated`` defaults to True: stored rows are validated.
    """
    observed_at = _datetime(row, "observed_at")
    validated = row.get("validated", True)
    if not isinstance(validated, bool):
        raise MetricRowError(f"validated: expected a boolean, got {validated!r}")
    return MetricPoint(
        date=_date(row, observed_at),
        observed_at=observed_at,
        buybox_price=_decimal(row, "buybox_price"),
        list_price=_decimal(row, "list_price"),
        currency=_str(row, "currency"),
        in_stock=_bool(row, "in_stock"),
        buybox_seller_id=_str(row, "buybox_seller_id"),
        buybox_seller_name=_str(row, "buybox_seller_name"),
        offer_count=_int(row, "offer_count"),
        bsr=_int(row, "bsr"),
        bsr_category=_str(row, "bsr_category"),
        bsr_ranks=_ranks(row.get("bsr_ranks")),
        rating=_decimal(row, "rating"),
        review_count=_int(row, "review_count"),
        stars_breakdown=_stars(row.get("stars_breakdown")),
        monthly_purchase_volume=_int(row, "monthly_purchase_volume"),
        fingerprints=_fingerprints(row),
        image_count=_int(row, "image_count"),
        bullet_count=_int(row, "bullet_count"),
        has_aplus=_bool(row, "has_aplus"),
        validated=validated,
    )


def point_from_record(record: ProductRecord, *, validated: bool = True) -> MetricPoint:
    """A MetricPoint from a normalised ProductRecord (the run's observation)."""
    return MetricPoint(
        date=record.observed_at.date(),
        observed_at=record.observed_at,
        buybox_price=record.buybox_price,
        list_price=record.list_price,
        currency=record.currency,
        in_stock=record.in_stock,
        buybox_seller_id=record.buybox_seller_id,
        buybox_seller_name=record.buybox_seller_name,
        offer_count=record.offer_count,
        bsr=record.bsr,
        bsr_category=record.bsr_category,
        bsr_ranks=record.bsr_ranks,
        rating=record.rating,
        review_count=record.review_count,
        stars_breakdown=record.stars_breakdown,
        monthly_purchase_volume=record.monthly_purchase_volume,
        fingerprints=dict(record.fingerprints),
        image_count=record.image_count,
        bullet_count=record.bullet_count,
        has_aplus=record.has_aplus,
        validated=validated,
    )


def _order_key(point: MetricPoint) -> tuple[date, datetime]:
    observed = point.observed_at or datetime.min
    if observed.tzinfo is not None:
        observed = observed.replace(tzinfo=None) - (observed.utcoffset() or timedelta(0))
    return (point.date, observed)


def daily_series(
    points: Iterable[MetricPoint], *, validated_only: bool = True
) -> list[MetricPoint]:
    """Points sorted by date, one per day (the latest observed that day wins).

    With ``validated_only`` (the default) unvalidated points are dropped first, so a block
    page never hides the day's good observation.
    """
    by_day: dict[date, MetricPoint] = {}
    for point in sorted(points, key=_order_key):
        if validated_only and not point.validated:
            continue
        by_day[point.date] = point
    return [by_day[d] for d in sorted(by_day)]


def points_from_rows(rows: Iterable[Mapping[str, Any]]) -> list[MetricPoint]:
    """Row dicts to a daily series (sorted, one point per day)."""
    return daily_series((point_from_row(row) for row in rows), validated_only=False)


def in_window(points: Sequence[MetricPoint], end: date, days: int) -> list[MetricPoint]:
    """The points of the `days`-day window ending on `end` inclusive: end-days < date <= end."""
    start = end - timedelta(days=days)
    return [p for p in points if start < p.date <= end]
