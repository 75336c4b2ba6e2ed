"""The small in-process cache in front of Redis and the pub/sub listener that invalidates it.

Pub/sub is at-most-once: a message sent while this process is disconnected is lost. So local
entries live at most settings.cache.local_ttl_s (the backstop), and every (re)subscription and
every listener error empties the local cache entirely.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis
import structlog
from cachetools import TLRUCache
from redis.exceptions import RedisError

log = structlog.get_logger(__name__)

REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)


@dataclass(frozen=True)
class Envelope:
    """A cached payload with its timestamps (epoch seconds).

    Fresh until `fresh_until`; from then on it is stale (``stale_at`` = `fresh_until`) and may
    be served while refreshing until `stale_until`, when Redis drops it.

    `memo` holds what readers derive from the payload (its ETag, its serialised body), so a
    value served many times from the local layer is hashed and serialised once. Payloads are
    never changed after they are cached (every reader shares them), so the memo stays true.
    """

    payload: Any
    fresh_until: float
    stale_until: float
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "payload": self.payload,
                "fresh_until": self.fresh_until,
                "stale_until": self.stale_until,
            }
        )

    @staticmethod
    def decode(raw: bytes | str) -> Envelope | None:
        try:
            data = orjson.loads(raw)
            return Envelope(data["payload"], float(data["fresh_until"]), float(data["stale_until"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None


def _until(_key: object, item: tuple[float, object], _now: float) -> float:
    return item[0]


class LocalCache:
    """A bounded LRU of envelopes, each kept at most `ttl_s` in this process (cachetools'
    TLRUCache: each entry expires at its own time, by `clock`)."""

    def __init__(
        self, ttl_s: float, max_entries: int = 10_000, clock: Callable[[], float] = time.time
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._entries: TLRUCache[str, tuple[float, Envelope]] = TLRUCache(
            maxsize=max(1, max_entries), ttu=_until, timer=clock
        )

    def get(self, key: str) -> Envelope | None:
        item = self._entries.get(key)
        return None if item is None else item[1]

    def put(self, key: str, envelope: Envelope) -> None:
        if self.ttl_s <= 0 or self.max_entries <= 0:
            return
        self._entries[key] = (min(self._clock() + self.ttl_s, envelope.stale_until), envelope)

    def drop(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def encode_message(keys: Iterable[str]) -> bytes:
    return orjson.dumps(list(keys))


def decode_message(data: object) -> list[str] | None:
    """The keys of an invalidation message; None (= flush everything) when unreadable."""
    try:
        keys = orjson.loads(data) if isinstance(data, bytes | str) else None
    except orjson.JSONDecodeError:
        return None
    if isinstance(keys, list) and all(isinstance(k, str) for k in keys):
        return keys
    return None


class InvalidationListener:
    """Subscribes to `channel` and drops the named keys from `local`; reconnects forever."""

    def __init__(
        self,
        redis: aioredis.Redis,
        channel: str,
        local: LocalCache,
        on_health: Callable[[bool], None],
        *,
        poll_s: float = 1.0,
        max_backoff_s: float = 5.0,
    ) -> None:
        self._redis = redis
        self._channel = channel
        self._local = local
        self._on_health = on_health
        self._poll_s = poll_s
        self._max_backoff_s = max_backoff_s
        self.subscribed = asyncio.Event()
        self.messages_seen = 0
        self.subscriptions = 0
        self._stopping = False

    def stop(self) -> None:
        """Ask `run` to return (it checks between two polls, at most `poll_s` apart)."""
        self._stopping = True

    def _should_stop(self) -> bool:
        """Stopped, or cancelled although the cancellation did not reach us: redis-py turns a
        cancellation that races its read timeout into "no message" (a TimeoutError caught
        inside `get_message`), and the loop then polled on for ever, so `Cache.aclose` (the
        app's shutdown, a test's teardown) waited for ever too."""
        task = asyncio.current_task()
        return self._stopping or (task is not None and task.cancelling() > 0)

    async def run(self) -> None:
        backoff = 0.1
        while not self._should_stop():
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                while not self._should_stop():
                    # A bounded wait: the client's socket timeout would abort a blocking read.
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=False, timeout=self._poll_s
                    )
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        # (Re)connected: anything published meanwhile is lost, start empty.
                        self._local.clear()
                        self._on_health(True)
                        self.subscriptions += 1
                        self.subscribed.set()
                        backoff = 0.1
                    elif message["type"] == "message":
                        self.messages_seen += 1
                        keys = decode_message(message["data"])
                        if keys is None:
                            self._local.clear()
                        else:
                            self._local.drop(keys)
            except asyncio.CancelledError:
                raise
            except REDIS_ERRORS as exc:
                self.subscribed.clear()
                self._local.clear()
                self._on_health(False)
                log.warning("cache_invalidation_listener_down", error=str(exc), retry_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff_s)
            finally:
                with contextlib.suppress(*REDIS_ERRORS):
                    await pubsub.aclose()
