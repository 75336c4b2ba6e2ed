"""Production auth: each way of configuring it is either refused at startup or, once the real
app runs, accepts exactly the tokens it should (the development secret never works), and the
numeric date claims must be JSON numbers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

from asinwatch.app import create_app
from asinwatch.auth.jwt import JwtVerifier
from asinwatch.config import DEV_JWT_SECRET, Settings, get_settings, reset_settings_cache
from tests.auth.conftest import JwksServer, claims, hs_token, make_app

STRONG = "s" * 40
PRODUCTION = {
    "ASINWATCH_ENV": "production",
    "ASINWATCH_ALERTS__WEBHOOK_SECRET": "w" * 32,
    "ASINWATCH_APIFY__TOKEN": "apify_api_realtoken",
}


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Settings]]:
    """Switch to production with the given auth environment; returns the settings."""

    def configure(**auth: str) -> Settings:
        for key, value in {**PRODUCTION, **auth}.items():
            monkeypatch.setenv(key, value)
        reset_settings_cache()
        return get_settings()

    monkeypatch.delenv("ASINWATCH_AUTH__JWT_SECRET", raising=False)
    monkeypatch.delenv("ASINWATCH_AUTH__JWKS_URL", raising=False)
    yield configure
    reset_settings_cache()


# --- settings validation --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "needle"),
    [
        ({}, "no way to verify tokens"),
        ({"ASINWATCH_AUTH__JWT_SECRET": DEV_JWT_SECRET}, "development default"),
        (
            {"ASINWATCH_AUTH__JWT_SECRET": DEV_JWT_SECRET, "ASINWATCH_AUTH__JWKS_URL": "https://x"},
            "development default",
        ),
        ({"ASINWATCH_AUTH__JWT_SECRET": "x" * 31}, "at least 32 bytes"),
        (
            {"ASINWATCH_AUTH__JWT_SECRET": "x" * 31, "ASINWATCH_AUTH__JWKS_URL": "https://x"},
            "at least 32 bytes",
        ),
        ({"ASINWATCH_AUTH__JWT_SECRET": ""}, "no way to verify tokens"),
        # A JWKS but only HS algorithms allowed, and no secret: nothing could verify.
        (
            {"ASINWATCH_AUTH__JWKS_URL": "https://x", "ASINWATCH_AUTH__ALGORITHMS": "HS256"},
            "no way to verify tokens",
        ),
        # A strong secret but only asymmetric algorithms, and no JWKS.
        (
            {"ASINWATCH_AUTH__JWT_SECRET": STRONG, "ASINWATCH_AUTH__ALGORITHMS": "RS256"},
            "no way to verify tokens",
        ),
    ],
)
def test_production_refuses_to_start(
    auth: dict[str, str], needle: str, production: Callable[..., Settings]
) -> None:
    with pytest.raises(ValidationError) as info:
        production(**auth)
    assert "production mode refuses to start" in str(info.value)
    assert needle in str(info.value)


def test_the_secret_length_is_counted_in_bytes(production: Callable[..., Settings]) -> None:
    # 16 characters, 32 bytes in UTF-8: long enough.
    s = production(ASINWATCH_AUTH__JWT_SECRET="é" * 16)
    assert s.auth.jwt_secret.get_secret_value() == "é" * 16


def test_jwks_only_turns_the_hs_secret_off(production: Callable[..., Settings]) -> None:
    s = production(ASINWATCH_AUTH__JWKS_URL="https://idp.example/jwks.json")
    assert s.auth.jwt_secret.get_secret_value() == ""


def test_dev_and_test_keep_the_development_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASINWATCH_AUTH__JWT_SECRET", raising=False)
    monkeypatch.setenv("ASINWATCH_AUTH__JWKS_URL", "https://idp.example/jwks.json")
    for env in ("dev", "test"):
        monkeypatch.setenv("ASINWATCH_ENV", env)
        assert Settings().auth.jwt_secret.get_secret_value() == DEV_JWT_SECRET


# --- the real app ---------------------------------------------------------------------------


def _rs256(key: rsa.RSAPrivateKey, **over: Any) -> str:
    return jwt.encode(claims("viewer", **over), key, algorithm="RS256", headers={"kid": "rsa-1"})


@pytest.fixture
async def real_client(clean_db: str, redis_url: str) -> AsyncIterator[Callable[..., Any]]:
    """`call(token)` → the real app's status for GET /v1/products with that bearer token."""
    clients: list[httpx.AsyncClient] = []

    async def call(token: str) -> int:
        if not clients:
            app = create_app()
            clients.append(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
            )
        resp = await clients[0].get("/v1/products", headers={"Authorization": f"Bearer {token}"})
        if resp.status_code == 401:
            assert resp.headers["content-type"] == "application/problem+json"
        return resp.status_code

    yield call
    for c in clients:
        await c.aclose()


async def test_jwks_only_rejects_tokens_signed_with_the_dev_secret(
    production: Callable[..., Settings],
    jwks_server: JwksServer,
    rsa_key: rsa.RSAPrivateKey,
    real_client: Callable[..., Any],
) -> None:
    production(ASINWATCH_AUTH__JWKS_URL=jwks_server.url)
    admin_forgery = hs_token("admin", secret=DEV_JWT_SECRET)
    assert await real_client(admin_forgery) == 401
    assert await real_client(hs_token("viewer", secret=STRONG)) == 401
    assert await real_client(_rs256(rsa_key)) == 200


async def test_jwks_and_a_strong_secret_accept_both(
    production: Callable[..., Settings],
    jwks_server: JwksServer,
    rsa_key: rsa.RSAPrivateKey,
    real_client: Callable[..., Any],
) -> None:
    production(ASINWATCH_AUTH__JWKS_URL=jwks_server.url, ASINWATCH_AUTH__JWT_SECRET=STRONG)
    assert await real_client(hs_token("viewer", secret=STRONG)) == 200
    assert await real_client(_rs256(rsa_key)) == 200
    assert await real_client(hs_token("admin", secret=DEV_JWT_SECRET)) == 401


async def test_a_strong_secret_alone_accepts_only_hs(
    production: Callable[..., Settings],
    rsa_key: rsa.RSAPrivateKey,
    real_client: Callable[..., Any],
) -> None:
    production(ASINWATCH_AUTH__JWT_SECRET=STRONG)
    assert await real_client(hs_token("viewer", secret=STRONG)) == 200
    assert await real_client(hs_token("admin", secret=DEV_JWT_SECRET)) == 401
    assert await real_client(_rs256(rsa_key)) == 401


@pytest.mark.parametrize(
    "over",
    [
        {"exp": str(int(time.time()) + 3600)},
        {"exp": True},
        {"nbf": str(int(time.time()) - 10)},
        {"nbf": False},
        {"iat": str(int(time.time()))},
        {"iat": True},
    ],
    ids=repr,
)
async def test_numeric_date_claims_must_be_json_numbers_in_the_real_app(
    over: dict[str, Any],
    production: Callable[..., Settings],
    real_client: Callable[..., Any],
) -> None:
    production(ASINWATCH_AUTH__JWT_SECRET=STRONG)
    assert await real_client(hs_token("viewer", secret=STRONG, **over)) == 401
    assert await real_client(hs_token("viewer", secret=STRONG)) == 200


@pytest.mark.parametrize(
    ("over", "detail"),
    [
        ({"exp": "9999999999"}, "'exp' must be a JSON number"),
        ({"iat": True}, "'iat' must be a JSON number"),
        ({"nbf": 0, "iat": "1"}, "'iat' must be a JSON number"),
        ({"nbf": False}, "'nbf' must be a JSON number"),
        ({"exp": 9_999_999_999.5, "nbf": 1.5, "iat": 2}, None),  # floats and ints are fine
    ],
    ids=repr,
)
async def test_numeric_date_claims_in_the_verifier(
    over: dict[str, Any], detail: str | None, verifier: JwtVerifier
) -> None:
    transport = httpx.ASGITransport(app=make_app(verifier))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        resp = await client.get(
            "/viewer", headers={"Authorization": f"Bearer {hs_token('viewer', **over)}"}
        )
    if detail is None:
        assert resp.status_code == 200, resp.text
    else:
        assert resp.status_code == 401
        assert detail in resp.json()["detail"]


async def test_hmac_keys_shorter_than_the_hash_are_refused() -> None:
    # The 44-byte development secret is too short for HS512 (64 bytes): PyJWT's
    # enforce_minimum_key_length refuses to verify with it, so the token is rejected.
    assert len(DEV_JWT_SECRET.encode()) < 64
    auth = get_settings().auth.model_copy(update={"algorithms": ["HS256", "HS512"]})
    with pytest.warns(jwt.InsecureKeyLengthWarning):
        token = jwt.encode(claims("viewer"), DEV_JWT_SECRET, algorithm="HS512")
    transport = httpx.ASGITransport(app=make_app(JwtVerifier(auth)))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        resp = await client.get("/viewer", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 401
