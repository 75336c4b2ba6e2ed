"""Each endpoint and each role: allowed roles get the endpoint's success status, lower roles a
403 problem, no token a 401 problem. /v1/health and /v1/metrics need no token."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest

from asinwatch.config import reset_settings_cache
from tests.api.conftest import ROLES
from tests.api.seed import COMP, OWN

NEW = "B0NEW00001"
NEW2 = "B0NEW00002"
RANK = {role: i for i, role in enumerate(ROLES)}

# (method, path template, json body, minimum role, success status)
ENDPOINTS: list[tuple[str, str, Any, str, int]] = [
    ("GET", "/v1/products", None, "viewer", 200),
    ("GET", f"/v1/products/{OWN}", None, "viewer", 200),
    ("GET", f"/v1/products/{OWN}/metrics?range=7d", None, "viewer", 200),
    ("GET", f"/v1/products/{OWN}/competitors", None, "viewer", 200),
    ("GET", f"/v1/products/{OWN}/thresholds", None, "viewer", 200),
    ("GET", f"/v1/competitions/{OWN}", None, "viewer", 200),
    ("GET", f"/v1/competitions/{OWN}/report", None, "viewer", 200),
    ("GET", f"/v1/competitions/{OWN}/report/versions", None, "viewer", 200),
    ("GET", f"/v1/recommendations/{OWN}", None, "viewer", 200),
    ("GET", "/v1/jobs/{job}", None, "viewer", 200),
    ("GET", "/v1/alerts", None, "viewer", 200),
    ("GET", "/v1/alerts/{alert}", None, "viewer", 200),
    ("GET", "/v1/channels", None, "viewer", 200),
    ("GET", "/v1/channels/{channel}", None, "viewer", 200),
    ("GET", "/v1/ingest/runs", None, "viewer", 200),
    ("GET", "/v1/ingest/runs/{run}", None, "viewer", 200),
    ("POST", f"/v1/recommendations/{OWN}/refresh", None, "operator", 202),
    ("POST", "/v1/ingest/runs", {"asins": [OWN]}, "operator", 202),
    ("POST", "/v1/alerts/{alert}/acknowledge", None, "operator", 200),
    ("POST", "/v1/alerts/{alert}/resolve", None, "operator", 200),
    ("PUT", f"/v1/products/{NEW}", {"is_own": True}, "admin", 200),
    ("DELETE", f"/v1/products/{COMP}", None, "admin", 204),
    ("POST", "/v1/products", {"products": [{"asin": NEW2}]}, "admin", 200),
    ("POST", "/v1/products:untrack", {"asins": [COMP]}, "admin", 200),
    ("PUT", f"/v1/products/{OWN}/competitors/{NEW}", {"note": "x"}, "admin", 200),
    ("DELETE", f"/v1/products/{OWN}/competitors/{COMP}", None, "admin", 204),
    ("PUT", f"/v1/products/{OWN}/thresholds", {"alert_type": "price_change"}, "admin", 200),
    ("DELETE", f"/v1/products/{OWN}/thresholds/out_of_stock", None, "admin", 204),
    (
        "POST",
        "/v1/channels",
        {"name": "ops", "kind": "webhook", "target": "https://hooks.example.com/x"},
        "admin",
        201,
    ),
    ("PATCH", "/v1/channels/{channel}", {"enabled": False}, "admin", 200),
    ("DELETE", "/v1/channels/{channel}", None, "admin", 204),
    ("POST", "/v1/channels/{channel}/test", None, "admin", 200),
]


@pytest.fixture
def ids(seeded: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    # The channel test sends to a closed local port: allow-list loopback for it.
    monkeypatch.setenv("ASINWATCH_ALERTS__DELIVERY_ALLOWED_HOSTS", '["127.0.0.1"]')
    reset_settings_cache()
    job, run = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(seeded, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO core.jobs (id, kind, status, params, attempts) VALUES (%s, 'x', 'queued',"
            " '{}', 0)",
            (job,),
        )
        conn.execute(
            "INSERT INTO core.ingest_runs (id, job_id, trigger, kind, marketplace, status,"
            " asins_requested, asins_succeeded, asins_quarantined, asins_failed, batches_total,"
            " batches_done, cost_usd, params) VALUES (%s, 'j1', 'api', 'product_details',"
            " 'amazon.com', 'queued', 0, 0, 0, 0, 0, 0, 0, '{}')",
            (run,),
        )
        channel = conn.execute(
            "INSERT INTO core.notification_channels (name, kind, target, alert_types,"
            " min_severity, enabled) VALUES ('hook', 'webhook', 'http://127.0.0.1:9/hook', '{}',"
            " 'info', true) RETURNING id"
        ).fetchone()
        alert = conn.execute("SELECT id FROM core.alerts LIMIT 1").fetchone()
        conn.execute(
            "INSERT INTO core.alert_thresholds (marketplace, asin, alert_type, enabled, params)"
            " VALUES ('amazon.com', %s, 'out_of_stock', true, '{}')",
            (OWN,),
        )
    assert channel is not None and alert is not None
    return {"job": job, "run": run, "channel": channel[0], "alert": alert[0]}


CASES = [
    pytest.param(method, path, body, role, minimum, status, id=f"{method} {path} as {role}")
    for method, path, body, minimum, status in ENDPOINTS
    for role in ROLES
]


@pytest.mark.parametrize(("method", "path", "body", "role", "minimum", "status"), CASES)
async def test_role_matrix(
    client: httpx.AsyncClient,
    auth: Callable[..., dict[str, str]],
    ids: dict[str, Any],
    method: str,
    path: str,
    body: Any,
    role: str,
    minimum: str,
    status: int,
) -> None:
    url = path.format(**ids)
    resp = await client.request(method, url, json=body, headers=auth(role))
    if RANK[role] >= RANK[minimum]:
        assert resp.status_code == status, resp.text
    else:
        assert resp.status_code == 403, resp.text
        assert resp.json()["type"].endswith("/insufficient-role")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [pytest.param(m, p, b, id=f"{m} {p}") for m, p, b, _, _ in ENDPOINTS],
)
async def test_no_token_is_401(
    client: httpx.AsyncClient, ids: dict[str, Any], method: str, path: str, body: Any
) -> None:
    resp = await client.request(method, path.format(**ids), json=body)
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == "Bearer"
    assert resp.headers["content-type"] == "application/problem+json"


async def test_health_and_metrics_need_no_token(client: httpx.AsyncClient, seeded: str) -> None:
    health = await client.get("/v1/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert health.json()["cache"] == {"healthy": True}
    metrics = await client.get("/v1/metrics")
    assert metrics.status_code == 200 and "asinwatch_http_requests_total" in metrics.text
