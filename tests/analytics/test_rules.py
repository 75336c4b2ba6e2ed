"""Recommendation rules: each rule firing and not firing at its boundary, ordering, skips."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from asinwatch.metrics.kpis import compute_kpis
from asinwatch.recommendations.rules import (
    RULES,
    RULESET_VERSION,
    CompetitorFacts,
    RecommendationInputs,
    RuleSettings,
    evaluate,
    inputs_from_kpis,
    inputs_hash,
)
from tests.analytics.factories import listing, pt

COMPETITORS = (
    CompetitorFacts("B0COMPA001", 20.0, 4.5, 500),
    CompetitorFacts("B0COMPB001", 21.0, 4.4, 600),
)
# competitor medians: price 20.5, rating 4.45, review count 550
GOOD = RecommendationInputs(
    asin="B000TEST01",
    listing=listing(),
    price=20.0,
    rating=4.5,
    review_count=500,
    oos_pct_30d=0.0,
    competitors=COMPETITORS,
)


def fired(inputs: RecommendationInputs, settings: RuleSettings | None = None) -> list[str]:
    return [r.rule_id for r in evaluate(inputs, settings).items]


def with_listing(**kw: Any) -> RecommendationInputs:
    return replace(GOOD, listing=listing(**kw))


def test_a_good_listing_fires_nothing_and_every_rule_ran() -> None:
    result = evaluate(GOOD)
    assert result.items == () and result.skipped == ()
    assert set(result.passed) == {r.rule_id for r in RULES}
    assert result.ruleset_version == RULESET_VERSION


@pytest.mark.parametrize(
    ("inputs", "rule_id"),
    [
        (with_listing(title="A" * 201), "title.max_length"),
        (with_listing(title="Acme bottle " + "b" * 88), "title.mobile_length"),  # 100 chars
        (with_listing(title="Acme Bottle!"), "title.forbidden_chars"),
        (with_listing(title="Acme Bottle free shipping"), "title.promotional"),
        (with_listing(title="Steel bottle steel lid steel cup"), "title.repeated_words"),
        (with_listing(bullets=("a", "b", "c", "d")), "bullets.count"),
        (with_listing(bullets=(*listing().bullets[:4], "See www.acme.com")), "bullets.content"),
        (with_listing(images=("1", "2", "3", "4", "5")), "images.count"),
        (with_listing(aplus=None), "aplus.missing"),
        (with_listing(description="d" * 1000), "description.length"),
        (replace(GOOD, price=23.0), "price.above_competitors"),
        (replace(GOOD, price=17.0), "price.below_competitors"),
        (replace(GOOD, rating=4.25), "rating.below_competitors"),
        (replace(GOOD, review_count=270), "reviews.below_competitors"),
        (replace(GOOD, oos_pct_30d=6.0), "stock.out_of_stock"),
    ],
)
def test_each_rule_fires(inputs: RecommendationInputs, rule_id: str) -> None:
    assert fired(inputs) == [rule_id]
    item = evaluate(inputs).items[0]
    assert item.ruleset_version == RULESET_VERSION and item.priority in (1, 2, 3)
    assert item.expected_impact and item.impact_level in ("high", "medium", "low")
    json.dumps(item.to_dict())


@pytest.mark.parametrize(
    "inputs",
    [
        with_listing(title="A" * 79),  # < 80: fine on mobile
        with_listing(description="d" * 1001),  # > 1000
        with_listing(title="Bottle for kids for school for sports"),  # "for" is exempt
        replace(GOOD, price=22.55),  # (22.55 - 20.5) / 20.5 = 10.0 %: not > 10 %
        replace(GOOD, price=17.425),  # (17.425 - 20.5) / 20.5 = -15.0 %: not > 15 %
        replace(GOOD, rating=4.26),  # 4.45 - 4.26 = 0.19 < 0.2
        replace(GOOD, review_count=275),  # 275 / 550 = 0.5: not < 0.5
        replace(GOOD, oos_pct_30d=5.0),  # not > 5 %
    ],
)
def test_rules_do_not_fire_at_their_boundary(inputs: RecommendationInputs) -> None:
    assert fired(inputs) == []


def test_evidence_is_hand_computed() -> None:
    above = evaluate(replace(GOOD, price=23.0)).items[0]
    # (23 - 20.5) / 20.5 * 100 = 12.195 -> 12.2
    assert above.evidence == {
        "price": 23.0,
        "competitor_median": 20.5,
        "competitors": 2,
        "gap_pct": 12.2,
        "threshold_pct": 10.0,
    }
    assert (
        above.title == "Price is 12.2% above the competitor median: review the price or the offer"
    )
    rating = evaluate(replace(GOOD, rating=4.25)).items[0]
    assert rating.evidence["gap"] == 0.2 and rating.evidence["competitor_median"] == 4.45
    reviews = evaluate(replace(GOOD, review_count=270)).items[0]
    assert reviews.evidence["ratio"] == round(270 / 550, 4)
    bullets = evaluate(with_listing(bullets=("a", "b", "c"))).items[0]
    assert bullets.evidence == {"bullets": 3, "minimum": 5, "missing": 2}
    content = evaluate(with_listing(bullets=("ok", "Acme™ 😀", "ok", "ok", "call 555-123-4567")))
    assert content.items[0].evidence == {
        "issues_by_bullet": {"2": ["emoji", "trademark_symbol"], "5": ["phone"]}
    }


def test_settings_change_thresholds() -> None:
    assert fired(replace(GOOD, price=22.0)) == []  # 7.3 % above
    assert fired(replace(GOOD, price=22.0), RuleSettings(price_above_pct=5.0)) == [
        "price.above_competitors"
    ]


def test_ordering_by_priority_then_rule_id() -> None:
    bad = replace(
        GOOD,
        listing=listing(
            title="Best Seller bottle! " + "x" * 70,
            bullets=("a",),
            images=("1",),
            aplus=None,
            description="short",
        ),
        price=30.0,
        oos_pct_30d=10.0,
    )
    items = evaluate(bad).items
    assert [(i.priority, i.rule_id) for i in items] == [
        (1, "price.above_competitors"),
        (1, "stock.out_of_stock"),
        (1, "title.forbidden_chars"),
        (1, "title.promotional"),
        (2, "aplus.missing"),
        (2, "bullets.count"),
        (2, "images.count"),
        (3, "description.length"),
        (3, "title.mobile_length"),
    ]


def test_missing_data_skips_rules_with_reasons() -> None:
    result = evaluate(RecommendationInputs(asin="B000TEST01"))
    assert result.items == () and result.passed == ()
    reasons = {s.rule_id: s.reason for s in result.skipped}
    assert reasons["title.max_length"] == "title unknown"
    assert reasons["price.above_competitors"] == "our price unknown"
    assert reasons["stock.out_of_stock"] == "no stock observations in 30 days"
    no_comps = evaluate(replace(GOOD, competitors=()))
    assert {s.rule_id for s in no_comps.skipped} == {
        "price.above_competitors",
        "price.below_competitors",
        "rating.below_competitors",
        "reviews.below_competitors",
    }
    # counts stand in for the listing text when only the metric row is known
    counts = RecommendationInputs(asin="B000TEST01", image_count=2, bullet_count=5, has_aplus=False)
    assert fired(counts) == ["aplus.missing", "images.count"]


def test_inputs_hash_is_stable_and_sensitive() -> None:
    assert inputs_hash(GOOD) == inputs_hash(replace(GOOD)) == evaluate(GOOD).inputs_hash
    assert inputs_hash(GOOD) != inputs_hash(replace(GOOD, price=20.01))
    assert inputs_hash(GOOD) != inputs_hash(GOOD, RuleSettings(oos_pct=1.0))
    assert len(inputs_hash(GOOD)) == 64


def test_inputs_from_kpis() -> None:
    history = [
        pt(
            0,
            20,
            in_stock=True,
            rating="4.5",
            review_count=10,
            image_count=3,
            bullet_count=5,
            has_aplus=True,
        )
    ]
    kpis = compute_kpis(history)
    inputs = inputs_from_kpis("B000TEST01", kpis, competitors=COMPETITORS[::-1])
    assert (inputs.price, inputs.rating, inputs.review_count, inputs.oos_pct_30d) == (
        20.0,
        4.5,
        10,
        0.0,
    )
    assert (inputs.image_count, inputs.bullet_count, inputs.has_aplus) == (3, 5, True)
    assert [c.asin for c in inputs.competitors] == ["B0COMPA001", "B0COMPB001"]
    # 3 images; 10 reviews vs median 550
    assert fired(inputs) == ["images.count", "reviews.below_competitors"]
