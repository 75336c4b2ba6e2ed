"""HTTP behaviour of the API: problems (404/413/422/429), Idempotency-Key replay, cursor
pagination, write-then-read invalidation, 405 with a complete Allow header."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import psycopg
import pytest

from asinwatch.config import reset_settings_cache
from tests.api.seed import COMP, OWN, UNKNOWN, add_product

Auth = Callable[..., dict[str, str]]


async def test_body_over_the_limit_is_413(
    client: httpx.AsyncClient, auth: Auth, seeded: str
) -> None:
    products = [{"asin": OWN, "title": "x" * 900}] * 1300  # ~1.2 MB > 1 MiB
    resp = await client.post("/v1/products", json={"products": products}, headers=auth("admin"))
    assert resp.status_code == 413
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["type"].endswith("/body-too-large")


async def test_rate_limit_per_token_is_429_with_retry_after(
    client: httpx.AsyncClient, auth: Auth, seeded: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASINWATCH_API__RATE_LIMIT_PER_MINUTE", "3")
    reset_settings_cache()
    statuses = [
        (await client.get("/v1/products", headers=auth("viewer"))).status_code for _ in range(3)
    ]
    assert statuses == [200, 200, 200]
    resp = await client.get("/v1/products", headers=auth("viewer"))
    assert resp.status_code == 429
    assert int(resp.headers["retry-after"]) >= 1
    assert resp.json()["type"].endswith("/rate-limited")
    other = await client.get("/v1/products", headers=auth("operator"))  # another token
    assert other.status_code == 200


async def test_idempotency_key_replays_the_first_response(
    client: httpx.AsyncClient, auth: Auth, seeded: str
) -> None:
    h = auth("operator", **{"Idempotency-Key": "refresh-1"})
    first = await client.post(f"/v1/recommendations/{OWN}/refresh", headers=h)
    assert first.status_code == 202, first.text
    assert first.headers["location"] == f"/v1/jobs/{first.json()['job']['id']}"
    again = await client.post(f"/v1/recommendations/{OWN}/refresh", headers=h)
    assert again.status_code == 202
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    with psycopg.connect(seeded) as conn:
        row = conn.execute("SELECT count(*) FROM core.jobs").fetchone()
    assert row is not None and row[0] == 1
    job = await client.get(first.headers["location"], headers=auth("viewer"))
    assert job.status_code == 200 and job.json()["status"] == "queued"


async def test_idempotency_key_with_another_body_is_422(
    client: httpx.AsyncClient, auth: Auth, seeded: str
) -> None:
    h = auth("admin", **{"Idempotency-Key": "bulk-1"})
    first = await client.post(
        "/v1/products", json={"products": [{"asin": "B0NEW00001"}]}, headers=h
    )
    assert first.status_code == 200 and first.json()["tracked"] == 1
    other = await client.post(
        "/v1/products", json={"products": [{"asin": "B0NEW00002"}]}, headers=h
    )
    assert other.status_code == 422
    assert other.json()["type"].endswith("/idempotency-key-reused")


async def test_ingest_run_is_202_with_location(
    client: httpx.AsyncClient, auth: Auth, seeded: str
) -> None:
    resp = await client.post(
        "/v1/ingest/runs", json={"asins": [OWN, COMP]}, headers=auth("operator")
    )
    assert resp.status_code == 202, resp.text
    run = resp.json()
    assert run["asins_requested"] == 2 and run["trigger"] == "api"
    assert resp.headers["location"] == f"/v1/ingest/runs/{run['id']}"
    detail = await client.get(resp.headers["location"], headers=auth("viewer"))
    assert detail.status_code == 200 and detail.json()["run"]["id"] == run["id"]
    listed = await client.get("/v1/ingest/runs", headers=auth("viewer"))
    assert [r["id"] for r in listed.json()["items"]] == [run["id"]]


async def test_cursor_pagination_walks_every_product_once(
    client: httpx.AsyncClient, auth: Auth, seeded: str
) -> None:
    with psycopg.connect(seeded, autocommit=True) as conn:
        for i in range(7):
            add_product(conn, f"B0PAGE000{i}")
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        resp = await client.get("/v1/products", params=params, headers=auth("viewer"))
        assert resp.status_code == 200
        body = resp.json()
        assert len(body["items"]) <= 3
        seen += [p["asin"] for p in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and len(seen) == 9 and len(set(seen)) == 9


async def test_bad_cursors_and_limits(client: httpx.AsyncClient, auth: Auth, seeded: str) -> None:
    h = auth("viewer")
    first = (await client.get("/v1/products", params={"limit": "1"}, headers=h)).json()
    body, tag = first["next_cursor"].split(".")
    forged = await client.get("/v1/products", params={"cursor": body[:-1] + "A." + tag}, headers=h)
    assert forged.status_code == 404 and forged.json()["type"].endswith("/unknown-cursor")
    foreign = await client.get("/v1/alerts", params={"cursor": first["next_cursor"]}, headers=h)
    assert foreign.status_code == 404
    malformed = await client.get("/v1/products", params={"cursor": "not a cursor"}, headers=h)
    assert malformed.status_code == 422
    too_big = await client.get("/v1/products", params={"limit": "1001"}, headers=h)
    assert too_big.status_code == 422
    clamped = await client.get("/v1/products", params={"limit": "1000"}, headers=h)
    assert clamped.status_code == 200  # capped at settings.api.max_page_size


async def test_untrack_and_track_invalidate_the_summary(
    client: httpx.AsyncClient, auth: Auth, seeded: str
) -> None:
    before = await client.get(f"/v1/products/{COMP}", headers=auth("viewer"))
    assert before.json()["product"]["tracking_state"] == "active"
    assert (await client.delete(f"/v1/products/{COMP}", headers=auth("admin"))).status_code == 204
    after = await client.get(f"/v1/products/{COMP}", headers=auth("viewer"))
    assert after.headers["x-cache"] == "miss"
    assert after.json()["product"]["tracking_state"] == "untracked"
    # An unknown product's 404 is cached too; tracking it drops that at once.
    assert (await client.get(f"/v1/products/{UNKNOWN}", headers=auth("viewer"))).status_code == 404
    tracked = await client.put(
        f"/v1/products/{UNKNOWN}", json={"is_own": False}, headers=auth("admin")
    )
    assert tracked.status_code == 200 and tracked.json()["is_own"] is False
    assert (await client.get(f"/v1/products/{UNKNOWN}", headers=auth("viewer"))).status_code == 200
    bulk = await client.post(
        "/v1/products:untrack", json={"asins": [UNKNOWN, OWN]}, headers=auth("admin")
    )
    assert bulk.status_code == 200 and bulk.json() == {"untracked": 2}


async def test_competitor_links_invalidate_the_competition(
    client: httpx.AsyncClient, auth: Auth, seeded: str
) -> None:
    before = await client.get(f"/v1/competitions/{OWN}", headers=auth("viewer"))
    assert [c["asin"] for c in before.json()["competitors"]] == [COMP]
    link = await client.put(
        f"/v1/products/{OWN}/competitors/B0NEW00009",
        json={"note": "new rival"},
        headers=auth("admin"),
    )
    assert link.status_code == 200 and link.json()["note"] == "new rival"
    after = await client.get(f"/v1/competitions/{OWN}", headers=auth("viewer"))
    assert [c["asin"] for c in after.json()["competitors"]] == [COMP, "B0NEW00009"]
    assert after.json()["competitors"][1]["latest"] is None  # tracked, never observed yet
    self_link = await client.put(
        f"/v1/products/{OWN}/competitors/{OWN}", json={}, headers=auth("admin")
    )
    assert self_link.status_code == 409
    gone = await client.delete(f"/v1/products/{OWN}/competitors/{COMP}", headers=auth("admin"))
    assert gone.status_code == 204
    final = await client.get(f"/v1/competitions/{OWN}", headers=auth("viewer"))
    assert [c["asin"] for c in final.json()["competitors"]] == ["B0NEW00009"]


async def test_thresholds_roundtrip_and_validation(
    client: httpx.AsyncClient, auth: Auth, seeded: str
) -> None:
    url = f"/v1/products/{OWN}/thresholds"
    ok = await client.put(
        url, json={"alert_type": "price_change", "params": {"min_pct": 7.5}}, headers=auth("admin")
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["effective"]["price_change"]["min_pct"] == 7.5
    assert ok.json()["product_overrides"]["price_change"]["params"] == {"min_pct": 7.5}
    for bad in (
        {"alert_type": "price_change", "params": {"pct": 1}},
        {"alert_type": "price_change", "params": {"min_pct": -1}},
        {"alert_type": "nope", "params": {}},
        {"alert_type": "bsr_move", "params": {"min_pct": "5"}},
    ):
        resp = await client.put(url, json=bad, headers=auth("admin"))
        assert resp.status_code == 422, bad
    assert (await client.delete(f"{url}/price_change", headers=auth("admin"))).status_code == 204
    assert (await client.delete(f"{url}/price_change", headers=auth("admin"))).status_code == 404


async def test_alert_transitions(client: httpx.AsyncClient, auth: Auth, seeded: str) -> None:
    alert = (
        await client.get("/v1/alerts", params={"status": "open"}, headers=auth("viewer"))
    ).json()
    alert_id = alert["items"][0]["id"]
    ack = await client.post(f"/v1/alerts/{alert_id}/acknowledge", headers=auth("operator"))
    assert ack.status_code == 200 and ack.json()["status"] == "acknowledged"
    res = await client.post(f"/v1/alerts/{alert_id}/resolve", headers=auth("operator"))
    assert res.json()["status"] == "resolved"
    again = await client.post(f"/v1/alerts/{alert_id}/acknowledge", headers=auth("operator"))
    assert again.status_code == 409
    detail = await client.get(f"/v1/alerts/{alert_id}", headers=auth("viewer"))
    assert [e["event"] for e in detail.json()["history"]] == ["acknowledged", "resolved"]
    missing = await client.post("/v1/alerts/999999/resolve", headers=auth("operator"))
    assert missing.status_code == 404


async def test_channels_mask_their_target(
    client: httpx.AsyncClient, auth: Auth, seeded: str
) -> None:
    created = await client.post(
        "/v1/channels",
        json={"name": "ops", "kind": "webhook", "target": "https://hooks.example.com/T0K3N/secret"},
        headers=auth("admin"),
    )
    assert created.status_code == 201, created.text
    assert "T0K3N" not in created.text and "secret" not in created.json()["target"]
    dup = await client.post(
        "/v1/channels",
        json={"name": "ops", "kind": "webhook", "target": "https://hooks.example.com/x"},
        headers=auth("admin"),
    )
    assert dup.status_code == 409
    private = await client.post(
        "/v1/channels",
        json={"name": "lan", "kind": "webhook", "target": "https://10.0.0.1/hook"},
        headers=auth("admin"),
    )
    assert private.status_code == 422  # SSRF rule
    listed = await client.get("/v1/channels", headers=auth("viewer"))
    assert [c["name"] for c in listed.json()["items"]] == ["ops"]


async def test_405_lists_every_method_of_the_path(client: httpx.AsyncClient, auth: Auth) -> None:
    resp = await client.request("PATCH", f"/v1/products/{OWN}", headers=auth("admin"))
    assert resp.status_code == 405
    assert resp.headers["allow"] == "DELETE, GET, PUT"
    assert resp.headers["content-type"] == "application/problem+json"
