"""The demo catalogue `asinwatch up` tracks on its first start with the simulator.

Own products get two linked competitors each and the seller allow-list the simulated brand
uses (so hijackers are told apart), then one ingestion run fetches them all through the real
adapter. Nothing happens when products are already tracked, so a second `up` changes nothing.
"""

from __future__ import annotations

import structlog
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert

from asinwatch.catalog.models import CompetitorLink, Product
from asinwatch.config import get_settings
from asinwatch.ingestion import service as ingestion
from asinwatch.kit.db import session_scope
from asinwatch.simulator.engine import SimConfig, Simulator
from asinwatch.simulator.market import sample_asins

log = structlog.get_logger(__name__)

DEMO_JOB_ID = "demo:initial"


def seed_demo_catalogue(own_count: int) -> int:
    """Track the demo catalogue if nothing is tracked; returns how many products were added."""
    s = get_settings()
    market = s.default_marketplace
    sim = Simulator(SimConfig.from_settings(s.simulator))
    asins = sample_asins(s.simulator.seed, own_count * 3)
    own, rivals = asins[:own_count], asins[own_count:]
    with session_scope() as session:
        if session.scalar(select(func.count()).select_from(Product)):
            return 0
        rows = [
            {
                "marketplace": market,
                "asin": a,
                "is_own": i < own_count,
                "seller_allowlist": sim.authorised_sellers(market, a) if i < own_count else [],
                "tags": ["demo"],
            }
            for i, a in enumerate(own + rivals)
        ]
        session.execute(insert(Product).values(rows).on_conflict_do_nothing())
        links = [
            {"marketplace": market, "asin": a, "competitor_asin": rivals[2 * i + k]}
            for i, a in enumerate(own)
            for k in (0, 1)
        ]
        if links:
            session.execute(insert(CompetitorLink).values(links).on_conflict_do_nothing())
        run, created = ingestion.prepare_run(
            session,
            marketplace=market,
            asins=None,
            all_tracked=True,
            trigger="manual",
            job_id=DEMO_JOB_ID,
        )
    if created:
        ingestion.enqueue_run_sync(run.id)
    log.info("demo catalogue tracked", products=len(rows), run_id=str(run.id))
    return len(rows)
