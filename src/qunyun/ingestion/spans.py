"""Membership spans: a pure replay of one member's join/leave history.

"Members of G at time t are those whose latest join/leave event in G at or before t is a join"
(PRODUCT.md). A span [joined_at, left_at) is exactly such a stretch; end-of-day member counts are
kept as +1/-1 deltas on the days spans start and end.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from qunyun.models.event import EventKind

OPEN = 99_999_999  # a day key later than any real day: "still a member"


@dataclass(frozen=True, slots=True)
class Span:
    group_id: int
    joined_at: int
    left_at: int | None
    join_event_id: int
    leave_event_id: int | None


# (event_id, group_id, kind, ts) of one member, any order
History = Iterable[tuple[int, int, int, int]]


def replay(history: History) -> list[Span]:
    """Spans of one member in every group, from that member's membership events."""
    spans: list[Span] = []
    open_by_group: dict[int, tuple[int, int]] = {}
    for event_id, group_id, kind, ts in sorted(history, key=lambda e: (e[3], e[0])):
        current = open_by_group.get(group_id)
        if kind == EventKind.MEMBER_JOINED:
            if current is None:  # a join while already in the group changes nothing
                open_by_group[group_id] = (ts, event_id)
        elif current is not None:  # a leave while not in the group changes nothing
            spans.append(Span(group_id, current[0], ts, current[1], event_id))
            del open_by_group[group_id]
    spans.extend(Span(g, ts, None, eid, None) for g, (ts, eid) in open_by_group.items())
    return spans


def group_day_deltas(
    spans: Iterable[Span], day_of: Callable[[int], int], sign: int, out: Counter[tuple[int, int]]
) -> None:
    """Add ``sign`` × each span's end-of-day membership change to ``out[(group_id, day)]``."""
    for span in spans:
        out[(span.group_id, day_of(span.joined_at))] += sign
        if span.left_at is not None:
            out[(span.group_id, day_of(span.left_at))] -= sign


def org_day_deltas(spans: Iterable[Span], day_of: Callable[[int], int], sign: int, out: Counter[int]) -> None:
    """Same for "in at least one group": the union of the member's day intervals."""
    intervals = sorted(
        (start, end)
        for start, end in ((day_of(s.joined_at), OPEN if s.left_at is None else day_of(s.left_at)) for s in spans)
        if start < end
    )
    merged: list[list[int]] = []
    for start, end in intervals:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    for start, end in merged:
        out[start] += sign
        if end != OPEN:
            out[end] -= sign
