"""Opaque cursor pagination: `Page[T]`, `PageParams`, cursors, `paginate`.

The ``?limit=&cursor=`` dependency of the API is ``api_deps.page_params`` (``Paging``).

A cursor is ``base64url(JSON of the last row's sort key) . base64url(tag)``; the tag is an
HMAC (key derived from the auth secret) over the key and the list's `scope`, so an edited or
foreign cursor is a clear 400 problem instead of a strange query. Endpoint use (keyset query,
fetch one row more than the limit to know whether there is a next page)::

    @router.get("/v1/alerts", response_model=Page[AlertOut])
    async def list_alerts(page: Paging, ...):    # api_deps.Paging
        after = page.after(scope="alerts")          # None, or the decoded last sort key
        stmt = select(Alert).order_by(Alert.created_at.desc(), Alert.id.desc())
        if after is not None:
            stmt = stmt.where(tuple_(Alert.created_at, Alert.id) < (after[0], after[1]))
        rows = (await session.scalars(stmt.limit(page.fetch_limit))).all()
        return paginate(
            [AlertOut.model_validate(r) for r in rows], page,
            key=lambda a: [a.created_at.isoformat(), str(a.id)], scope="alerts",
        )
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson
from pydantic import BaseModel

from asinwatch.config import get_settings
from asinwatch.kit.problems import ProblemError

T = TypeVar("T")
MAX_CURSOR_CHARS = 1024
_TAG_BYTES = 12


class Page(BaseModel, Generic[T]):
    """One page of results; `next_cursor` is None on the last page."""

    items: list[T]
    next_cursor: str | None = None


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _tag(payload: bytes, scope: str) -> bytes:
    secret = get_settings().auth.jwt_secret.get_secret_value().encode()
    key = hashlib.sha256(b"asinwatch-cursor\x00" + secret).digest()
    return hmac.new(key, scope.encode() + b"\x00" + payload, hashlib.sha256).digest()[:_TAG_BYTES]


def invalid_cursor(detail: str = "the cursor is malformed or was altered") -> ProblemError:
    return ProblemError(400, title="Invalid cursor", detail=detail, type_suffix="invalid-cursor")


def encode_cursor(key: Any, *, scope: str = "") -> str:
    """The opaque cursor for a sort key (JSON-serialisable: list, str, number ...)."""
    payload = orjson.dumps(key)
    return f"{_b64e(payload)}.{_b64e(_tag(payload, scope))}"


def decode_cursor(cursor: str, *, scope: str = "") -> Any:
    """The sort key inside `cursor`; a 400 problem when it is malformed or tampered with."""
    if len(cursor) > MAX_CURSOR_CHARS:
        raise invalid_cursor("the cursor is too long")
    body, sep, tag = cursor.partition(".")
    if not sep or not body or not tag:
        raise invalid_cursor()
    try:
        payload = _b64d(body)
        given = _b64d(tag)
    except (binascii.Error, ValueError) as exc:
        raise invalid_cursor() from exc
    if not hmac.compare_digest(given, _tag(payload, scope)):
        raise invalid_cursor()
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise invalid_cursor() from exc


@dataclass(frozen=True)
class PageParams:
    """What the client asked for: a bounded `limit` and the raw cursor (decode with `after`)."""

    limit: int
    cursor: str | None = None

    @property
    def fetch_limit(self) -> int:
        """Rows to fetch: one more than the page, to learn whether another page exists."""
        return self.limit + 1

    def after(self, *, scope: str = "") -> Any:
        return None if self.cursor is None else decode_cursor(self.cursor, scope=scope)


def paginate(
    rows: Sequence[T], params: PageParams, *, key: Callable[[T], Any], scope: str = ""
) -> Page[T]:
    """The page for `rows` fetched with `params.fetch_limit`; the cursor encodes `key(last)`."""
    items = list(rows[: params.limit])
    has_more = len(rows) > params.limit and bool(items)
    next_cursor = encode_cursor(key(items[-1]), scope=scope) if has_more else None
    return Page[T](items=items, next_cursor=next_cursor)
