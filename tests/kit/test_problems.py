"""Every error is RFC 9457 problem+json with type, title, status, detail, instance and
request_id; a 500 leaks nothing and is logged with the request id."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from structlog.testing import capture_logs

from asinwatch.kit.problems import PROBLEM_BASE_URI, status_slug


def assert_problem(resp: httpx.Response, status: int, path: str) -> dict[str, object]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert body["status"] == status
    assert str(body["type"]).startswith(PROBLEM_BASE_URI)
    assert body["title"]
    assert body["instance"] == path
    assert body["request_id"] == resp.headers["x-request-id"]
    return body


async def test_404_unknown_route(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/nope"), 404, "/nope")
    assert body["type"] == PROBLEM_BASE_URI + "not-found"
    assert body["title"] == "Not Found"


async def test_405_keeps_allow_header(client: httpx.AsyncClient) -> None:
    resp = await client.delete("/items/3")
    body = assert_problem(resp, 405, "/items/3")
    assert body["type"] == PROBLEM_BASE_URI + "method-not-allowed"
    assert "GET" in resp.headers["allow"]


async def test_422_lists_every_invalid_field(client: httpx.AsyncClient) -> None:
    resp = await client.post("/items", json={"name": 5, "qty": "many"})
    body = assert_problem(resp, 422, "/items")
    assert body["type"] == PROBLEM_BASE_URI + "validation-error"
    errors = body["errors"]
    assert isinstance(errors, list)
    assert {tuple(e["loc"]) for e in errors} == {("body", "name"), ("body", "qty")}
    assert all(set(e) == {"loc", "msg", "type"} for e in errors)  # input not echoed back


async def test_422_path_parameter(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/items/abc"), 422, "/items/abc")
    assert body["errors"][0]["loc"] == ["path", "item_id"]  # type: ignore[index]


async def test_413_by_content_length(client: httpx.AsyncClient) -> None:
    resp = await client.post("/raw", content=b"x" * 2048)
    body = assert_problem(resp, 413, "/raw")
    assert body["type"] == PROBLEM_BASE_URI + "body-too-large"


async def test_413_while_streaming_without_content_length(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b"y" * 512

    resp = await client.post("/raw", content=chunks())
    assert_problem(resp, 413, "/raw")


async def test_streamed_body_under_the_limit_passes(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(2):
            yield b"y" * 400

    resp = await client.post("/raw", content=chunks())
    assert resp.status_code == 200 and resp.json() == {"size": 800}


async def test_413_for_a_json_body_too(client: httpx.AsyncClient) -> None:
    resp = await client.post("/items", json={"name": "n" * 3000, "qty": 1})
    assert_problem(resp, 413, "/items")


async def test_500_leaks_nothing_and_is_logged_with_request_id(
    client: httpx.AsyncClient,
) -> None:
    with capture_logs() as logs:
        resp = await client.get("/boom", headers={"X-Request-Id": "req-500-check"})
    body = assert_problem(resp, 500, "/boom")
    assert "hunter2" not in resp.text and "RuntimeError" not in resp.text
    assert body["request_id"] == "req-500-check"
    errors = [e for e in logs if e["event"] == "unhandled_exception"]
    assert len(errors) == 1 and errors[0]["request_id"] == "req-500-check"
    # the 500 still went through the outer middlewares
    assert resp.headers["x-content-type-options"] == "nosniff"


async def test_problem_error_carries_headers_and_extensions(client: httpx.AsyncClient) -> None:
    resp = await client.get("/teapot")
    body = assert_problem(resp, 418, "/teapot")
    assert body["type"] == PROBLEM_BASE_URI + "teapot"
    assert body["detail"] == "short and stout"
    assert body["brew"] == "earl grey"
    assert resp.headers["x-tea"] == "1"


def test_status_slugs() -> None:
    assert status_slug(429) == "too-many-requests"
    assert status_slug(422) == "unprocessable-content" or status_slug(422) == (
        "unprocessable-entity"
    )
    assert status_slug(799) == "http-error"
