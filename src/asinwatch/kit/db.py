"""Database base class, engines and sessions.

psycopg 3 drives both the async API (``postgresql+psycopg`` with asyncio) and the sync Celery
workers, so there is one driver, one set of type adapters, and COPY for bulk loads.
Sessions are committed in one place (the request dependency or the task's unit of work).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime

from sqlalchemy import DateTime, MetaData, create_engine, func
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from asinwatch.config import get_settings

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )


class DatabaseNotConfiguredError(RuntimeError):
    """No database URL: run `asinwatch up` (embedded) or set ASINWATCH_DATABASE__URL."""


def database_url(url: str | None = None) -> str:
    """The SQLAlchemy URL with the psycopg 3 driver, whatever scheme the user wrote."""
    raw = url or get_settings().database.url
    if not raw:
        raise DatabaseNotConfiguredError(
            "no database configured: set ASINWATCH_DATABASE__URL or run `asinwatch up`"
        )
    u = make_url(raw)
    if u.drivername in ("postgres", "postgresql", "postgresql+psycopg2", "postgresql+asyncpg"):
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)


def _connect_args() -> dict[str, object]:
    timeout = get_settings().database.statement_timeout_ms
    return {"options": f"-c statement_timeout={timeout}", "connect_timeout": 5}


_sync_engines: dict[str, Engine] = {}
_async_engines: dict[str, AsyncEngine] = {}


def sync_engine(url: str | None = None) -> Engine:
    """The process's sync engine for a URL (workers, CLI, migrations)."""
    key = database_url(url)
    if key not in _sync_engines:
        s = get_settings().database
        _sync_engines[key] = create_engine(
            key,
            pool_size=s.pool_size,
            max_overflow=s.max_overflow,
            pool_pre_ping=True,
            connect_args=_connect_args(),
        )
    return _sync_engines[key]


def async_engine(url: str | None = None) -> AsyncEngine:
    """The process's async engine for a URL (the API)."""
    key = database_url(url)
    if key not in _async_engines:
        s = get_settings().database
        _async_engines[key] = create_async_engine(
            key,
            pool_size=s.pool_size,
            max_overflow=s.max_overflow,
            pool_pre_ping=True,
            connect_args=_connect_args(),
        )
    return _async_engines[key]


def dispose_sync_engines() -> None:
    """Close pooled connections (after a fork, or when settings change)."""
    for eng in _sync_engines.values():
        eng.dispose()
    _sync_engines.clear()


async def dispose_async_engines() -> None:
    for eng in _async_engines.values():
        await eng.dispose()
    _async_engines.clear()


@contextmanager
def session_scope() -> Iterator[Session]:
    """A sync unit of work (workers, CLI): commit on success, roll back on error."""
    session = sessionmaker(sync_engine(), expire_on_commit=False)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@asynccontextmanager
async def async_session_scope() -> AsyncIterator[AsyncSession]:
    """An async unit of work: commit on success, roll back on error."""
    maker = async_sessionmaker(async_engine(), expire_on_commit=False)
    async with maker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
