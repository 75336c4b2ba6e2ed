"""The recommendation rule engine (pure): the listing, pricing, review and stock rules of
docs/brief/market.md.

`evaluate(inputs)` returns every recommendation that fires, each with its rule id, the
evidence (numbers), the expected impact, a priority (1 = high .. 3 = low) and the version
of the rule set, ordered by priority then rule id. Rules that cannot run for lack of data
are listed as skipped with the reason (never guessed). Bump `RULESET_VERSION` whenever a
rule or a default threshold changes: stored recommendation sets carry it.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from asinwatch.ingestion.records import ListingContent
from asinwatch.metrics.kpis import (
    MIN_BULLETS,
    MIN_DESCRIPTION_CHARS,
    MIN_IMAGES,
    TITLE_MAX_CHARS,
    TITLE_MOBILE_CHARS,
    ProductKpis,
    bullet_issues,
    forbidden_title_chars,
    promotional_phrases,
    repeated_title_words,
    to_jsonable,
)

RULESET_VERSION = "2026.11.1"

ImpactLevel = Literal["high", "medium", "low"]
PRIORITY_LABEL = {1: "high", 2: "medium", 3: "low"}


@dataclass(frozen=True, slots=True)
class CompetitorFacts:
    asin: str
    price: float | None = None
    rating: float | None = None
    review_count: int | None = None


@dataclass(frozen=True, slots=True)
class RecommendationInputs:
    """What the rules look at for one product. Counts are used when `listing` is absent."""

    asin: str
    listing: ListingContent | None = None
    image_count: int | None = None
    bullet_count: int | None = None
    has_aplus: bool | None = None
    price: float | None = None
    rating: float | None = None
    review_count: int | None = None
    oos_pct_30d: float | None = None
    competitors: tuple[CompetitorFacts, ...] = ()


@dataclass(frozen=True, slots=True)
class RuleSettings:
    """Heuristic thresholds of the competitor and stock rules (market.md marks them so)."""

    price_above_pct: float = 10.0
    price_below_pct: float = 15.0
    rating_gap: float = 0.2
    review_ratio: float = 0.5
    oos_pct: float = 5.0


@dataclass(frozen=True, slots=True)
class Recommendation:
    rule_id: str
    title: str
    evidence: dict[str, Any]
    expected_impact: str
    impact_level: ImpactLevel
    priority: int  # 1 high, 2 medium, 3 low
    ruleset_version: str = RULESET_VERSION

    def to_dict(self) -> dict[str, Any]:
        data = to_jsonable(self)
        assert isinstance(data, dict)
        data["priority_label"] = PRIORITY_LABEL[self.priority]
        return data


@dataclass(frozen=True, slots=True)
class SkippedRule:
    rule_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class RecommendationResult:
    ruleset_version: str
    inputs_hash: str
    items: tuple[Recommendation, ...]
    passed: tuple[str, ...]
    skipped: tuple[SkippedRule, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ruleset_version": self.ruleset_version,
            "inputs_hash": self.inputs_hash,
            "items": [i.to_dict() for i in self.items],
            "passed": list(self.passed),
            "skipped": [{"rule_id": s.rule_id, "reason": s.reason} for s in self.skipped],
        }


@dataclass(frozen=True, slots=True)
class _Rule:
    rule_id: str
    priority: int
    impact_level: ImpactLevel
    expected_impact: str
    check: Callable[[RecommendationInputs, RuleSettings], _Outcome]


@dataclass(frozen=True, slots=True)
class _Fire:
    title: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Skip:
    reason: str


_Outcome = _Fire | _Skip | None  # None: the rule passed


# ---------------------------------------------------------------------------- listing rules


def _title(inputs: RecommendationInputs) -> str | None:
    return inputs.listing.title if inputs.listing else None


def _title_max(inputs: RecommendationInputs, _: RuleSettings) -> _Outcome:
    title = _title(inputs)
    if title is None:
        return _Skip("title unknown")
    if len(title) > TITLE_MAX_CHARS:
        return _Fire(
            f"Shorten the title to {TITLE_MAX_CHARS} characters or fewer",
            {"length": len(title), "limit": TITLE_MAX_CHARS},
        )
    return None


def _title_mobile(inputs: RecommendationInputs, _: RuleSettings) -> _Outcome:
    title = _title(inputs)
    if title is None:
        return _Skip("title unknown")
    if TITLE_MOBILE_CHARS <= len(title) <= TITLE_MAX_CHARS:
        return _Fire(
            f"Front-load the title: under {TITLE_MOBILE_CHARS} characters shows in full on mobile",
            {"length": len(title), "recommended_below": TITLE_MOBILE_CHARS},
        )
    return None


def _title_chars(inputs: RecommendationInputs, _: RuleSettings) -> _Outcome:
    title = _title(inputs)
    if title is None:
        return _Skip("title unknown")
    found = forbidden_title_chars(title)
    if found:
        return _Fire("Remove forbidden characters from the title", {"characters": found})
    return None


def _title_promo(inputs: RecommendationInputs, _: RuleSettings) -> _Outcome:
    title = _title(inputs)
    if title is None:
        return _Skip("title unknown")
    found = promotional_phrases(title)
    if found:
        return _Fire("Remove promotional phrases from the title", {"phrases": found})
    return None


def _title_repeats(inputs: RecommendationInputs, _: RuleSettings) -> _Outcome:
    title = _title(inputs)
    if title is None:
        return _Skip("title unknown")
    found = repeated_title_words(title)
    if found:
        return _Fire("Use each title word at most twice", {"words": found, "max_repeats": 2})
    return None


def _bullet_count(inputs: RecommendationInputs) -> int | None:
    return len(inputs.listing.bullets) if inputs.listing else inputs.bullet_count


def _bullets_count(inputs: RecommendationInputs, _: RuleSettings) -> _Outcome:
    count = _bullet_count(inputs)
    if count is None:
        return _Skip("bullet count unknown")
    if count < MIN_BULLETS:
        return _Fire(
            f"Add bullet points: at least {MIN_BULLETS}",
            {"bullets": count, "minimum": MIN_BULLETS, "missing": MIN_BULLETS - count},
        )
    return None


def _bullets_content(inputs: RecommendationInputs, _: RuleSettings) -> _Outcome:
    if inputs.listing is None:
        return _Skip("bullet text unknown")
    issues = {
        str(i + 1): bullet_issues(b)
        for i, b in enumerate(inputs.listing.bullets)
        if bullet_issues(b)
    }
    if issues:
        return _Fire(
            "Fix bullet content (no emoji, ™/®, N/A/TBD, guarantees, URLs or phone numbers)",
            {"issues_by_bullet": issues},
        )
    return None


def _images(inputs: RecommendationInputs, _: RuleSettings) -> _Outcome:
    count = len(inputs.listing.images) if inputs.listing else inputs.image_count
    if count is None:
        return _Skip("image count unknown")
    if count < MIN_IMAGES:
        return _Fire(
            f"Add images: at least {MIN_IMAGES} (and a video)",
            {"images": count, "minimum": MIN_IMAGES, "missing": MIN_IMAGES - count},
        )
    return None


def _aplus(inputs: RecommendationInputs, _: RuleSettings) -> _Outcome:
    present = bool(inputs.listing.aplus) if inputs.listing else inputs.has_aplus
    if present is None:
        return _Skip("A+ presence unknown")
    if not present:
        return _Fire("Add A+ content", {"has_aplus": False})
    return None


def _description(inputs: RecommendationInputs, _: RuleSettings) -> _Outcome:
    if inputs.listing is None:
        return _Skip("description unknown")
    length = len(inputs.listing.description or "")
    if length <= MIN_DESCRIPTION_CHARS:
        return _Fire(
            f"Expand the description beyond {MIN_DESCRIPTION_CHARS} characters",
            {"length": length, "minimum_exclusive": MIN_DESCRIPTION_CHARS},
        )
    return None


# ---------------------------------------------------------------------------- market rules


def _median(values: Sequence[float | int | None]) -> tuple[float | None, int]:
    known = [float(v) for v in values if v is not None]
    return (statistics.median(known) if known else None), len(known)


def _price_gap(inputs: RecommendationInputs) -> tuple[float, float, int] | _Skip:
    if inputs.price is None:
        return _Skip("our price unknown")
    median, n = _median([c.price for c in inputs.competitors])
    if median is None or median <= 0:
        return _Skip("no competitor prices")
    # Rounded so a gap of exactly the threshold (10.000000000000009 in binary) does not fire.
    return round((inputs.price - median) / median * 100, 6), median, n


def _price_above(inputs: RecommendationInputs, s: RuleSettings) -> _Outcome:
    gap = _price_gap(inputs)
    if isinstance(gap, _Skip):
        return gap
    pct, median, n = gap
    if pct > s.price_above_pct:
        return _Fire(
            f"Price is {pct:.1f}% above the competitor median: review the price or the offer",
            {
                "price": inputs.price,
                "competitor_median": median,
                "competitors": n,
                "gap_pct": round(pct, 2),
                "threshold_pct": s.price_above_pct,
            },
        )
    return None


def _price_below(inputs: RecommendationInputs, s: RuleSettings) -> _Outcome:
    gap = _price_gap(inputs)
    if isinstance(gap, _Skip):
        return gap
    pct, median, n = gap
    if -pct > s.price_below_pct:
        return _Fire(
            f"Price is {-pct:.1f}% below the competitor median: margin may be left on the table",
            {
                "price": inputs.price,
                "competitor_median": median,
                "competitors": n,
                "gap_pct": round(pct, 2),
                "threshold_pct": s.price_below_pct,
            },
        )
    return None


def _rating(inputs: RecommendationInputs, s: RuleSettings) -> _Outcome:
    if inputs.rating is None:
        return _Skip("our rating unknown")
    median, n = _median([c.rating for c in inputs.competitors])
    if median is None:
        return _Skip("no competitor ratings")
    gap = round(median - inputs.rating, 4)
    if gap >= s.rating_gap - 1e-9:
        return _Fire(
            "Rating trails competitors: work on review quality (product issues, expectations)",
            {
                "rating": inputs.rating,
                "competitor_median": median,
                "competitors": n,
                "gap": gap,
                "threshold": s.rating_gap,
            },
        )
    return None


def _reviews(inputs: RecommendationInputs, s: RuleSettings) -> _Outcome:
    if inputs.review_count is None:
        return _Skip("our review count unknown")
    median, n = _median([c.review_count for c in inputs.competitors])
    if median is None or median <= 0:
        return _Skip("no competitor review counts")
    ratio = round(inputs.review_count / median, 6)
    if ratio < s.review_ratio:
        return _Fire(
            "Few reviews vs competitors: invest in review acquisition (Vine, request-a-review)",
            {
                "review_count": inputs.review_count,
                "competitor_median": median,
                "competitors": n,
                "ratio": round(ratio, 4),
                "threshold_ratio": s.review_ratio,
            },
        )
    return None


def _stock(inputs: RecommendationInputs, s: RuleSettings) -> _Outcome:
    if inputs.oos_pct_30d is None:
        return _Skip("no stock observations in 30 days")
    if inputs.oos_pct_30d > s.oos_pct:
        return _Fire(
            "Out of stock too often: plan replenishment",
            {"oos_pct_30d": inputs.oos_pct_30d, "threshold_pct": s.oos_pct},
        )
    return None


RULES: tuple[_Rule, ...] = (
    _Rule(
        "title.max_length",
        1,
        "high",
        "Over-long titles can get the listing suppressed.",
        _title_max,
    ),
    _Rule(
        "title.mobile_length",
        3,
        "low",
        "More of the title visible on mobile search results.",
        _title_mobile,
    ),
    _Rule(
        "title.forbidden_chars",
        1,
        "high",
        "Forbidden characters can get the listing suppressed.",
        _title_chars,
    ),
    _Rule(
        "title.promotional",
        1,
        "high",
        "Promotional claims break the title policy (suppression risk).",
        _title_promo,
    ),
    _Rule(
        "title.repeated_words",
        2,
        "medium",
        "Keyword stuffing breaks the title policy; clear titles convert better.",
        _title_repeats,
    ),
    _Rule(
        "bullets.count",
        2,
        "medium",
        "More persuasive, indexed content on the detail page.",
        _bullets_count,
    ),
    _Rule(
        "bullets.content",
        2,
        "medium",
        "Avoids policy violations and bullet suppression.",
        _bullets_content,
    ),
    _Rule("images.count", 2, "medium", "Listings with 6+ images convert better.", _images),
    _Rule(
        "aplus.missing",
        2,
        "medium",
        "A+ content typically lifts conversion by a few percent.",
        _aplus,
    ),
    _Rule(
        "description.length",
        3,
        "low",
        "A fuller description answers questions and adds keywords.",
        _description,
    ),
    _Rule(
        "price.above_competitors",
        1,
        "high",
        "Losing buy-box and conversion to cheaper alternatives.",
        _price_above,
    ),
    _Rule(
        "price.below_competitors",
        2,
        "medium",
        "Margin left on the table at similar demand.",
        _price_below,
    ),
    _Rule(
        "rating.below_competitors",
        2,
        "medium",
        "Rating gaps cut click-through and conversion.",
        _rating,
    ),
    _Rule(
        "reviews.below_competitors",
        2,
        "medium",
        "Social proof drives conversion and rank.",
        _reviews,
    ),
    _Rule("stock.out_of_stock", 1, "high", "Lost sales and rank while out of stock.", _stock),
)


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8: the same inputs always give the same text."""
    return json.dumps(to_jsonable(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def inputs_hash(inputs: RecommendationInputs, settings: RuleSettings | None = None) -> str:
    """sha256 of the inputs, the settings and the rule set version (new version only on change)."""
    payload = {
        "inputs": inputs,
        "settings": settings or RuleSettings(),
        "ruleset_version": RULESET_VERSION,
    }
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def evaluate(
    inputs: RecommendationInputs, settings: RuleSettings | None = None
) -> RecommendationResult:
    """Run every rule; recommendations ordered by (priority, rule_id)."""
    settings = settings or RuleSettings()
    items: list[Recommendation] = []
    passed: list[str] = []
    skipped: list[SkippedRule] = []
    for rule in RULES:
        outcome = rule.check(inputs, settings)
        if outcome is None:
            passed.append(rule.rule_id)
        elif isinstance(outcome, _Skip):
            skipped.append(SkippedRule(rule.rule_id, outcome.reason))
        else:
            items.append(
                Recommendation(
                    rule_id=rule.rule_id,
                    title=outcome.title,
                    evidence=outcome.evidence,
                    expected_impact=rule.expected_impact,
                    impact_level=rule.impact_level,
                    priority=rule.priority,
                )
            )
    items.sort(key=lambda r: (r.priority, r.rule_id))
    return RecommendationResult(
        ruleset_version=RULESET_VERSION,
        inputs_hash=inputs_hash(inputs, settings),
        items=tuple(items),
        passed=tuple(sorted(passed)),
        skipped=tuple(sorted(skipped, key=lambda s: s.rule_id)),
    )


def inputs_from_kpis(
    asin: str,
    kpis: ProductKpis,
    *,
    listing: ListingContent | None = None,
    competitors: Sequence[CompetitorFacts] = (),
) -> RecommendationInputs:
    """Rule inputs from a product's KPIs (the listing counts come from its quality parts)."""
    parts = {p.name: p.value for p in kpis.listing_quality.parts}
    bullets = parts.get("bullets_count")
    images = parts.get("images")
    aplus = parts.get("aplus")
    return RecommendationInputs(
        asin=asin,
        listing=listing,
        image_count=images if isinstance(images, int) else None,
        bullet_count=bullets if isinstance(bullets, int) else None,
        has_aplus=aplus if isinstance(aplus, bool) else None,
        price=kpis.price.current,
        rating=kpis.reviews.rating,
        review_count=kpis.reviews.count,
        oos_pct_30d=kpis.availability.oos_pct_30d,
        competitors=tuple(sorted(competitors, key=lambda c: c.asin)),
    )
