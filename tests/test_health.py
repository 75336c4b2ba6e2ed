"""GET /v1/health reports every dependency; Redis down is degraded, the database down is 503."""

from __future__ import annotations

import httpx
import pytest

from asinwatch.app import create_app


async def _get_health() -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get("/v1/health")


async def test_all_ready(db_url: str, redis_url: str) -> None:
    resp = await _get_health()
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "ok"
    assert body["schema"] == {"current": "0002", "head": "0002", "up_to_date": True}
    for dep in ("database", "redis", "broker"):
        assert body["dependencies"][dep]["ready"] is True


async def test_redis_down_is_degraded(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASINWATCH_REDIS__URL", "redis://127.0.0.1:1/0")
    resp = await _get_health()
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "degraded"
    assert body["dependencies"]["redis"]["ready"] is False
    assert "error" in body["dependencies"]["redis"]


async def test_database_down_is_503(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASINWATCH_DATABASE__URL", "postgresql://postgres:s3cret@127.0.0.1:1/x")
    resp = await _get_health()
    assert resp.status_code == 503
    body = resp.json()
    assert body["status"] == "down" and body["ready"] is False
    assert "s3cret" not in resp.text
