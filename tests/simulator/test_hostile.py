"""Hostile mode: per-ASIN faults served the way a lax upstream writes them, runs per actor."""

from __future__ import annotations

import json

import httpx
import pytest

from asinwatch.ingestion.rawjson import loads_bounded
from asinwatch.simulator import SimulatorServer, sample_asins
from asinwatch.simulator.hostile import DEEP_LEVELS, HOSTILE_KINDS
from tests.simulator.test_api import CRAWLER, REVIEWS, crawler_input, finish, start


def test_hostile_items_are_served_beside_normal_ones(
    http: httpx.Client, server: SimulatorServer
) -> None:
    asins = sample_asins(8, 4)
    kinds = {asins[0]: "deep_nesting", asins[1]: "nan_price", asins[2]: "lone_surrogate"}
    r = http.post("/sim/config", json={"hostile": kinds})
    assert r.status_code == 200 and r.json()["hostile"] == kinds
    run = finish(http, start(http, crawler_input(asins))["id"])
    body = http.get(f"/v2/datasets/{run['defaultDatasetId']}/items").content

    assert b"[" * DEEP_LEVELS in body and b'"value":NaN' in body and b"\\ud800" in body
    with pytest.raises(RecursionError):
        json.loads(body)
    items = {i["originalAsin"]: i for i in loads_bounded(body)}
    assert set(items) == set(asins)
    assert "\ud800" in items[asins[2]]["title"]
    normal = server.simulator.product_item("amazon.com", asins[3])
    assert items[asins[3]]["title"] == normal["title"]


def test_runs_are_counted_per_actor_and_unknown_kinds_refused(
    http: httpx.Client, server: SimulatorServer
) -> None:
    asins = sample_asins(9, 2)
    start(http, crawler_input(asins))
    start(http, {"productUrls": crawler_input(asins)["categoryOrProductUrls"]}, actor=REVIEWS)
    start(http, crawler_input(asins))
    assert http.get("/sim/stats").json()["runs_by_actor"] == {CRAWLER: 2, REVIEWS: 1}
    assert server.simulator.runs_by_actor() == {CRAWLER: 2, REVIEWS: 1}
    assert http.post("/sim/config", json={"hostile": {asins[0]: "gremlins"}}).status_code == 400
    assert len(HOSTILE_KINDS) == len(set(HOSTILE_KINDS)) == 14
