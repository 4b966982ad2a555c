"""Overview figure: the cost of "today against yesterday at the same hour".

The rollups are per day, so the same-hour comparison (``analytics/intraday.py``) reads one day
of the event log twice (today so far, yesterday up to the same time) plus spans and orders. This
times it, in process on SQLite, against the overview's other work measured in the same run: the
30-day daily series of every group from the rollups (``analytics.overview.trend``: ``stats.daily``
+ ``stats.orders_by_day``).

    python -m bench.bench_overview_today [--events N --groups G --members M --days D]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from bench.common import generated_sqlite
from bench.events_gen import START

ZONE = ZoneInfo("Asia/Shanghai")


def _median_ms(fn: Callable[[], object], repeat: int = 7) -> float:
    fn()  # warm the page cache
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    from qunyun.analytics.intraday import today_and_yesterday
    from qunyun.analytics.overview import trend as overview_trend
    from qunyun.auth.scope import Scope

    parser = argparse.ArgumentParser()
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--members", type=int, default=50_000)
    args = parser.parse_args()
    url = generated_sqlite(
        f"overview-{args.events}-{args.groups}-{args.days}.db",
        events=args.events,
        groups=args.groups,
        members=args.members,
        days=args.days,
    )
    engine = create_engine(url)
    last_day = (START + timedelta(days=args.days - 1)).astimezone(ZONE).date()
    now = datetime.combine(last_day, datetime.min.time(), ZONE) + timedelta(hours=14)
    with Session(engine) as session:
        org_id = session.execute(text("SELECT id FROM organisations ORDER BY id LIMIT 1")).scalar_one()
        scope = Scope.organisation(org_id)  # the organisation-wide figures, as a lead sees them

        def trend() -> object:
            return overview_trend(session, scope, last_day)

        def same_hour() -> object:
            return today_and_yesterday(session, scope, now, ZONE)

        baseline = _median_ms(trend)
        intraday = _median_ms(same_hour)
        today, yesterday = today_and_yesterday(session, scope, now, ZONE)
    print(f"\nOverview over {args.events:,} events, {args.groups:,} groups, {args.days} days (SQLite, median)")
    print(f"  baseline: 30-day series from the rollups      {baseline:8.1f} ms")
    print(f"  today and yesterday up to 14:00 (event log)   {intraday:8.1f} ms")
    print(f"  ratio same-hour / baseline                     {intraday / baseline:8.2f}")
    print(f"  today: {today['joins']} joins, {today['actives']} actives by 14:00")
    print(f"  yesterday: {yesterday['joins']} joins, {yesterday['actives']} actives by 14:00")


if __name__ == "__main__":
    main()
