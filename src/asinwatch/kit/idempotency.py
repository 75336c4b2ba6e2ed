"""Idempotency-Key for POSTs (draft-ietf-httpapi-idempotency-key-header), stored in
core.idempotency_keys and scoped to the caller (principal ``sub``).

- first request with a key: runs, and its response (status, headers, body) is stored;
- same key + same request again: the stored response is replayed (``Idempotent-Replayed: true``);
- same key while the first is still running: 409 problem (``Retry-After: 1``);
- same key with a different request (sha256 of method, path+query, body): 422 problem;
- keys expire after settings.api.idempotency_ttl_s; an in-flight marker older than
  `in_flight_timeout_s` (a crashed process) is taken over;
- a handler that raises or answers 5xx stores nothing, so the client may retry.

Endpoint use: take the `Idempotency` dependency (`auth.guards.idempotency`, which binds
`idempotency_for` to the authenticated caller: kit imports no auth) and run the work through
it; the handler returns a complete `Response` (a replay must be byte-identical)::

    @router.post("/v1/recommendations/{asin}/refresh", status_code=202)
    async def refresh(
        asin: str,
        who: Annotated[Principal, Depends(require_role("operator"))],
        idem: Annotated[Idempotency, Depends(idempotency)],
    ) -> Response:
        async def work() -> Response:
            job = await enqueue_refresh(asin, who.sub)
            return JSONResponse({"job_id": str(job.id)}, status_code=202)
        return await idem.run(work)

Use `auth.guards.idempotency_required` instead to refuse a POST without the header (400).
Without a header, `idempotency` just runs the handler. Run `purge_expired()` periodically.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from fastapi import Request
from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.sql.elements import ColumnElement
from starlette.responses import Response

from asinwatch.config import get_settings
from asinwatch.kit.db import async_engine
from asinwatch.kit.idempotency_model import IdempotencyKey
from asinwatch.kit.problems import ProblemError

log = structlog.get_logger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
_VALID_KEY = re.compile(r"[\x21-\x7e]{1,255}")
# Not stored: per-response or per-connection values a replay must not repeat.
_NOT_STORED = frozenset(
    {"content-length", "date", "server", "x-request-id", "set-cookie", "connection"}
)
DEFAULT_IN_FLIGHT_TIMEOUT_S = 300.0

Handler = Callable[[], Awaitable[Response]]


def request_hash(method: str, path: str, body: bytes) -> str:
    """sha256 of method, path (with query) and body: what "the same request" means."""
    h = hashlib.sha256()
    h.update(method.upper().encode() + b"\n" + path.encode() + b"\n")
    h.update(body)
    return h.hexdigest()


@dataclass
class Idempotency:
    """One request's idempotency context; `run(handler)` applies the rules above."""

    principal: str
    key: str | None
    method: str
    path: str
    request_hash: str
    ttl_s: int
    in_flight_timeout_s: float = DEFAULT_IN_FLIGHT_TIMEOUT_S
    # The request's unit of work (kit.unit_of_work): committed before the response is stored,
    # so a stored response always stands for a committed write.
    commit: Callable[[], Awaitable[None]] | None = None

    async def run(self, handler: Handler) -> Response:
        if self.key is None:
            return await handler()
        replay = await self._claim()
        if replay is not None:
            return replay
        try:
            response = await handler()
            if self.commit is not None and response.status_code < 500:
                await self.commit()
        except BaseException:
            await self._release()
            raise
        if response.status_code >= 500 or not hasattr(response, "body"):
            await self._release()
            return response
        await self._store(response)
        return response

    def _where(self) -> list[ColumnElement[bool]]:
        return [IdempotencyKey.principal == self.principal, IdempotencyKey.key == self.key]

    async def _claim(self) -> Response | None:
        """Insert the in-flight marker (or take over an expired/abandoned one); otherwise
        replay, or raise 409/422."""
        now = datetime.now(UTC)
        table = IdempotencyKey.__table__
        values = {
            "principal": self.principal,
            "key": self.key,
            "method": self.method,
            "path": self.path,
            "request_hash": self.request_hash,
            "state": "in_flight",
            "response_status": None,
            "response_headers": None,
            "response_body": None,
            "created_at": now,
            "expires_at": now + timedelta(seconds=self.ttl_s),
        }
        insert = pg_insert(IdempotencyKey).values(**values)
        upsert = insert.on_conflict_do_update(
            index_elements=[IdempotencyKey.principal, IdempotencyKey.key],
            set_={k: insert.excluded[k] for k in values if k not in ("principal", "key")},
            where=or_(
                table.c.expires_at < now,
                and_(
                    table.c.state == "in_flight",
                    table.c.created_at < now - timedelta(seconds=self.in_flight_timeout_s),
                ),
            ),
        ).returning(IdempotencyKey.principal)
        async with async_engine().begin() as conn:
            if (await conn.execute(upsert)).first() is not None:
                return None  # ours: run the handler
            row = (
                await conn.execute(
                    select(
                        IdempotencyKey.request_hash,
                        IdempotencyKey.state,
                        IdempotencyKey.response_status,
                        IdempotencyKey.response_headers,
                        IdempotencyKey.response_body,
                    ).where(*self._where())
                )
            ).first()
        if row is None or row.state == "in_flight":
            # None: the first attempt failed and released the key this instant; retry soon.
            raise ProblemError(
                409,
                title="Request in progress",
                detail="a request with this Idempotency-Key is still being processed",
                type_suffix="idempotency-in-flight",
                headers={"Retry-After": "1"},
            )
        if row.request_hash != self.request_hash:
            raise ProblemError(
                422,
                title="Idempotency-Key reused",
                detail="this Idempotency-Key was used with a different request",
                type_suffix="idempotency-key-reused",
            )
        headers = dict(row.response_headers or {})
        headers[REPLAYED_HEADER] = "true"
        return Response(
            content=row.response_body or b"",
            status_code=int(row.response_status or 200),
            headers=headers,
        )

    async def _store(self, response: Response) -> None:
        headers = {k: v for k, v in response.headers.items() if k.lower() not in _NOT_STORED}
        async with async_engine().begin() as conn:
            await conn.execute(
                update(IdempotencyKey)
                .where(*self._where(), IdempotencyKey.request_hash == self.request_hash)
                .values(
                    state="done",
                    response_status=response.status_code,
                    response_headers=headers,
                    response_body=bytes(response.body),
                )
            )

    async def _release(self) -> None:
        try:
            async with async_engine().begin() as conn:
                await conn.execute(
                    delete(IdempotencyKey).where(
                        *self._where(),
                        IdempotencyKey.state == "in_flight",
                        IdempotencyKey.request_hash == self.request_hash,
                    )
                )
        except Exception as exc:  # the marker then expires via in_flight_timeout_s
            log.warning("idempotency_release_failed", key=self.key, error=str(exc))


async def idempotency_for(request: Request, principal: str) -> Idempotency:
    """The request's `Idempotency` for the caller `principal` (a no-op wrapper when there is no
    header). Kit knows no authentication: a dependency binds it to the caller
    (`auth.guards.idempotency`)."""
    key = request.headers.get(HEADER)
    if key is not None and not _VALID_KEY.fullmatch(key):
        raise ProblemError(
            400,
            detail="Idempotency-Key must be 1-255 visible ASCII characters",
            type_suffix="invalid-idempotency-key",
        )
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    body = await request.body() if key is not None else b""
    return Idempotency(
        principal=principal,
        key=key,
        method=request.method,
        path=path,
        request_hash=request_hash(request.method, path, body),
        ttl_s=get_settings().api.idempotency_ttl_s,
    )


def require_key(idem: Idempotency) -> Idempotency:
    """`idem`, or a 400 problem when the POST has no Idempotency-Key header."""
    if idem.key is None:
        raise ProblemError(
            400,
            detail="this endpoint requires an Idempotency-Key header",
            type_suffix="idempotency-key-required",
        )
    return idem


async def purge_expired(now: datetime | None = None) -> int:
    """Delete expired keys; returns how many (for a periodic maintenance task)."""
    cutoff = now or datetime.now(UTC)
    async with async_engine().begin() as conn:
        result = await conn.execute(
            delete(IdempotencyKey).where(IdempotencyKey.expires_at < cutoff)
        )
    return int(getattr(result, "rowcount", 0) or 0)
