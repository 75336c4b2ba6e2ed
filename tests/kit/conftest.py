"""A tiny FastAPI app with the kit's handlers and middlewares, and an httpx client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from pydantic import BaseModel

from asinwatch.auth.guards import known_subject
from asinwatch.config import Settings, get_settings
from asinwatch.kit.http_middleware import install_middleware
from asinwatch.kit.problems import ProblemError, install_problem_handlers


class Item(BaseModel):
    name: str
    qty: int


def settings_with(**api: Any) -> Settings:
    s = get_settings()
    return s.model_copy(update={"api": s.api.model_copy(update=api)})


def build_app(
    settings: Settings | None = None, *, rate_limit: bool = False, limiter: Any = None
) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    install_middleware(
        app,
        settings or settings_with(max_body_bytes=1024),
        rate_limit=rate_limit,
        rate_limiter=limiter,
        known_subject=known_subject,
    )

    @app.get("/items/{item_id}")
    async def get_item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    @app.post("/items")
    async def create_item(item: Item) -> Item:
        return item

    @app.post("/raw")
    async def raw(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("database password is hunter2")

    @app.get("/teapot")
    async def teapot() -> None:
        raise ProblemError(
            418,
            detail="short and stout",
            type_suffix="teapot",
            headers={"X-Tea": "1"},
            extra={"brew": "earl grey", "status": 200},
        )

    @app.get("/v1/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def client_for(app: FastAPI, base_url: str = "http://test", **kw: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, **kw), base_url=base_url)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(build_app()) as c:
        yield c
