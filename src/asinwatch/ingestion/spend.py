"""Upstream spend control around the Apify adapter (owns: the daily cap, its alert, the
admin gate on large or untracked runs, and what a batch remembers of its upstream runs).

- Daily cap (`apify.max_cost_usd_per_day`, USD per UTC day): the spend is the sum of
  `core.ingest_runs.cost_usd` of the runs created, finished or still open since 00:00 UTC (the
  database is the ledger: every batch's cost lands there, see staging and park_dead). A new run
  (API, CLI, schedule) is refused once it is reached, and so is the fetch of every further
  batch (its batch is parked as a dead letter, replayable the next day). Each refusal opens or
  bumps one critical `upstream_spend_cap` alert through the alert lifecycle and delivery.
  Like the LLM cap it is checked before calling; unlike it there is no reservation, because a
  run's cost is only known afterwards: one in-flight batch per slot can overshoot the cap by at
  most `apify.max_run_cost_usd` per actor run (Apify enforces maxTotalChargeUsd).
- Admin gate: a run over more than `ingest.admin_run_size` ASINs, or over ASINs that are not
  active tracked products, needs the admin role (API and CLI pass the caller's role).
- Resume: a batch's upstream runs are recorded as soon as they start, and the next attempt
  passes them (and a stable marker) to the adapter, which reuses or reconciles them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy.orm import Session

from asinwatch.alerts.rules.base import Finding
from asinwatch.auth.roles import Role, role_satisfies
from asinwatch.config import Settings, get_settings
from asinwatch.ingestion import pipeline_alerts, repository
from asinwatch.kit.db import session_scope
from asinwatch.observability.metrics import UPSTREAM_GUARDS

log = structlog.get_logger(__name__)

ALERT_TYPE = "upstream_spend_cap"


class SpendCapReachedError(RuntimeError):
    """The day's upstream spend has reached `apify.max_cost_usd_per_day`."""

    def __init__(self, spent: Decimal, cap: float, marketplace: str, now: datetime) -> None:
        self.spent = spent
        self.cap = cap
        self.marketplace = marketplace
        tomorrow = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
        self.retry_after_s = max(1, int((tomorrow - now).total_seconds()))
        super().__init__(
            f"daily upstream spend cap reached: ${spent:.4f} spent today (UTC) of"
            f" ${cap:.2f} (apify.max_cost_usd_per_day); new runs are refused until 00:00 UTC"
        )


class AdminRequiredError(PermissionError):
    """The run is too large, or covers untracked ASINs: only an admin may start it."""


def day_start(now: datetime) -> datetime:
    return datetime.combine(now.astimezone(UTC).date(), datetime.min.time(), UTC)


def check_cap(session: Session, marketplace: str, *, now: datetime | None = None) -> None:
    """Raise SpendCapReachedError when today's upstream spend has reached the cap."""
    cap = get_settings().apify.max_cost_usd_per_day
    moment = now or datetime.now(UTC)
    spent = repository.upstream_cost_since(session, day_start(moment))
    if spent >= Decimal(str(cap)):
        raise SpendCapReachedError(spent, cap, marketplace, moment)


def raise_cap_alert(exc: SpendCapReachedError, run_id: uuid.UUID | None = None) -> int | None:
    """Open (or bump) the critical spend-cap alert in its own transaction; send deliveries."""
    finding = Finding(
        ALERT_TYPE,
        "critical",
        f"Daily upstream spend cap reached (${exc.spent:.2f} of ${exc.cap:.2f})",
        {"spent_usd": exc.spent, "cap_usd": exc.cap, "day": datetime.now(UTC).date().isoformat()},
        kind="condition",
    )
    try:
        with session_scope() as session:
            applied = pipeline_alerts.apply_pipeline_finding(
                session, exc.marketplace, finding, run_id
            )
    except Exception:
        log.exception("spend cap alert could not be recorded")
        return None
    UPSTREAM_GUARDS.labels("spend_cap").inc()
    log.error("upstream spend cap reached", spent_usd=str(exc.spent), cap_usd=exc.cap)
    if applied.queued_deliveries and applied.alert_id is not None:
        pipeline_alerts.send_delivery(applied.alert_id)
    return applied.alert_id


def guard_batch(marketplace: str, run_id: uuid.UUID) -> None:
    """Before a batch calls upstream: refuse (and alert) once the day's cap is reached."""
    with session_scope() as session:
        try:
            check_cap(session, marketplace)
        except SpendCapReachedError as exc:
            error = exc
        else:
            return
    raise_cap_alert(error, run_id)
    raise error


def check_admin(
    session: Session,
    marketplace: str,
    asins: Sequence[str],
    role: Role,
    settings: Settings | None = None,
) -> None:
    """AdminRequiredError unless `role` may start a run over `asins` on `marketplace`."""
    if role_satisfies(role, "admin"):
        return
    limit = (settings or get_settings()).ingest.admin_run_size
    if len(asins) > limit:
        raise AdminRequiredError(
            f"a run over {len(asins)} ASINs needs the admin role"
            f" (more than ingest.admin_run_size={limit})"
        )
    untracked = repository.untracked_asins(session, marketplace, asins)
    if untracked:
        shown = ", ".join(untracked[:5]) + (
            f" (+{len(untracked) - 5} more)" if len(untracked) > 5 else ""
        )
        raise AdminRequiredError(
            f"a run over ASINs not tracked on {marketplace} needs the admin role: {shown}"
        )


# ---------------------------------------------------------------- batch resume


def resume_options(run_id: uuid.UUID, batch_no: int, attempts: int) -> dict[str, Any]:
    """ApifySource options for one attempt of a batch: its earlier runs, a stable marker,
    reconciliation on retries, and recording of every run as soon as it starts."""
    with session_scope() as session:
        known = repository.batch_upstream_runs(session, run_id, batch_no)

    def record(actor: str, upstream_run_id: str) -> None:
        with session_scope() as session:
            repository.add_batch_upstream_run(session, run_id, batch_no, upstream_run_id)

    return {
        "known_run_ids": known,
        "marker": f"aw:{run_id}:{batch_no}",
        "reconcile_first": attempts > 1,
        "on_run_started": record,
    }


def record_notes(run_id: uuid.UUID, notes: Sequence[dict[str, Any]]) -> None:
    """Keep what the guards did (truncated datasets, unknown costs, reused runs) on the run."""
    if notes:
        with session_scope() as session:
            repository.add_run_notes(session, run_id, notes)
