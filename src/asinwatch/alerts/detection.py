"""Anomaly detection over stored data: the `alerts.detect_anomalies` task and its service.

Owns: building the detectors' inputs for one product from the core tables, running
`alerts.detectors.detect`, and handing every finding to the lifecycle persistence
(`alerts.service.apply_finding`). Rules that keep alerts trustworthy:

- the "current" observation of a run is the metric row that run produced: a quarantined or
  missing item never becomes a metric row, so it can never raise an alert (only the
  "tracking stale" rule speaks then, from the product's count of invalid runs);
- the history is the product's earlier validated daily rows;
- the listing diff compares the snapshot this run stored with the one before it (snapshots
  are only stored when the content changed), otherwise the listing counts as unchanged;
- competitor prices are the linked competitors' latest validated prices, at most
  `COMPETITOR_PRICE_MAX_AGE_DAYS` older than our observation.
Deliveries are queued inside the transaction; `alerts.deliver_alert` is sent after COMMIT.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import structlog
from sqlalchemy.orm import Session

from asinwatch.alerts import repository as alert_repo
from asinwatch.alerts.detectors import CompetitorPrice, DetectionContext, detect
from asinwatch.alerts.lifecycle import LifecyclePolicy, policy_for
from asinwatch.alerts.rules.thresholds import Thresholds
from asinwatch.alerts.service import Applied, apply_finding
from asinwatch.alerts.thresholds_service import thresholds_for
from asinwatch.config import get_settings
from asinwatch.ingestion.records import ListingContent
from asinwatch.kit.db import session_scope
from asinwatch.metrics import repository as metric_repo
from asinwatch.metrics.series import MetricPoint
from asinwatch.worker.celery_app import celery_app

log = structlog.get_logger(__name__)

COMPETITOR_PRICE_MAX_AGE_DAYS = 2


@dataclass(slots=True)
class DetectionSummary:
    """What a detection pass did; `deliver` lists alerts with newly queued deliveries."""

    products: int = 0
    findings: int = 0
    opened: int = 0
    bumped: int = 0
    resolved: int = 0
    notified: int = 0
    failed: int = 0  # products whose detection raised (logged; the chain goes on)
    deliver: list[int] = field(default_factory=list)

    def add(self, applied: Iterable[Applied]) -> None:
        for a in applied:
            self.findings += 1
            if a.decision.action == "open":
                self.opened += 1
            elif a.decision.action == "bump":
                self.bumped += 1
            elif a.decision.action == "resolve":
                self.resolved += 1
            if a.decision.notify:
                self.notified += 1
            if a.queued_deliveries and a.alert_id is not None and a.alert_id not in self.deliver:
                self.deliver.append(a.alert_id)

    def as_dict(self) -> dict[str, object]:
        return {
            "products": self.products,
            "findings": self.findings,
            "opened": self.opened,
            "bumped": self.bumped,
            "resolved": self.resolved,
            "notified": self.notified,
            "failed": self.failed,
            "deliver": list(self.deliver),
        }


def _competitor_prices(
    session: Session, marketplace: str, asin: str, current: MetricPoint
) -> tuple[CompetitorPrice, ...]:
    comps = metric_repo.competitor_asins(session, marketplace, asin)
    latest = metric_repo.latest_points(session, marketplace, comps)
    oldest = current.date - timedelta(days=COMPETITOR_PRICE_MAX_AGE_DAYS)
    return tuple(
        CompetitorPrice(c, p.buybox_price, p.currency, p.buybox_seller_name)
        for c, p in sorted(latest.items())
        if p.buybox_price is not None and p.date >= oldest
    )


def _listings(
    session: Session, marketplace: str, asin: str, current: MetricPoint, run_id: uuid.UUID
) -> tuple[ListingContent | None, ListingContent | None]:
    snaps = metric_repo.latest_snapshots(
        session, marketplace, asin, until=current.observed_at, limit=2
    )
    if not snaps:
        return None, None
    newest = snaps[0]
    changed_now = newest.run_id == run_id or newest.observed_at == current.observed_at
    if not changed_now:
        return newest.content, newest.content
    previous = snaps[1].content if len(snaps) > 1 else None
    return previous, newest.content


def build_context(
    session: Session,
    facts: metric_repo.ProductFacts,
    current: MetricPoint | None,
    run_id: uuid.UUID,
    thresholds: Thresholds,
) -> DetectionContext:
    """Everything besides the series that the detectors need, read from the core tables."""
    if current is None:
        return DetectionContext(thresholds=thresholds, invalid_runs=facts.invalid_runs)
    spike = thresholds.negative_review_spike
    since = current.date - timedelta(days=spike.baseline_days + spike.window_days)
    reviews = metric_repo.load_reviews(
        session, facts.marketplace, facts.asin, since=since, until=current.date
    )
    previous, now_listing = _listings(session, facts.marketplace, facts.asin, current, run_id)
    return DetectionContext(
        thresholds=thresholds,
        seller_allowlist=frozenset(facts.seller_allowlist),
        competitor_prices=_competitor_prices(session, facts.marketplace, facts.asin, current),
        previous_listing=previous,
        current_listing=now_listing,
        recent_reviews=tuple(reviews),
        invalid_runs=0,
    )


def _policies(types: Iterable[str]) -> dict[str, LifecyclePolicy]:
    settings = get_settings().alerts
    return {t: policy_for(settings, t) for t in types}


def detect_for_product(
    session: Session,
    marketplace: str,
    asin: str,
    *,
    run_id: uuid.UUID,
    now: datetime | None = None,
) -> list[Applied]:
    """Run every detector for one product after `run_id` and persist the lifecycle decisions.

    `now` is the lifecycle's clock (cooldown, max per day); the wall clock by default.
    """
    facts = metric_repo.product_facts(session, marketplace, asin)
    if facts is None or facts.tracking_state != "active":
        return []
    alert_repo.lock_product(session, marketplace, asin)
    current = metric_repo.metric_row_of_run(session, marketplace, asin, run_id)
    end = current.date if current is not None else _today(now)
    history = metric_repo.load_history(session, marketplace, asin, end=end)
    thresholds = thresholds_for(session, marketplace, asin)
    context = build_context(session, facts, current, run_id, thresholds)
    findings = detect(history, current, context)
    if not findings:
        return []
    stored = alert_repo.current_alerts(session, marketplace, asin)
    policies = _policies(f.alert_type for f in findings)
    moment = now or datetime.now(UTC)
    seen: dict[str, object] = {"run_id": str(run_id)}
    if current is not None:
        seen |= {"observed_on": current.date, "observed_at": current.observed_at}
    applied: list[Applied] = []
    for finding in findings:
        applied.append(
            apply_finding(
                session,
                marketplace=marketplace,
                asin=asin,
                finding=finding,
                current=stored.get(finding.alert_type),
                now=moment,
                policy=policies[finding.alert_type],
                run_id=run_id,
                context=seen,
            )
        )
    return applied


def _today(now: datetime | None) -> date:
    return (now or datetime.now(UTC)).date()


def detect_for_run(
    session: Session, run_id: uuid.UUID, *, now: datetime | None = None
) -> DetectionSummary:
    """Detection for every product the run asked for (the caller commits, then delivers)."""
    summary = DetectionSummary()
    scope = metric_repo.run_scope(session, run_id)
    if scope is None:
        log.warning("detection.run_unknown", run_id=str(run_id))
        return summary
    for asin in scope.asins:
        summary.products += 1
        summary.add(detect_for_product(session, scope.marketplace, asin, run_id=run_id, now=now))
    log.info("detection.done", run_id=str(run_id), **summary.as_dict())
    return summary


def send_deliveries(alert_ids: Iterable[int]) -> None:
    """Ask the workers to send the alerts' queued deliveries now (after COMMIT only)."""
    for alert_id in alert_ids:
        celery_app.send_task("alerts.deliver_alert", args=[alert_id])


def detect_run_committing(
    run_id: uuid.UUID, *, now: datetime | None = None, deliver: bool = True
) -> DetectionSummary:
    """Detection for a run with one transaction per product: an alert row is never locked
        longer than its product's detection (an acknowledge from the API waits for that only),
        one failing product does not undo the others (it is logged and counted, and the chain
    goes on to the reports), and deliveries go out after each COMMIT."""
    summary = DetectionSummary()
    with session_scope() as session:
        scope = metric_repo.run_scope(session, run_id)
    if scope is None:
        log.warning("detection.run_unknown", run_id=str(run_id))
        return summary
    failed = 0
    for asin in scope.asins:
        summary.products += 1
        try:
            with session_scope() as session:
                applied = detect_for_product(
                    session, scope.marketplace, asin, run_id=run_id, now=now
                )
        except Exception:
            failed += 1
            log.exception("detection.product_failed", run_id=str(run_id), asin=asin)
            continue
        product = DetectionSummary()
        product.add(applied)
        summary.add(applied)
        if deliver:
            send_deliveries(product.deliver)
    summary.failed = failed
    log.info("detection.done", run_id=str(run_id), **summary.as_dict())
    return summary


@celery_app.task(name="alerts.detect_anomalies")
def detect_anomalies(run_id: str) -> dict[str, object]:
    """Detect anomalies for a promoted run (one transaction per product)."""
    return detect_run_committing(uuid.UUID(str(run_id))).as_dict()
