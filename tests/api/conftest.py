"""The API under test: create_app() with its lifespan (cache + invalidation listener), an
httpx client over ASGITransport, dev tokens for each role, and the standard seeded data."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from asinwatch.app import create_app
from asinwatch.auth.jwt import issue_dev_token
from tests.api.seed import seed_standard

ROLES = ("viewer", "operator", "admin")


async def started_app() -> AsyncIterator[FastAPI]:
    app = create_app()
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def app(clean_db: str, redis_url: str, redis_client: Any) -> AsyncIterator[FastAPI]:
    async for a in started_app():
        yield a


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as c:
        yield c


@pytest.fixture
def tokens() -> dict[str, str]:
    """A token per role; a fresh subject per test keeps per-principal rate limits apart."""
    run = uuid.uuid4().hex[:8]
    return {role: issue_dev_token(role, sub=f"{role}-{run}") for role in ROLES}


@pytest.fixture
def auth(tokens: dict[str, str]) -> Callable[[str], dict[str, str]]:
    def headers(role: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[role]}", **extra}

    return headers


@pytest.fixture
def seeded(clean_db: str) -> str:
    seed_standard(clean_db)
    return clean_db
