"""The per-caller request guards, bound to the authenticated principal: the per-principal
rate limit (`enforce_principal_rate_limit`), the Idempotency-Key context (`idempotency`,
`idempotency_required`), and `known_subject`, which lets the IP middleware charge both rate
limits in one Redis call. Their mechanics live in kit (kit.ratelimit, kit.idempotency), which
imports no auth: the caller's subject is handed to it from here.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security.utils import get_authorization_scheme_param
from starlette.datastructures import Headers
from starlette.types import Scope

from asinwatch.auth.dependencies import authenticate, current_verifier, get_verifier
from asinwatch.auth.jwt import AuthError
from asinwatch.auth.roles import Principal
from asinwatch.kit.idempotency import Idempotency, idempotency_for, require_key
from asinwatch.kit.ratelimit import charge_principal


async def enforce_principal_rate_limit(
    request: Request, principal: Annotated[Principal, Depends(authenticate)]
) -> Principal:
    """Dependency: settings.api.rate_limit_per_minute per token subject, else 429 problem."""
    await charge_principal(request, principal.sub)
    return principal


def known_subject(scope: Scope) -> str | None:
    """The subject of the request's bearer token if it verified recently, else None; None too
    when the app overrides the verifier or the guard (the dependency then decides alone)."""
    overrides = getattr(scope.get("app"), "dependency_overrides", None)
    if overrides and (get_verifier in overrides or enforce_principal_rate_limit in overrides):
        return None
    scheme, token = get_authorization_scheme_param(Headers(scope=scope).get("authorization"))
    if not token or scheme.lower() != "bearer":
        return None
    verifier = current_verifier()
    claims = verifier.cached_claims(token)
    if claims is None:
        return None
    try:
        return verifier.principal(claims).sub
    except AuthError:
        return None  # authenticate refuses it (403) before the principal limit is charged


async def idempotency(
    request: Request, principal: Annotated[Principal, Depends(authenticate)]
) -> Idempotency:
    """Dependency: the request's `Idempotency`, scoped to the caller (a no-op wrapper when
    there is no Idempotency-Key header)."""
    return await idempotency_for(request, principal.sub)


async def idempotency_required(
    idem: Annotated[Idempotency, Depends(idempotency)],
) -> Idempotency:
    """Like `idempotency`, but a POST without the header is a 400 problem."""
    return require_key(idem)
