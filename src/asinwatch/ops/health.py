"""Dependency checks behind GET /v1/health (database, Redis, broker, schema version)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from sqlalchemy import text

from asinwatch import __version__
from asinwatch.config import get_settings
from asinwatch.kit.db import async_engine
from asinwatch.migrations.runner import head_revision
from asinwatch.observability.metrics import DEPENDENCY_UP

CHECK_TIMEOUT_S = 2.0


@dataclass(slots=True)
class Check:
    ready: bool
    latency_ms: float
    error: str | None = None
    detail: str | None = None

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"ready": self.ready, "latency_ms": round(self.latency_ms, 2)}
        if self.error:
            out["error"] = self.error
        if self.detail:
            out["detail"] = self.detail
        return out


def _error_text(exc: BaseException) -> str:
    # The class name and first line only: never a connection string or a secret.
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first[:200]}" if first else type(exc).__name__


async def check_database() -> Check:
    start = time.perf_counter()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            async with async_engine().connect() as conn:
                rev = (
                    await conn.execute(text("SELECT version_num FROM public.alembic_version"))
                ).scalar_one_or_none()
        return Check(True, (time.perf_counter() - start) * 1000, detail=rev)
    except Exception as exc:  # any failure means "not ready", reported, never raised
        return Check(False, (time.perf_counter() - start) * 1000, error=_error_text(exc))


async def check_redis(url: str | None) -> Check:
    start = time.perf_counter()
    if not url:
        return Check(False, 0.0, error="not configured")
    client = aioredis.Redis.from_url(url, socket_timeout=CHECK_TIMEOUT_S, socket_connect_timeout=1)
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await client.ping()
        return Check(True, (time.perf_counter() - start) * 1000)
    except Exception as exc:
        return Check(False, (time.perf_counter() - start) * 1000, error=_error_text(exc))
    finally:
        await client.aclose()


async def health_report() -> tuple[int, dict[str, object]]:
    """(HTTP status, body). 200 when the database is ready (Redis down is "degraded")."""
    s = get_settings()
    db, cache, broker = await asyncio.gather(
        check_database(), check_redis(s.redis.url), check_redis(s.broker_url)
    )
    for name, chk in (("database", db), ("redis", cache), ("broker", broker)):
        DEPENDENCY_UP.labels(name).set(1 if chk.ready else 0)
    head = head_revision()
    schema_ok = db.ready and db.detail == head
    if not db.ready:
        status = "down"
    elif cache.ready and broker.ready and schema_ok:
        status = "ok"
    else:
        status = "degraded"
    body: dict[str, object] = {
        "status": status,
        "live": True,
        "ready": db.ready,
        "version": __version__,
        "env": s.env,
        "schema": {"current": db.detail, "head": head, "up_to_date": schema_ok},
        "dependencies": {
            "database": db.as_dict(),
            "redis": cache.as_dict(),
            "broker": broker.as_dict(),
        },
    }
    return (200 if db.ready else 503), body
