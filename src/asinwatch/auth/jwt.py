"""JWT verification as Supabase issues tokens, the typed auth errors, and dev tokens.

Rules (RFC 8725): the verifier fixes the algorithms (settings.auth.algorithms, never ``none``);
the key is chosen by the header's algorithm family, never by the token: HS* tokens are checked
only against the configured project secret, RS*/PS*/ES* tokens only against a public key from
the JWKS at settings.auth.jwks_url with a matching ``kid`` and key type. ``jku`` / ``x5u`` /
``jwk`` headers are ignored (never fetched). ``exp``, ``iss``, ``aud`` and ``sub`` are required;
``exp`` / ``nbf`` are checked with settings.auth.leeway_s; ``exp`` / ``nbf`` / ``iat`` must be
JSON numbers (a numeric string or a boolean is refused). Keys shorter than their algorithm
needs (HMAC secret under the hash size, RSA under 2048 bits) are refused (PyJWT's
``enforce_minimum_key_length``). In production an unset HS secret means HS* tokens are
refused (see config.Settings).

The JWKS is cached for settings.auth.jwks_cache_s and refetched once when a token names an
unknown ``kid`` (key rotation), but at most once per `min_refresh_interval_s`, so a stream of
forged kids cannot hammer the identity provider.

Verifying costs ~0.1 ms of CPU per request (base64, JSON, HMAC or a public-key operation), so
a verifier remembers the claims of the tokens that verified, by the exact token string, in a
small bounded `VerifiedTokenCache`: an entry is reused for at most a few seconds and never
past the token's ``exp`` (+ leeway, as PyJWT checks it). Any other string (a tampered byte, a
different token) misses and is verified in full; failures are never cached. A stateless JWT
has no revocation, so this changes nothing there; an entry of a JWKS-verified token is also
dropped as soon as the key set is due for a refresh or has been refetched, so a key removed
from the JWKS stops being trusted exactly when it would have without the cache.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import jwt
import orjson
import structlog
from cachetools import TLRUCache

from asinwatch.auth.roles import (
    Principal,
    UnknownRoleError,
    claim_at,
    nest_claim,
    parse_role,
)
from asinwatch.config import AuthSettings, Settings, get_settings
from asinwatch.kit.problems import ProblemError

log = structlog.get_logger(__name__)

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
# Asymmetric algorithm → the JWK key type that may verify it.
ASYMMETRIC_KEY_TYPES: dict[str, str] = {
    "RS256": "RSA",
    "RS384": "RSA",
    "RS512": "RSA",
    "PS256": "RSA",
    "PS384": "RSA",
    "PS512": "RSA",
    "ES256": "EC",
    "ES384": "EC",
    "ES512": "EC",
}
_EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
REQUIRED_CLAIMS = ("exp", "iss", "aud", "sub")
NUMERIC_DATE_CLAIMS = ("exp", "nbf", "iat")
DEFAULT_MIN_REFRESH_INTERVAL_S = 30.0
DEFAULT_CLAIMS_CACHE_S = 5.0
DEFAULT_CLAIMS_CACHE_ENTRIES = 2048


def _is_json_number(value: object) -> bool:
    """True for a finite JSON number (bool is an int in Python, but not a JSON number)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class AuthError(ProblemError):
    """An authentication (401) or authorisation (403) failure, rendered as problem+json."""


class AuthenticationError(AuthError):
    """401: no token, or a token that does not verify."""

    def __init__(self, detail: str, *, missing: bool = False) -> None:
        # RFC 6750 §3.1: a request without credentials gets the challenge without an error code.
        challenge = "Bearer" if missing else 'Bearer error="invalid_token"'
        super().__init__(
            401,
            title="Unauthorized",
            detail=detail,
            type_suffix="missing-token" if missing else "invalid-token",
            headers={"WWW-Authenticate": challenge},
        )


class ForbiddenError(AuthError):
    """403: a valid token whose role is missing, unknown or too low."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            403,
            title="Forbidden",
            detail=detail,
            type_suffix="insufficient-role",
            headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'},
        )


class SigningKeysUnavailableError(ProblemError):
    """503: the JWKS cannot be fetched and no cached copy exists, so nothing can be verified."""

    def __init__(self) -> None:
        super().__init__(
            503,
            detail="token signing keys are temporarily unavailable",
            type_suffix="auth-keys-unavailable",
            headers={"Retry-After": "5"},
        )


class DevTokenRefusedError(RuntimeError):
    """Dev tokens are only issued when settings.env is "dev" or "test"."""


class JwksKeyStore:
    """The public keys of one JWKS URL, cached, refreshed on an unknown kid (rate-limited)."""

    def __init__(
        self,
        url: str,
        *,
        cache_s: float,
        min_refresh_interval_s: float = DEFAULT_MIN_REFRESH_INTERVAL_S,
        timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._cache_s = cache_s
        self._min_interval = min_refresh_interval_s
        self._timeout = timeout_s
        self._clock = clock
        self._keys: dict[str, tuple[jwt.PyJWK, dict[str, Any]]] | None = None
        self._fetched_at = float("-inf")
        # Only refreshes triggered by unknown kids are rate-limited (scheduled ones are not).
        self._kid_refresh_at = float("-inf")
        self._lock = asyncio.Lock()
        self.fetch_count = 0
        # Bumped whenever the key set is replaced: verifications cached under an older
        # generation are not reused (see `is_current`).
        self.generation = 0

    async def get_key(self, kid: str, alg: str) -> jwt.PyJWK:
        """The verifying key for (kid, alg); `AuthenticationError` when there is none."""
        async with self._lock:
            if self._keys is None or self._clock() >= self._fetched_at + self._cache_s:
                await self._refresh()
            found = self._lookup(kid)
            if found is None and self._clock() - self._kid_refresh_at >= self._min_interval:
                self._kid_refresh_at = self._clock()
                await self._refresh()
                found = self._lookup(kid)
        if found is None:
            raise AuthenticationError("token signed with an unknown key")
        key, data = found
        if data.get("kty") != ASYMMETRIC_KEY_TYPES[alg]:
            raise AuthenticationError("token algorithm does not match its key type")
        if data.get("alg") not in (None, alg):
            raise AuthenticationError("token algorithm does not match its key")
        if alg in _EC_CURVES and data.get("crv") != _EC_CURVES[alg]:
            raise AuthenticationError("token algorithm does not match its key curve")
        return key

    def is_current(self, generation: int) -> bool:
        """True while the keys of `generation` are the cached ones and not due for a refresh."""
        return (
            generation == self.generation
            and self._keys is not None
            and self._clock() < self._fetched_at + self._cache_s
        )

    def _lookup(self, kid: str) -> tuple[jwt.PyJWK, dict[str, Any]] | None:
        return None if self._keys is None else self._keys.get(kid)

    async def _refresh(self) -> None:
        self.fetch_count += 1
        try:
            # Redirects are not followed: keys come from the configured URL only.
            async with httpx.AsyncClient(timeout=self._timeout, follow_redirects=False) as client:
                resp = await client.get(self.url, headers={"Accept": "application/json"})
                resp.raise_for_status()
                document = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("jwks_fetch_failed", url=self.url, error=str(exc))
            if self._keys is None:
                raise SigningKeysUnavailableError() from exc
            # Keep serving the keys we have; retry after the minimum interval, not per request.
            self._fetched_at = self._clock() - self._cache_s + self._min_interval
            return
        self._keys = _parse_jwks(document)
        self._fetched_at = self._clock()
        self.generation += 1
        log.info("jwks_fetched", url=self.url, keys=len(self._keys))


def _parse_jwks(document: object) -> dict[str, tuple[jwt.PyJWK, dict[str, Any]]]:
    """Usable asymmetric signing keys by kid; symmetric (oct) and malformed keys are skipped."""
    keys: dict[str, tuple[jwt.PyJWK, dict[str, Any]]] = {}
    raw_keys = document.get("keys") if isinstance(document, Mapping) else None
    if not isinstance(raw_keys, list):
        return keys
    for data in raw_keys:
        if not isinstance(data, dict) or not isinstance(data.get("kid"), str):
            continue
        if data.get("kty") not in ("RSA", "EC") or data.get("use", "sig") != "sig":
            continue
        try:
            keys[data["kid"]] = (jwt.PyJWK(data), data)
        except jwt.PyJWTError:
            continue
    return keys


class VerifiedTokenCache:
    """Claims of tokens that verified, by token string: bounded LRU, short-lived.

    An entry lives `ttl_s` at most and never reaches ``exp + leeway_s`` (PyJWT accepts a token
    while ``now < exp + leeway``). Entries of JWKS-verified tokens carry the key set's
    generation and are only valid while `is_current(generation)` says that key set is still
    the current one. The claims are kept as JSON and decoded on every hit, so a caller that
    changes its claims dict cannot change what the next request sees.
    """

    def __init__(
        self,
        ttl_s: float = DEFAULT_CLAIMS_CACHE_S,
        max_entries: int = DEFAULT_CLAIMS_CACHE_ENTRIES,
        *,
        leeway_s: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._leeway_s = leeway_s
        self._clock = clock
        # token -> (valid until, key set generation or None for HMAC, claims as JSON); an LRU
        # whose entries expire at their own "valid until" (cachetools' TLRUCache, by `clock`)
        self._entries: TLRUCache[str, tuple[float, int | None, bytes]] = TLRUCache(
            maxsize=max(1, max_entries), ttu=lambda _token, item, _now: item[0], timer=clock
        )

    def get(
        self, token: str, is_current: Callable[[int], bool] | None = None
    ) -> dict[str, Any] | None:
        item = self._entries.get(token)
        if item is None:
            return None
        _until, generation, blob = item
        if generation is not None and (is_current is None or not is_current(generation)):
            self._entries.pop(token, None)
            return None
        claims: dict[str, Any] = orjson.loads(blob)
        return claims

    def put(self, token: str, claims: Mapping[str, Any], generation: int | None = None) -> None:
        if self.ttl_s <= 0 or self.max_entries <= 0:
            return
        try:
            until = min(self._clock() + self.ttl_s, float(claims["exp"]) + self._leeway_s)
            blob = orjson.dumps(claims)
        except (KeyError, TypeError, ValueError, orjson.JSONEncodeError):
            return  # e.g. an integer beyond 64 bits: just verify that token every time
        self._entries[token] = (until, generation, blob)

    def __len__(self) -> int:
        return len(self._entries)


class JwtVerifier:
    """Verifies bearer tokens against the auth settings; see the module docstring for rules."""

    def __init__(
        self,
        auth: AuthSettings,
        jwks: JwksKeyStore | None = None,
        *,
        claims_cache: VerifiedTokenCache | None = None,
    ) -> None:
        bad = [a for a in auth.algorithms if a not in HMAC_ALGORITHMS | ASYMMETRIC_KEY_TYPES.keys()]
        if bad:
            raise ValueError(f"unsupported JWT algorithms in settings: {bad}")
        self._auth = auth
        self._allowed = frozenset(auth.algorithms)
        self._secret = auth.jwt_secret.get_secret_value()
        if jwks is None and auth.jwks_url:
            jwks = JwksKeyStore(auth.jwks_url, cache_s=auth.jwks_cache_s)
        self.jwks = jwks
        self.claims_cache = (
            claims_cache if claims_cache is not None else VerifiedTokenCache(leeway_s=auth.leeway_s)
        )

    def cached_claims(self, token: str) -> dict[str, Any] | None:
        """The claims of `token` if it verified recently and still would (no verification)."""
        return self.claims_cache.get(token, self.jwks.is_current if self.jwks else None)

    async def verify(self, token: str) -> dict[str, Any]:
        """The verified claims of `token`, or `AuthenticationError`."""
        cached = self.cached_claims(token)
        if cached is not None:
            return cached
        generation: int | None = None
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthenticationError("malformed token") from exc
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._allowed:
            raise AuthenticationError("token algorithm is not allowed")
        key: Any
        if alg in HMAC_ALGORITHMS:
            if not self._secret:
                raise AuthenticationError("HMAC-signed tokens are not accepted")
            key = self._secret
        else:
            if self.jwks is None:
                raise AuthenticationError("asymmetric tokens are not accepted (no JWKS configured)")
            kid = header.get("kid")
            if not isinstance(kid, str) or not kid:
                raise AuthenticationError("token header has no kid")
            key = (await self.jwks.get_key(kid, alg)).key
            generation = self.jwks.generation
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=self._auth.audience,
                issuer=self._auth.issuer,
                leeway=self._auth.leeway_s,
                options={"require": list(REQUIRED_CLAIMS), "enforce_minimum_key_length": True},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthenticationError("token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise AuthenticationError("token is not valid yet") from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthenticationError("token issuer is not accepted") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthenticationError("token audience is not accepted") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise AuthenticationError(f"token lacks the {exc.claim!r} claim") from exc
        except jwt.InvalidSignatureError as exc:
            raise AuthenticationError("token signature does not verify") from exc
        except jwt.InvalidKeyError as exc:
            log.warning("jwt_key_too_short", alg=alg, error=str(exc))
            raise AuthenticationError("invalid token") from exc
        except jwt.PyJWTError as exc:
            raise AuthenticationError("invalid token") from exc
        for name in NUMERIC_DATE_CLAIMS:
            # PyJWT takes int(value), so "9999999999" or true would pass; RFC 7519 §2 says
            # NumericDate is a JSON number.
            if name in claims and not _is_json_number(claims[name]):
                raise AuthenticationError(f"token claim {name!r} must be a JSON number")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise AuthenticationError("token subject is empty")
        self.claims_cache.put(token, claims, generation)
        return claims

    def principal(self, claims: Mapping[str, Any]) -> Principal:
        """The caller of verified `claims`; `ForbiddenError` when the role is missing/unknown."""
        raw_role = claim_at(claims, self._auth.role_claim)
        if raw_role is None:
            raise ForbiddenError(f"token has no role (claim {self._auth.role_claim!r})")
        try:
            role = parse_role(raw_role)
        except UnknownRoleError as exc:
            raise ForbiddenError("token role is not recognised") from exc
        token_id = claims.get("jti") or claims.get("session_id")
        return Principal(
            sub=str(claims["sub"]),
            role=role,
            token_id=str(token_id) if token_id is not None else None,
            claims=dict(claims),
        )


def issue_dev_token(
    role: str, sub: str = "dev-user", ttl_s: int = 3600, *, settings: Settings | None = None
) -> str:
    """An HS256 token for local use (``asinwatch token --role ROLE``); dev/test mode only."""
    s = settings or get_settings()
    if s.env not in ("dev", "test"):
        raise DevTokenRefusedError(
            f"dev tokens are only issued when ASINWATCH_ENV is dev or test (it is {s.env!r})"
        )
    checked = parse_role(role)
    if ttl_s <= 0:
        raise ValueError("ttl must be a positive number of seconds")
    if not sub:
        raise ValueError("sub must not be empty")
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": s.auth.issuer,
        "aud": s.auth.audience,
        "sub": sub,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_s,
        "jti": uuid.uuid4().hex,
        "role": "authenticated",  # Supabase's Postgres role; the app role lives under role_claim
    }
    top, *_ = s.auth.role_claim.split(".")
    nested = nest_claim(s.auth.role_claim, checked)
    existing = claims.get(top)
    if isinstance(existing, dict) and isinstance(nested[top], dict):
        claims[top] = {**existing, **nested[top]}
    else:
        claims.update(nested)
    return jwt.encode(claims, s.auth.jwt_secret.get_secret_value(), algorithm="HS256")
