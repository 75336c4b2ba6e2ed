"""Read through the cache, for services: a value by key, loaded on a miss. No HTTP here.

``read = await read_through(cache, key, loader, fresh_s=..., kind=...)`` gives a `Cached`:
the value (whatever `loader` returns: a JSON-able document, or None for "not found", which is
cached too), ``stale_at`` (None when fresh), the outcome and the entry's memo. The mechanics
are `kit.cache.Cache.read`: stale-while-revalidate (a stale hit answers at once while ONE
background task reloads), single flight per key across processes, a local layer, and Redis
down answered from the loader (``bypass``). With no cache (no Redis, or reads configured to
go straight to the database) the loader answers (``off``).

The loader of a stale hit runs after the caller may have gone, so it opens its own database
connection or session, never borrows the caller's.

After a committed write, ``await invalidate(cache, *keys)`` drops the keys in Redis and in
every process's local layer.

How a read becomes an HTTP response (ETag, Cache-Control, 304, 404) is the router's business
(`api_deps.cached_json`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, NamedTuple, TypeVar

from asinwatch.config import get_settings
from asinwatch.kit.cache import Cache, Loader
from asinwatch.kit.unavailable import retry_db

T = TypeVar("T")
ReadOutcome = Literal["hit", "miss", "stale", "bypass", "off"]


class Cached(NamedTuple, Generic[T]):
    """A value read through the cache.

    `memo` is the cached entry's scratch dict (the same dict for every read of one stored
    value; empty and private when the value was just loaded), for what callers derive from
    the value once (an ETag, a serialised body) rather than on every read.
    """

    value: T
    stale_at: datetime | None
    outcome: ReadOutcome
    memo: dict[str, Any]


async def read_through(
    cache: Cache | None,
    key: str | None,
    loader: Loader[T],
    *,
    fresh_s: float,
    kind: str,
    stale_s: float | None = None,
) -> Cached[T]:
    """`loader()`'s value through the cache under `key` (see the module docstring).

    ``key=None`` reads past the cache (a value no write invalidates must not be cached);
    `kind` labels the cache metrics; `stale_s` defaults to settings.cache.stale_s.
    """

    async def load() -> T:
        return await retry_db(loader)  # a database restart: retried, then 503

    if cache is None or key is None:
        return Cached(await load(), None, "off", {})
    stale = get_settings().cache.stale_s if stale_s is None else stale_s
    value, stale_at, outcome, memo = await cache.read(key, load, fresh_s, stale, kind)
    return Cached(value, stale_at, outcome, memo)


async def invalidate(cache: Cache | None, *keys: str) -> bool:
    """Drop `keys` everywhere after a committed write; False when Redis is down (the keys
    then expire by themselves: the local TTL backstop and the Redis fresh time)."""
    if cache is None or not keys:
        return True
    return await cache.invalidate(*keys)
