"""One place that makes Redis clients from the settings, and prefixes keys.

Every key asinwatch writes starts with `settings.redis.key_prefix`, so several deployments (or
test runs) can share one Redis without touching each other's data.
"""

from __future__ import annotations

import redis
import redis.asyncio as aioredis

from asinwatch.config import get_settings


class RedisNotConfiguredError(RuntimeError):
    """No Redis URL: run `asinwatch up` (embedded) or set ASINWATCH_REDIS__URL."""


def redis_url() -> str:
    url = get_settings().redis.url
    if not url:
        raise RedisNotConfiguredError(
            "no Redis configured: set ASINWATCH_REDIS__URL or run `asinwatch up`"
        )
    return url


def prefixed(key: str) -> str:
    """The full Redis key for an asinwatch key name."""
    return get_settings().redis.key_prefix + key


def sync_redis() -> redis.Redis:
    timeout = get_settings().redis.socket_timeout_s
    return redis.Redis.from_url(redis_url(), socket_timeout=timeout, socket_connect_timeout=timeout)


def async_redis() -> aioredis.Redis:
    timeout = get_settings().redis.socket_timeout_s
    return aioredis.Redis.from_url(
        redis_url(), socket_timeout=timeout, socket_connect_timeout=timeout
    )
