"""Competitive report: hand-computed gaps, summary, Markdown, inputs hash, missing data."""

from __future__ import annotations

import json
from dataclasses import replace

from asinwatch.metrics.kpis import compute_kpis
from asinwatch.reports.competitive import (
    ProductSnapshot,
    build_competitive_report,
    report_inputs_hash,
    snapshot_from_kpis,
)
from tests.analytics.factories import pt

OWN = ProductSnapshot(
    asin="B000OWN001",
    title="Acme Bottle",
    price=20.0,
    currency="USD",
    rating=4.4,
    review_count=300,
    review_velocity_30d=1.5,
    bsr=1000,
    bsr_category="Kitchen",
    quality_score=80,
    buybox_seller_id="OWN1",
    buybox_seller_name="Acme",
)
A = ProductSnapshot(
    asin="B0COMPA001",
    title="Rival Bottle",
    price=18.0,
    currency="USD",
    rating=4.6,
    review_count=1200,
    review_velocity_30d=3.0,
    bsr=500,
    bsr_category="Kitchen",
    quality_score=90,
    buybox_seller_id="R1",
    buybox_seller_name="Rival",
)
B = ProductSnapshot(
    asin="B0COMPB001",
    price=25.0,
    currency="USD",
    rating=4.1,
    review_count=100,
    review_velocity_30d=0.5,
    bsr=2000,
    bsr_category="Kitchen",
    quality_score=70,
)


def test_two_competitors_hand_computed() -> None:
    report = build_competitive_report(OWN, [B, A])
    body = report.body
    assert [c["asin"] for c in body["competitors"]] == ["B0COMPA001", "B0COMPB001"]
    vs_a, vs_b = body["competitors"]
    # vs A: 20 - 18 = +2.00, 2 / 18 = 11.11 %; 4.4 - 4.6 = -0.2; 300 - 1200; 1.5 - 3.0;
    # BSR 1000 / 500 = 2.0; quality 80 - 90
    assert (vs_a["price_gap_abs"], vs_a["price_gap_pct"]) == (2.0, 11.11)
    assert (vs_a["rating_gap"], vs_a["review_count_gap"], vs_a["review_velocity_gap"]) == (
        -0.2,
        -900,
        -1.5,
    )
    assert (vs_a["bsr_ratio"], vs_a["quality_score_gap"]) == (2.0, -10)
    assert vs_a["buybox_holder"] == {"id": "R1", "name": "Rival"}
    assert set(vs_a["standing"].values()) == {"behind"}
    # vs B: -5.00 (-20 %), +0.3, +200, +1.0, 0.5, +10: ahead everywhere
    assert (vs_b["price_gap_abs"], vs_b["price_gap_pct"], vs_b["rating_gap"]) == (-5.0, -20.0, 0.3)
    assert (vs_b["bsr_ratio"], vs_b["quality_score_gap"]) == (0.5, 10)
    assert set(vs_b["standing"].values()) == {"ahead"}
    assert vs_b["missing"] == [] and vs_b["notes"] == []

    s = body["summary"]
    # medians: price (18+25)/2 = 21.5, rating 4.35, reviews 650, velocity 1.75, bsr 1250, q 80
    assert s["medians"] == {
        "price": 21.5,
        "rating": 4.35,
        "review_count": 650,
        "review_velocity_30d": 1.75,
        "bsr": 1250,
        "quality_score": 80,
    }
    # -1.5 / 21.5 = -6.98 %; 4.4 - 4.35 = 0.05; 300 - 650; 1.5 - 1.75; 1000 / 1250 = 0.8
    assert s["own_vs_median"] == {
        "price_gap_abs": -1.5,
        "price_gap_pct": -6.98,
        "rating_gap": 0.05,
        "review_count_gap": -350.0,
        "review_velocity_gap": -0.25,
        "bsr_ratio": 0.8,
        "quality_score_gap": 0.0,
    }
    assert s["price_position"] == {"rank": 2, "of": 3, "cheaper_competitors": 1}
    assert s["standings"]["price"] == {"ahead": 1, "behind": 1, "even": 0, "unknown": 0}
    assert "Price is 6.98% below the competitor median." in s["highlights"]
    json.dumps(body)


def test_markdown_has_a_table_per_competitor_and_a_summary() -> None:
    md = build_competitive_report(OWN, [A, B]).markdown
    assert md.startswith("# Competitive report: B000OWN001\n")
    assert "## Summary" in md
    assert "## vs B0COMPA001 — Rival Bottle" in md and "## vs B0COMPB001" in md
    assert "| Price | 20.00 USD | 18.00 USD | +2.00 (+11.11%) |" in md
    assert "| BSR | 1000 | 500 | ratio 2.00 |" in md
    assert "| Buy box | Acme | Rival | |" in md
    assert "- Price rank 2 of 3 (1 = cheapest); 1 competitor(s) are cheaper." in md


def test_zero_competitors() -> None:
    report = build_competitive_report(OWN, [])
    assert report.body["competitors"] == []
    assert report.body["summary"]["competitors"] == 0
    assert report.body["summary"]["price_position"] is None
    assert "No competitors are linked" in report.markdown
    assert "| Price | 20.00 USD |" in report.markdown
    json.dumps(report.body)


def test_missing_data_currency_and_category_mismatch() -> None:
    c = ProductSnapshot(asin="B0COMPC001", price=15.0, currency="EUR", bsr=10, bsr_category="Home")
    report = build_competitive_report(OWN, [c])
    row = report.body["competitors"][0]
    assert row["price_gap_abs"] is None and row["bsr_ratio"] is None
    assert row["notes"] == [
        "prices in different currencies (USD vs EUR)",
        "BSR in different categories (Kitchen vs Home)",
    ]
    assert row["missing"] == ["rating", "review_count", "review_velocity_30d", "quality_score"]
    assert set(row["standing"].values()) == {None}
    s = report.body["summary"]
    assert s["medians"]["price"] is None and s["price_position"] is None
    assert s["standings"]["price"]["unknown"] == 1
    assert "> Missing competitor data: rating, review_count" in report.markdown
    assert "| Rating | 4.40 | — | — |" in report.markdown
    # our own data missing: gaps None, still a complete report
    bare = build_competitive_report(ProductSnapshot(asin="B000OWN001"), [A])
    assert bare.body["competitors"][0]["price_gap_abs"] is None
    assert bare.body["summary"]["own_vs_median"]["price_gap_pct"] is None
    json.dumps(bare.body)


def test_inputs_hash_changes_only_with_inputs() -> None:
    h = build_competitive_report(OWN, [A, B]).inputs_hash
    assert h == build_competitive_report(OWN, [B, A]).inputs_hash == report_inputs_hash(OWN, [A, B])
    assert h != build_competitive_report(OWN, [A, replace(B, price=24.99)]).inputs_hash
    assert h != build_competitive_report(replace(OWN, rating=4.5), [A, B]).inputs_hash
    assert len(h) == 64 and int(h, 16) >= 0


def test_snapshot_from_kpis() -> None:
    history = [
        pt(0, 20, review_count=100, rating="4.5", bsr=300, bsr_category="Kitchen"),
        pt(30, 21, review_count=130, rating="4.5", bsr=250, bsr_category="Kitchen",
           buybox_seller_id="OWN1", buybox_seller_name="Acme"),
    ]  # fmt: skip
    snap = snapshot_from_kpis("B000OWN001", compute_kpis(history), title="Acme Bottle")
    # 30 reviews over 30 days = 1.0 per day
    assert (snap.price, snap.currency, snap.review_velocity_30d, snap.bsr) == (
        21.0,
        "USD",
        1.0,
        250,
    )
    assert snap.buybox_seller_name == "Acme" and snap.quality_score is None
