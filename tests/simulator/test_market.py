"""The simulated marketplace: determinism, truthful event labels, bounded memory."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from asinwatch.simulator import EVENT_TYPES, SimClock, SimConfig, Simulator, sample_asins
from asinwatch.simulator.market import (
    SPIKE_FACTOR,
    SPIKE_MIN_LOW,
    MarketModel,
    expected_low_ratings,
    spike_size,
)

DAYS = 60


def test_same_seed_same_items_other_seed_other_items() -> None:
    asins = sample_asins(3, 15)
    a, b, c = (Simulator(SimConfig(seed=s)) for s in (3, 3, 4))
    for sim in (a, b, c):
        sim.clock.advance(days=30)
    for asin in asins:
        assert a.product_item("amazon.com", asin) == b.product_item("amazon.com", asin)
    assert [a.product_item("amazon.com", x) for x in asins] != [
        c.product_item("amazon.com", x) for x in asins
    ]
    # Order of access does not matter: the history is a function of (seed, ASIN, day).
    fresh = Simulator(SimConfig(seed=3))
    later = fresh.product_item("amazon.com", asins[0], at=fresh.clock.now() + timedelta(days=30))
    assert later == a.product_item("amazon.com", asins[0])


def _daily_items(sim: Simulator, asin: str, start: datetime) -> list[dict]:
    return [
        sim.product_item("amazon.com", asin, start + timedelta(days=d)) for d in range(DAYS + 1)
    ]


def test_event_labels_match_what_the_pages_show() -> None:
    """Precision and recall 1.0 for labels checkable from the items themselves."""
    sim = Simulator(SimConfig(seed=5))
    asins = sample_asins(5, 25)
    start = sim.clock.now()
    sim.track("amazon.com", asins)
    sim.clock.advance(days=DAYS)
    events = sim.events()
    assert {e.type for e in events} <= set(EVENT_TYPES)
    assert {"price_change", "out_of_stock", "back_in_stock", "listing_change", "bsr_move"} <= {
        e.type for e in events
    }
    labelled = {(e.asin, (e.at - start).days, e.type, e.details.get("field")) for e in events}
    observed: set[tuple[str, int, str, str | None]] = set()
    for asin in asins:
        items = _daily_items(sim, asin, start)
        allowed = sim.authorised_sellers("amazon.com", asin)
        last_price = items[0]["price"]["value"]
        for d in range(1, DAYS + 1):
            prev, cur = items[d - 1], items[d]
            if cur["price"] is not None:
                if cur["price"]["value"] != last_price:
                    observed.add((asin, d, "price_change", None))
                last_price = cur["price"]["value"]
            if prev["inStock"] and not cur["inStock"]:
                observed.add((asin, d, "out_of_stock", None))
            if not prev["inStock"] and cur["inStock"]:
                observed.add((asin, d, "back_in_stock", None))
            if prev["title"] != cur["title"]:
                observed.add((asin, d, "listing_change", "title"))
            if prev["features"] != cur["features"]:
                observed.add((asin, d, "listing_change", "bullets"))
            if prev["highResolutionImages"] != cur["highResolutionImages"]:
                observed.add((asin, d, "listing_change", "images"))
            seller = cur["seller"]
            if (
                seller
                and seller["id"] not in allowed
                and (prev["seller"] or {}).get("id") != seller["id"]
            ):
                observed.add((asin, d, "hijacker", None))
    checked = {"price_change", "out_of_stock", "back_in_stock", "hijacker"}
    expected = {x for x in labelled if x[2] in checked}
    expected |= {
        x for x in labelled if x[2] == "listing_change" and x[3] in ("title", "bullets", "images")
    }
    assert observed == expected
    for e in events:
        if e.type == "hijacker":
            assert e.details["seller_id"] not in sim.authorised_sellers("amazon.com", e.asin)


def test_negative_review_spikes_scale_with_the_listing_normal_rate() -> None:
    model = MarketModel(seed=5, epoch=date(2026, 1, 1))
    asins = sample_asins(5, 80)
    p = model.profile("amazon.com", asins[0])
    # 10 ratings a day, 20 % of them 1-2★: 2 a day is normal, a spike adds at least 10
    busy = replace(p, review_rate=10.0, star_weights=(0.15, 0.05, 0.1, 0.2, 0.5))
    assert expected_low_ratings(busy) == 2.0 and spike_size(busy) == 10
    quiet = replace(busy, review_rate=0.5)  # 0.1 a day: the floor applies
    assert spike_size(quiet) == SPIKE_MIN_LOW == 4
    sizes = []
    for asin in asins:
        prof = model.profile("amazon.com", asin)
        for e in model.events("amazon.com", asin, 1, DAYS):
            if e.type != "negative_review_spike":
                continue
            low = sum(
                1
                for x in model.view(
                    "amazon.com", asin, (e.at.date() - model.epoch).days
                ).new_ratings
                if x <= 2
            )
            # the label counts the day's low ratings: the injected burst and the normal ones
            assert e.details["new_low_ratings"] == low >= spike_size(prof)
            assert spike_size(prof) >= SPIKE_FACTOR * expected_low_ratings(prof)
            sizes.append(spike_size(prof))
    assert sizes and min(sizes) == SPIKE_MIN_LOW and max(sizes) > SPIKE_MIN_LOW


def test_events_window_and_filters() -> None:
    sim = Simulator(SimConfig(seed=8))
    asins = sample_asins(8, 10)
    sim.clock.advance(days=40)
    every = sim.events(asins=asins, marketplace="amazon.com")
    since = sim.clock.now() - timedelta(days=10)
    recent = sim.events(since, asins=asins, marketplace="amazon.com")
    assert recent == [e for e in every if e.at >= since]
    assert all(e.type == "price_change" for e in sim.events(asins=asins, types=["price_change"]))
    # Nothing is known about the future: events stop at the simulated now.
    assert all(e.at <= sim.clock.now() for e in every)
    sim.clock.advance(days=5)
    assert len(sim.events(asins=asins)) >= len(every)


def test_clock_controls_observation_day() -> None:
    clock = SimClock(datetime(2026, 1, 1, tzinfo=UTC))
    sim = Simulator(SimConfig(seed=1), clock)
    assert sim.market.day_of(clock.now()) == 0
    clock.advance(days=37, seconds=1800)
    assert sim.market.day_of(clock.now()) == 37
    clock.set(datetime(2026, 2, 1, 12, 0))  # naive = UTC
    assert clock.now() == datetime(2026, 2, 1, 12, 0, tzinfo=UTC)
    walking = SimClock(datetime(2020, 1, 1, tzinfo=UTC), follow_wall_clock=True)
    assert walking.follows_wall_clock and walking.now().year == 2020


def test_memory_stays_bounded() -> None:
    model = MarketModel(seed=1, epoch=date(2026, 1, 1), cache_size=16)
    for asin in sample_asins(1, 200):
        model.view("amazon.com", asin, 100)
    assert len(model._timelines) == 16
    # A forgotten timeline is recomputed identically.
    first = sample_asins(1, 1)[0]
    again = MarketModel(seed=1, epoch=date(2026, 1, 1)).view("amazon.com", first, 100)
    assert model.view("amazon.com", first, 100) == again
    sim = Simulator(SimConfig(max_runs=5))
    actor = sim.find_actor("junglee~amazon-crawler")
    assert actor is not None
    runs = [
        sim.create_run(
            actor, {"categoryOrProductUrls": [{"url": f"https://www.amazon.com/dp/{a}"}]}, {}
        )
        for a in sample_asins(2, 12)
    ]
    assert sim.get_run(runs[0].id) is None and sim.get_run(runs[-1].id) is not None
    assert len(sim._runs) == 5
