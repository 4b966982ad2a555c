"""A virtual clock: simulated time moves only when told to, so runs are reproducible."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

DEFAULT_ZONE = ZoneInfo("Asia/Shanghai")
# A Monday at 08:00 in Shanghai: the start of an ISO week and of the daily SOP rhythm.
DEFAULT_START = datetime(2026, 3, 2, 8, 0, tzinfo=DEFAULT_ZONE)


class VirtualClock:
    """Aware instants in ``zone``; ``advance`` moves forward, never back."""

    def __init__(self, start: datetime | None = None, *, zone: ZoneInfo = DEFAULT_ZONE) -> None:
        start = start or DEFAULT_START
        if start.tzinfo is None:
            raise ValueError("the clock needs an aware start time")
        self.zone = zone
        self._now = start.astimezone(zone)

    def now(self) -> datetime:
        return self._now

    def advance(
        self,
        delta: timedelta | None = None,
        *,
        days: float = 0,
        hours: float = 0,
        minutes: float = 0,
        seconds: float = 0,
    ) -> datetime:
        """Move time forward by ``delta`` plus the given units; returns the new now."""
        step = (delta or timedelta()) + timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
        if step < timedelta():
            raise ValueError("the clock cannot go back")
        self._now = self._now + step
        return self._now

    def advance_to(self, when: datetime) -> datetime:
        """Move time forward to ``when`` (an aware instant not before now)."""
        if when.tzinfo is None:
            raise ValueError("an aware time is required")
        if when < self._now:
            raise ValueError(f"the clock cannot go back from {self._now.isoformat()} to {when.isoformat()}")
        self._now = when.astimezone(self.zone)
        return self._now

    def __repr__(self) -> str:
        return f"VirtualClock({self._now.isoformat()})"
