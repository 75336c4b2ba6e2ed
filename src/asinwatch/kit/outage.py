"""Riding out a short database or broker outage inside a task (tenacity, full-jitter backoff).

`outage_retry(fn, *args)` calls `fn` again while it fails with a connection-level error of
PostgreSQL, Redis or the broker, for up to `settings.recovery.outage_retry_s`; then the last
error is raised and the caller's own failure handling (task retry, dead letter) takes over.
Only use it around work that is one transaction or otherwise safe to repeat.

`retry_delay_s(attempt, base_s, max_s)` is the project's one backoff between attempts a caller
schedules itself (alert deliveries, ingest batch retries): full jitter, the same wait as here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

import psycopg
import psycopg.errors
import redis.exceptions
import structlog
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import OperationalError as SAOperationalError
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_delay,
    wait_random_exponential,
)

from asinwatch.config import get_settings

log = structlog.get_logger(__name__)


def retry_delay_s(attempt: int, base_s: float, max_s: float) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based): full jitter,
    uniform(0, min(max_s, base_s * 2**(attempt-1)))."""
    wait = wait_random_exponential(multiplier=base_s, max=max_s)
    state = RetryCallState(retry_object=Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = max(1, attempt)
    return float(wait(state))


P = ParamSpec("P")
T = TypeVar("T")

OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    SAOperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    BrokerError,
    ConnectionError,
)


def is_outage(exc: BaseException) -> bool:
    """A lost or refused connection; not a statement timeout or a lock wait that gave up."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig if exc.orig is not None else exc
    if isinstance(exc, psycopg.errors.QueryCanceled | psycopg.errors.LockNotAvailable):
        return False
    return isinstance(exc, OUTAGE_ERRORS)


def _log(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    log.warning(
        "outage: retrying",
        attempt=state.attempt_number,
        error=f"{type(exc).__name__}: {exc}"[:300],
        retry_in_s=round(state.next_action.sleep, 2) if state.next_action else None,
    )


def outage_retry(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    budget = get_settings().recovery.outage_retry_s
    retrying = Retrying(
        retry=retry_if_exception(is_outage),
        stop=stop_after_delay(budget),
        wait=wait_random_exponential(multiplier=0.5, max=5),
        before_sleep=_log,
        reraise=True,
    )
    return retrying(fn, *args, **kwargs)
