"""create_app(): the FastAPI application with its middleware, routers and lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from asinwatch import __version__
from asinwatch.config import get_settings
from asinwatch.kit.db import dispose_async_engines
from asinwatch.observability.logging import configure_logging
from asinwatch.ops.router import router as ops_router


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await dispose_async_engines()


def create_app() -> FastAPI:
    s = get_settings()
    configure_logging(s.service_name + "-api", s.log.level, s.log.json_format)
    app = FastAPI(
        title="asinwatch",
        version=__version__,
        description="Amazon product and competitor monitoring: metrics, alerts, reports.",
        lifespan=lifespan,
        docs_url="/docs" if s.env != "production" else None,
        redoc_url=None,
        openapi_url="/v1/openapi.json",
    )
    app.include_router(ops_router)
    return app
