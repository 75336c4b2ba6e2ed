"""POST /v1/ingest/runs under the spend guards: the daily upstream cap (429 problem with
Retry-After, plus the pipeline alert) and the admin gate on untracked or large runs (403)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal

import httpx
import psycopg
import pytest

from asinwatch.config import reset_settings_cache
from tests.api.seed import COMP, MP, OWN, UNKNOWN

Auth = Callable[..., dict[str, str]]


async def test_untracked_or_large_runs_need_admin(
    client: httpx.AsyncClient, auth: Auth, seeded: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    resp = await client.post(
        "/v1/ingest/runs", json={"asins": [OWN, UNKNOWN]}, headers=auth("operator")
    )
    assert resp.status_code == 403, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert body["type"].endswith("/admin-required") and UNKNOWN in body["detail"]
    admin = await client.post(
        "/v1/ingest/runs", json={"asins": [OWN, UNKNOWN]}, headers=auth("admin")
    )
    assert admin.status_code == 202, admin.text
    monkeypatch.setenv("ASINWATCH_INGEST__ADMIN_RUN_SIZE", "1")
    reset_settings_cache()
    big = await client.post(
        "/v1/ingest/runs", json={"asins": [OWN, COMP]}, headers=auth("operator")
    )
    assert big.status_code == 403 and "admin_run_size=1" in big.json()["detail"]
    small = await client.post("/v1/ingest/runs", json={"asins": [OWN]}, headers=auth("operator"))
    assert small.status_code == 202, small.text


async def test_the_daily_cap_is_a_429_problem_and_an_alert(
    client: httpx.AsyncClient, auth: Auth, seeded: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASINWATCH_APIFY__MAX_COST_USD_PER_DAY", "2.5")
    reset_settings_cache()
    with psycopg.connect(seeded, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO core.ingest_runs (id, job_id, trigger, kind, marketplace, status,"
            " asins_requested, asins_succeeded, asins_quarantined, asins_failed, batches_total,"
            " batches_done, cost_usd, params) VALUES (%s, 'spent', 'manual', 'product_details',"
            " %s, 'running', 1, 0, 0, 0, 1, 0, %s, '{}')",
            (uuid.uuid4(), MP, Decimal("2.5")),
        )
    resp = await client.post("/v1/ingest/runs", json={"asins": [OWN]}, headers=auth("operator"))
    assert resp.status_code == 429, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert 0 < int(resp.headers["retry-after"]) <= 86_400
    body = resp.json()
    assert body["type"].endswith("/upstream-spend-cap") and "spend cap" in body["detail"]
    with psycopg.connect(seeded) as conn:
        alert = conn.execute(
            "SELECT severity, status, asin FROM core.alerts WHERE alert_type = 'upstream_spend_cap'"
        ).fetchall()
        runs = conn.execute("SELECT count(*) FROM core.ingest_runs").fetchone()
    assert alert == [("critical", "open", "-")]
    assert runs == (1,)  # nothing was created
    listed = await client.get("/v1/alerts", headers=auth("viewer"))
    assert any(a["alert_type"] == "upstream_spend_cap" for a in listed.json()["items"])
