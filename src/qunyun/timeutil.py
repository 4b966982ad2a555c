"""Calendar helpers: metric days are calendar days in the organisation's zone, stored as YYYYMMDD."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from qunyun.db.base import to_micros


def day_key(d: date) -> int:
    return d.year * 10000 + d.month * 100 + d.day


def iso_week_label(d: date) -> str:
    year, week, _ = d.isocalendar()
    return f"{year}-W{week:02d}"


def week_start(d: date) -> date:
    return d - timedelta(days=d.weekday())


def day_bounds_micros(d: date, zone: ZoneInfo) -> tuple[int, int]:
    """[start, end) of calendar day ``d`` in ``zone`` as UTC epoch microseconds."""
    start = datetime.combine(d, time(), zone)
    end = datetime.combine(d + timedelta(days=1), time(), zone)
    return to_micros(start), to_micros(end)


def utcnow() -> datetime:
    return datetime.now(UTC)


def daterange(start: date, end: date) -> list[date]:
    """Every day from ``start`` to ``end`` inclusive."""
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


class DayCalculator:
    """Maps UTC microsecond instants to local-day keys fast (memoised per 15-minute bucket).

    Zone offsets change at most at whole-hour boundaries for the zones we serve (and for
    every zone on quarter hours); caching by 15-minute bucket keeps it exact.
    """

    _BUCKET = 900 * 1_000_000

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self._cache: dict[int, tuple[int, int, int]] = {}

    def day(self, micros: int) -> int:
        bucket = micros // self._BUCKET
        hit = self._cache.get(bucket)
        if hit is None:
            start = bucket * self._BUCKET
            local = datetime.fromtimestamp(start / 1_000_000, UTC).astimezone(self.zone)
            midnight = datetime.combine(local.date() + timedelta(days=1), time(), self.zone)
            hit = (day_key(local.date()), to_micros(midnight), day_key(local.date() + timedelta(days=1)))
            self._cache[bucket] = hit
        # A bucket never straddles local midnight because offsets are multiples of 15 minutes.
        return hit[0] if micros < hit[1] else hit[2]
