"""Alert delivery end to end: routing, signed webhooks to a real local receiver with injected
failures, retries until exactly-once acceptance, Apprise to a local json:// endpoint, exhausted
retries, and re-queuing a failed delivery."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from asinwatch import __version__
from asinwatch.alerts.delivery import (
    DeliveryNotRetryableError,
    enqueue_deliveries,
    enqueue_deliveries_async,
    retry_delay_s,
    retry_delivery,
)
from asinwatch.alerts.models import Alert, AlertDelivery
from asinwatch.alerts.tasks import deliver_alert, deliver_due
from asinwatch.kit.db import async_session_scope, session_scope
from tests.alerts.delivery_helpers import (
    GLOBAL_SECRET,
    Receiver,
    add_alert,
    add_channel,
    alert_snapshot,
    deliveries,
    delivery_env,
    receiver,
    run_until_done,
)

__all__ = ["delivery_env", "receiver"]  # fixtures used by name below


def _metric(kind: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "asinwatch_alert_deliveries_total", {"kind": kind, "outcome": outcome}
    )
    return value or 0.0


def test_routing_by_type_and_severity_and_no_double_queue(delivery_env: None) -> None:
    add_channel("all", "https://hooks.example.com/all")
    add_channel(
        "price-warn",
        "https://hooks.example.com/p",
        alert_types=["price_drop"],
        min_severity="warning",
    )
    add_channel("critical-only", "https://hooks.example.com/c", min_severity="critical")
    add_channel("disabled", "https://hooks.example.com/d", enabled=False)

    with session_scope() as s:
        alerts = {}
        for asin, alert_type, severity in [
            ("B000000001", "price_drop", "critical"),  # all, price-warn, critical-only
            ("B000000002", "price_drop", "info"),  # all
            ("B000000003", "price_drop", "warning"),  # all, price-warn
            ("B000000004", "out_of_stock", "critical"),  # all, critical-only
        ]:
            a = Alert(
                marketplace="amazon.com",
                asin=asin,
                alert_type=alert_type,
                severity=severity,
                title="t",
                details={},
            )
            s.add(a)
            s.flush()
            alerts[asin] = a
        counts = {asin: enqueue_deliveries(s, a, "opened:1") for asin, a in alerts.items()}
        # The same notification again queues nothing; a new event key queues again.
        again = enqueue_deliveries(s, alerts["B000000001"], "opened:1")
        repeated = enqueue_deliveries(s, alerts["B000000002"], "repeated:2")

    assert counts == {"B000000001": 3, "B000000002": 1, "B000000003": 2, "B000000004": 2}
    assert again == 0
    assert repeated == 1
    with session_scope() as s:
        total = s.execute(select(func.count()).select_from(AlertDelivery)).scalar_one()
        disabled_rows = s.execute(
            select(func.count()).select_from(AlertDelivery).where(AlertDelivery.channel_id == 4)
        ).scalar_one()
    assert total == 9
    assert disabled_rows == 0
    assert {d.status for d in deliveries()} == {"pending"}
    assert len({d.delivery_id for d in deliveries()}) == 9


async def test_enqueue_from_an_async_session(delivery_env: None) -> None:
    add_channel("all", "https://hooks.example.com/all")
    async with async_session_scope() as s:
        a = Alert(
            marketplace="amazon.com",
            asin="B000000009",
            alert_type="price_drop",
            severity="info",
            title="t",
            details={},
        )
        s.add(a)
        await s.flush()
        first = await enqueue_deliveries_async(s, a, "opened:1")
        second = await enqueue_deliveries_async(s, a, "opened:1")
    assert (first, second) == (1, 0)


def test_webhooks_delivered_exactly_once_despite_failures(
    delivery_env: None, receiver: Receiver
) -> None:
    own_secret = "channel-b-own-secret-abcdef"
    receiver.secrets = {"/a": GLOBAL_SECRET, "/b": own_secret}
    # /a: two 500s, a dropped connection, a request left hanging past the timeout.
    receiver.plans = {"/a": ["500", "500", "drop", "hang"], "/b": ["500"]}
    add_channel("a", receiver.url("/a"))
    add_channel(
        "b",
        receiver.url("/b"),
        secret=own_secret,
        alert_types=["price_drop"],
        min_severity="warning",
    )
    a1 = add_alert("B000000001", "price_drop", "critical")  # a, b
    a2 = add_alert("B000000002", "price_drop", "info")  # a
    a3 = add_alert("B000000003", "out_of_stock", "critical")  # a
    a4 = add_alert("B000000004", "buybox_lost", "warning")  # a
    before = alert_snapshot()
    delivered_before = _metric("webhook", "delivered")
    retrying_before = _metric("webhook", "retrying")

    run_until_done()

    # Every request carried a valid signature (the receiver checked each one).
    assert receiver.requests
    assert all(r.signature_ok for r in receiver.requests)
    assert not [r for r in receiver.requests if r.status == 401]
    # Retries re-sent the same delivery id; each alert accepted exactly once per channel.
    per_a = receiver.per_alert("/a")
    per_b = receiver.per_alert("/b")
    assert set(per_a) == {a1, a2, a3, a4}
    assert set(per_b) == {a1}
    for ids, accepted in [*per_a.values(), *per_b.values()]:
        assert len(ids) == 1
        assert accepted == 1
    failed_requests = [r for r in receiver.requests if r.status != 200]
    assert len(failed_requests) == 5
    assert len(receiver.requests) == 10

    rows = deliveries()
    assert len(rows) == 5
    assert all(d.status == "delivered" and d.delivered_at is not None for d in rows)
    assert all(d.last_status_code == 200 and d.last_error is None for d in rows)
    assert sum(d.attempts for d in rows) == 10
    by_id = {str(d.delivery_id): d for d in rows}
    for r in receiver.requests:
        assert r.delivery_id in by_id

    ok = receiver.accepted("/a")[0]
    assert ok.headers["User-Agent"] == f"asinwatch/{__version__}"
    assert ok.event == "opened"
    assert ok.headers["X-Asinwatch-Signature"].startswith("t=")
    body = ok.body
    assert body is not None
    assert set(body) >= {
        "alert_id",
        "alert_type",
        "severity",
        "title",
        "details",
        "marketplace",
        "asin",
        "status",
        "event",
        "occurred_at",
        "delivery_id",
    }
    assert body["delivery_id"] == ok.delivery_id
    assert body["details"] == {"old": 10, "new": 8}

    # The alerts themselves were only read.
    assert alert_snapshot() == before
    assert _metric("webhook", "delivered") - delivered_before == 5
    assert _metric("webhook", "retrying") - retrying_before == 5


def test_retries_exhausted_mark_failed_then_retry_delivery_requeues(
    delivery_env: None, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASINWATCH_ALERTS__DELIVERY_MAX_ATTEMPTS", "3")
    from asinwatch.config import reset_settings_cache

    reset_settings_cache()
    receiver.secrets = {"/down": GLOBAL_SECRET}
    receiver.always_fail = {"/down"}
    add_channel("down", receiver.url("/down"))
    alert_id = add_alert("B000000005", "price_drop", "critical")
    before = alert_snapshot()

    run_until_done()

    [row] = deliveries()
    assert row.status == "failed"
    assert row.attempts == 3
    assert row.last_status_code == 500
    assert row.last_error == "HTTP 500"
    assert row.delivered_at is None
    assert len(receiver.requests) == 3
    assert {r.delivery_id for r in receiver.requests} == {str(row.delivery_id)}
    assert alert_snapshot() == before

    # Delivered / pending rows are not "retried"; a failed one is re-queued with its id.
    receiver.always_fail = set()
    with session_scope() as s:
        requeued = retry_delivery(s, row.delivery_id)
        assert (requeued.status, requeued.attempts) == ("pending", 0)
    deliver_alert(alert_id)
    [after] = deliveries()
    assert after.status == "delivered"
    assert after.delivery_id == row.delivery_id
    assert receiver.per_alert("/down")[alert_id] == ({str(row.delivery_id)}, 1)
    with session_scope() as s, pytest.raises(DeliveryNotRetryableError):
        retry_delivery(s, after.id)


def test_refused_target_fails_at_once_without_connecting(delivery_env: None) -> None:
    add_channel("metadata", "https://169.254.169.254/latest/meta-data")
    add_alert("B000000006", "price_drop", "critical")
    deliver_due()
    [row] = deliveries()
    assert row.status == "failed"
    assert row.attempts == 1
    assert row.last_status_code is None
    assert row.last_error is not None
    assert row.last_error.startswith("target refused")


def test_apprise_json_to_local_endpoint(delivery_env: None, receiver: Receiver) -> None:
    receiver.plans = {"/apprise/secret-token-path": ["500"]}
    target = f"json://127.0.0.1:{receiver.port}/apprise/secret-token-path"
    add_channel("chat", target, kind="apprise")
    alert_id = add_alert("B000000007", "out_of_stock", "critical")

    run_until_done()

    [row] = deliveries()
    assert row.status == "delivered"
    assert row.attempts == 2
    reqs = [r for r in receiver.requests if r.path == "/apprise/secret-token-path"]
    assert [r.status for r in reqs] == [500, 200]
    body = reqs[-1].body
    assert body is not None
    assert body["title"] == "[CRITICAL] out_of_stock on B000000007"
    assert "amazon.com B000000007: out_of_stock (opened)" in body["message"]
    assert "new: 8" in body["message"]
    assert body["type"] == "failure"
    assert alert_id > 0


def test_apprise_failure_error_is_recorded_without_the_url(
    delivery_env: None, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASINWATCH_ALERTS__DELIVERY_MAX_ATTEMPTS", "1")
    from asinwatch.config import reset_settings_cache

    reset_settings_cache()
    receiver.always_fail = {"/apprise/tok-123456"}
    add_channel("chat", f"json://127.0.0.1:{receiver.port}/apprise/tok-123456", kind="apprise")
    add_alert("B000000008", "out_of_stock", "critical")
    run_until_done()
    [row] = deliveries()
    assert row.status == "failed"
    assert row.last_error
    assert "tok-123456" not in row.last_error


def test_backoff_is_full_jitter_exponential_and_bounded() -> None:
    for attempt in range(1, 12):
        cap = min(300.0, 10.0 * 2 ** (attempt - 1))
        delays = [retry_delay_s(attempt, 10.0, 300.0) for _ in range(50)]
        assert all(0 <= d <= cap for d in delays)
    assert retry_delay_s(3, 0.0, 300.0) == 0.0
    # Jitter: the delays are spread, not a fixed value.
    assert len({round(retry_delay_s(5, 10.0, 300.0), 6) for _ in range(20)}) > 1


def test_failed_attempt_is_scheduled_within_the_backoff_window(
    delivery_env: None, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASINWATCH_ALERTS__DELIVERY_BACKOFF_BASE_S", "1000")
    monkeypatch.setenv("ASINWATCH_ALERTS__DELIVERY_BACKOFF_MAX_S", "1000")
    from asinwatch.config import reset_settings_cache

    reset_settings_cache()
    receiver.always_fail = {"/x"}
    add_channel("x", receiver.url("/x"))
    add_alert("B000000010", "price_drop", "critical")
    with session_scope() as s:
        started = s.execute(select(func.now())).scalar_one()
    result = deliver_due()
    with session_scope() as s:
        finished = s.execute(select(func.now())).scalar_one()
    assert result == {"claimed": 1, "delivered": 0, "retrying": 1, "failed": 0}
    [row] = deliveries()
    assert row.status == "pending"
    assert row.attempts == 1
    assert started <= row.next_attempt_at <= finished + timedelta(seconds=1000)
    # Not due yet: another sweep sends nothing.
    assert deliver_due()["claimed"] == 0
    assert len(receiver.requests) == 1


def test_concurrent_sweeps_never_claim_the_same_row(delivery_env: None) -> None:
    from asinwatch.alerts.delivery import claim_due
    from asinwatch.config import get_settings

    add_channel("all", "https://hooks.example.com/all")
    for i in range(3):
        add_alert(f"B00000002{i}", "price_drop", "critical")
    settings = get_settings()
    with session_scope() as first:
        mine = claim_due(first, 2, settings)  # row locks held until this block commits
        with session_scope() as second:
            theirs = claim_due(second, 10, settings)
    assert len(mine) == 2
    assert len(theirs) == 1
    assert not {j.id for j in mine} & {j.id for j in theirs}
    # All three are now leased: a further sweep finds nothing due.
    with session_scope() as third:
        assert claim_due(third, 10, settings) == []


def test_a_lease_left_by_a_dead_worker_is_picked_up_again(
    delivery_env: None, receiver: Receiver
) -> None:
    from sqlalchemy import text

    from asinwatch.alerts.delivery import claim_due
    from asinwatch.config import get_settings

    receiver.secrets = {"/r": GLOBAL_SECRET}
    add_channel("r", receiver.url("/r"))
    alert_id = add_alert("B000000030", "price_drop", "critical")
    with session_scope() as s:
        [job] = claim_due(s, 10, get_settings())  # the worker "dies" here, before sending
    assert deliver_due()["claimed"] == 0  # leased: not due yet
    with session_scope() as s:  # the lease runs out
        s.execute(text("UPDATE core.alert_deliveries SET next_attempt_at = now() - interval '1 s'"))
    assert deliver_due()["delivered"] == 1
    [row] = deliveries()
    assert (row.status, row.attempts, row.delivery_id) == ("delivered", 2, job.delivery_id)
    assert receiver.per_alert("/r")[alert_id] == ({str(job.delivery_id)}, 1)
