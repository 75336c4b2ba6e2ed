"""Recommendations of a product: evaluate the rule engine on stored data, version, read back.

Owns: the rule inputs of one product (its KPIs computed from stored history, the current
listing snapshot, the linked competitors' latest validated price / rating / review count),
`recommendations.rules.evaluate`, and `core.recommendations` versioning: a NEW version only
when the inputs hash or the rule-set version differs from the latest set's. A forced refresh
(the API's job) recomputes everything from the stored data now, never reusing a stored
result, and still only adds a version when something changed; its result says which. The Redis key
``recommendation:{marketplace}:{asin}:latest`` is invalidated by the caller after COMMIT; the
API reads the latest set through the cache (`read_latest`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from asinwatch.config import get_settings
from asinwatch.kit.cache import Cache
from asinwatch.kit.db import async_session_scope
from asinwatch.kit.readthrough import Cached, read_through
from asinwatch.metrics import repository as metric_repo
from asinwatch.metrics.service import kpis_of, load_product_history
from asinwatch.recommendations import repository as repo
from asinwatch.recommendations.api_schemas import RecommendationSetOut
from asinwatch.recommendations.cache_keys import recommendation_key
from asinwatch.recommendations.models import RecommendationSet
from asinwatch.recommendations.rules import (
    RULESET_VERSION,
    CompetitorFacts,
    RecommendationInputs,
    RecommendationResult,
    evaluate,
    inputs_from_kpis,
)


class RecommendationTargetError(LookupError):
    """The product is unknown or has no observation yet."""


@dataclass(frozen=True, slots=True)
class RefreshOutcome:
    marketplace: str
    asin: str
    version: int
    created: bool  # False: inputs and rule set unchanged, the latest version stands
    ruleset_version: str
    inputs_hash: str
    items: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "marketplace": self.marketplace,
            "asin": self.asin,
            "version": self.version,
            "created": self.created,
            "ruleset_version": self.ruleset_version,
            "inputs_hash": self.inputs_hash,
            "items": self.items,
        }


def recommendation_inputs(session: Session, marketplace: str, asin: str) -> RecommendationInputs:
    """The rule inputs of a product from stored data; raises RecommendationTargetError."""
    if metric_repo.product_facts(session, marketplace, asin) is None:
        raise RecommendationTargetError(f"product {asin} is not known on {marketplace}")
    history = load_product_history(session, marketplace, asin)
    if history is None:
        raise RecommendationTargetError(f"product {asin} on {marketplace} has no observation yet")
    comps = metric_repo.competitor_asins(session, marketplace, asin)
    latest = metric_repo.latest_points(session, marketplace, comps)
    competitors = [
        CompetitorFacts(
            asin=c,
            price=float(p.buybox_price) if p.buybox_price is not None else None,
            rating=float(p.rating) if p.rating is not None else None,
            review_count=p.review_count,
        )
        for c, p in sorted(latest.items())
    ]
    return inputs_from_kpis(
        asin, kpis_of(history), listing=history.listing, competitors=competitors
    )


def evaluate_product(session: Session, marketplace: str, asin: str) -> RecommendationResult:
    """Evaluate the rules now (no storage)."""
    return evaluate(recommendation_inputs(session, marketplace, asin))


def refresh_product(session: Session, marketplace: str, asin: str) -> RefreshOutcome:
    """Recompute from the stored data now; store a new version when the inputs or the rule
    set changed, else report the latest version (`created=False`)."""
    repo.lock_product(session, marketplace, asin)
    result = evaluate_product(session, marketplace, asin)
    latest = repo.latest_set(session, marketplace, asin)
    unchanged = (
        latest is not None
        and latest.inputs_hash == result.inputs_hash
        and latest.ruleset_version == result.ruleset_version
    )
    if latest is not None and unchanged:
        return RefreshOutcome(
            marketplace,
            asin,
            latest.version,
            False,
            latest.ruleset_version,
            latest.inputs_hash,
            len(latest.items),
        )
    version = (latest.version if latest else 0) + 1
    items = [i.to_dict() for i in result.items]
    session.add(
        RecommendationSet(
            marketplace=marketplace,
            asin=asin,
            version=version,
            ruleset_version=result.ruleset_version,
            inputs_hash=result.inputs_hash,
            items=items,
        )
    )
    session.flush()
    return RefreshOutcome(
        marketplace, asin, version, True, result.ruleset_version, result.inputs_hash, len(items)
    )


# ---------------------------------------------------------------------------- async reads


async def get_latest(
    session: AsyncSession, marketplace: str, asin: str
) -> RecommendationSetOut | None:
    """The latest recommendation set of a product, None when there is none."""
    row = await repo.get_set(session, marketplace, asin)
    return None if row is None else RecommendationSetOut.model_validate(row)


async def get_version(
    session: AsyncSession, marketplace: str, asin: str, version: int
) -> RecommendationSetOut | None:
    row = await repo.get_set(session, marketplace, asin, version)
    return None if row is None else RecommendationSetOut.model_validate(row)


async def read_latest(cache: Cache | None, marketplace: str, asin: str) -> Cached[Any]:
    """The latest set (`RecommendationSetOut` as JSON, without ``stale_at``) through the cache
    under ``recommendation:{marketplace}:{asin}:latest``; None: no set yet."""

    async def load() -> dict[str, Any] | None:
        async with async_session_scope() as session:
            latest = await get_latest(session, marketplace, asin)
        return None if latest is None else latest.model_dump(mode="json", exclude={"stale_at"})

    return await read_through(
        cache,
        recommendation_key(marketplace, asin),
        load,
        fresh_s=get_settings().cache.recommendation_fresh_s,
        kind="recommendation",
    )


__all__ = [
    "RULESET_VERSION",
    "RecommendationSetOut",
    "RecommendationTargetError",
    "RefreshOutcome",
    "evaluate_product",
    "get_latest",
    "get_version",
    "read_latest",
    "recommendation_inputs",
    "refresh_product",
]
