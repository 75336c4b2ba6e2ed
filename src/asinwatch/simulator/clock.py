"""The simulator's clock: the simulated observation time, controllable by tests and benchmarks.

Frozen (the default) the time only moves when told to (`set`, `advance`), so a day-by-day
history can be generated in seconds. Following the wall clock, it runs at real speed from an
offset (for `asinwatch up`, where the real scheduler drives the daily runs).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class SimClock:
    """Thread-safe simulated time (UTC)."""

    def __init__(self, start: datetime | None = None, *, follow_wall_clock: bool = False) -> None:
        self._lock = threading.Lock()
        self._follow = follow_wall_clock
        base = _aware(start) if start is not None else datetime.now(UTC)
        # Frozen: `_at` is the time. Following: the time is wall-clock now + `_offset`.
        self._at = base
        self._offset = base - datetime.now(UTC)

    @property
    def follows_wall_clock(self) -> bool:
        return self._follow

    def now(self) -> datetime:
        with self._lock:
            if self._follow:
                return datetime.now(UTC) + self._offset
            return self._at

    def set(self, moment: datetime) -> datetime:
        """Jump to a moment (naive datetimes are taken as UTC)."""
        moment = _aware(moment)
        with self._lock:
            self._at = moment
            self._offset = moment - datetime.now(UTC)
        return moment

    def advance(self, *, days: float = 0, seconds: float = 0) -> datetime:
        """Move forward (or back, with negative values) and return the new time."""
        return self.set(self.now() + timedelta(days=days, seconds=seconds))
