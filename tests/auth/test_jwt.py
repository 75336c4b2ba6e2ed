"""The auth battery: every forged, stale or misaddressed token is refused with 401, a valid
token without a sufficient role with 403, and valid HS256 / RS256 / ES256 tokens pass."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from asinwatch.auth.jwt import JwksKeyStore, JwtVerifier
from asinwatch.config import get_settings
from tests.auth.conftest import JwksServer, b64, claims, hs_token, make_app, raw_token, rsa_jwk


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_401(resp: httpx.Response, detail_part: str | None = None) -> None:
    assert resp.status_code == 401, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    body = resp.json()
    assert body["status"] == 401 and body["type"].endswith("/invalid-token")
    if detail_part:
        assert detail_part in body["detail"]


def assert_403(resp: httpx.Response) -> None:
    assert resp.status_code == 403, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["type"].endswith("/insufficient-role")


# --- accepted -------------------------------------------------------------------------------


async def test_valid_hs256_token_is_accepted(client: httpx.AsyncClient) -> None:
    resp = await client.get("/viewer", headers=bearer(hs_token("viewer")))
    assert resp.status_code == 200
    assert resp.json() == {"sub": "user-1", "role": "viewer", "token_id": "tok-1"}


async def test_valid_rs256_token_is_accepted(
    client: httpx.AsyncClient, rsa_key: rsa.RSAPrivateKey
) -> None:
    token = jwt.encode(claims("operator"), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    resp = await client.get("/operator", headers=bearer(token))
    assert resp.status_code == 200
    assert resp.json()["role"] == "operator"


async def test_valid_es256_token_is_accepted(
    client: httpx.AsyncClient, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    token = jwt.encode(claims("admin"), ec_key, algorithm="ES256", headers={"kid": "ec-1"})
    resp = await client.get("/admin", headers=bearer(token))
    assert resp.status_code == 200
    assert resp.json()["role"] == "admin"


async def test_leeway_accepts_a_token_just_expired(client: httpx.AsyncClient) -> None:
    resp = await client.get("/viewer", headers=bearer(hs_token(exp=int(time.time()) - 5)))
    assert resp.status_code == 200


# --- 401 ------------------------------------------------------------------------------------


async def test_missing_header_is_401_with_bare_challenge(client: httpx.AsyncClient) -> None:
    resp = await client.get("/viewer")
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == "Bearer"
    assert resp.json()["type"].endswith("/missing-token")


async def test_non_bearer_scheme_is_401(client: httpx.AsyncClient) -> None:
    resp = await client.get("/viewer", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert resp.status_code == 401


@pytest.mark.parametrize("garbage", ["garbage", "a.b.c", "eyJhbGciOi.x.y", "...."])
async def test_garbage_token_is_401(client: httpx.AsyncClient, garbage: str) -> None:
    assert_401(await client.get("/viewer", headers=bearer(garbage)))


async def test_alg_none_is_401(client: httpx.AsyncClient) -> None:
    token = raw_token({"alg": "none", "typ": "JWT"}, claims("admin"))
    assert_401(await client.get("/viewer", headers=bearer(token)), "algorithm")


async def test_hs256_signed_with_rsa_public_key_is_401(
    client: httpx.AsyncClient, rsa_key: rsa.RSAPrivateKey
) -> None:
    """Key confusion: an attacker HMAC-signs with the (public) RSA key as the secret."""
    pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}
    signing_input = (
        f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims('admin')).encode())}"
    )
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64(signature)}"
    assert_401(await client.get("/viewer", headers=bearer(token)), "signature")


async def test_expired_token_is_401(client: httpx.AsyncClient) -> None:
    token = hs_token(exp=int(time.time()) - 600)
    assert_401(await client.get("/viewer", headers=bearer(token)), "expired")


async def test_nbf_in_the_future_is_401(client: httpx.AsyncClient) -> None:
    token = hs_token(nbf=int(time.time()) + 600)
    assert_401(await client.get("/viewer", headers=bearer(token)), "not valid yet")


async def test_wrong_issuer_is_401(client: httpx.AsyncClient) -> None:
    token = hs_token(iss="https://evil.example/auth/v1")
    assert_401(await client.get("/viewer", headers=bearer(token)), "issuer")


async def test_wrong_audience_is_401(client: httpx.AsyncClient) -> None:
    token = hs_token(aud="someone-else")
    assert_401(await client.get("/viewer", headers=bearer(token)), "audience")


@pytest.mark.parametrize("claim", ["exp", "iss", "aud", "sub"])
async def test_missing_required_claim_is_401(client: httpx.AsyncClient, claim: str) -> None:
    payload = claims("viewer")
    del payload[claim]
    token = jwt.encode(payload, get_settings().auth.jwt_secret.get_secret_value(), "HS256")
    assert_401(await client.get("/viewer", headers=bearer(token)))


async def test_bad_hs256_signature_is_401(client: httpx.AsyncClient) -> None:
    token = hs_token(secret="another-secret-that-is-long-enough-0123456789")
    assert_401(await client.get("/viewer", headers=bearer(token)), "signature")


async def test_bad_rs256_signature_is_401(client: httpx.AsyncClient) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims("admin"), other, algorithm="RS256", headers={"kid": "rsa-1"})
    assert_401(await client.get("/viewer", headers=bearer(token)), "signature")


async def test_rs256_header_on_ec_key_is_401(
    client: httpx.AsyncClient, rsa_key: rsa.RSAPrivateKey
) -> None:
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "ec-1"})
    assert_401(await client.get("/viewer", headers=bearer(token)), "key")


async def test_algorithm_outside_allow_list_is_401(client: httpx.AsyncClient) -> None:
    token = jwt.encode(claims(), "k" * 64, algorithm="HS512")
    assert_401(await client.get("/viewer", headers=bearer(token)), "algorithm")


async def test_asymmetric_token_without_jwks_is_401(rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = JwtVerifier(get_settings().auth)  # no jwks_url configured in tests
    assert verifier.jwks is None
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    transport = httpx.ASGITransport(app=make_app(verifier))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        assert_401(await c.get("/viewer", headers=bearer(token)), "JWKS")


async def test_unknown_kid_refreshes_once_then_rejects(
    client: httpx.AsyncClient,
    jwks_server: JwksServer,
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    good = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    assert (await client.get("/viewer", headers=bearer(good))).status_code == 200
    assert jwks_server.hits == {"/jwks.json": 1}

    forged = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "rotated-or-fake"})
    assert_401(await client.get("/viewer", headers=bearer(forged)), "unknown key")
    assert jwks_server.hits == {"/jwks.json": 2}  # refreshed exactly once

    # Within the minimum refresh interval, more unknown kids do not reach the JWKS again.
    for i in range(5):
        other = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": f"fake-{i}"})
        assert_401(await client.get("/viewer", headers=bearer(other)))
    assert jwks_server.hits == {"/jwks.json": 2}


async def test_rotated_key_is_picked_up_by_the_refresh(jwks_server: JwksServer) -> None:
    auth = get_settings().auth
    store = JwksKeyStore(jwks_server.url, cache_s=auth.jwks_cache_s, min_refresh_interval_s=0)
    transport = httpx.ASGITransport(app=make_app(JwtVerifier(auth, store)))
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims(), new_key, algorithm="RS256", headers={"kid": "rsa-2"})
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        assert (await c.get("/viewer", headers=bearer(token))).status_code == 401
        jwks_server.document["keys"].append(rsa_jwk(new_key, "rsa-2"))
        assert (await c.get("/viewer", headers=bearer(token))).status_code == 200
    assert store.fetch_count == 3  # initial, failed lookup, lookup after rotation


async def test_jku_and_x5u_headers_are_never_fetched(
    client: httpx.AsyncClient, jwks_server: JwksServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    headers: dict[str, Any] = {
        "kid": "attacker",
        "jku": jwks_server.base + "/evil-jwks.json",
        "x5u": jwks_server.base + "/evil-cert.pem",
    }
    token = jwt.encode(claims("admin"), rsa_key, algorithm="RS256", headers=headers)
    assert_401(await client.get("/admin", headers=bearer(token)))
    assert "/evil-jwks.json" not in jwks_server.hits
    assert "/evil-cert.pem" not in jwks_server.hits


async def test_unreachable_jwks_is_503_not_a_crash() -> None:
    auth = get_settings().auth
    store = JwksKeyStore("http://127.0.0.1:9/jwks.json", cache_s=60, timeout_s=1)
    transport = httpx.ASGITransport(app=make_app(JwtVerifier(auth, store)))
    key = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(claims(), key, algorithm="ES256", headers={"kid": "ec-1"})
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        resp = await c.get("/viewer", headers=bearer(token))
    assert resp.status_code == 503
    assert resp.json()["type"].endswith("/auth-keys-unavailable")


# --- 403 and the role hierarchy -----------------------------------------------------------


async def test_missing_role_is_403(client: httpx.AsyncClient) -> None:
    assert_403(await client.get("/viewer", headers=bearer(hs_token(role=None))))


async def test_unknown_role_is_403(client: httpx.AsyncClient) -> None:
    assert_403(await client.get("/viewer", headers=bearer(hs_token(role="superuser"))))


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("viewer", {"/viewer"}),
        ("operator", {"/viewer", "/operator"}),
        ("admin", {"/viewer", "/operator", "/admin"}),
    ],
)
async def test_role_hierarchy(client: httpx.AsyncClient, role: str, allowed: set[str]) -> None:
    token = hs_token(role)
    for path in ("/viewer", "/operator", "/admin"):
        resp = await client.get(path, headers=bearer(token))
        if path in allowed:
            assert resp.status_code == 200, (role, path)
        else:
            assert_403(resp)


def test_require_role_rejects_a_typo_at_definition_time() -> None:
    from asinwatch.auth.dependencies import require_role
    from asinwatch.auth.roles import UnknownRoleError

    with pytest.raises(UnknownRoleError):
        require_role("operater")
    assert require_role("viewer") is require_role("viewer")


def test_none_cannot_be_configured() -> None:
    auth = get_settings().auth.model_copy(update={"algorithms": ["HS256", "none"]})
    with pytest.raises(ValueError, match="unsupported"):
        JwtVerifier(auth)


async def test_jwks_outage_keeps_cached_keys_and_backs_off(
    jwks_server: JwksServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    now = [1000.0]
    store = JwksKeyStore(
        jwks_server.url, cache_s=60, min_refresh_interval_s=30, clock=lambda: now[0]
    )
    transport = httpx.ASGITransport(app=make_app(JwtVerifier(get_settings().auth, store)))
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        assert (await c.get("/viewer", headers=bearer(token))).status_code == 200
        jwks_server.close()
        now[0] += 61  # the cache is due for a refresh, which fails
        assert (await c.get("/viewer", headers=bearer(token))).status_code == 200
        assert (await c.get("/viewer", headers=bearer(token))).status_code == 200
    assert store.fetch_count == 2  # one failed refresh, then back-off instead of per request
