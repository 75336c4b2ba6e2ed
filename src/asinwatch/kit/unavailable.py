"""A dependency that is briefly down: retry the read, then answer 503, never 500.

Owns which errors mean "PostgreSQL (or Redis where the request needs it) is unreachable",
`retry_db` (tenacity: a few tries with jittered exponential backoff, settings.api
``db_connect_attempts`` / ``db_retry_backoff_s``) and `install_unavailable_handlers(app)`:
those errors become an RFC 9457 problem, 503 ``dependency-unavailable`` with ``Retry-After``
(settings.api.unavailable_retry_after_s).

Only errors about the connection are retried (`is_connection_error`): the read is repeated
from the start on a fresh connection; a statement timeout or a data error is not retried.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import psycopg
import structlog
from fastapi import FastAPI, Request
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import exc as sa_exc
from starlette.responses import Response
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from asinwatch.config import get_settings
from asinwatch.kit.problems import problem_response, request_id_of

log = structlog.get_logger(__name__)

T = TypeVar("T")

# The server is gone, restarting or refusing connections; the pool has no connection to give.
DB_UNAVAILABLE: tuple[type[Exception], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)
REDIS_UNAVAILABLE: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError)


def is_connection_error(exc: BaseException) -> bool:
    """True when `exc` says the connection failed (refused, reset, server shutting down or
    starting up): worth a new try. A query cancelled by the statement timeout is not."""
    orig: BaseException | None = exc
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        orig = exc.orig
    if isinstance(orig, psycopg.errors.QueryCanceled | psycopg.errors.LockNotAvailable):
        return False
    return isinstance(orig, psycopg.OperationalError | psycopg.InterfaceError)


async def retry_db(fn: Callable[[], Awaitable[T]]) -> T:
    """`fn()`, tried again on a database connection error; the last error is raised."""
    api = get_settings().api
    retrying = AsyncRetrying(
        retry=retry_if_exception(is_connection_error),
        stop=stop_after_attempt(api.db_connect_attempts),
        wait=wait_random_exponential(multiplier=api.db_retry_backoff_s, max=1.0),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await fn()
    raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover


def unavailable_response(request: Request, what: str) -> Response:
    return problem_response(
        503,
        title="Service Unavailable",
        detail=f"{what} is unavailable; retry later",
        type_suffix="dependency-unavailable",
        instance=request.url.path,
        request_id=request_id_of(request),
        headers={"Retry-After": str(get_settings().api.unavailable_retry_after_s)},
    )


async def _database_down(request: Request, exc: Exception) -> Response:
    log.warning("database_unavailable", path=request.url.path, error=type(exc).__name__)
    return unavailable_response(request, "the database")


async def _redis_down(request: Request, exc: Exception) -> Response:
    log.warning("redis_unavailable", path=request.url.path, error=type(exc).__name__)
    return unavailable_response(request, "a required service (Redis)")


def install_unavailable_handlers(app: FastAPI) -> None:
    for db_error in DB_UNAVAILABLE:
        app.add_exception_handler(db_error, _database_down)
    for redis_error in REDIS_UNAVAILABLE:
        app.add_exception_handler(redis_error, _redis_down)
