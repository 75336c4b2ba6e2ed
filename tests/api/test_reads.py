"""The cache-first reads: happy paths on seeded data, 304, 404/422 problems, stale-while-
revalidate with stale_at, and invalidation after a write."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import httpx
import psycopg
from fastapi import FastAPI

from asinwatch.catalog.cache_keys import summary_key
from asinwatch.kit.cache import Cache
from asinwatch.kit.etag import dumps, make_etag
from tests.api.seed import COMP, MP, OWN, UNKNOWN, today

Auth = Callable[..., dict[str, str]]


async def test_summary_has_latest_kpis_and_open_alerts(
    client: httpx.AsyncClient, auth: Auth, seeded: str
) -> None:
    resp = await client.get(f"/v1/products/{OWN.lower()}", headers=auth("viewer"))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["product"]["asin"] == OWN and body["product"]["marketplace"] == MP
    assert body["latest"]["buybox_price"] == 28.9  # day 89: 20.0 + 89 * 0.1
    assert body["latest"]["date"] == today().isoformat()
    assert body["kpis"]["kpis"] == {"price": {"current": 28.9}}
    assert [a["alert_type"] for a in body["open_alerts"]] == ["price_change"]
    assert body["stale_at"] is None
    assert resp.headers["cache-control"] == "private, max-age=60"
    assert resp.headers["vary"] == "Authorization"
    assert resp.headers["etag"].startswith('W/"')
    assert resp.headers["x-cache"] == "miss"
    assert resp.headers["x-request-id"]
    again = await client.get(f"/v1/products/{OWN}", headers=auth("viewer"))
    assert again.headers["x-cache"] == "hit" and again.json() == body


async def test_if_none_match_gives_304(client: httpx.AsyncClient, auth: Auth, seeded: str) -> None:
    first = await client.get(f"/v1/products/{OWN}", headers=auth("viewer"))
    etag = first.headers["etag"]
    resp = await client.get(
        f"/v1/products/{OWN}", headers=auth("viewer", **{"If-None-Match": etag})
    )
    assert resp.status_code == 304
    assert resp.content == b""
    assert resp.headers["etag"] == etag
    assert resp.headers["cache-control"] == "private, max-age=60"
    other = await client.get(
        f"/v1/products/{OWN}", headers=auth("viewer", **{"If-None-Match": 'W/"other"'})
    )
    assert other.status_code == 200


async def test_metrics_named_ranges_and_window(
    client: httpx.AsyncClient, auth: Auth, seeded: str
) -> None:
    h = auth("viewer")
    for name, days in (("7d", 7), ("30d", 30), ("90d", 90)):
        resp = await client.get(f"/v1/products/{OWN}/metrics", params={"range": name}, headers=h)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["range"] == name and len(body["points"]) == days
        assert body["to"] == today().isoformat()
        assert body["points"][-1]["buybox_price"] == 28.9
        dates = [p["date"] for p in body["points"]]
        assert dates == sorted(dates)
    start = today() - timedelta(days=9)
    resp = await client.get(
        f"/v1/products/{OWN}/metrics",
        params={"from": start.isoformat(), "to": (start + timedelta(days=4)).isoformat()},
        headers=h,
    )
    body = resp.json()
    assert resp.status_code == 200 and body["range"] is None and len(body["points"]) == 5
    assert resp.headers["x-cache"] == "off"  # custom windows are not cached


async def test_metrics_windows_anchor_and_bad_input(
    client: httpx.AsyncClient, auth: Auth, seeded: str
) -> None:
    h = auth("viewer")
    end = today() - timedelta(days=10)
    anchored = await client.get(
        f"/v1/products/{OWN}/metrics", params={"range": "7d", "to": end.isoformat()}, headers=h
    )
    body = anchored.json()
    assert anchored.status_code == 200 and body["range"] is None
    assert body["from"] == (end - timedelta(days=6)).isoformat() and len(body["points"]) == 7
    empty = await client.get(
        f"/v1/products/{OWN}/metrics", params={"from": "2026-02-01", "to": "2026-01-01"}, headers=h
    )
    assert empty.status_code == 200 and empty.json()["points"] == []
    for params in ({"range": "8d"}, {"from": "yesterday"}, {"to": "0"}, {"from": "2026-02-30"}):
        resp = await client.get(f"/v1/products/{OWN}/metrics", params=params, headers=h)
        assert resp.status_code == 422, params
        assert resp.headers["content-type"] == "application/problem+json"
        assert resp.json()["errors"]


async def test_competition_lists_competitors_with_gaps(
    client: httpx.AsyncClient, auth: Auth, seeded: str
) -> None:
    resp = await client.get(f"/v1/competitions/{OWN}", headers=auth("viewer"))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert [c["asin"] for c in body["competitors"]] == [COMP]
    comp = body["competitors"][0]
    assert comp["latest"]["buybox_price"] == 25.9
    assert comp["comparison"]["price_gap_abs"] == 3.0
    assert comp["comparison"]["standing"]["price"] == "behind"


async def test_report_latest_and_version(
    client: httpx.AsyncClient, auth: Auth, seeded: str
) -> None:
    h = auth("viewer")
    latest = await client.get(f"/v1/competitions/{OWN}/report", headers=h)
    assert latest.status_code == 200 and latest.json()["version"] == 2
    v1 = await client.get(f"/v1/competitions/{OWN}/report", params={"version": 1}, headers=h)
    assert v1.status_code == 200 and v1.json()["body"] == {"version": 1}
    assert v1.headers["cache-control"] == "private, max-age=86400"
    v9 = await client.get(f"/v1/competitions/{OWN}/report", params={"version": 9}, headers=h)
    assert v9.status_code == 404
    versions = await client.get(f"/v1/competitions/{OWN}/report/versions", headers=h)
    assert [v["version"] for v in versions.json()["items"]] == [2, 1]


async def test_recommendations_latest(client: httpx.AsyncClient, auth: Auth, seeded: str) -> None:
    resp = await client.get(f"/v1/recommendations/{OWN}", headers=auth("viewer"))
    assert resp.status_code == 200
    assert resp.json()["items"][0]["rule_id"] == "title.length"
    none = await client.get(f"/v1/recommendations/{COMP}", headers=auth("viewer"))
    assert none.status_code == 404


async def test_unknown_product_is_404_problem(
    client: httpx.AsyncClient, auth: Auth, seeded: str
) -> None:
    for path in (
        f"/v1/products/{UNKNOWN}",
        f"/v1/products/{UNKNOWN}/metrics",
        f"/v1/competitions/{UNKNOWN}",
        f"/v1/products/{OWN}?marketplace=amazon.de",
    ):
        resp = await client.get(path, headers=auth("viewer"))
        assert resp.status_code == 404, path
        problem = resp.json()
        assert resp.headers["content-type"] == "application/problem+json"
        assert problem["status"] == 404 and problem["type"].endswith("/not-found")
        assert problem["request_id"] == resp.headers["x-request-id"]


async def test_bad_asin_and_marketplace_are_422(
    client: httpx.AsyncClient, auth: Auth, seeded: str
) -> None:
    for path in (
        "/v1/products/NOTANASIN!",
        "/v1/products/B0SHORT",
        "/v1/products/%00%00",
        f"/v1/products/{OWN}?marketplace=ebay.com",
        f"/v1/recommendations/{'B' * 11}",
    ):
        resp = await client.get(path, headers=auth("viewer"))
        assert resp.status_code == 422, path
        assert resp.json()["type"].endswith("/validation-error")


async def test_stale_value_is_served_with_stale_at_then_refreshed(
    app: FastAPI, client: httpx.AsyncClient, auth: Auth, seeded: str
) -> None:
    cache: Cache = app.state.cache
    clock = [1_000_000.0]
    cache._clock = lambda: clock[0]  # the kit's cache takes its clock for exactly this
    cache._local.ttl_s = 0  # only Redis: the local layer would answer "hit" meanwhile
    first = await client.get(f"/v1/products/{OWN}", headers=auth("viewer"))
    assert first.headers["x-cache"] == "miss"
    with psycopg.connect(seeded, autocommit=True) as conn:
        conn.execute("UPDATE core.products SET title = 'Renamed' WHERE asin = %s", (OWN,))
    clock[0] += 61  # past summary_fresh_s (60), inside stale_s
    stale = await client.get(f"/v1/products/{OWN}", headers=auth("viewer"))
    assert stale.status_code == 200 and stale.headers["x-cache"] == "stale"
    assert stale.json()["stale_at"] is not None
    assert stale.json()["product"]["title"] == f"Product {OWN}"
    await cache.drain()  # the single background refresh
    fresh = await client.get(f"/v1/products/{OWN}", headers=auth("viewer"))
    assert fresh.headers["x-cache"] == "hit"
    assert fresh.json()["stale_at"] is None and fresh.json()["product"]["title"] == "Renamed"


async def test_write_invalidates_summary(
    app: FastAPI, client: httpx.AsyncClient, auth: Auth, seeded: str, redis_client: object
) -> None:
    await client.get(f"/v1/products/{OWN}", headers=auth("viewer"))
    cache: Cache = app.state.cache
    assert await cache._redis.exists(cache._prefix + summary_key(MP, OWN)) == 1
    alert_id = (await client.get("/v1/alerts", headers=auth("viewer"))).json()["items"][0]["id"]
    resp = await client.post(f"/v1/alerts/{alert_id}/resolve", headers=auth("operator"))
    assert resp.status_code == 200 and resp.json()["status"] == "resolved"
    assert await cache._redis.exists(cache._prefix + summary_key(MP, OWN)) == 0
    after = await client.get(f"/v1/products/{OWN}", headers=auth("viewer"))
    assert after.headers["x-cache"] == "miss" and after.json()["open_alerts"] == []


async def test_hits_serve_the_bytes_and_etag_of_the_first_read_fresh_or_stale(
    app: FastAPI, client: httpx.AsyncClient, auth: Auth, seeded: str
) -> None:
    cache: Cache = app.state.cache
    clock = [2_000_000.0]
    cache._clock = lambda: clock[0]
    path = f"/v1/products/{OWN}"
    reads = [await client.get(path, headers=auth("viewer")) for _ in range(3)]
    assert [r.headers["x-cache"] for r in reads] == ["miss", "hit", "hit"]
    assert len({r.content for r in reads}) == 1  # the body kept with the entry is the same
    etag = reads[0].headers["etag"]
    assert {r.headers["etag"] for r in reads} == {etag}
    # Still the weak hash of the cached value alone (stale_at is not part of it).
    value = {k: v for k, v in reads[0].json().items() if k != "stale_at"}
    assert etag == make_etag(dumps(value), weak=True)
    not_modified = await client.get(path, headers=auth("viewer", **{"If-None-Match": etag}))
    assert not_modified.status_code == 304 and not_modified.headers["x-cache"] == "hit"

    clock[0] += 61  # past summary_fresh_s: served stale from Redis, same validator
    stale = await client.get(path, headers=auth("viewer"))
    assert stale.headers["x-cache"] == "stale"
    assert stale.headers["etag"] == etag
    assert stale.json()["stale_at"] is not None
    assert {k: v for k, v in stale.json().items() if k != "stale_at"} == value
    await cache.drain()
