"""Cache-first reads from Redis with stale-while-revalidate, single-flight loads, pub/sub
invalidation and a small in-process layer. Domain-free: each domain names its own keys
(catalog.cache_keys, reports.cache_keys, recommendations.cache_keys) with `key_part`.

``value, stale_at, outcome = await cache.get_or_load(key, loader, fresh_s, stale_s, kind)``:

- ``hit``: a fresh value (local layer or Redis); `stale_at` is None;
- ``stale``: past its fresh time but inside the stale window: answered at once with
  `stale_at` (when it went stale) while ONE background task reloads it;
- ``miss``: nothing cached; the value was loaded (once across every reader of every process:
  an in-process future plus a Redis lock ``SET NX PX`` released by compare-and-delete);
- ``bypass``: Redis is unreachable; the loader answered directly. `cache.healthy` is False
  (report "degraded" in /v1/health). Cache trouble never raises; the loader's errors do.

Values must be JSON-serialisable (pydantic: ``model.model_dump(mode="json")``). The loader of
a stale hit runs in the background, after the request may have ended, so it must open its own
database session (``async with async_session_scope()``), never use the request's.

After a write, ``await cache.invalidate(key, ...)`` deletes the keys and publishes them; each
API process runs the listener (``await cache.start()`` in the app lifespan, ``await
cache.aclose()`` at shutdown) that drops them from its local layer. Endpoints get the app's
cache as ``request.app.state.cache``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Generic, Literal, NamedTuple, TypeVar

import redis.asyncio as aioredis
import structlog
from redis.commands.core import AsyncScript

from asinwatch.config import get_settings
from asinwatch.kit.cache_invalidation import (
    REDIS_ERRORS,
    Envelope,
    InvalidationListener,
    LocalCache,
    encode_message,
)
from asinwatch.kit.redis_client import async_redis
from asinwatch.observability.metrics import CACHE_EVENTS

log = structlog.get_logger(__name__)

T = TypeVar("T")
Outcome = Literal["hit", "miss", "stale", "bypass"]
Loader = Callable[[], Awaitable[T]]

INVALIDATION_CHANNEL = "cache:invalidate"
LOCK_PREFIX = "lock:"
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class CacheResult(NamedTuple, Generic[T]):
    value: T
    stale_at: datetime | None
    outcome: Outcome


class CacheRead(NamedTuple, Generic[T]):
    """`CacheResult` plus the memo of the cached entry (see `Envelope.memo`): the same dict for
    every read of one stored value, a new empty one when the value was not served from the
    cache (miss, bypass)."""

    value: T
    stale_at: datetime | None
    outcome: Outcome
    memo: dict[str, Any]


# --- key parts ------------------------------------------------------------------------------


def key_part(value: str, name: str) -> str:
    """`value` as one part of a ``:``-separated cache key; ValueError when it is empty or
    would split the key (the key builders live with their domains, e.g. catalog.cache_keys)."""
    if not value or any(c in value for c in ": \t\r\n"):
        raise ValueError(f"invalid cache key part {name}={value!r}")
    return value


# --- the cache ------------------------------------------------------------------------------


class Cache:
    """See the module docstring. One instance per process (``app.state.cache``)."""

    def __init__(
        self,
        redis: aioredis.Redis | None = None,
        *,
        key_prefix: str | None = None,
        local_ttl_s: float | None = None,
        local_max_entries: int = 10_000,
        lock_ttl_s: float = 10.0,
        wait_step_s: float = 0.01,
        retry_after_failure_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        settings = get_settings()
        self._redis = redis if redis is not None else async_redis()
        self._prefix = key_prefix if key_prefix is not None else settings.redis.key_prefix
        self._local = LocalCache(
            settings.cache.local_ttl_s if local_ttl_s is None else local_ttl_s,
            local_max_entries,
            clock,
        )
        self._lock_ttl_ms = int(lock_ttl_s * 1000)
        self._wait_step_s = wait_step_s
        self._retry_after_failure_s = retry_after_failure_s
        self._clock = clock
        self._release: AsyncScript = self._redis.register_script(_RELEASE_LUA)
        self._inflight: dict[str, asyncio.Future[Any]] = {}
        self._refreshing: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._events: dict[tuple[str, str], Any] = {}
        self._down_until = 0.0
        self._listener: InvalidationListener | None = None
        self._listener_task: asyncio.Task[None] | None = None
        self.healthy = True

    # -- lifecycle

    @property
    def channel(self) -> str:
        return self._prefix + INVALIDATION_CHANNEL

    @property
    def listener(self) -> InvalidationListener | None:
        return self._listener

    async def start(self) -> None:
        """Start the invalidation listener task (idempotent)."""
        if self._listener_task is None:
            self._listener = InvalidationListener(
                self._redis, self.channel, self._local, self._set_health
            )
            self._listener_task = asyncio.create_task(self._listener.run())

    async def drain(self) -> None:
        """Wait for the background refreshes started so far."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        """Stop the listener, finish background refreshes, close the Redis client."""
        if self._listener_task is not None:
            if self._listener is not None:
                self._listener.stop()
            self._listener_task.cancel()
            await asyncio.gather(self._listener_task, return_exceptions=True)
            self._listener_task = None
        await self.drain()
        with contextlib.suppress(*REDIS_ERRORS):
            await self._redis.aclose()

    def _set_health(self, ok: bool) -> None:
        if ok != self.healthy:
            log.warning("cache_redis_state", healthy=ok)
        self.healthy = ok
        if not ok:
            self._down_until = time.monotonic() + self._retry_after_failure_s

    # -- reads

    async def get_or_load(
        self, key: str, loader: Loader[T], fresh_s: float, stale_s: float, kind: str
    ) -> CacheResult[T]:
        value, stale_at, outcome, _ = await self.read(key, loader, fresh_s, stale_s, kind)
        return CacheResult(value, stale_at, outcome)

    async def read(
        self, key: str, loader: Loader[T], fresh_s: float, stale_s: float, kind: str
    ) -> CacheRead[T]:
        """`get_or_load` that also hands back the entry's memo (for derived data)."""
        now = self._clock()
        local = self._local.get(key)
        if local is not None and now < local.fresh_until:
            return self._result(local.payload, None, "hit", kind, local.memo)
        if time.monotonic() < self._down_until:
            return self._result(await self._coalesce(key, loader), None, "bypass", kind, {})
        try:
            raw = await self._redis.get(self._prefix + key)
        except REDIS_ERRORS as exc:
            self._redis_failed(exc)
            return self._result(await self._coalesce(key, loader), None, "bypass", kind, {})
        if not self.healthy:
            self._set_health(True)
        envelope = _decode(raw)
        if envelope is not None:
            if now < envelope.fresh_until:
                self._local.put(key, envelope)
                return self._result(envelope.payload, None, "hit", kind, envelope.memo)
            if now < envelope.stale_until:
                self._refresh_in_background(key, loader, fresh_s, stale_s)
                return self._result(
                    envelope.payload, _at(envelope.fresh_until), "stale", kind, envelope.memo
                )
        value = await self._coalesce(key, lambda: self._load_locked(key, loader, fresh_s, stale_s))
        return self._result(value, None, "miss", kind, {})

    def _result(
        self,
        value: T,
        stale_at: datetime | None,
        outcome: Outcome,
        kind: str,
        memo: dict[str, Any],
    ) -> CacheRead[T]:
        counter = self._events.get((kind, outcome))
        if counter is None:
            # labels() takes a lock and builds a key per call; the child is stable, keep it.
            counter = self._events[(kind, outcome)] = CACHE_EVENTS.labels(kind, outcome)
        counter.inc()
        return CacheRead(value, stale_at, outcome, memo)

    def _redis_failed(self, exc: BaseException) -> None:
        if self.healthy:
            log.warning("cache_redis_unavailable", error=str(exc) or type(exc).__name__)
        self._set_health(False)

    async def _coalesce(self, key: str, produce: Callable[[], Awaitable[T]]) -> T:
        """One `produce()` per key at a time in this process; concurrent callers share it."""
        pending = self._inflight.get(key)
        if pending is not None:
            result: T = await asyncio.shield(pending)
            return result
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await produce()
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # mark retrieved: nobody may be waiting
            raise
        else:
            future.set_result(value)
            return value
        finally:
            del self._inflight[key]

    async def _load_locked(self, key: str, loader: Loader[T], fresh_s: float, stale_s: float) -> T:
        """Load under the cross-process lock, or wait for whoever holds it to store the value."""
        full = self._prefix + key
        lock = self._prefix + LOCK_PREFIX + key
        token = uuid.uuid4().hex
        # Longer than the lock: a holder that died is replaced once its lock expires.
        deadline = time.monotonic() + 2 * self._lock_ttl_ms / 1000
        try:
            while time.monotonic() < deadline:
                if await self._redis.set(lock, token, nx=True, px=self._lock_ttl_ms):
                    try:
                        # Someone may have stored it between our read and our lock.
                        envelope = _decode(await self._redis.get(full))
                        if envelope is not None and self._clock() < envelope.fresh_until:
                            return envelope.payload
                        value = await loader()
                        await self._store(key, value, fresh_s, stale_s)
                        return value
                    finally:
                        await self._unlock(lock, token)
                await asyncio.sleep(self._wait_step_s)
                envelope = _decode(await self._redis.get(full))
                if envelope is not None and self._clock() < envelope.stale_until:
                    return envelope.payload
        except REDIS_ERRORS as exc:
            self._redis_failed(exc)
            return await loader()
        log.warning("cache_lock_wait_timeout", key=key)
        return await loader()

    async def _store(self, key: str, value: Any, fresh_s: float, stale_s: float) -> None:
        now = self._clock()
        envelope = Envelope(value, now + fresh_s, now + fresh_s + stale_s)
        try:
            await self._redis.set(
                self._prefix + key, envelope.encode(), px=max(1, int((fresh_s + stale_s) * 1000))
            )
        except REDIS_ERRORS as exc:
            self._redis_failed(exc)
            return
        self._local.put(key, envelope)

    async def _unlock(self, lock: str, token: str) -> None:
        try:
            await self._release(keys=[lock], args=[token])
        except REDIS_ERRORS as exc:  # it expires after lock_ttl_s anyway
            self._redis_failed(exc)

    def _refresh_in_background(
        self, key: str, loader: Loader[Any], fresh_s: float, stale_s: float
    ) -> None:
        if key in self._refreshing:
            return
        self._refreshing.add(key)
        task = asyncio.create_task(self._refresh(key, loader, fresh_s, stale_s))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refresh(self, key: str, loader: Loader[Any], fresh_s: float, stale_s: float) -> None:
        lock = self._prefix + LOCK_PREFIX + key
        token = uuid.uuid4().hex
        try:
            if not await self._redis.set(lock, token, nx=True, px=self._lock_ttl_ms):
                return  # another process is refreshing it
            try:
                await self._store(key, await loader(), fresh_s, stale_s)
            finally:
                await self._unlock(lock, token)
        except REDIS_ERRORS as exc:
            self._redis_failed(exc)
        except Exception as exc:  # the stale value keeps being served; the next read retries
            log.warning("cache_refresh_failed", key=key, error=str(exc))
        finally:
            self._refreshing.discard(key)

    # -- invalidation

    async def invalidate(self, *keys: str) -> bool:
        """Delete `keys` in Redis and tell every process to drop them; False if Redis is down
        (the local layer is still dropped here; other processes' TTL backstop applies)."""
        if not keys:
            return True
        self._local.drop(keys)
        try:
            await self._redis.delete(*(self._prefix + k for k in keys))
            await self._redis.publish(self.channel, encode_message(keys))
        except REDIS_ERRORS as exc:
            self._redis_failed(exc)
            return False
        return True

    async def ping(self) -> bool:
        """Check Redis now (for /v1/health) and update `healthy`."""
        try:
            await self._redis.ping()
        except REDIS_ERRORS as exc:
            self._redis_failed(exc)
            return False
        self._set_health(True)
        self._down_until = 0.0
        return True


def _decode(raw: bytes | str | None) -> Envelope | None:
    return Envelope.decode(raw) if raw is not None else None


def _at(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, tz=UTC)
