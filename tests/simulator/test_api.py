"""The simulator speaks Apify API v2: routes, auth, errors, run lifecycle, datasets, costs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from asinwatch.simulator import ACTORS, SimulatorServer, sample_asins
from tests.simulator.conftest import ServerFactory

CRAWLER = "junglee~amazon-crawler"
REVIEWS = "junglee~amazon-reviews-scraper"


def crawler_input(asins: list[str], domain: str = "amazon.com") -> dict[str, Any]:
    return {"categoryOrProductUrls": [{"url": f"https://www.{domain}/dp/{a}"} for a in asins]}


def start(
    http: httpx.Client,
    body: dict[str, Any],
    actor: str = CRAWLER,
    prefix: str = "actors",
    **params: Any,
) -> dict[str, Any]:
    r = http.post(f"/v2/{prefix}/{actor}/runs", json=body, params=params)
    assert r.status_code == 201, r.text
    return r.json()["data"]


def finish(http: httpx.Client, run_id: str) -> dict[str, Any]:
    r = http.get(f"/v2/actor-runs/{run_id}", params={"waitForFinish": 60})
    assert r.status_code == 200
    return r.json()["data"]


def test_run_lifecycle_and_run_object_shape(http: httpx.Client, server: SimulatorServer) -> None:
    server.simulator.clock.set(datetime(2026, 2, 7, 0, 30, tzinfo=UTC))
    asins = sample_asins(1, 3)
    run = start(http, crawler_input(asins), timeout=120, maxItems=10, memory=2048)
    assert run["status"] == "READY"
    assert run["startedAt"] == "2026-02-07T00:30:00.000Z"
    assert run["actId"] == next(a.id for a in ACTORS if a.name == CRAWLER)
    assert run["options"]["timeoutSecs"] == 120 and run["options"]["memoryMbytes"] == 2048
    assert run["options"]["maxItems"] == 10
    done = finish(http, run["id"])
    assert done["status"] == "SUCCEEDED" and done["finishedAt"] is not None
    for key in (
        "id",
        "actId",
        "userId",
        "statusMessage",
        "meta",
        "stats",
        "defaultDatasetId",
        "defaultKeyValueStoreId",
        "defaultRequestQueueId",
        "usage",
        "usageUsd",
        "usageTotalUsd",
        "pricingInfo",
        "buildId",
        "generalAccess",
    ):
        assert key in done, key
    cfg = server.simulator.config
    assert done["usageTotalUsd"] == pytest.approx(
        cfg.start_cost_usd + 3 * cfg.price_per_product_usd
    )
    assert done["pricingInfo"]["pricingModel"] == "PRICE_PER_DATASET_ITEM"
    items = http.get(f"/v2/datasets/{done['defaultDatasetId']}/items").json()
    assert [i["originalAsin"] for i in items] == asins
    assert http.get(f"/v2/actor-runs/{run['id']}/dataset/items").json() == items


def test_both_actor_routes_and_ids(http: httpx.Client) -> None:
    a = start(http, crawler_input(sample_asins(1, 1)), prefix="actors")
    b = start(http, crawler_input(sample_asins(1, 1)), prefix="acts")
    by_id = start(http, crawler_input(sample_asins(1, 1)), actor=a["actId"])
    assert a["actId"] == b["actId"] == by_id["actId"]
    r = http.post("/v2/acts/nobody~nothing/runs", json={})
    assert r.status_code == 404 and r.json()["error"]["type"] == "actor-not-found"
    assert http.get(f"/v2/actors/{CRAWLER}").json()["data"]["username"] == "junglee"


def test_auth(server: SimulatorServer) -> None:
    url = server.base_url + "/actor-runs/abc"
    r = httpx.get(url, trust_env=False)
    assert r.status_code == 401 and r.json()["error"]["type"] == "token-not-provided"
    r = httpx.get(url, headers={"Authorization": "Bearer wrong"}, trust_env=False)
    assert r.status_code == 401 and r.json()["error"]["type"] == "invalid-token"
    r = httpx.get(url, params={"token": server.token}, trust_env=False)
    assert r.status_code == 404 and r.json()["error"]["type"] == "record-not-found"
    assert httpx.get(server.root_url + "/sim/clock", trust_env=False).status_code == 401


def test_invalid_input(http: httpx.Client) -> None:
    for body, params in [
        ({}, {}),
        ({"categoryOrProductUrls": "https://www.amazon.com/dp/B000000001"}, {}),
        ({"categoryOrProductUrls": [{"href": "x"}]}, {}),
        (crawler_input(["B000000001"]), {"memory": "1000"}),
        (crawler_input(["B000000001"]), {"maxItems": "-1"}),
        (crawler_input(["B000000001"]), {"maxTotalChargeUsd": "lots"}),
    ]:
        r = http.post(f"/v2/actors/{CRAWLER}/runs", json=body, params=params)
        assert r.status_code == 400, (body, params)
        assert r.json()["error"]["type"] == "invalid-input"
    r = http.post(f"/v2/actors/{CRAWLER}/runs", content=b"{not json")
    assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]
    assert http.get("/v2/no/such/route").json()["error"]["type"] == "page-not-found"


def test_dataset_pagination_and_filters(http: httpx.Client) -> None:
    asins = sample_asins(2, 10)
    run = finish(http, start(http, crawler_input(asins))["id"])
    url = f"/v2/datasets/{run['defaultDatasetId']}/items"
    r = http.get(url, params={"offset": 3, "limit": 4})
    assert [i["originalAsin"] for i in r.json()] == asins[3:7]
    h = r.headers
    assert (h["X-Apify-Pagination-Offset"], h["X-Apify-Pagination-Limit"]) == ("3", "4")
    assert (h["X-Apify-Pagination-Count"], h["X-Apify-Pagination-Total"]) == ("4", "10")
    desc = http.get(url, params={"desc": "true", "limit": 2}).json()
    assert [i["originalAsin"] for i in desc] == asins[::-1][:2]
    picked = http.get(url, params={"fields": "asin,stars", "limit": 1}).json()
    assert set(picked[0]) <= {"asin", "stars"}
    omitted = http.get(url, params={"omit": "features,description", "limit": 1}).json()
    assert "features" not in omitted[0] and "title" in omitted[0]
    assert http.get(url, params={"format": "csv"}).status_code == 400
    assert http.get("/v2/datasets/nope/items").json()["error"]["type"] == "record-not-found"
    assert http.get(f"/v2/datasets/{run['defaultDatasetId']}").json()["data"]["itemCount"] == 10


def test_clean_drops_hidden_fields(make_server: ServerFactory) -> None:
    srv = make_server(block_rate=1.0)
    with httpx.Client(
        base_url=srv.root_url, headers={"Authorization": f"Bearer {srv.token}"}
    ) as http:
        asins = sample_asins(4, 30)
        run = finish(http, start(http, crawler_input(asins))["id"])
        url = f"/v2/datasets/{run['defaultDatasetId']}/items"
        raw = http.get(url).json()
        clean = http.get(url, params={"clean": "true"}).json()
    assert any(k.startswith("#") for i in raw for k in i)
    assert not any(k.startswith("#") for i in clean for k in i)
    events = srv.simulator.events(types=["block_page"])
    assert len(events) == 30 and {e.details["run_id"] for e in events} == {run["id"]}
    assert {e.details["kind"] for e in events} == {"captcha", "empty", "wrong_asin", "garbage"}


def test_same_seed_same_http_answers(make_server: ServerFactory) -> None:
    outputs = []
    for _ in range(2):
        srv = make_server(seed=99, block_rate=0.3)
        with httpx.Client(
            base_url=srv.root_url, headers={"Authorization": f"Bearer {srv.token}"}
        ) as http:
            run = finish(http, start(http, crawler_input(sample_asins(9, 20)))["id"])
            items = http.get(f"/v2/datasets/{run['defaultDatasetId']}/items").json()
        outputs.append((run["id"], items))
    assert outputs[0] == outputs[1]


def test_abort_and_timeout(make_server: ServerFactory) -> None:
    srv = make_server(run_duration_s=600)
    with httpx.Client(
        base_url=srv.root_url, headers={"Authorization": f"Bearer {srv.token}"}
    ) as http:
        run = start(http, crawler_input(sample_asins(1, 2)))
        assert http.get(f"/v2/actor-runs/{run['id']}").json()["data"]["status"] in (
            "READY",
            "RUNNING",
        )
        aborted = http.post(f"/v2/actor-runs/{run['id']}/abort").json()["data"]
        assert aborted["status"] == "ABORTING"
        assert http.get(f"/v2/actor-runs/{run['id']}").json()["data"]["status"] == "ABORTED"
        # A run longer than its timeout ends TIMED-OUT at the timeout, with partial items.
        srv.simulator.configure(run_duration_s=30)
        timed = start(http, crawler_input(sample_asins(1, 2)), timeout=1)
        r = http.get(f"/v2/actor-runs/{timed['id']}", params={"waitForFinish": 60}, timeout=30)
        done = r.json()["data"]
        assert done["status"] == "TIMED-OUT" and done["finishedAt"] is not None


def test_caps_and_costs(http: httpx.Client, server: SimulatorServer) -> None:
    asins = sample_asins(6, 10)
    capped = finish(http, start(http, crawler_input(asins), maxItems=4)["id"])
    assert len(http.get(f"/v2/datasets/{capped['defaultDatasetId']}/items").json()) == 4
    price = server.simulator.config.price_per_product_usd
    charged = finish(http, start(http, crawler_input(asins), maxTotalChargeUsd=price * 3)["id"])
    assert len(http.get(f"/v2/datasets/{charged['defaultDatasetId']}/items").json()) == 3
    assert charged["chargedEventCounts"]["result"] == 3


def test_run_sync_and_reviews(http: httpx.Client) -> None:
    asins = sample_asins(7, 3)
    r = http.post(f"/v2/acts/{CRAWLER}/run-sync-get-dataset-items", json=crawler_input(asins))
    assert r.status_code == 201 and [i["originalAsin"] for i in r.json()] == asins
    body = {
        "productUrls": [{"url": f"https://www.amazon.de/dp/{a}"} for a in asins],
        "maxReviews": 4,
    }
    reviews = http.post(f"/v2/actors/{REVIEWS}/run-sync-get-dataset-items", json=body).json()
    assert 0 < len(reviews) <= 12
    for rv in reviews:
        assert rv["productOriginalAsin"] in asins and 1 <= rv["ratingScore"] <= 5
        assert rv["countryCode"] == "DE" and rv["reviewId"].startswith("R")
        datetime.fromisoformat(rv["date"])


def test_injected_faults_have_apify_shapes(make_server: ServerFactory) -> None:
    srv = make_server(error_rate=1.0)
    seen: set[int] = set()
    with httpx.Client(
        base_url=srv.root_url, headers={"Authorization": f"Bearer {srv.token}"}
    ) as http:
        for _ in range(40):
            r = http.get("/v2/actor-runs/x")
            seen.add(r.status_code)
            if r.headers["content-type"].startswith("application/json"):
                assert r.json()["error"]["type"]
        # Control routes never fault.
        assert http.get("/sim/stats").json()["requests"] == 40
    assert 429 in seen and seen <= {429, 500, 502, 503} and len(seen) >= 3


def test_control_endpoints(http: httpx.Client, server: SimulatorServer) -> None:
    before = http.get("/sim/clock").json()
    after = http.post("/sim/clock", json={"advance_days": 3}).json()
    assert after["day"] == before["day"] + 3
    assert http.post("/sim/clock", json={"set": "2026-03-01T00:30:00Z"}).json()["day"] == 59
    assert http.post("/sim/config", json={"error_rate": 0.25}).json()["error_rate"] == 0.25
    assert http.post("/sim/config", json={"seed": 3}).status_code == 400
    asins = sample_asins(1, 5)
    assert (
        http.post("/sim/track", json={"marketplace": "amazon.com", "asins": asins}).status_code
        == 200
    )
    events = http.get("/sim/events", params={"type": "price_change,out_of_stock"}).json()
    assert events["count"] == len(events["data"]) > 0
    assert {e["type"] for e in events["data"]} <= {"price_change", "out_of_stock"}
    assert http.get("/sim/events", params={"since": "yesterday"}).status_code == 400


def test_cli_refuses_non_loopback_host() -> None:
    import typer

    from asinwatch.simulator.cli import simulate

    app = typer.Typer()
    app.command()(simulate)
    result = CliRunner().invoke(app, ["--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 1
    assert "only listens on loopback" in result.output
