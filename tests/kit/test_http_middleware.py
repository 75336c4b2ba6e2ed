"""Request ids, security headers, HSTS only over https, metrics by route template, CORS."""

from __future__ import annotations

import logging
import re

import httpx
import pytest
import structlog
from prometheus_client import REGISTRY
from starlette.responses import HTMLResponse, Response
from structlog.testing import capture_logs

from asinwatch.kit.http_middleware import UNMATCHED_ROUTE
from tests.kit.conftest import build_app, client_for, settings_with


async def test_safe_incoming_request_id_is_kept(client: httpx.AsyncClient) -> None:
    resp = await client.get("/items/1", headers={"X-Request-Id": "edge-7f3a.12:b"})
    assert resp.headers["x-request-id"] == "edge-7f3a.12:b"


@pytest.mark.parametrize("bad", ["has space", "<script>", "x" * 200, "-leading-dash", ""])
async def test_unsafe_incoming_request_id_is_replaced(client: httpx.AsyncClient, bad: str) -> None:
    resp = await client.get("/items/1", headers={"X-Request-Id": bad})
    assert re.fullmatch(r"[0-9a-f]{32}", resp.headers["x-request-id"])


async def test_generated_request_ids_differ(client: httpx.AsyncClient) -> None:
    a = (await client.get("/items/1")).headers["x-request-id"]
    b = (await client.get("/items/1")).headers["x-request-id"]
    assert a != b


async def test_security_headers_on_json(client: httpx.AsyncClient) -> None:
    resp = await client.get("/items/1")
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["x-frame-options"] == "DENY"
    assert resp.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in resp.headers["content-security-policy"]
    assert "strict-transport-security" not in resp.headers  # plain http


async def test_forwarded_proto_alone_is_not_believed(client: httpx.AsyncClient) -> None:
    # Only the server (uvicorn, for a trusted proxy) turns the header into the scheme.
    resp = await client.get("/items/1", headers={"X-Forwarded-Proto": "https"})
    assert "strict-transport-security" not in resp.headers


async def test_hsts_when_scheme_is_https() -> None:
    async with client_for(build_app(), base_url="https://test") as c:
        resp = await c.get("/items/1")
    assert "max-age=31536000" in resp.headers["strict-transport-security"]


def _requests(route: str, status: str) -> float:
    value = REGISTRY.get_sample_value(
        "asinwatch_http_requests_total", {"method": "GET", "route": route, "status": status}
    )
    return value or 0.0


async def test_metrics_are_labelled_by_route_template(client: httpx.AsyncClient) -> None:
    before = _requests("/items/{item_id}", "200")
    before_unmatched = _requests(UNMATCHED_ROUTE, "404")
    with capture_logs() as logs:
        await client.get("/items/41")
        await client.get("/items/42")
        await client.get("/no/such/path")
    assert _requests("/items/{item_id}", "200") == before + 2
    assert _requests(UNMATCHED_ROUTE, "404") == before_unmatched + 1
    assert (
        REGISTRY.get_sample_value(
            "asinwatch_http_requests_total",
            {"method": "GET", "route": "/items/41", "status": "200"},
        )
        is None
    )
    lines = [e for e in logs if e["event"] == "http_request"]
    assert [e["route"] for e in lines] == ["/items/{item_id}", "/items/{item_id}", UNMATCHED_ROUTE]
    assert lines[0]["status"] == 200 and "latency_ms" in lines[0]


async def test_500_is_counted_as_500(client: httpx.AsyncClient) -> None:
    before = _requests("/boom", "500")
    await client.get("/boom")
    assert _requests("/boom", "500") == before + 1


async def test_cors_allows_only_configured_origins() -> None:
    app = build_app(settings_with(cors_origins=["https://app.example"], max_body_bytes=1024))
    preflight = {"Access-Control-Request-Method": "GET"}
    async with client_for(app) as c:
        ok = await c.options("/items/1", headers={"Origin": "https://app.example", **preflight})
        bad = await c.options("/items/1", headers={"Origin": "https://evil.example", **preflight})
        simple = await c.get("/items/1", headers={"Origin": "https://app.example"})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-origin" not in bad.headers
    assert "etag" in simple.headers["access-control-expose-headers"].lower()


async def test_no_cors_headers_when_no_origins_configured(client: httpx.AsyncClient) -> None:
    resp = await client.get("/items/1", headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in resp.headers


async def test_security_headers_never_override_or_duplicate_what_the_app_set() -> None:
    app = build_app()

    @app.get("/framed")
    async def framed() -> Response:
        return Response(
            b"{}",
            media_type="application/json",
            headers={"X-Frame-Options": "SAMEORIGIN", "Content-Security-Policy": "default-src x"},
        )

    @app.get("/page")
    async def page() -> HTMLResponse:
        return HTMLResponse("<p>docs</p>")

    async with client_for(app, base_url="https://test") as c:
        framed_resp = await c.get("/framed")
        page_resp = await c.get("/page")
    assert framed_resp.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
    assert framed_resp.headers.get_list("content-security-policy") == ["default-src x"]
    assert framed_resp.headers["x-content-type-options"] == "nosniff"
    assert framed_resp.headers["strict-transport-security"].startswith("max-age=")
    assert "content-security-policy" not in page_resp.headers  # HTML gets no strict CSP
    assert page_resp.headers["referrer-policy"] == "no-referrer"


async def test_metrics_are_counted_when_the_log_level_drops_access_lines(
    client: httpx.AsyncClient,
) -> None:
    saved = structlog.get_config()
    before = _requests("/items/{item_id}", "200")
    try:
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
        with capture_logs() as logs:
            await client.get("/items/7")
    finally:
        structlog.configure(**saved)
    assert _requests("/items/{item_id}", "200") == before + 1
    assert [e for e in logs if e["event"] == "http_request"] == []
    with capture_logs() as logs:
        await client.get("/items/8")
    assert [e["route"] for e in logs if e["event"] == "http_request"] == ["/items/{item_id}"]
