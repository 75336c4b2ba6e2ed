"""The beat scheduler: RedBeat, made to survive a Redis restart and to fail over fast.

RedBeat keeps the schedule entries and the "one active beat" lock in Redis. Redis here has no
persistence, so a restart loses both; stock RedBeat then crashes the active beat (its lock
extension fails) and leaves a standby that takes the lock with no entries to fire. This
scheduler, on every tick:

- rides out a connection error (logs, sleeps briefly, tries again; never exits);
- holds the lock or tries to get it without blocking (a standby polls every tick, so it takes
  over within `recovery.beat_lock_timeout_s` + one tick of the active beat dying);
- on getting the lock, and whenever the schedule key is missing from Redis, rebuilds the
  schedule from code + settings (`celery_app.beat_schedule`) before firing anything.
"""

from __future__ import annotations

from typing import Any

import structlog
from celery.signals import beat_init
from redbeat.schedulers import (
    LUA_EXTEND_TO_SCRIPT,
    RedBeatScheduler,
    acquire_distributed_beat_lock,
    get_redis,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import LockError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = structlog.get_logger(__name__)

_OUTAGE = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)

# RedBeat blocks in beat_init until it has the lock and gives up on a connection error; the
# lock is taken in `tick` instead, without blocking, so an outage never stops the loop.
beat_init.disconnect(acquire_distributed_beat_lock)


class ResilientRedBeatScheduler(RedBeatScheduler):
    """RedBeat whose lock and schedule are re-established after Redis comes back."""

    #: Seconds between tries while Redis is unreachable or another beat holds the lock.
    retry_s = 1.0
    lock: Any = None

    def _new_lock(self) -> Any:
        client = get_redis(self.app)
        lock = client.lock(self.lock_key, timeout=self.lock_timeout, sleep=self.retry_s)
        lock.lua_extend = client.register_script(LUA_EXTEND_TO_SCRIPT)
        return lock

    def _hold_lock(self) -> bool:
        if self.lock is not None:
            try:
                self.lock.extend(int(self.lock_timeout))
                return True
            except LockError:
                log.warning("beat: lost the lock (Redis restarted or lock expired)")
                self.lock = None
        lock = self._new_lock()
        if not lock.acquire(blocking=False):
            return False
        self.lock = lock
        log.info("beat: Acquired lock; rebuilding the schedule from code and settings")
        self.setup_schedule()
        return True

    def setup_schedule(self) -> None:
        # Also runs when the scheduler is created: Redis away at that moment must not end
        # the process; `tick` rebuilds the schedule once Redis answers.
        try:
            super().setup_schedule()
        except _OUTAGE as exc:
            log.warning("beat: cannot write the schedule yet", error=f"{type(exc).__name__}")

    def _ensure_schedule(self) -> None:
        client = get_redis(self.app)
        if not client.exists(self.app.redbeat_conf.schedule_key):
            log.warning("beat: schedule missing from Redis; rebuilding it")
            self.setup_schedule()

    def tick(self, min: Any = min, **kwargs: Any) -> float:
        try:
            if self.lock_key and not self._hold_lock():
                return self.retry_s
            self._ensure_schedule()
            return float(super().tick(min=min, **kwargs))
        except LockError:
            self.lock = None
            return self.retry_s
        except _OUTAGE as exc:
            log.warning("beat: Redis unreachable; retrying", error=f"{type(exc).__name__}: {exc}")
            return self.retry_s

    def close(self) -> None:
        try:
            super().close()
        except _OUTAGE:
            self.lock = None
