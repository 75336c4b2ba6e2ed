"""Competitive reports: build, version, store as files, cache-invalidate, read back.

Owns the I/O around the pure `reports.competitive`: the snapshots of the own product and of
each linked competitor (their KPIs computed from stored history), a NEW version in
`core.reports` only when the inputs hash differs from the latest version's, the Markdown and
JSON files in object storage under ``reports/{marketplace}/{asin}/v{version}.md|.json``, the
optional LLM narrative (only when `settings.llm.enabled`; its cost goes to `llm_cost_usd`, and
the report is complete without it), and the invalidation of the Redis key
``report:{marketplace}:{asin}:latest`` after COMMIT. Reports exist for own products only.
The API's reads: a report (latest or a version), its versions, and the latest read through
the cache (`read_latest_report`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import redis
import structlog
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from asinwatch.config import Settings, get_settings
from asinwatch.kit.cache import INVALIDATION_CHANNEL, Cache
from asinwatch.kit.cache_invalidation import encode_message
from asinwatch.kit.db import async_session_scope
from asinwatch.kit.readthrough import Cached, read_through
from asinwatch.kit.redis_client import prefixed, sync_redis
from asinwatch.metrics import repository as metric_repo
from asinwatch.metrics.service import kpis_of, load_product_history
from asinwatch.reports import repository as repo
from asinwatch.reports.api_schemas import ReportOut, ReportVersionOut
from asinwatch.reports.cache_keys import report_key
from asinwatch.reports.competitive import (
    ProductSnapshot,
    build_competitive_report,
    render_narrative,
    snapshot_from_kpis,
)
from asinwatch.reports.models import Report
from asinwatch.reports.narrative import generate_narrative
from asinwatch.reports.storage import ObjectStore, object_store

log = structlog.get_logger(__name__)


class ReportTargetError(LookupError):
    """The product is unknown, or not one of ours (reports compare OUR product)."""


@dataclass(frozen=True, slots=True)
class ReportResult:
    marketplace: str
    asin: str
    version: int
    created: bool  # False: the inputs were unchanged, the latest version stands
    inputs_hash: str
    markdown_uri: str | None
    json_uri: str | None
    narrative_reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "marketplace": self.marketplace,
            "asin": self.asin,
            "version": self.version,
            "created": self.created,
            "inputs_hash": self.inputs_hash,
            "markdown_uri": self.markdown_uri,
            "json_uri": self.json_uri,
            "narrative_reason": self.narrative_reason,
        }


def object_key(marketplace: str, asin: str, version: int, ext: str) -> str:
    return f"reports/{marketplace}/{asin}/v{version}.{ext}"


def snapshot_for(session: Session, marketplace: str, asin: str) -> ProductSnapshot:
    """A product's report snapshot from its KPIs (empty facts when it has no data yet)."""
    facts = metric_repo.product_facts(session, marketplace, asin)
    history = load_product_history(session, marketplace, asin)
    title = facts.title if facts else None
    if history is None:
        return ProductSnapshot(asin=asin, title=title)
    kpis = kpis_of(history)
    current = history.points[-1] if history.points else None
    if title is None and history.listing is not None:
        title = history.listing.title
    return snapshot_from_kpis(
        asin, kpis, title=title, in_stock=current.in_stock if current else None
    )


def _document(body: dict[str, Any], version: int, inputs_hash: str, narrative: str | None) -> bytes:
    doc = {
        **body,
        "version": version,
        "inputs_hash": inputs_hash,
        "generated_at": datetime.now(UTC).isoformat(),
        "narrative": narrative,
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)


def generate_competitive_report(
    session: Session,
    marketplace: str,
    asin: str,
    *,
    store: ObjectStore | None = None,
    settings: Settings | None = None,
) -> ReportResult:
    """The product's competitive report: a new version only when its inputs changed.

    Files are written before the row; a rolled-back transaction leaves files that the next
    generation of that version number overwrites. The caller commits, then invalidates the
    cache (`invalidate_cached`).
    """
    s = settings or get_settings()
    facts = metric_repo.product_facts(session, marketplace, asin)
    if facts is None:
        raise ReportTargetError(f"product {asin} is not known on {marketplace}")
    if not facts.is_own:
        raise ReportTargetError(f"{asin} is a competitor; reports are made for own products")
    repo.lock_report(session, marketplace, asin)
    own = snapshot_for(session, marketplace, asin)
    comps = [
        snapshot_for(session, marketplace, c)
        for c in metric_repo.competitor_asins(session, marketplace, asin)
    ]
    report = build_competitive_report(own, comps)
    latest = repo.latest_report(session, marketplace, asin)
    if latest is not None and latest.inputs_hash == report.inputs_hash:
        return ReportResult(
            marketplace,
            asin,
            latest.version,
            False,
            latest.inputs_hash,
            latest.markdown_uri,
            latest.json_uri,
        )
    version = (latest.version if latest else 0) + 1
    text: str | None = None
    cost = 0.0
    reason: str | None = None
    if s.llm.enabled:
        narrative = generate_narrative(report.body, settings=s)
        text, cost, reason = narrative.text, narrative.cost_usd, narrative.reason
    markdown = report.markdown
    if text:
        markdown += f"\n## Narrative\n\n{render_narrative(text)}\n"
    target = store or object_store(s)
    md_uri = target.put(
        object_key(marketplace, asin, version, "md"),
        markdown.encode(),
        "text/markdown; charset=utf-8",
    )
    json_uri = target.put(
        object_key(marketplace, asin, version, "json"),
        _document(report.body, version, report.inputs_hash, text),
        "application/json",
    )
    session.add(
        Report(
            marketplace=marketplace,
            asin=asin,
            kind=repo.COMPETITIVE,
            version=version,
            inputs_hash=report.inputs_hash,
            body=report.body,
            markdown_uri=md_uri,
            json_uri=json_uri,
            narrative=text,
            llm_cost_usd=Decimal(str(round(cost, 6))),
        )
    )
    session.flush()
    log.info("report.version_created", marketplace=marketplace, asin=asin, version=version)
    return ReportResult(
        marketplace, asin, version, True, report.inputs_hash, md_uri, json_uri, reason
    )


def invalidate_cached(keys: Iterable[str]) -> bool:
    """Delete cache keys and tell every API process (pub/sub) to drop them; never raises."""
    names = list(keys)
    if not names:
        return True
    try:
        client = sync_redis()
        try:
            client.delete(*(prefixed(k) for k in names))
            client.publish(prefixed(INVALIDATION_CHANNEL), encode_message(names))
        finally:
            client.close()
    except (redis.RedisError, OSError) as exc:
        log.warning("cache.invalidate_failed", keys=names, error=type(exc).__name__)
        return False
    return True


def invalidate_report(marketplace: str, asin: str) -> bool:
    return invalidate_cached([report_key(marketplace, asin)])


# ---------------------------------------------------------------------------- async reads


async def get_report(
    session: AsyncSession, marketplace: str, asin: str, version: int | None = None
) -> ReportOut | None:
    """The latest report of a product, or a given version; None when there is none."""
    row = await repo.get_report(session, marketplace, asin, version)
    return None if row is None else ReportOut.model_validate(row)


async def list_report_versions(
    session: AsyncSession,
    marketplace: str,
    asin: str,
    *,
    before_version: int | None = None,
    limit: int = 50,
) -> list[ReportVersionOut]:
    """The product's report versions, newest first (page with `before_version`)."""
    rows = await repo.list_versions(
        session, marketplace, asin, before_version=before_version, limit=limit
    )
    return [ReportVersionOut.model_validate(r) for r in rows]


async def read_latest_report(cache: Cache | None, marketplace: str, asin: str) -> Cached[Any]:
    """The latest report (`ReportOut` as JSON, without ``stale_at``) through the cache under
    ``report:{marketplace}:{asin}:latest``; None: the product has no report."""

    async def load() -> dict[str, Any] | None:
        async with async_session_scope() as session:
            report = await get_report(session, marketplace, asin)
        return None if report is None else report.model_dump(mode="json", exclude={"stale_at"})

    return await read_through(
        cache,
        report_key(marketplace, asin),
        load,
        fresh_s=get_settings().cache.report_fresh_s,
        kind="report",
    )
