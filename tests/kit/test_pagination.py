"""Opaque cursors round-trip, are tamper-evident (400 problem), and limits are bounded (the
API's `api_deps.page_params` clamps a limit above settings.api.max_page_size)."""

from __future__ import annotations

import base64
import json

import pytest

from asinwatch.api_deps import Paging
from asinwatch.kit.pagination import (
    Page,
    PageParams,
    decode_cursor,
    encode_cursor,
    paginate,
)
from asinwatch.kit.problems import ProblemError
from tests.kit.conftest import build_app, client_for

ROWS = [{"id": i, "name": f"row-{i}"} for i in range(10)]


def test_cursor_round_trip() -> None:
    key = ["2026-11-29T10:00:00+00:00", 42]
    cursor = encode_cursor(key, scope="alerts")
    assert "{" not in cursor and "[" not in cursor  # opaque, URL-safe
    assert decode_cursor(cursor, scope="alerts") == key


@pytest.mark.parametrize(
    "mangle",
    [
        lambda c: "garbage",
        lambda c: c + "x",
        lambda c: c.split(".")[0],
        lambda c: "!!!." + c.split(".")[1],
        lambda c: "x" * 2000,
        # a well-formed payload the server did not issue, with the old tag
        lambda c: (
            base64.urlsafe_b64encode(json.dumps([1]).encode()).decode().rstrip("=")
            + "."
            + c.split(".")[1]
        ),
    ],
)
def test_tampered_cursor_is_400(mangle: object) -> None:
    cursor = encode_cursor([0], scope="alerts")
    with pytest.raises(ProblemError) as err:
        decode_cursor(mangle(cursor), scope="alerts")  # type: ignore[operator]
    assert err.value.status == 400 and err.value.type_suffix == "invalid-cursor"


def test_cursor_of_another_list_is_400() -> None:
    with pytest.raises(ProblemError):
        decode_cursor(encode_cursor([5], scope="products"), scope="alerts")


def test_paginate_and_page_model() -> None:
    params = PageParams(limit=3)
    page = paginate(ROWS[: params.fetch_limit], params, key=lambda r: r["id"])
    assert [r["id"] for r in page.items] == [0, 1, 2]
    assert page.next_cursor is not None and decode_cursor(page.next_cursor) == 2
    last = paginate(ROWS[8:], PageParams(limit=3), key=lambda r: r["id"])
    assert last.next_cursor is None and len(last.items) == 2
    assert Page[int](items=[1, 2]).model_dump() == {"items": [1, 2], "next_cursor": None}


def app_with_list():  # type: ignore[no-untyped-def]
    app = build_app()

    @app.get("/rows", response_model=Page[dict[str, object]])
    async def rows(page: Paging) -> Page[dict[str, object]]:
        after = page.after(scope="rows")
        start = 0 if after is None else int(after) + 1
        return paginate(
            ROWS[start : start + page.fetch_limit], page, key=lambda r: r["id"], scope="rows"
        )

    return app


async def test_walking_all_pages() -> None:
    seen: list[int] = []
    async with client_for(app_with_list()) as c:
        url = "/rows?limit=3"
        while True:
            body = (await c.get(url)).json()
            seen += [r["id"] for r in body["items"]]
            if body["next_cursor"] is None:
                break
            url = f"/rows?limit=3&cursor={body['next_cursor']}"
    assert seen == list(range(10))


async def test_limit_bounds_and_bad_cursor_over_http(monkeypatch: pytest.MonkeyPatch) -> None:
    from asinwatch.config import reset_settings_cache

    monkeypatch.setenv("ASINWATCH_API__MAX_PAGE_SIZE", "4")
    monkeypatch.setenv("ASINWATCH_API__DEFAULT_PAGE_SIZE", "2")
    reset_settings_cache()
    async with client_for(app_with_list()) as c:
        default = await c.get("/rows")
        too_big = await c.get("/rows?limit=5")
        zero = await c.get("/rows?limit=0")
        malformed = await c.get("/rows?cursor=bm9wZQ.AAAA")
        foreign = await c.get("/rows?cursor=bm9wZQ.AAAAAAAAAAAAAAAA")
    assert len(default.json()["items"]) == 2
    assert too_big.status_code == 200 and len(too_big.json()["items"]) == 4
    assert zero.status_code == 422
    assert zero.headers["content-type"] == "application/problem+json"
    assert zero.json()["errors"][0]["loc"] == ["query", "limit"]
    assert malformed.status_code == 422
    assert foreign.status_code == 404 and foreign.json()["type"].endswith("/unknown-cursor")
