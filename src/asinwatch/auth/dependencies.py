"""FastAPI dependencies for authentication and role checks.

Use in an endpoint::

    from typing import Annotated
    from fastapi import Depends
    from asinwatch.auth.dependencies import require_role
    from asinwatch.auth.roles import Principal

    @router.post("/v1/recommendations/{asin}/refresh")
    async def refresh(asin: str, who: Annotated[Principal, Depends(require_role("operator"))]):
        ...

`authenticate` (401 on a missing/bad token, 403 on a missing/unknown role) is what
`require_role` builds on; FastAPI caches it per request, so a router-level dependency (the
per-principal rate limit) and the endpoint's `require_role` verify the token once.
Tests replace the verifier with ``app.dependency_overrides[get_verifier] = lambda: verifier``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import cache
from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from asinwatch.auth.jwt import AuthenticationError, ForbiddenError, JwtVerifier
from asinwatch.auth.roles import Principal, Role, parse_role
from asinwatch.config import AuthSettings, get_settings

# auto_error=False: our own 401 (problem+json with WWW-Authenticate) instead of FastAPI's.
bearer_scheme = HTTPBearer(auto_error=False, description="Supabase access token (JWT)")

_verifiers: dict[tuple[object, ...], JwtVerifier] = {}
# The verifier of the last AuthSettings object seen: settings are read once per process (and
# replaced by `reset_settings_cache`), so the identity check skips building the key per request.
_last: tuple[AuthSettings, JwtVerifier] | None = None


async def get_verifier() -> JwtVerifier:
    """The process's verifier for the current auth settings (its JWKS cache lives with it)."""
    return current_verifier()


def current_verifier() -> JwtVerifier:
    """`get_verifier` without the coroutine, for code outside FastAPI's dependency system."""
    global _last
    auth = get_settings().auth
    last = _last
    if last is not None and last[0] is auth:
        return last[1]
    key = (
        auth.jwt_secret.get_secret_value(),
        auth.jwks_url,
        tuple(auth.algorithms),
        auth.issuer,
        auth.audience,
        auth.role_claim,
        auth.leeway_s,
        auth.jwks_cache_s,
    )
    verifier = _verifiers.get(key)
    if verifier is None:
        verifier = _verifiers[key] = JwtVerifier(auth)
    _last = (auth, verifier)
    return verifier


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    verifier: Annotated[JwtVerifier, Depends(get_verifier)],
) -> Principal:
    """The verified caller; also stored as ``request.state.principal``."""
    if credentials is None:
        raise AuthenticationError("a bearer token is required", missing=True)
    claims = await verifier.verify(credentials.credentials)
    principal = verifier.principal(claims)
    request.state.principal = principal
    structlog.contextvars.bind_contextvars(actor=principal.sub)
    return principal


@cache
def require_role(minimum: Role | str) -> Callable[..., Awaitable[Principal]]:
    """A dependency returning the caller when their role is at least `minimum` (else 403).

    Memoised, so ``require_role("viewer")`` is the same callable everywhere (FastAPI then
    resolves it once per request).
    """
    needed = parse_role(minimum)

    async def dependency(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if not principal.has_role(needed):
            raise ForbiddenError(f"this action requires the {needed!r} role")
        return principal

    dependency.__name__ = f"require_{needed}"
    return dependency
