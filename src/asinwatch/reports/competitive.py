"""The competitive report (pure): our product vs each linked competitor, plus a summary.

`build_competitive_report(own, competitors)` returns a JSON-serialisable body, a Markdown
rendering (a table per competitor and a summary) and an `inputs_hash` (sha256 of the
canonical JSON of the inputs) so a new report version is stored only when inputs change.
The report is complete without any LLM narrative; a narrative may be added beside it.

Gaps are "ours minus theirs" (price gap % is relative to the competitor's price). A gap is
None when either side is missing, or (price) when currencies differ, or (BSR) when the
ranks are in different categories: ranks of different categories are not comparable.
"""

from __future__ import annotations

import hashlib
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from asinwatch.kit import escaping
from asinwatch.metrics.kpis import ProductKpis, to_jsonable
from asinwatch.recommendations.rules import canonical_json

REPORT_FORMAT_VERSION = "competitive/1"
Standing = Literal["ahead", "behind", "even"]


@dataclass(frozen=True, slots=True)
class ProductSnapshot:
    """The facts of one product the report compares (ours or a competitor's)."""

    asin: str
    title: str | None = None
    price: float | None = None
    currency: str | None = None
    rating: float | None = None
    review_count: int | None = None
    review_velocity_30d: float | None = None
    bsr: int | None = None
    bsr_category: str | None = None
    quality_score: int | None = None
    buybox_seller_id: str | None = None
    buybox_seller_name: str | None = None
    in_stock: bool | None = None
    as_of: date | None = None


@dataclass(frozen=True, slots=True)
class CompetitiveReport:
    body: dict[str, Any]
    markdown: str
    inputs_hash: str


def snapshot_from_kpis(
    asin: str, kpis: ProductKpis, *, title: str | None = None, in_stock: bool | None = None
) -> ProductSnapshot:
    """A report snapshot from a product's KPIs."""
    velocity = kpis.reviews.velocity.get("30d")
    return ProductSnapshot(
        asin=asin,
        title=title,
        price=kpis.price.current,
        currency=kpis.price.currency,
        rating=kpis.reviews.rating,
        review_count=kpis.reviews.count,
        review_velocity_30d=velocity.per_day if velocity else None,
        bsr=kpis.bsr.current,
        bsr_category=kpis.bsr.category,
        quality_score=kpis.listing_quality.score,
        buybox_seller_id=kpis.offers.buybox_seller_id,
        buybox_seller_name=kpis.offers.buybox_seller_name,
        in_stock=in_stock,
        as_of=kpis.as_of,
    )


def _sorted(competitors: Sequence[ProductSnapshot]) -> list[ProductSnapshot]:
    return sorted(competitors, key=lambda c: c.asin)


def report_inputs_hash(own: ProductSnapshot, competitors: Sequence[ProductSnapshot]) -> str:
    """sha256 of the canonical JSON of the inputs (competitor order does not matter)."""
    payload = {"format": REPORT_FORMAT_VERSION, "own": own, "competitors": _sorted(competitors)}
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def _sub(a: float | None, b: float | None, digits: int = 2) -> float | None:
    return None if a is None or b is None else round(a - b, digits)


def _standing(gap: float | None, higher_is_better: bool) -> Standing | None:
    if gap is None:
        return None
    if gap == 0:
        return "even"
    return "ahead" if (gap > 0) == higher_is_better else "behind"


def _same_currency(own: ProductSnapshot, comp: ProductSnapshot) -> bool:
    return own.currency is None or comp.currency is None or own.currency == comp.currency


def compare(own: ProductSnapshot, comp: ProductSnapshot) -> dict[str, Any]:
    """Our product vs one competitor: gaps, ratios, standings and what data was missing."""
    notes: list[str] = []
    price_abs = price_pct = None
    if own.price is not None and comp.price is not None:
        if _same_currency(own, comp):
            price_abs = round(own.price - comp.price, 2)
            price_pct = round(price_abs / comp.price * 100, 2) if comp.price else None
        else:
            notes.append(f"prices in different currencies ({own.currency} vs {comp.currency})")
    bsr_ratio = None
    if own.bsr is not None and comp.bsr is not None:
        if own.bsr_category == comp.bsr_category and comp.bsr > 0:
            bsr_ratio = round(own.bsr / comp.bsr, 4)
        else:
            notes.append(f"BSR in different categories ({own.bsr_category} vs {comp.bsr_category})")
    review_gap = (
        None
        if own.review_count is None or comp.review_count is None
        else own.review_count - comp.review_count
    )
    rating_gap = _sub(own.rating, comp.rating)
    velocity_gap = _sub(own.review_velocity_30d, comp.review_velocity_30d, 4)
    quality_gap = (
        None
        if own.quality_score is None or comp.quality_score is None
        else own.quality_score - comp.quality_score
    )
    missing = [
        name
        for name in ("price", "rating", "review_count", "review_velocity_30d", "bsr")
        if getattr(comp, name) is None
    ]
    if comp.quality_score is None:
        missing.append("quality_score")
    return {
        "asin": comp.asin,
        "title": comp.title,
        "competitor": to_jsonable(comp),
        "price_gap_abs": price_abs,
        "price_gap_pct": price_pct,
        "rating_gap": rating_gap,
        "review_count_gap": review_gap,
        "review_velocity_gap": velocity_gap,
        "bsr_ratio": bsr_ratio,  # ours / theirs: > 1 means we rank worse
        "quality_score_gap": quality_gap,
        "buybox_holder": {"id": comp.buybox_seller_id, "name": comp.buybox_seller_name},
        "standing": {
            "price": _standing(price_abs, higher_is_better=False),
            "rating": _standing(rating_gap, higher_is_better=True),
            "review_count": _standing(review_gap, higher_is_better=True),
            "review_velocity": _standing(velocity_gap, higher_is_better=True),
            "bsr": None if bsr_ratio is None else _standing(bsr_ratio - 1, higher_is_better=False),
            "listing_quality": _standing(quality_gap, higher_is_better=True),
        },
        "missing": missing,
        "notes": notes,
    }


def _median(values: Sequence[float | int | None]) -> float | None:
    known = [float(v) for v in values if v is not None]
    return statistics.median(known) if known else None


def _summary(
    own: ProductSnapshot, comps: list[ProductSnapshot], rows: list[dict[str, Any]]
) -> dict[str, Any]:
    if not comps:
        return {
            "competitors": 0,
            "medians": {},
            "own_vs_median": {},
            "price_position": None,
            "standings": {},
            "highlights": ["No competitors are linked to this product: nothing to compare."],
        }
    priced = [c for c in comps if c.price is not None and _same_currency(own, c)]
    same_cat = [c for c in comps if c.bsr is not None and c.bsr_category == own.bsr_category]
    medians = {
        "price": _median([c.price for c in priced]),
        "rating": _median([c.rating for c in comps]),
        "review_count": _median([c.review_count for c in comps]),
        "review_velocity_30d": _median([c.review_velocity_30d for c in comps]),
        "bsr": _median([c.bsr for c in same_cat]),
        "quality_score": _median([c.quality_score for c in comps]),
    }
    price_med = medians["price"]
    own_vs = {
        "price_gap_abs": _sub(own.price, price_med),
        "price_gap_pct": (
            round((own.price - price_med) / price_med * 100, 2)
            if own.price is not None and price_med
            else None
        ),
        "rating_gap": _sub(own.rating, medians["rating"]),
        "review_count_gap": _sub(own.review_count, medians["review_count"], 1),
        "review_velocity_gap": _sub(own.review_velocity_30d, medians["review_velocity_30d"], 4),
        "bsr_ratio": (
            round(own.bsr / medians["bsr"], 4) if own.bsr is not None and medians["bsr"] else None
        ),
        "quality_score_gap": _sub(own.quality_score, medians["quality_score"], 1),
    }
    position = None
    if own.price is not None and priced:
        cheaper = sum(1 for c in priced if c.price is not None and c.price < own.price)
        position = {"rank": cheaper + 1, "of": len(priced) + 1, "cheaper_competitors": cheaper}
    standings: dict[str, dict[str, int]] = {}
    for dim in ("price", "rating", "review_count", "review_velocity", "bsr", "listing_quality"):
        counts = {"ahead": 0, "behind": 0, "even": 0, "unknown": 0}
        for row in rows:
            counts[row["standing"][dim] or "unknown"] += 1
        standings[dim] = counts
    highlights: list[str] = []
    if position is not None:
        highlights.append(
            f"Price rank {position['rank']} of {position['of']} (1 = cheapest);"
            f" {position['cheaper_competitors']} competitor(s) are cheaper."
        )
    if own_vs["price_gap_pct"] is not None:
        word = "above" if own_vs["price_gap_pct"] > 0 else "below"
        if own_vs["price_gap_pct"] == 0:
            highlights.append("Price equals the competitor median.")
        else:
            highlights.append(
                f"Price is {abs(own_vs['price_gap_pct']):.2f}% {word} the competitor median."
            )
    if own_vs["rating_gap"] is not None:
        highlights.append(f"Rating gap vs competitor median: {own_vs['rating_gap']:+.2f}.")
    if own_vs["review_count_gap"] is not None:
        highlights.append(
            f"Review count gap vs competitor median: {own_vs['review_count_gap']:+.0f}."
        )
    if own_vs["bsr_ratio"] is not None:
        better = "better" if own_vs["bsr_ratio"] < 1 else "worse or equal"
        highlights.append(f"BSR is {own_vs['bsr_ratio']:.2f}x the competitor median ({better}).")
    if own_vs["quality_score_gap"] is not None:
        highlights.append(
            f"Listing quality gap vs competitor median: {own_vs['quality_score_gap']:+.0f} points."
        )
    holders = sorted(
        {c.buybox_seller_name or c.buybox_seller_id for c in comps if c.buybox_seller_id}
    )
    if holders:
        highlights.append("Competitor buy-box holders: " + ", ".join(holders) + ".")
    return {
        "competitors": len(comps),
        "medians": medians,
        "own_vs_median": own_vs,
        "price_position": position,
        "standings": standings,
        "highlights": highlights,
    }


def build_competitive_report(
    own: ProductSnapshot, competitors: Sequence[ProductSnapshot]
) -> CompetitiveReport:
    """The report body, its Markdown and the inputs hash (deterministic for equal inputs)."""
    comps = _sorted(competitors)
    rows = [compare(own, c) for c in comps]
    body = {
        "format": REPORT_FORMAT_VERSION,
        "asin": own.asin,
        "own": to_jsonable(own),
        "competitors": rows,
        "summary": _summary(own, comps, rows),
    }
    return CompetitiveReport(
        body=body, markdown=render_markdown(body), inputs_hash=report_inputs_hash(own, comps)
    )


# ---------------------------------------------------------------------------- Markdown

_NA = "—"


def _num(value: Any, fmt: str = "{}") -> str:
    return _NA if value is None else fmt.format(value)


def _money(value: Any, currency: Any) -> str:
    if value is None:
        return _NA
    return f"{value:.2f}" + (f" {currency}" if currency else "")


def _cell(text: object) -> str:
    """Upstream text made inert for Markdown (one line, no links, images, HTML or markup)."""
    return escaping.markdown(text)


def render_narrative(text: str) -> str:
    """The LLM narrative as Markdown paragraphs, each escaped like upstream text."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text.replace("\r", "\n")) if p.strip()]
    return "\n\n".join(_cell(p) for p in paragraphs)


def render_markdown(body: dict[str, Any]) -> str:
    """A readable Markdown report: our product, a summary, then one table per competitor."""
    own = body["own"]
    summary = body["summary"]
    lines = [f"# Competitive report: {_cell(own['asin'])}", ""]
    where = f" in {_cell(own['bsr_category'])}" if own["bsr_category"] else ""
    if own.get("title"):
        lines += [f"**{_cell(own['title'])}**", ""]
    lines += [
        "| Metric | Ours |",
        "|---|---|",
        f"| Price | {_money(own['price'], own['currency'])} |",
        f"| Rating | {_num(own['rating'], '{:.2f}')} |",
        f"| Reviews | {_num(own['review_count'])} |",
        f"| Review velocity (30d, /day) | {_num(own['review_velocity_30d'], '{:.2f}')} |",
        f"| BSR | {_num(own['bsr'])}{where} |",
        f"| Listing quality | {_num(own['quality_score'])} |",
        f"| Buy box | {_cell(own['buybox_seller_name'] or own['buybox_seller_id'] or _NA)} |",
        "",
        "## Summary",
        "",
    ]
    lines += [f"- {_cell(h)}" for h in summary["highlights"]]
    for row in body["competitors"]:
        comp = row["competitor"]
        name = f" — {_cell(comp['title'])}" if comp.get("title") else ""
        price_gap = (
            _NA
            if row["price_gap_abs"] is None
            else f"{row['price_gap_abs']:+.2f}"
            + (f" ({row['price_gap_pct']:+.2f}%)" if row["price_gap_pct"] is not None else "")
        )
        lines += [
            "",
            f"## vs {_cell(row['asin'])}{name}",
            "",
            "| Metric | Ours | Competitor | Gap (ours - theirs) |",
            "|---|---|---|---|",
            f"| Price | {_money(own['price'], own['currency'])} | "
            f"{_money(comp['price'], comp['currency'])} | {price_gap} |",
            f"| Rating | {_num(own['rating'], '{:.2f}')} | {_num(comp['rating'], '{:.2f}')} | "
            f"{_num(row['rating_gap'], '{:+.2f}')} |",
            f"| Reviews | {_num(own['review_count'])} | {_num(comp['review_count'])} | "
            f"{_num(row['review_count_gap'], '{:+d}')} |",
            f"| Review velocity (30d, /day) | {_num(own['review_velocity_30d'], '{:.2f}')} | "
            f"{_num(comp['review_velocity_30d'], '{:.2f}')} | "
            f"{_num(row['review_velocity_gap'], '{:+.2f}')} |",
            f"| BSR | {_num(own['bsr'])} | {_num(comp['bsr'])} | "
            f"{_num(row['bsr_ratio'], 'ratio {:.2f}')} |",
            f"| Listing quality | {_num(own['quality_score'])} | {_num(comp['quality_score'])} | "
            f"{_num(row['quality_score_gap'], '{:+d}')} |",
            f"| Buy box | {_cell(own['buybox_seller_name'] or own['buybox_seller_id'] or _NA)} | "
            f"{_cell(row['buybox_holder']['name'] or row['buybox_holder']['id'] or _NA)} | |",
        ]
        for note in row["notes"]:
            lines.append(f"\n> Note: {_cell(note)}")
        if row["missing"]:
            lines.append(f"\n> Missing competitor data: {', '.join(row['missing'])}")
    return "\n".join(lines) + "\n"
