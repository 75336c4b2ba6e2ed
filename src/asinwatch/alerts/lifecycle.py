"""The alert lifecycle as pure decisions: open, bump, notify again, resolve, re-arm.

State per (product, alert type) comes in as `AlertState` (None when no alert ever existed);
a detector's `Finding` comes in; out goes a `Decision`: the action to persist, whether to
notify, why, and the state after it. Rules:

- no alert, or the last one resolved -> open a new alert (re-arm) and notify;
- open alert, finding again -> bump occurrences; notify again only after the cooldown, or
  at once when the severity escalates; an acknowledged alert stays quiet unless it escalates;
- recovery of an open/acknowledged alert -> resolve; conditions (out of stock, hijacker, ...)
  notify their recovery, events (price change, ...) resolve silently;
- every notification counts towards max_per_day for the (product, type): past it, actions
  still happen but nothing is sent.
Cooldown and max-per-day come from `AlertSettings`, overridable per alert type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Literal

from asinwatch.alerts.rules.base import SEVERITY_ORDER, Finding, Severity
from asinwatch.config import AlertSettings

AlertStatus = Literal["open", "acknowledged", "resolved"]
Action = Literal["open", "bump", "resolve", "ignore"]
# The alert_events row a decision writes; "rearmed" and "notified" are written beside it.
Event = Literal["opened", "repeated", "escalated", "resolved"]


@dataclass(frozen=True, slots=True)
class AlertState:
    """What the lifecycle needs to know about the latest alert of a (product, type)."""

    status: AlertStatus
    severity: Severity
    opened_at: datetime
    last_seen_at: datetime
    occurrences: int = 1
    last_notified_at: datetime | None = None
    # Notifications sent for this (product, type) on `notified_day` (any of its alerts).
    notified_today: int = 0
    notified_day: date | None = None
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LifecyclePolicy:
    cooldown_s: int
    max_per_day: int

    def __post_init__(self) -> None:
        if self.cooldown_s < 0 or self.max_per_day < 1:
            raise ValueError(
                f"cooldown_s must be >= 0 and max_per_day >= 1, got {self.cooldown_s}, "
                f"{self.max_per_day}"
            )


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    notify: bool
    reason: str
    state: AlertState | None  # the state after the action (None: nothing exists)
    event: Event | None  # the alert_events row to write (None: nothing happens)


def policy_for(
    settings: AlertSettings,
    alert_type: str,
    overrides: Mapping[str, Mapping[str, int]] | None = None,
) -> LifecyclePolicy:
    """The cooldown / max-per-day of one alert type: settings, then that type's overrides.

    `overrides` maps alert type -> {"cooldown_s": ..., "max_per_day": ...}; other keys raise.
    """
    cooldown, per_day = settings.cooldown_s, settings.max_per_day
    given = (overrides or {}).get(alert_type, {})
    unknown = sorted(set(given) - {"cooldown_s", "max_per_day"})
    if unknown:
        raise ValueError(
            f"{alert_type}: unknown lifecycle key(s) {', '.join(map(repr, unknown))}; "
            "allowed: cooldown_s, max_per_day"
        )
    for key, value in given.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{alert_type}: {key} must be an integer, got {value!r}")
    return LifecyclePolicy(
        cooldown_s=given.get("cooldown_s", cooldown),
        max_per_day=given.get("max_per_day", per_day),
    )


def _sent_today(state: AlertState | None, now: datetime) -> int:
    if state is None or state.notified_day != now.date():
        return 0
    return state.notified_today


def _with_notification(state: AlertState, now: datetime, notify: bool) -> AlertState:
    if not notify:
        return state
    return replace(
        state,
        last_notified_at=now,
        notified_today=_sent_today(state, now) + 1,
        notified_day=now.date(),
    )


def decide(
    state: AlertState | None, finding: Finding, now: datetime, policy: LifecyclePolicy
) -> Decision:
    """What to do with `finding` given the current alert `state` of its (product, type)."""
    sent = _sent_today(state, now)
    under_cap = sent < policy.max_per_day
    active = state is not None and state.status in ("open", "acknowledged")

    if finding.recovered:
        if state is None or not active:
            return Decision("ignore", False, "recovered: no open alert", state, None)
        wanted = finding.kind == "condition"
        notify = wanted and under_cap
        reason = "recovered: condition cleared" if wanted else "recovered: event quiet again"
        if wanted and not under_cap:
            reason += f" (max {policy.max_per_day}/day reached: not notified)"
        resolved = replace(state, status="resolved", resolved_at=now, last_seen_at=now)
        return Decision(
            "resolve", notify, reason, _with_notification(resolved, now, notify), "resolved"
        )

    if state is None or not active:
        opened = AlertState(
            status="open",
            severity=finding.severity,
            opened_at=now,
            last_seen_at=now,
            occurrences=1,
            notified_today=sent,
            notified_day=now.date() if sent else None,
        )
        reason = "opened" if state is None else "re-armed after recovery: new alert"
        if not under_cap:
            reason += f" (max {policy.max_per_day}/day reached: not notified)"
        return Decision(
            "open", under_cap, reason, _with_notification(opened, now, under_cap), "opened"
        )

    escalated = SEVERITY_ORDER[finding.severity] > SEVERITY_ORDER[state.severity]
    bumped = replace(
        state,
        occurrences=state.occurrences + 1,
        last_seen_at=now,
        severity=finding.severity if escalated else state.severity,
    )
    event: Event = "repeated"
    if escalated:
        reason = f"escalated {state.severity} → {finding.severity}"
        notify = under_cap
        event = "escalated"
    elif state.status == "acknowledged":
        return Decision("bump", False, "repeated: acknowledged, stays quiet", bumped, "repeated")
    else:
        since = (
            None
            if state.last_notified_at is None
            else (now - state.last_notified_at).total_seconds()
        )
        if since is not None and since < policy.cooldown_s:
            return Decision(
                "bump",
                False,
                f"repeated within cooldown ({int(since)}s < {policy.cooldown_s}s)",
                bumped,
                "repeated",
            )
        reason = "repeated after cooldown: notify again"
        notify = under_cap
    if not under_cap:
        reason += f" (max {policy.max_per_day}/day reached: not notified)"
    return Decision("bump", notify, reason, _with_notification(bumped, now, notify), event)
