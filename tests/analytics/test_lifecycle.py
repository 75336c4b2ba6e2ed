"""Alert lifecycle decisions: open, dedupe, cooldown, max-per-day, escalation, resolve, re-arm."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from asinwatch.alerts.lifecycle import AlertState, Decision, LifecyclePolicy, decide, policy_for
from asinwatch.alerts.rules.base import Finding
from asinwatch.config import AlertSettings

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
POLICY = LifecyclePolicy(cooldown_s=3600, max_per_day=3)
OOS = Finding("out_of_stock", "critical", "Out of stock", kind="condition")
BACK = Finding("out_of_stock", "info", "Back in stock", recovered=True, kind="condition")
PRICE = Finding("price_change", "warning", "Price dropped 10%", kind="event")
PRICE_QUIET = Finding("price_change", "info", "Price steady", recovered=True, kind="event")


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def run(steps: list[tuple[int, Finding]], policy: LifecyclePolicy = POLICY) -> list[Decision]:
    state: AlertState | None = None
    out = []
    for minutes, finding in steps:
        decision = decide(state, finding, at(minutes), policy)
        out.append(decision)
        state = decision.state
    return out


def test_policy_from_settings_and_per_type_override() -> None:
    settings = AlertSettings(cooldown_s=7200, max_per_day=4)
    assert policy_for(settings, "price_change") == LifecyclePolicy(7200, 4)
    overrides = {"price_change": {"cooldown_s": 60}}
    assert policy_for(settings, "price_change", overrides) == LifecyclePolicy(60, 4)
    assert policy_for(settings, "out_of_stock", overrides) == LifecyclePolicy(7200, 4)
    with pytest.raises(ValueError, match="unknown lifecycle key"):
        policy_for(settings, "price_change", {"price_change": {"cooldown": 60}})
    with pytest.raises(ValueError, match="must be an integer"):
        policy_for(settings, "price_change", {"price_change": {"max_per_day": "2"}})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="max_per_day"):
        LifecyclePolicy(cooldown_s=0, max_per_day=0)


def test_first_finding_opens_and_notifies() -> None:
    d = decide(None, OOS, T0, POLICY)
    assert (d.action, d.notify, d.event, d.reason) == ("open", True, "opened", "opened")
    assert d.state is not None and d.state.status == "open" and d.state.occurrences == 1
    assert d.state.notified_today == 1 and d.state.last_notified_at == T0


def test_repeat_within_cooldown_is_deduplicated() -> None:
    _opened, again = run([(0, OOS), (30, OOS)])
    assert (again.action, again.notify) == ("bump", False)
    assert again.reason == "repeated within cooldown (1800s < 3600s)"
    assert again.state is not None and again.state.occurrences == 2
    assert again.state.last_seen_at == at(30) and again.state.last_notified_at == at(0)


def test_notify_again_after_cooldown() -> None:
    *_, late = run([(0, OOS), (30, OOS), (61, OOS)])
    assert (late.action, late.notify) == ("bump", True)
    assert late.state is not None and late.state.occurrences == 3
    assert late.state.notified_today == 2 and late.state.last_notified_at == at(61)


def test_max_per_day_caps_notifications_and_resets_next_day() -> None:
    policy = LifecyclePolicy(cooldown_s=0, max_per_day=2)
    decisions = run([(0, OOS), (10, OOS), (20, OOS), (30, OOS)], policy)
    assert [d.notify for d in decisions] == [True, True, False, False]
    assert "max 2/day reached" in decisions[2].reason
    assert decisions[3].state is not None and decisions[3].state.occurrences == 4
    next_day = decide(decisions[3].state, OOS, T0 + timedelta(days=1), policy)
    assert next_day.notify is True and next_day.state is not None
    assert next_day.state.notified_today == 1


def test_escalation_notifies_inside_cooldown() -> None:
    warn = replace(OOS, severity="warning")
    _first, esc = run([(0, warn), (5, OOS)])
    assert (esc.action, esc.notify, esc.event) == ("bump", True, "escalated")
    assert esc.reason == "escalated warning → critical"
    assert esc.state is not None and esc.state.severity == "critical"
    # a lower severity later does not downgrade the alert
    lower = decide(esc.state, warn, at(6), POLICY)
    assert lower.notify is False and lower.state is not None and lower.state.severity == "critical"
    assert lower.event == "repeated"


def test_acknowledged_alert_stays_quiet_unless_escalated() -> None:
    opened = decide(None, replace(OOS, severity="warning"), T0, POLICY)
    assert opened.state is not None
    acked = replace(opened.state, status="acknowledged", acknowledged_at=at(1))
    quiet = decide(acked, replace(OOS, severity="warning"), at(120), POLICY)
    assert (quiet.action, quiet.notify) == ("bump", False)
    assert quiet.state is not None and quiet.state.status == "acknowledged"
    loud = decide(acked, OOS, at(121), POLICY)
    assert loud.notify is True


def test_condition_recovery_resolves_and_notifies_then_rearms() -> None:
    _opened, back, again = run([(0, OOS), (90, BACK), (100, OOS)])
    assert (back.action, back.notify, back.event) == ("resolve", True, "resolved")
    assert back.state is not None and back.state.status == "resolved"
    assert back.state.resolved_at == at(90)
    # re-armed: a new alert, counted from 1, notified although within the old cooldown
    assert (again.action, again.notify) == ("open", True)
    assert again.reason == "re-armed after recovery: new alert"
    assert again.state is not None and again.state.occurrences == 1
    assert again.state.opened_at == at(100) and again.state.notified_today == 3


def test_event_recovery_resolves_silently() -> None:
    _opened, quiet = run([(0, PRICE), (60, PRICE_QUIET)])
    assert (quiet.action, quiet.notify) == ("resolve", False)
    assert quiet.reason == "recovered: event quiet again"


def test_recovery_without_open_alert_is_ignored() -> None:
    assert decide(None, BACK, T0, POLICY).action == "ignore"
    _, back = run([(0, OOS), (5, BACK)])
    again = decide(back.state, BACK, at(10), POLICY)
    assert (again.action, again.notify, again.event) == ("ignore", False, None)
    assert again.state == back.state


def test_flapping_is_bounded_by_max_per_day() -> None:
    # out, back, out, back, ... every 10 minutes: every change notifies until the cap
    steps = [(i * 10, OOS if i % 2 == 0 else BACK) for i in range(8)]
    decisions = run(steps, LifecyclePolicy(cooldown_s=3600, max_per_day=5))
    assert [d.action for d in decisions] == ["open", "resolve"] * 4
    assert [d.notify for d in decisions] == [True] * 5 + [False] * 3
