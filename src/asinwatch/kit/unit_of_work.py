"""The unit of work: one session whose commit is the only commit, and the side effects that
must follow it.

Code that writes adds to ``uow.session`` and queues what must happen only once the write is
durable: ``uow.invalidate(*keys)`` (cached reads the write changed) and
``uow.after_commit(hook)`` (a Celery send, ...). `commit()` commits, then drops the queued
keys (one call, every process: `kit.readthrough.invalidate`), then runs the hooks in the order
they were queued. A rollback (`discard`, or any exception inside `unit_of_work()`) drops them
all: a request that fails sends nothing and invalidates nothing.

Hooks run after the commit, so they cannot undo it: a hook that fails is logged, the other
hooks still run, and the first failure is raised afterwards (a hook may raise a problem, e.g.
a 503 when the queue is down, after recording the failure in a transaction of its own).

`unit_of_work()` is the scope: commit on success, roll back on error. The API opens one per
request (`api_deps.get_uow`); `commit()` may also be called earlier by the kit (the
idempotency wrapper commits before it stores the response), and committing again with
nothing new is free.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from asinwatch.kit import readthrough
from asinwatch.kit.cache import Cache
from asinwatch.kit.db import async_engine

log = structlog.get_logger(__name__)

Hook = Callable[[], Awaitable[None]]


class UnitOfWork:
    """See the module docstring."""

    def __init__(self, session: AsyncSession, cache: Cache | None = None) -> None:
        self.session = session
        self._cache = cache
        self._keys: dict[str, None] = {}
        self._hooks: list[Hook] = []

    def invalidate(self, *keys: str) -> None:
        """Drop these cached reads once the work is committed."""
        self._keys.update(dict.fromkeys(keys))

    def after_commit(self, hook: Hook) -> None:
        """Run `hook` once the work is committed (never if it is rolled back)."""
        self._hooks.append(hook)

    @property
    def pending(self) -> tuple[list[str], int]:
        """The queued cache keys and the number of queued hooks (for tests and logs)."""
        return list(self._keys), len(self._hooks)

    def discard(self) -> None:
        """Forget everything queued (the work is being rolled back)."""
        self._keys.clear()
        self._hooks.clear()

    async def commit(self) -> None:
        """Commit, then invalidate the queued keys, then run the queued hooks."""
        await self.session.commit()
        keys, hooks = list(self._keys), list(self._hooks)
        self.discard()
        if keys:
            await readthrough.invalidate(self._cache, *keys)
        first: Exception | None = None
        for hook in hooks:
            try:
                await hook()
            except Exception as exc:
                log.warning("uow.after_commit_failed", hook=_name(hook), error=type(exc).__name__)
                first = first or exc
        if first is not None:
            raise first

    async def rollback(self) -> None:
        self.discard()
        await self.session.rollback()


def _name(hook: Hook) -> str:
    return getattr(hook, "__qualname__", None) or repr(hook)


@asynccontextmanager
async def unit_of_work(cache: Cache | None = None) -> AsyncIterator[UnitOfWork]:
    """A unit of work over a new session: committed (then its side effects flushed) when the
    block ends, rolled back (and its side effects dropped) when it raises."""
    maker = async_sessionmaker(async_engine(), expire_on_commit=False)
    async with maker() as session:
        uow = UnitOfWork(session, cache)
        try:
            yield uow
            await uow.commit()
        except BaseException:
            await uow.rollback()
            raise
