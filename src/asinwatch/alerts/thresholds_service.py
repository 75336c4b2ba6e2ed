"""Alert thresholds per marketplace and per product, stored in `core.alert_thresholds`.

Owns: the effective `Thresholds` of a product (defaults, then the marketplace-wide row with
asin '*', then the product's own row, per alert type; `enabled = false` switches a type off)
for the detectors (sync), and the async get / set / delete the REST layer calls. Every write is
validated through `alerts.rules.thresholds.with_overrides` first; a bad override raises
`ThresholdValidationError` (the API turns it into 422) and nothing is stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from asinwatch.alerts.detectors import (
    ALERT_TYPES,
    ThresholdError,
    Thresholds,
    with_overrides,
)
from asinwatch.catalog.marketplaces import MARKETPLACES, is_asin

ALL_PRODUCTS = "*"


class ThresholdValidationError(ValueError):
    """A threshold request that cannot be stored; `errors` lists what is wrong (for 422)."""

    def __init__(self, message: str, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or [message]


@dataclass(frozen=True, slots=True)
class ThresholdRow:
    marketplace: str
    asin: str
    alert_type: str
    enabled: bool
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ThresholdsView:
    """A product's thresholds: what applies, and the rows it came from."""

    marketplace: str
    asin: str
    effective: dict[str, dict[str, Any]]  # alert type -> params (with "enabled")
    marketplace_overrides: dict[str, ThresholdRow]
    product_overrides: dict[str, ThresholdRow]


_SELECT = (
    "SELECT marketplace, asin, alert_type, enabled, params FROM core.alert_thresholds"
    " WHERE marketplace = :m AND asin IN ('*', :a) ORDER BY (asin = '*') DESC, alert_type"
)


def _row(r: Any) -> ThresholdRow:
    return ThresholdRow(r.marketplace, r.asin, r.alert_type, bool(r.enabled), dict(r.params or {}))


def _overrides_of(row: ThresholdRow) -> dict[str, Any]:
    # A product row that enables a type re-enables it over a marketplace row that disabled it.
    return {**row.params, "enabled": row.enabled}


def merge_rows(rows: list[ThresholdRow], base: Thresholds | None = None) -> Thresholds:
    """Apply marketplace-wide rows, then product rows (pure). Rows of unknown types are skipped
    (they cannot be stored through this module, but a type may be retired)."""
    thresholds = base or Thresholds()
    ordered = sorted(rows, key=lambda r: (r.asin != ALL_PRODUCTS, r.alert_type))
    for row in ordered:
        if row.alert_type not in ALERT_TYPES:
            continue
        thresholds = with_overrides(thresholds, row.alert_type, _overrides_of(row))
    return thresholds


def thresholds_for(session: Session, marketplace: str, asin: str) -> Thresholds:
    """The effective thresholds of one product (sync, for the detectors)."""
    rows = [_row(r) for r in session.execute(text(_SELECT), {"m": marketplace, "a": asin})]
    return merge_rows(rows)


def _effective(thresholds: Thresholds) -> dict[str, dict[str, Any]]:
    return {t: thresholds.for_type(t).model_dump(mode="json") for t in ALERT_TYPES}


def _check_target(marketplace: str, asin: str, alert_type: str | None = None) -> None:
    errors: list[str] = []
    if marketplace not in MARKETPLACES:
        errors.append(f"unknown marketplace {marketplace!r}")
    if asin != ALL_PRODUCTS and not is_asin(asin):
        errors.append(f"{asin!r} is not an ASIN (or '*' for the whole marketplace)")
    if alert_type is not None and alert_type not in ALERT_TYPES:
        errors.append(f"unknown alert type {alert_type!r}; known: {', '.join(ALERT_TYPES)}")
    if errors:
        raise ThresholdValidationError("; ".join(errors), errors)


async def _rows(session: AsyncSession, marketplace: str, asin: str) -> list[ThresholdRow]:
    result = await session.execute(text(_SELECT), {"m": marketplace, "a": asin})
    return [_row(r) for r in result]


async def get_thresholds(session: AsyncSession, marketplace: str, asin: str) -> ThresholdsView:
    """The effective thresholds of a product (asin '*': of the marketplace) and their sources."""
    _check_target(marketplace, asin)
    rows = await _rows(session, marketplace, asin)
    return ThresholdsView(
        marketplace=marketplace,
        asin=asin,
        effective=_effective(merge_rows(rows)),
        marketplace_overrides={r.alert_type: r for r in rows if r.asin == ALL_PRODUCTS},
        product_overrides={
            r.alert_type: r for r in rows if r.asin != ALL_PRODUCTS and asin != ALL_PRODUCTS
        },
    )


async def set_threshold(
    session: AsyncSession,
    marketplace: str,
    asin: str,
    alert_type: str,
    params: Mapping[str, Any],
    *,
    enabled: bool = True,
) -> ThresholdsView:
    """Store (replace) the override of one alert type for a product or, with asin '*', for
    the marketplace. Validated against the thresholds it would apply to; raises
    `ThresholdValidationError` on unknown keys, wrong types or out-of-range values."""
    _check_target(marketplace, asin, alert_type)
    if not isinstance(params, Mapping):
        raise ThresholdValidationError("params must be an object")
    if "enabled" in params:
        raise ThresholdValidationError("set 'enabled' beside params, not inside them")
    rows = [
        r
        for r in await _rows(session, marketplace, asin)
        if not (r.asin == asin and r.alert_type == alert_type)
    ]
    candidate = ThresholdRow(marketplace, asin, alert_type, enabled, dict(params))
    try:
        merge_rows([*rows, candidate])
    except ThresholdError as exc:
        raise ThresholdValidationError(str(exc)) from exc
    await session.execute(
        text(
            "INSERT INTO core.alert_thresholds (marketplace, asin, alert_type, enabled, params,"
            " created_at, updated_at) VALUES (:m, :a, :t, :e, :p, now(), now())"
            " ON CONFLICT (marketplace, asin, alert_type) DO UPDATE SET enabled = EXCLUDED.enabled,"
            " params = EXCLUDED.params, updated_at = now()"
        ),
        {"m": marketplace, "a": asin, "t": alert_type, "e": enabled, "p": Jsonb(dict(params))},
    )
    return await get_thresholds(session, marketplace, asin)


async def delete_threshold(
    session: AsyncSession, marketplace: str, asin: str, alert_type: str
) -> bool:
    """Remove one override; False when there was none."""
    _check_target(marketplace, asin, alert_type)
    result = await session.execute(
        text(
            "DELETE FROM core.alert_thresholds WHERE marketplace = :m AND asin = :a"
            " AND alert_type = :t RETURNING id"
        ),
        {"m": marketplace, "a": asin, "t": alert_type},
    )
    return result.first() is not None
