"""Detection and the alert lifecycle on the real database: KPIs persisted, de-duplication
within the cooldown, recovery and re-arming, quarantined items, per-product thresholds and the
async acknowledge / resolve services."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from asinwatch.alerts import service as alerts
from asinwatch.alerts import thresholds_service
from asinwatch.alerts.detection import detect_for_run
from asinwatch.kit.db import async_session_scope, session_scope
from asinwatch.kit.pagination import PageParams
from asinwatch.metrics.service import compute_kpis_for_run
from tests.analytics_integration.helpers import MKT, OWN, blocked, ingest, item, moment, seed


def rows(db_url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        return list(conn.execute(sql, params).fetchall())


def detect(run_id: uuid.UUID, day: int) -> None:
    with session_scope() as s:
        detect_for_run(s, run_id, now=moment(day))


def history(days: int = 6, price: float = 20.0) -> list[uuid.UUID]:
    return [ingest(d, [item(OWN, price)]) for d in range(days)]


def add_channel(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "INSERT INTO core.notification_channels (name, kind, target, alert_types,"
            " min_severity, enabled) VALUES ('hook', 'webhook', 'http://127.0.0.1:9/hook',"
            " '{}', 'info', true)"
        )


def test_kpis_are_computed_and_stored_per_product_and_day(clean_db: str) -> None:
    seed({OWN: True})
    runs = [ingest(d, [item(OWN, 20.0 + d)]) for d in range(5)]
    with session_scope() as s:
        summary = compute_kpis_for_run(s, runs[-1])
    assert summary.products == 1 and summary.day == moment(4).date()
    [(day, kpis)] = rows(clean_db, "SELECT date, kpis FROM mart.product_kpis_daily")
    assert day == moment(4).date()
    assert kpis["price"]["current"] == 24.0 and kpis["observations"] == 5
    assert kpis["price"]["changes"]["1d"]["abs"] == 1.0
    # idempotent: the same run again updates the same row
    with session_scope() as s:
        compute_kpis_for_run(s, runs[-1])
    assert len(rows(clean_db, "SELECT 1 FROM mart.product_kpis_daily")) == 1


def test_dedup_within_cooldown_recovery_and_rearm(clean_db: str) -> None:
    seed({OWN: True})
    add_channel(clean_db)
    history()
    out = ingest(6, [item(OWN, None, in_stock=False, seller=None)])
    detect(out, 6)
    detect(out, 6)  # the same data again, within the cooldown
    [(alert_id, status, occurrences, severity)] = rows(
        clean_db,
        "SELECT id, status, occurrences, severity FROM core.alerts"
        " WHERE alert_type = 'out_of_stock'",
    )
    assert (status, occurrences, severity) == ("open", 2, "critical")
    events = [e for (e,) in rows(clean_db, "SELECT event FROM core.alert_events ORDER BY id")]
    assert events == ["opened", "notified", "repeated"]
    assert rows(clean_db, "SELECT event_key FROM core.alert_deliveries") == [("opened:1",)]
    # only the out-of-stock alert: no "buy box lost" while out of stock
    assert rows(clean_db, "SELECT count(*) FROM core.alerts") == [(1,)]

    back = ingest(7, [item(OWN, 20.0)])
    detect(back, 7)
    assert rows(
        clean_db, "SELECT status, resolved_by FROM core.alerts WHERE id = %s", alert_id
    ) == [("resolved", "system")]
    keys = {k for (k,) in rows(clean_db, "SELECT event_key FROM core.alert_deliveries")}
    assert keys == {"opened:1", "resolved:2"}  # a condition notifies its recovery

    again = ingest(8, [item(OWN, None, in_stock=False, seller=None)])
    detect(again, 8)
    alerts_rows = rows(
        clean_db,
        "SELECT id, status FROM core.alerts WHERE alert_type = 'out_of_stock' ORDER BY id",
    )
    assert len(alerts_rows) == 2 and alerts_rows[1][1] == "open"
    new_events = [
        e
        for (e,) in rows(
            clean_db,
            "SELECT event FROM core.alert_events WHERE alert_id = %s ORDER BY id",
            alerts_rows[1][0],
        )
    ]
    assert new_events == ["opened", "rearmed", "notified"]


def test_quarantined_items_never_raise_alerts_or_metrics(clean_db: str) -> None:
    seed({OWN: True})
    history()
    bad = ingest(6, [blocked(OWN)])
    detect(bad, 6)
    assert rows(clean_db, "SELECT status FROM staging_raw.raw_events WHERE run_id = %s", bad) == [
        ("quarantined",)
    ]
    assert rows(
        clean_db, "SELECT count(*) FROM core.product_metrics_daily WHERE run_id = %s", bad
    ) == [(0,)]
    assert rows(clean_db, "SELECT count(*) FROM core.alerts") == [(0,)]
    # the next valid observation is compared with the last VALID one (20.00 -> 12.00)
    good = ingest(7, [item(OWN, 12.0)])
    detect(good, 7)
    [(title, details)] = rows(
        clean_db, "SELECT title, details FROM core.alerts WHERE alert_type = 'price_change'"
    )
    assert "20.00 → 12.00" in title and details["run_id"] == str(good)


async def test_threshold_override_per_product_changes_the_outcome(clean_db: str) -> None:
    seed({OWN: True})
    history()
    run = ingest(6, [item(OWN, 19.20)])  # -4 %: under the 5 % default
    detect(run, 6)
    assert rows(clean_db, "SELECT count(*) FROM core.alerts") == [(0,)]

    async with async_session_scope() as session:
        await thresholds_service.set_threshold(session, MKT, "*", "price_change", {"min_pct": 50.0})
        view = await thresholds_service.set_threshold(
            session, MKT, OWN, "price_change", {"min_pct": 3.0}
        )
    assert view.effective["price_change"]["min_pct"] == 3.0  # the product's own row wins
    assert view.marketplace_overrides["price_change"].params == {"min_pct": 50.0}
    detect(run, 6)
    [(alert_type, severity)] = rows(clean_db, "SELECT alert_type, severity FROM core.alerts")
    assert (alert_type, severity) == ("price_change", "warning")

    async with async_session_scope() as session:
        with pytest.raises(thresholds_service.ThresholdValidationError, match="unknown"):
            await thresholds_service.set_threshold(session, MKT, OWN, "price_change", {"pct": 3.0})
        with pytest.raises(thresholds_service.ThresholdValidationError, match="min_pct"):
            await thresholds_service.set_threshold(
                session, MKT, OWN, "price_change", {"min_pct": -1.0}
            )
        with pytest.raises(thresholds_service.ThresholdValidationError, match="alert type"):
            await thresholds_service.set_threshold(session, MKT, OWN, "nope", {})
        assert await thresholds_service.delete_threshold(session, MKT, OWN, "price_change")
        assert not await thresholds_service.delete_threshold(session, MKT, OWN, "price_change")
        view = await thresholds_service.get_thresholds(session, MKT, OWN)
    assert view.effective["price_change"]["min_pct"] == 50.0
    assert view.product_overrides == {}


async def test_acknowledge_and_resolve_through_the_async_service(clean_db: str) -> None:
    seed({OWN: True})
    add_channel(clean_db)
    history()
    run = ingest(6, [item(OWN, None, in_stock=False, seller=None)])
    detect(run, 6)
    [(alert_id,)] = rows(clean_db, "SELECT id FROM core.alerts")

    async with async_session_scope() as session:
        page = await alerts.list_alerts(session, PageParams(limit=10), status="open", asin=OWN)
        assert [a.id for a in page.items] == [alert_id]
        none = await alerts.list_alerts(session, PageParams(limit=10), status="resolved")
        assert none.items == []
        with pytest.raises(alerts.AlertQueryError):
            await alerts.list_alerts(session, PageParams(limit=10), severity="loud")
        acked = await alerts.acknowledge(session, alert_id, "ops@example.com")
        assert acked.status == "acknowledged" and acked.acknowledged_by == "ops@example.com"
        again = await alerts.acknowledge(session, alert_id, "someone-else")
        assert again.acknowledged_by == "ops@example.com"  # idempotent
    # acknowledged: a repeat stays quiet (no new delivery)
    detect(ingest(7, [item(OWN, None, in_stock=False, seller=None)]), 7)
    assert rows(clean_db, "SELECT count(*) FROM core.alert_deliveries") == [(1,)]
    assert rows(clean_db, "SELECT count(*) FROM core.alerts") == [(1,)]  # not "suppressed"

    async with async_session_scope() as session:
        resolved = await alerts.resolve(session, alert_id, "ops@example.com")
        assert resolved.status == "resolved" and resolved.resolved_by == "ops@example.com"
        with pytest.raises(alerts.AlertStateError):
            await alerts.acknowledge(session, alert_id, "ops@example.com")
        detail = await alerts.get_alert(session, alert_id)
        with pytest.raises(alerts.AlertNotFoundError):
            await alerts.get_alert(session, 999_999)
    history_events = [e.event for e in detail.history]
    assert history_events == ["opened", "notified", "acknowledged", "repeated", "resolved"]
    assert [(d.event_key, d.channel_name) for d in detail.deliveries] == [("opened:1", "hook")]


async def test_disabling_a_type_for_the_marketplace_and_re_enabling_it_per_product(
    clean_db: str,
) -> None:
    seed({OWN: True})
    history()
    run = ingest(6, [item(OWN, None, in_stock=False, seller=None)])
    async with async_session_scope() as session:
        await thresholds_service.set_threshold(session, MKT, "*", "out_of_stock", {}, enabled=False)
    detect(run, 6)
    assert rows(clean_db, "SELECT count(*) FROM core.alerts") == [(0,)]
    async with async_session_scope() as session:
        view = await thresholds_service.set_threshold(session, MKT, OWN, "out_of_stock", {})
    assert view.effective["out_of_stock"]["enabled"] is True
    detect(run, 6)
    assert rows(clean_db, "SELECT alert_type FROM core.alerts") == [("out_of_stock",)]


def test_the_task_body_commits_per_product(clean_db: str) -> None:
    from asinwatch.alerts.detection import detect_run_committing

    seed({OWN: True})
    add_channel(clean_db)
    history()
    run = ingest(6, [item(OWN, None, in_stock=False, seller=None)])
    summary = detect_run_committing(run, now=moment(6), deliver=False)
    [(alert_id,)] = rows(clean_db, "SELECT id FROM core.alerts")
    assert summary.as_dict() | {"findings": 0} == {
        "products": 1,
        "findings": 0,
        "opened": 1,
        "bumped": 0,
        "resolved": 0,
        "notified": 1,
        "failed": 0,
        "deliver": [alert_id],
    }
    assert summary.findings >= 1
