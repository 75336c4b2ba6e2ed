"""Roles (viewer < operator < admin), the authenticated `Principal`, and reading the role claim.

Pure functions over plain data: no I/O, no FastAPI.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

Role = Literal["viewer", "operator", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "admin")
_RANK: dict[str, int] = {role: rank for rank, role in enumerate(ROLES)}


class UnknownRoleError(ValueError):
    """A role name that is not one of viewer, operator, admin."""


def parse_role(value: object) -> Role:
    """The role named by `value`, or `UnknownRoleError`."""
    if isinstance(value, str) and value in _RANK:
        return cast(Role, value)
    raise UnknownRoleError(f"unknown role {value!r}; expected one of: {', '.join(ROLES)}")


def role_satisfies(actual: Role, required: Role) -> bool:
    """True when `actual` is at least `required` in viewer < operator < admin."""
    return _RANK[actual] >= _RANK[required]


def claim_at(claims: Mapping[str, Any], path: str) -> object:
    """The value at a dotted claim path (``app_metadata.role``), or None when absent."""
    node: object = claims
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def nest_claim(path: str, value: object) -> dict[str, Any]:
    """``("app_metadata.role", "admin")`` → ``{"app_metadata": {"role": "admin"}}``."""
    parts = path.split(".")
    out: dict[str, Any] = {parts[-1]: value}
    for part in reversed(parts[:-1]):
        out = {part: out}
    return out


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's subject, its app role, its id, and every verified claim.

    `token_id` is the ``jti`` claim, or Supabase's ``session_id`` when there is no ``jti``.
    """

    sub: str
    role: Role
    token_id: str | None
    claims: Mapping[str, Any] = field(repr=False)

    def has_role(self, required: Role) -> bool:
        return role_satisfies(self.role, required)
