"""ETags: RFC 9110 weak comparison for If-None-Match, and 304s carrying the 200's headers."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel

from asinwatch.kit.etag import (
    etag_for_version,
    if_none_match_matches,
    json_response,
    make_etag,
)
from tests.kit.conftest import client_for


@pytest.mark.parametrize(
    ("header", "etag", "expected"),
    [
        (None, '"abc"', False),
        ("", '"abc"', False),
        ('"abc"', '"abc"', True),
        ('W/"abc"', '"abc"', True),  # weak comparison ignores W/ on either side
        ('"abc"', 'W/"abc"', True),
        ('W/"abc"', 'W/"abc"', True),
        ('"xyz"', '"abc"', False),
        ('"xyz", W/"abc"', '"abc"', True),
        ('  "xyz" ,  "abc"  ', '"abc"', True),
        ('"xyz","nope"', '"abc"', False),
        ("*", '"abc"', True),
        ("*", 'W/"abc"', True),
        ("abc", '"abc"', False),  # unquoted: malformed
        ('"ab', '"ab"', False),
        ('"a,b", "c"', '"a,b"', True),  # a comma inside an opaque tag
        ('"abc" garbage', '"abc"', False),
        ('w/"abc"', '"abc"', False),  # the W/ prefix is case-sensitive
    ],
)
def test_if_none_match_weak_comparison(header: str | None, etag: str, expected: bool) -> None:
    assert if_none_match_matches(header, etag) is expected


def test_etag_shapes() -> None:
    strong = make_etag(b"body")
    weak = make_etag(b"body", weak=True)
    assert strong.startswith('"') and strong.endswith('"')
    assert weak == "W/" + strong
    assert make_etag(b"other") != strong
    assert etag_for_version(7) == etag_for_version("7")
    assert etag_for_version(7).startswith('W/"')
    assert etag_for_version(8) != etag_for_version(7)


class Thing(BaseModel):
    name: str
    price: Decimal


def app() -> FastAPI:
    a = FastAPI()

    @a.get("/thing")
    async def thing(request: Request) -> Response:
        return json_response(request, {"thing": Thing(name="kettle", price=Decimal("19.99"))})

    @a.api_route("/versioned", methods=["GET", "HEAD", "POST"])
    async def versioned(request: Request) -> Response:
        return json_response(
            request, {"v": 3}, etag=etag_for_version(3), cache_control="public, max-age=60"
        )

    return a


async def test_200_then_304_with_the_same_headers() -> None:
    async with client_for(app()) as c:
        first = await c.get("/thing")
        assert first.status_code == 200
        assert first.json() == {"thing": {"name": "kettle", "price": "19.99"}}
        etag = first.headers["etag"]
        second = await c.get("/thing", headers={"If-None-Match": etag})
        weak_form = await c.get("/thing", headers={"If-None-Match": f'"zzz", W/{etag}'})
        changed = await c.get("/thing", headers={"If-None-Match": '"something-else"'})
    assert second.status_code == 304 and second.content == b""
    for name in ("etag", "cache-control", "vary"):
        assert second.headers[name] == first.headers[name]
    assert first.headers["cache-control"] == "private, no-cache"
    assert "Authorization" in first.headers["vary"]
    assert weak_form.status_code == 304
    assert changed.status_code == 200 and changed.headers["etag"] == etag


async def test_version_etag_and_only_get_head_get_304() -> None:
    async with client_for(app()) as c:
        first = await c.get("/versioned")
        tag = first.headers["etag"]
        head = await c.head("/versioned", headers={"If-None-Match": tag})
        star = await c.get("/versioned", headers={"If-None-Match": "*"})
        post = await c.post("/versioned", headers={"If-None-Match": tag})
    assert tag == etag_for_version(3)
    assert head.status_code == 304 and head.headers["cache-control"] == "public, max-age=60"
    assert star.status_code == 304
    assert post.status_code == 200


async def test_httpx_client_smoke() -> None:
    # The whole stack (problem handlers, middleware) is exercised elsewhere; this keeps the
    # helper independent of it: a bare FastAPI app works.
    async with client_for(app()) as c:
        resp = await c.get("/thing")
    assert isinstance(resp, httpx.Response) and resp.headers["content-type"] == "application/json"
