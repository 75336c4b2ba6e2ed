"""The verified-claims cache of `JwtVerifier`: a hit needs the exact token string, never
outlives ``exp`` (+ leeway) or its TTL, is dropped when the JWKS key set is refreshed, holds
no failures, stays bounded, and hands every caller its own copy of the claims."""

from __future__ import annotations

import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from asinwatch.auth.jwt import AuthenticationError, JwksKeyStore, JwtVerifier, VerifiedTokenCache
from asinwatch.config import get_settings
from tests.auth.conftest import JwksServer, b64, claims, hs_token


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def tampered(token: str) -> str:
    """The same token with one claim changed and the original signature kept."""
    header, _, signature = token.split(".")
    payload = jwt.decode(token, options={"verify_signature": False})
    payload["app_metadata"] = {"role": "admin"}
    forged = json.dumps(payload, separators=(",", ":")).encode()
    return f"{header}.{b64(forged)}.{signature}"


async def test_second_verification_is_a_cache_hit_with_the_same_claims() -> None:
    verifier = JwtVerifier(get_settings().auth)
    token = hs_token("operator")
    first = await verifier.verify(token)
    assert len(verifier.claims_cache) == 1
    second = await verifier.verify(token)
    assert second == first
    assert verifier.principal(second).role == "operator"


async def test_a_tampered_copy_of_a_cached_token_is_refused() -> None:
    verifier = JwtVerifier(get_settings().auth)
    token = hs_token("viewer")
    await verifier.verify(token)
    forged = tampered(token)
    assert forged != token
    with pytest.raises(AuthenticationError, match="signature"):
        await verifier.verify(forged)
    # a bit flipped in the signature is refused too, and neither failure is cached
    head, body, sig = token.split(".")
    flipped = f"{head}.{body}.{sig[:-2]}{'A' if sig[-2] != 'A' else 'B'}{sig[-1]}"
    with pytest.raises(AuthenticationError):
        await verifier.verify(flipped)
    assert len(verifier.claims_cache) == 1
    assert verifier.cached_claims(forged) is None


async def test_failures_are_never_cached() -> None:
    verifier = JwtVerifier(get_settings().auth)
    expired = hs_token(exp=int(time.time()) - 600)
    for _ in range(2):
        with pytest.raises(AuthenticationError, match="expired"):
            await verifier.verify(expired)
    assert len(verifier.claims_cache) == 0


async def test_an_entry_never_outlives_exp_plus_leeway() -> None:
    leeway = get_settings().auth.leeway_s
    now = time.time()
    clock = Clock(now)
    cache = VerifiedTokenCache(ttl_s=3600, leeway_s=leeway, clock=clock)
    verifier = JwtVerifier(get_settings().auth, claims_cache=cache)
    token = hs_token(exp=int(now) + 2)
    await verifier.verify(token)
    clock.now = now + 1
    assert verifier.cached_claims(token) is not None
    clock.now = int(now) + 2 + leeway  # PyJWT refuses from exp + leeway on
    assert verifier.cached_claims(token) is None
    assert len(cache) == 0


async def test_an_expired_token_is_refused_even_with_an_entry_left_behind() -> None:
    verifier = JwtVerifier(get_settings().auth)
    exp = int(time.time()) - get_settings().auth.leeway_s - 5
    token = hs_token(exp=exp)
    # As if it had verified while still valid: the entry must not make it valid now.
    verifier.claims_cache.put(token, claims(exp=exp))
    with pytest.raises(AuthenticationError, match="expired"):
        await verifier.verify(token)


async def test_an_entry_lives_at_most_the_ttl() -> None:
    clock = Clock(time.time())
    cache = VerifiedTokenCache(ttl_s=5, clock=clock)
    verifier = JwtVerifier(get_settings().auth, claims_cache=cache)
    token = hs_token()
    await verifier.verify(token)
    clock.now += 4.9
    assert verifier.cached_claims(token) is not None
    clock.now += 0.2
    assert verifier.cached_claims(token) is None


def test_the_cache_is_bounded_least_recently_used_first() -> None:
    cache = VerifiedTokenCache(ttl_s=60, max_entries=2)
    exp = int(time.time()) + 300
    for name in ("a", "b"):
        cache.put(name, {"sub": name, "exp": exp})
    assert cache.get("a") is not None  # "a" is now the most recently used
    cache.put("c", {"sub": "c", "exp": exp})
    assert len(cache) == 2
    assert cache.get("b") is None
    assert cache.get("a") == {"sub": "a", "exp": exp}
    assert cache.get("c") == {"sub": "c", "exp": exp}


async def test_callers_get_their_own_copy_of_the_claims() -> None:
    verifier = JwtVerifier(get_settings().auth)
    token = hs_token("viewer")
    mine = await verifier.verify(token)
    mine["app_metadata"]["role"] = "admin"
    mine["sub"] = "someone-else"
    again = await verifier.verify(token)
    assert again["sub"] == "user-1"
    assert verifier.principal(again).role == "viewer"


async def test_a_jwks_entry_is_dropped_when_the_key_set_is_refreshed(
    jwks_server: JwksServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    clock = Clock(1000.0)
    store = JwksKeyStore(jwks_server.url, cache_s=60, min_refresh_interval_s=30, clock=clock)
    verifier = JwtVerifier(get_settings().auth, store)
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    await verifier.verify(token)
    await verifier.verify(token)
    assert store.fetch_count == 1
    assert verifier.cached_claims(token) is not None
    # The key is withdrawn; once the key set is due for a refresh the entry no longer counts,
    # the refresh happens, and the token is refused as it would be without the cache.
    jwks_server.document = {
        "keys": [k for k in jwks_server.document["keys"] if k["kid"] != "rsa-1"]
    }
    clock.now += 61
    assert verifier.cached_claims(token) is None
    with pytest.raises(AuthenticationError, match="unknown key"):
        await verifier.verify(token)
    assert store.fetch_count >= 2
