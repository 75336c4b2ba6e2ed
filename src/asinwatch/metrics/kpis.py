"""KPIs of one product on one day, from its daily series and reviews (pure functions).

What is computed (docs/brief/market.md, "KPIs"): price windows and changes, BSR medians and trend,
review velocity, rating change, share of 1-2 star, offers and buy-box share, out-of-stock
share, an estimate of monthly sales that states its method and expected error, and a listing
quality score whose parts are visible. Also the listing text checks (title characters,
promotional phrases, repeated words, bullet content) shared with the recommendation rules.

Rules every KPI follows: only validated observations count; a KPI without enough data is
None (never a made-up 0); the output is JSON-serialisable through `ProductKpis.to_dict()`.
"""

from __future__ import annotations

import itertools
import re
import statistics
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from asinwatch.ingestion.records import ListingContent, ReviewRecord
from asinwatch.metrics.series import MetricPoint, daily_series, in_window

PRICE_WINDOWS = (7, 30, 90)
CHANGE_SPANS = (1, 7, 30)
VELOCITY_WINDOWS = (7, 30)
AVAILABILITY_WINDOWS = (30, 90)
BUYBOX_SHARE_DAYS = 30
_NO_DATA_DAY = date(2000, 1, 1)


# ---------------------------------------------------------------------------- output types


@dataclass(frozen=True, slots=True)
class PriceWindow:
    min: float
    max: float
    avg: float
    observations: int


@dataclass(frozen=True, slots=True)
class Change:
    """A change of a value between a reference day and the current day."""

    since: date
    old: float
    new: float
    abs: float
    pct: float | None  # None when the old value is 0


@dataclass(frozen=True, slots=True)
class PriceKpis:
    current: float | None
    currency: str | None
    windows: dict[str, PriceWindow | None]  # "7d", "30d", "90d"
    changes: dict[str, Change | None]  # "1d", "7d", "30d"
    is_lowest_in_90_days: bool | None


@dataclass(frozen=True, slots=True)
class BsrTrend:
    slope_per_day: float  # least-squares slope of the rank; negative = improving
    direction: str  # "improving" | "worsening" | "flat"
    pct_change_7d_vs_30d: float | None  # median 7d vs median 30d


@dataclass(frozen=True, slots=True)
class CategoryRankKpi:
    category: str | None
    rank: int


@dataclass(frozen=True, slots=True)
class BsrKpis:
    current: int | None
    category: str | None
    per_category: tuple[CategoryRankKpi, ...]
    median_7d: float | None
    median_30d: float | None
    trend: BsrTrend | None
    rank_drops_30d: int | None  # day-over-day rank improvements (each suggests sales)


@dataclass(frozen=True, slots=True)
class Velocity:
    per_day: float
    method: str  # "review_count_delta" | "review_dates"
    days: int


@dataclass(frozen=True, slots=True)
class LowStarShare:
    share: float  # 0..1
    method: str  # "stars_breakdown" | "reviews_sample"
    sample_size: int | None


@dataclass(frozen=True, slots=True)
class ReviewKpis:
    count: int | None
    velocity: dict[str, Velocity | None]  # "7d", "30d"
    rating: float | None
    rating_change_30d: Change | None
    share_1_2_star: LowStarShare | None


@dataclass(frozen=True, slots=True)
class OfferKpis:
    offer_count: int | None
    buybox_seller_id: str | None
    buybox_seller_name: str | None
    buybox_share_30d: float | None  # 0..1; None without own seller ids or observations
    buybox_observations_30d: int


@dataclass(frozen=True, slots=True)
class AvailabilityKpis:
    oos_pct_30d: float | None
    oos_pct_90d: float | None
    observations_30d: int
    observations_90d: int


@dataclass(frozen=True, slots=True)
class SalesEstimate:
    monthly_units: int
    low: int
    high: int | None
    method: str  # "monthly_purchase_volume" | "bsr_curve" | "review_velocity"
    expected_error: str
    basis: dict[str, Any]


@dataclass(frozen=True, slots=True)
class QualityPart:
    name: str
    points: float | None  # None: not enough data for this part
    max_points: float
    value: Any
    rule: str


@dataclass(frozen=True, slots=True)
class ListingQuality:
    score: int | None  # 0..100; None when any part is unknown
    parts: tuple[QualityPart, ...]
    missing: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ProductKpis:
    as_of: date | None
    observed_on: date | None  # the day of the latest validated observation used as "current"
    observations: int
    price: PriceKpis
    bsr: BsrKpis
    reviews: ReviewKpis
    offers: OfferKpis
    availability: AvailabilityKpis
    sales: SalesEstimate | None
    listing_quality: ListingQuality

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (dates as ISO strings, tuples as lists)."""
        result = to_jsonable(self)
        assert isinstance(result, dict)
        return result


def to_jsonable(value: Any) -> Any:
    """Dataclasses, dates, Decimals, tuples and sets to plain JSON values (recursively)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(to_jsonable(v) for v in value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


# ---------------------------------------------------------------------------- settings


@dataclass(frozen=True, slots=True)
class SalesCurve:
    """Monthly units = a * rank ** -b, fitted per category; `expected_error_pct` is its error."""

    a: float
    b: float
    expected_error_pct: int = 50


# A generic curve for categories without a fitted one: much less precise, and it says so.
DEFAULT_SALES_CURVE = SalesCurve(a=50_000.0, b=0.75, expected_error_pct=100)


@dataclass(frozen=True, slots=True)
class KpiSettings:
    own_seller_ids: frozenset[str] = frozenset()
    sales_curves: Mapping[str, SalesCurve] = field(default_factory=dict)
    default_sales_curve: SalesCurve | None = DEFAULT_SALES_CURVE
    # Share of buyers who leave a review (heuristic; anchors use 1-3 %).
    review_rate: float = 0.02
    review_rate_error_pct: int = 60


# ---------------------------------------------------------------------------- helpers


def _f(value: Decimal | float | int | None) -> float | None:
    return None if value is None else float(value)


def _r2(value: float) -> float:
    return round(value, 2)


def _reference(
    points: Sequence[MetricPoint], as_of: date, span: int, attr: str
) -> MetricPoint | None:
    """The latest point with `attr` set in [as_of - 2*span, as_of - span].

    Bounded on both sides so a "1-day change" never compares with a month-old value.
    """
    lo, hi = as_of - timedelta(days=2 * span), as_of - timedelta(days=span)
    candidates = [p for p in points if lo <= p.date <= hi and getattr(p, attr) is not None]
    return candidates[-1] if candidates else None


def _change(old: float, new: float, since: date, digits: int = 2) -> Change:
    pct = None if old == 0 else round((new - old) / old * 100, 2)
    return Change(since=since, old=old, new=new, abs=round(new - old, digits), pct=pct)


def _slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


# ---------------------------------------------------------------------------- price


def price_kpis(points: Sequence[MetricPoint], as_of: date) -> PriceKpis:
    """Buy-box price KPIs over a validated daily series ending on or before `as_of`."""
    current = points[-1] if points else None
    now = _f(current.buybox_price) if current else None
    windows: dict[str, PriceWindow | None] = {}
    for days in PRICE_WINDOWS:
        prices = [
            float(p.buybox_price)
            for p in in_window(points, as_of, days)
            if p.buybox_price is not None
        ]
        windows[f"{days}d"] = (
            PriceWindow(
                min=min(prices),
                max=max(prices),
                avg=_r2(statistics.fmean(prices)),
                observations=len(prices),
            )
            if prices
            else None
        )
    changes: dict[str, Change | None] = {}
    for span in CHANGE_SPANS:
        ref = _reference(points, as_of, span, "buybox_price")
        changes[f"{span}d"] = (
            _change(float(ref.buybox_price), now, ref.date)
            if ref is not None and ref.buybox_price is not None and now is not None
            else None
        )
    w90 = windows["90d"]
    # One observation is trivially "the lowest": say nothing until there are two.
    lowest = None if now is None or w90 is None or w90.observations < 2 else now <= w90.min
    return PriceKpis(
        current=now,
        currency=current.currency if current else None,
        windows=windows,
        changes=changes,
        is_lowest_in_90_days=lowest,
    )


# ---------------------------------------------------------------------------- BSR


def bsr_kpis(points: Sequence[MetricPoint], as_of: date) -> BsrKpis:
    """Main-category BSR: current, 7/30-day medians and trend within the current category."""
    current = points[-1] if points else None
    if current is None or current.bsr is None:
        per = (
            tuple(CategoryRankKpi(r.category, r.rank) for r in current.bsr_ranks) if current else ()
        )
        return BsrKpis(None, None, per, None, None, None, None)
    category = current.bsr_category
    per_category = tuple(CategoryRankKpi(r.category, r.rank) for r in current.bsr_ranks) or (
        CategoryRankKpi(category, current.bsr),
    )
    # Ranks of different categories are not comparable: keep the current category only.
    same = [p for p in points if p.bsr is not None and p.bsr_category == category]
    w7 = [float(p.bsr) for p in in_window(same, as_of, 7) if p.bsr is not None]
    w30_points = in_window(same, as_of, 30)
    w30 = [float(p.bsr) for p in w30_points if p.bsr is not None]
    median_7d = statistics.median(w7) if w7 else None
    median_30d = statistics.median(w30) if w30 else None
    trend = None
    if len(w30) >= 3:
        xs = [float((p.date - as_of).days) for p in w30_points]
        slope = _slope(xs, w30)
        direction = "improving" if slope < 0 else "worsening" if slope > 0 else "flat"
        pct = (
            _r2((median_7d - median_30d) / median_30d * 100)
            if median_7d is not None and median_30d
            else None
        )
        trend = BsrTrend(
            slope_per_day=round(slope, 4), direction=direction, pct_change_7d_vs_30d=pct
        )
    drops = sum(1 for a, b in itertools.pairwise(w30) if b < a) if len(w30) >= 2 else None
    return BsrKpis(
        current=current.bsr,
        category=category,
        per_category=per_category,
        median_7d=median_7d,
        median_30d=median_30d,
        trend=trend,
        rank_drops_30d=drops,
    )


# ---------------------------------------------------------------------------- reviews


_STAR_KEY = re.compile(r"([1-5])")


def low_star_share_from_breakdown(breakdown: Mapping[str, float] | None) -> float | None:
    """Share (0..1) of 1-2 star ratings; keys like "1", "1_star", "oneStar1"; values any scale.

    Values are normalised by their sum, so percentages, fractions and counts all work.
    """
    if not breakdown:
        return None
    by_star: dict[int, float] = {}
    for key, value in breakdown.items():
        match = _STAR_KEY.search(str(key))
        if match and value is not None and value >= 0:
            by_star[int(match.group(1))] = by_star.get(int(match.group(1)), 0.0) + float(value)
    total = sum(by_star.values())
    if total <= 0:
        return None
    return round((by_star.get(1, 0.0) + by_star.get(2, 0.0)) / total, 4)


def _review_day(review: ReviewRecord) -> date:
    return review.review_date or review.observed_at.date()


def review_kpis(
    points: Sequence[MetricPoint], as_of: date, reviews: Sequence[ReviewRecord] = ()
) -> ReviewKpis:
    """Review count, velocity (7/30 days), rating and its 30-day change, share of 1-2 star."""
    current = points[-1] if points else None
    velocity: dict[str, Velocity | None] = {}
    for days in VELOCITY_WINDOWS:
        value: Velocity | None = None
        ref = _reference(points, as_of, days, "review_count")
        if (
            current is not None
            and current.review_count is not None
            and ref is not None
            and ref.review_count is not None
            and current.date > ref.date
        ):
            span = (current.date - ref.date).days
            value = Velocity(
                per_day=round((current.review_count - ref.review_count) / span, 4),
                method="review_count_delta",
                days=span,
            )
        elif reviews:
            # The reviews actor returns the newest reviews, so a count in the window is a
            # lower bound of the real velocity; the method says so.
            start = as_of - timedelta(days=days)
            recent = sum(1 for r in reviews if start < _review_day(r) <= as_of)
            value = Velocity(per_day=round(recent / days, 4), method="review_dates", days=days)
        velocity[f"{days}d"] = value
    rating = _f(current.rating) if current else None
    ref30 = _reference(points, as_of, 30, "rating")
    rating_change = (
        _change(float(ref30.rating), rating, ref30.date)
        if ref30 is not None and ref30.rating is not None and rating is not None
        else None
    )
    share: LowStarShare | None = None
    from_breakdown = low_star_share_from_breakdown(current.stars_breakdown) if current else None
    if from_breakdown is not None:
        share = LowStarShare(share=from_breakdown, method="stars_breakdown", sample_size=None)
    elif reviews:
        low = sum(1 for r in reviews if r.rating <= 2)
        share = LowStarShare(
            share=round(low / len(reviews), 4), method="reviews_sample", sample_size=len(reviews)
        )
    return ReviewKpis(
        count=current.review_count if current else None,
        velocity=velocity,
        rating=rating,
        rating_change_30d=rating_change,
        share_1_2_star=share,
    )


# ---------------------------------------------------------------------------- offers, stock


def offer_kpis(
    points: Sequence[MetricPoint], as_of: date, own_seller_ids: Collection[str] = ()
) -> OfferKpis:
    """Offer count, buy-box holder and the share of 30-day observations we held the buy box."""
    current = points[-1] if points else None
    window = in_window(points, as_of, BUYBOX_SHARE_DAYS)
    share = None
    if own_seller_ids and window:
        held = sum(1 for p in window if p.buybox_seller_id in own_seller_ids)
        share = round(held / len(window), 4)
    return OfferKpis(
        offer_count=current.offer_count if current else None,
        buybox_seller_id=current.buybox_seller_id if current else None,
        buybox_seller_name=current.buybox_seller_name if current else None,
        buybox_share_30d=share,
        buybox_observations_30d=len(window),
    )


def _oos_pct(points: Sequence[MetricPoint]) -> tuple[float | None, int]:
    known = [p for p in points if p.validated and p.in_stock is not None]
    if not known:
        return None, 0
    out = sum(1 for p in known if p.in_stock is False)
    return _r2(out / len(known) * 100), len(known)


def availability_kpis(points: Sequence[MetricPoint], as_of: date) -> AvailabilityKpis:
    """Out-of-stock % over 30/90 days, among validated observations with a known stock flag."""
    pct30, n30 = _oos_pct(in_window(points, as_of, 30))
    pct90, n90 = _oos_pct(in_window(points, as_of, 90))
    return AvailabilityKpis(
        oos_pct_30d=pct30, oos_pct_90d=pct90, observations_30d=n30, observations_90d=n90
    )


# ---------------------------------------------------------------------------- sales


def estimate_monthly_sales(
    current: MetricPoint | None,
    review_velocity_30d: Velocity | None = None,
    settings: KpiSettings | None = None,
) -> SalesEstimate | None:
    """Estimated monthly units, saying how and how wrong it may be.

    1. Amazon's "N+ bought in past month" when present (a rounded-down bucket: a floor).
    2. Otherwise the BSR through the category's power-law curve (or the generic one).
    3. Otherwise review velocity divided by the review rate.
    """
    settings = settings or KpiSettings()
    if current is not None and current.monthly_purchase_volume is not None:
        mpv = current.monthly_purchase_volume
        return SalesEstimate(
            monthly_units=mpv,
            low=mpv,
            high=None,
            method="monthly_purchase_volume",
            expected_error="floor: Amazon shows a rounded-down bucket (e.g. '1K+')",
            basis={"monthly_purchase_volume": mpv},
        )
    if current is not None and current.bsr is not None and current.bsr > 0:
        curve = settings.sales_curves.get(current.bsr_category or "")
        generic = curve is None
        curve = curve or settings.default_sales_curve
        if curve is not None:
            units = curve.a * current.bsr ** (-curve.b)
            err = curve.expected_error_pct / 100
            return SalesEstimate(
                monthly_units=round(units),
                low=max(0, round(units * (1 - err))),
                high=round(units * (1 + err)),
                method="bsr_curve",
                expected_error=f"±{curve.expected_error_pct}%",
                basis={
                    "bsr": current.bsr,
                    "category": current.bsr_category,
                    "curve": {"a": curve.a, "b": curve.b},
                    "generic_curve": generic,
                },
            )
    if review_velocity_30d is not None and review_velocity_30d.per_day > 0:
        units = review_velocity_30d.per_day * 30 / settings.review_rate
        err = settings.review_rate_error_pct / 100
        return SalesEstimate(
            monthly_units=round(units),
            low=max(0, round(units * (1 - err))),
            high=round(units * (1 + err)),
            method="review_velocity",
            expected_error=f"±{settings.review_rate_error_pct}%",
            basis={
                "reviews_per_day": review_velocity_30d.per_day,
                "review_rate": settings.review_rate,
            },
        )
    return None


# ---------------------------------------------------------------------------- listing text

TITLE_MAX_CHARS = 200
TITLE_MOBILE_CHARS = 80
TITLE_MIN_USEFUL_CHARS = 30
FORBIDDEN_TITLE_CHARS = ("!", "$", "?", "_", "{", "}", "^", "¬", "¦")
PROMOTIONAL_PHRASES = (
    "free shipping",
    "best seller",
    "bestseller",
    "best-selling",
    "best selling",
    "hot sale",
    "on sale",
    "sale",
    "limited time",
    "discount",
    "cheapest",
    "clearance",
    "buy now",
    "free gift",
    "top rated",
    "100% satisfaction",
    "money back",
    "guaranteed",
    "#1",
    "black friday",
    "cyber monday",
    "prime day",
)
# Articles, prepositions and conjunctions may repeat in a title.
TITLE_REPEAT_EXEMPT = frozenset(
    {
        *("a", "an", "the", "and", "or", "nor", "but", "for", "of", "in", "on", "at", "to"),
        *("by", "with", "from", "into", "onto", "over", "under", "per", "as", "vs", "via"),
        *("x", "up", "out", "off"),
    }
)
MIN_BULLETS = 5
MIN_IMAGES = 6
MIN_DESCRIPTION_CHARS = 1000

_EMOJI = re.compile(
    "[\U0001f000-\U0001faff\U00002600-\U000027bf\U0001f1e6-\U0001f1ff\ufe0f\u2b50\u2b55\u2705]"
)
_URL = re.compile(r"(https?://|www\.)\S+|\b[\w-]+\.(com|net|org|io|co|shop|store)\b", re.I)
_PHONE = re.compile(r"(?<!\w)(\+?\d{1,3}[\s.-]?)?\(?\d{3}\)?[\s.-]?\d{3}[\s.-]?\d{4}(?!\w)")
_PLACEHOLDER = re.compile(r"(?<!\w)(n/a|tbd|tba)(?!\w)", re.I)
_GUARANTEE = re.compile(r"\b(guarantee[sd]?|money[- ]back|refund(s|able)?)\b", re.I)
_WORD = re.compile(r"[\w][\w'-]*", re.UNICODE)


def forbidden_title_chars(title: str) -> list[str]:
    """The forbidden characters present in the title, in the rule's order."""
    return [c for c in FORBIDDEN_TITLE_CHARS if c in title]


def promotional_phrases(text: str) -> list[str]:
    """Promotional phrases found (whole words, case-insensitive), longest match wins."""
    found: list[str] = []
    lowered = text.lower()
    for phrase in PROMOTIONAL_PHRASES:
        pattern = r"(?<![\w])" + re.escape(phrase) + r"(?![\w])"
        if re.search(pattern, lowered) and not any(phrase in longer for longer in found):
            found.append(phrase)
    return found


def repeated_title_words(title: str, max_repeats: int = 2) -> dict[str, int]:
    """Words used more than `max_repeats` times (case-insensitive; exempt small words)."""
    counts = Counter(w.lower() for w in _WORD.findall(title))
    return {
        w: n for w, n in sorted(counts.items()) if n > max_repeats and w not in TITLE_REPEAT_EXEMPT
    }


def bullet_issues(bullet: str) -> list[str]:
    """Policy problems in one bullet: emoji, trademark, placeholder, guarantee, url, phone."""
    issues: list[str] = []
    if _EMOJI.search(bullet):
        issues.append("emoji")
    if "™" in bullet or "®" in bullet:
        issues.append("trademark_symbol")
    if _PLACEHOLDER.search(bullet):
        issues.append("placeholder")
    if _GUARANTEE.search(bullet):
        issues.append("guarantee")
    if _URL.search(bullet):
        issues.append("url")
    if _PHONE.search(bullet):
        issues.append("phone")
    return issues


# ---------------------------------------------------------------------------- listing quality


def _title_length_points(title: str) -> tuple[float, str]:
    n = len(title)
    if n == 0 or n > TITLE_MAX_CHARS:
        return 0.0, f"1..{TITLE_MAX_CHARS} chars (hard limit)"
    if n < TITLE_MIN_USEFUL_CHARS:
        return 10.0, f">= {TITLE_MIN_USEFUL_CHARS} chars to carry keywords"
    if n >= TITLE_MOBILE_CHARS:
        return 15.0, f"< {TITLE_MOBILE_CHARS} chars shows in full on mobile"
    return 20.0, f"{TITLE_MIN_USEFUL_CHARS}..{TITLE_MOBILE_CHARS - 1} chars"


def listing_quality(
    content: ListingContent | None, point: MetricPoint | None = None
) -> ListingQuality:
    """Listing quality 0-100 from weighted parts (each visible with its value and rule).

    Weights: title length 20, title compliance 10, bullet count 15, bullet content 5,
    images 20, A+ 15, description 15. Counts fall back to the metric point (image_count,
    bullet_count, has_aplus) when the content is not at hand. The score is None when a
    part is unknown: a partial score would not be comparable between products.
    """
    parts: list[QualityPart] = []
    title = content.title if content else None
    if title is None:
        parts.append(QualityPart("title_length", None, 20, None, "title known"))
        parts.append(QualityPart("title_compliance", None, 10, None, "title known"))
    else:
        pts, rule = _title_length_points(title)
        parts.append(QualityPart("title_length", pts, 20, len(title), rule))
        bad_chars = forbidden_title_chars(title)
        promo = promotional_phrases(title)
        repeats = repeated_title_words(title)
        compliance = 10.0 - 4.0 * bool(bad_chars) - 3.0 * bool(promo) - 3.0 * bool(repeats)
        parts.append(
            QualityPart(
                "title_compliance",
                compliance,
                10,
                {"forbidden_chars": bad_chars, "promotional": promo, "repeated_words": repeats},
                "no forbidden chars (4), no promotional phrases (3), no word > 2 times (3)",
            )
        )
    bullets: tuple[str, ...] | None = content.bullets if content else None
    bullet_count = len(bullets) if bullets is not None else (point.bullet_count if point else None)
    parts.append(
        QualityPart(
            "bullets_count",
            None if bullet_count is None else 3.0 * min(bullet_count, MIN_BULLETS),
            15,
            bullet_count,
            f">= {MIN_BULLETS} bullets (3 points each)",
        )
    )
    if bullets is None:
        parts.append(QualityPart("bullets_content", None, 5, None, "bullets known"))
    else:
        issues = {i: bullet_issues(b) for i, b in enumerate(bullets) if bullet_issues(b)}
        parts.append(
            QualityPart(
                "bullets_content",
                0.0 if issues else 5.0,
                5,
                {str(i): v for i, v in issues.items()},
                "no emoji, ™/®, N/A/TBD, guarantees, URLs or phone numbers",
            )
        )
    images = len(content.images) if content else (point.image_count if point else None)
    parts.append(
        QualityPart(
            "images",
            None if images is None else _r2(20.0 * min(images, MIN_IMAGES) / MIN_IMAGES),
            20,
            images,
            f">= {MIN_IMAGES} images",
        )
    )
    aplus: bool | None = bool(content.aplus) if content else (point.has_aplus if point else None)
    parts.append(
        QualityPart(
            "aplus", None if aplus is None else 15.0 * aplus, 15, aplus, "A+ content present"
        )
    )
    description = content.description if content else None
    if content is None:
        parts.append(QualityPart("description", None, 15, None, "description known"))
    else:
        n = len(description or "")
        pts = 15.0 if n > MIN_DESCRIPTION_CHARS else _r2(15.0 * n / MIN_DESCRIPTION_CHARS)
        parts.append(QualityPart("description", pts, 15, n, f"> {MIN_DESCRIPTION_CHARS} chars"))
    missing = tuple(p.name for p in parts if p.points is None)
    score = None if missing else round(sum(p.points or 0.0 for p in parts))
    return ListingQuality(score=score, parts=tuple(parts), missing=missing)


# ---------------------------------------------------------------------------- entry point


def compute_kpis(
    history: Sequence[MetricPoint],
    *,
    as_of: date | None = None,
    reviews: Sequence[ReviewRecord] = (),
    listing: ListingContent | None = None,
    settings: KpiSettings | None = None,
) -> ProductKpis:
    """All KPIs of a product for the day `as_of` (default: its latest validated observation).

    `history` may hold unvalidated points and several per day: only the latest validated
    observation of each day up to `as_of` counts.
    """
    settings = settings or KpiSettings()
    points = daily_series(history)
    if as_of is not None:
        points = [p for p in points if p.date <= as_of]
    elif points:
        as_of = points[-1].date
    elif reviews:
        as_of = max(_review_day(r) for r in reviews)
    # With no data at all every KPI is None whatever the day; any fixed day avoids date.min
    # arithmetic overflowing.
    day = as_of or _NO_DATA_DAY
    current = points[-1] if points else None
    reviews_until = [r for r in reviews if _review_day(r) <= day]
    review = review_kpis(points, day, reviews_until)
    return ProductKpis(
        as_of=as_of,
        observed_on=current.date if current else None,
        observations=len(points),
        price=price_kpis(points, day),
        bsr=bsr_kpis(points, day),
        reviews=review,
        offers=offer_kpis(points, day, settings.own_seller_ids),
        availability=availability_kpis(points, day),
        sales=estimate_monthly_sales(current, review.velocity.get("30d"), settings),
        listing_quality=listing_quality(listing, current),
    )
